"""The modules behind a forward function, and the state they hold during attribution.

`modules_of` finds the models a forward function uses; `frozen_eval` holds them in eval mode
with frozen (and, where offered, batch-norm-folded) parameters for the passes.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from torch import nn

__all__ = ["frozen_eval", "modules_of"]


@contextlib.contextmanager
def frozen_eval(modules: Sequence[nn.Module]) -> Iterator[None]:
    """Eval mode and `requires_grad=False` on every parameter for the block, then restored;
    modules that offer `batch_norm_folded()` (`nmmfast.model.UniSignModel`) run with their batch
    norms folded into the layers before them.

    Eval mode keeps rows independent (train-mode batch norm and dropout couple or perturb them);
    frozen parameters keep autograd from saving what weight gradients would need; folded batch
    norms compute the same function without their passes over the activations.
    """
    training = [(m, m.training) for root in modules for m in root.modules()]
    params = [p for root in modules for p in root.parameters() if p.requires_grad]
    try:
        for module, _ in training:
            module.training = False
        for p in params:
            p.requires_grad_(False)
        with contextlib.ExitStack() as folded:
            for root in modules:
                if callable(getattr(root, "batch_norm_folded", None)):
                    folded.enter_context(root.batch_norm_folded())
            yield
    finally:
        for module, was in training:
            module.training = was
        for p in params:
            p.requires_grad_(True)


def modules_of(
    forward_func: Callable, model: nn.Module | Sequence[nn.Module] | None
) -> list[nn.Module]:
    """The modules behind forward_func: `model` when given, else the function itself, the module
    of a bound method, and modules a closure, a functools.partial or a global name of the
    function refers to (a lambda around a model is the common case)."""
    if model is not None:
        return [model] if isinstance(model, nn.Module) else list(model)
    found: list[nn.Module] = []

    def visit(obj: Any, depth: int = 0) -> None:
        if isinstance(obj, nn.Module):
            if not any(obj is m for m in found):
                found.append(obj)
            return
        if depth > 2 or not callable(obj):
            return
        visit(getattr(obj, "__self__", None), depth + 1)
        if isinstance(obj, functools.partial):
            for value in (obj.func, *obj.args, *obj.keywords.values()):
                visit(value, depth + 1)
        for cell in getattr(obj, "__closure__", None) or ():
            with contextlib.suppress(ValueError):  # an empty cell
                visit(cell.cell_contents, depth + 1)
        code, names = getattr(obj, "__code__", None), getattr(obj, "__globals__", {})
        for name in code.co_names if code is not None else ():
            if name in names:
                visit(names[name], depth + 1)

    visit(forward_func)
    return found
