"""How the text model turns decoder states into target log-probabilities, read off the model.

Target log-probabilities must equal what the text model's own forward computes:
`log_softmax(text_model(...).logits)` gathered at the targets. `UniSignModel` computes them
without the full [B, L, V] logits (`nmmfast.model.log_probs`), so it has to apply exactly what the
forward applies between the decoder and the vocabulary head. For T5 that is a rescaling by
d_model^-0.5 which some checkpoints need and others do not, and which config flags describe
differently from one transformers release to the next (transformers 5 reports
`tie_word_embeddings=True` for every MT5, whose forward never rescales). So nothing here reads a
flag:

- `decoder_output_scale` runs the model's forward once on a short probe and measures the factor
  between the decoder's output and the head's input;
- `check_target_log_probs` compares the model's chunked log-probabilities with the forward's
  logits on a probe of ragged, padded targets, and refuses the model when they differ;
- `untie_where_state_differs` gives parameters that a model shares (tied embeddings and head)
  separate storage when a state dict holds different values for them, so loading an untied
  checkpoint into a model built tied loses nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

__all__ = [
    "TextModelMismatch",
    "check_target_log_probs",
    "decoder_output_scale",
    "untie_where_state_differs",
]

# log-probability disagreement tolerated on the probe, per token, by the model's dtype
_PROBE_TOLERANCE = {torch.float64: 1e-8, torch.float32: 1e-3}
_LOW_PRECISION_TOLERANCE = 5e-2


class TextModelMismatch(ValueError):
    """The pose→text model's target log-probabilities would differ from the text model's own."""


def _probe(text_model: nn.Module, seed: int = 0) -> dict[str, torch.Tensor]:
    """Two ragged encoder inputs and two ragged, padded target rows (-100 at padding)."""
    param = next(text_model.parameters())
    config = text_model.config
    generator = torch.Generator().manual_seed(seed)
    width = int(config.d_model)
    inputs = torch.randn(2, 5, width, generator=generator, dtype=torch.float64)
    attention = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    vocab = int(config.vocab_size)
    special = {config.pad_token_id, config.eos_token_id, config.decoder_start_token_id}
    ordinary = torch.tensor([i for i in range(min(vocab, 64)) if i not in special])
    labels = ordinary[torch.randint(len(ordinary), (2, 4), generator=generator)]
    labels[0, -1] = labels[1, 1] = int(config.eos_token_id)
    labels[1, 2:] = -100
    return {
        "inputs_embeds": inputs.to(param.device, param.dtype),
        "attention_mask": attention.to(param.device),
        "labels": labels.to(param.device),
    }


class _Eval:
    """Eval mode and no gradients inside the block; the module's own modes restored after."""

    def __init__(self, module: nn.Module) -> None:
        self.module = module

    def __enter__(self) -> None:
        self.modes = [(m, m.training) for m in self.module.modules()]
        self.module.eval()
        self.no_grad = torch.no_grad()
        self.no_grad.__enter__()

    def __exit__(self, *exc: Any) -> None:
        self.no_grad.__exit__(*exc)
        for module, training in self.modes:
            module.training = training


def decoder_output_scale(text_model: nn.Module) -> float:
    """The factor c with head input = c · decoder output in the text model's own forward.

    Measured on a probe with hooks on the decoder and on the output head; the two candidates T5
    uses (1 and d_model^-0.5) are returned exactly. Raises `TextModelMismatch` when the head's
    input is not a scalar multiple of the decoder's output.
    """
    decoder = text_model.get_decoder()
    head = text_model.get_output_embeddings()
    seen: dict[str, torch.Tensor] = {}

    def keep_decoder_output(module, args, output):
        seen["decoder"] = output[0]

    def keep_head_input(module, args):
        seen["head"] = args[0]

    hooks = [
        decoder.register_forward_hook(keep_decoder_output),
        head.register_forward_pre_hook(keep_head_input),
    ]
    try:
        with _Eval(text_model):
            text_model(**_probe(text_model))
    finally:
        for hook in hooks:
            hook.remove()
    name = type(text_model).__name__
    if set(seen) != {"decoder", "head"}:
        raise TextModelMismatch(
            f"{name}: its forward did not pass through get_decoder() and "
            f"get_output_embeddings(); only T5/MT5-style encoder-decoders are supported"
        )
    decoder_out = seen["decoder"].double().flatten()
    head_in = seen["head"].double().flatten()
    scale = float(head_in @ decoder_out / (decoder_out @ decoder_out))
    residual = float((head_in - scale * decoder_out).norm() / head_in.norm())
    if not residual <= 1e-3:
        raise TextModelMismatch(
            f"{name}: its output head's input is not a rescaled decoder output (relative "
            f"residual {residual:.2e}); nmmfast cannot reproduce its log-probabilities"
        )
    for candidate in (1.0, float(text_model.config.d_model) ** -0.5):
        if abs(scale - candidate) <= 1e-4 * candidate:
            return candidate
    return scale


def check_target_log_probs(model: Any, seed: int = 0) -> float:
    """Compare `model`'s target log-probabilities with its text model's own forward.

    `model` is a `UniSignModel`. On a probe of two ragged encoder inputs and ragged, padded
    targets, the per-token values of `model.target_log_probs_from_states` must equal
    `log_softmax(text_model(...).logits)` at the targets, within a tolerance set by the dtype
    (1e-8 in float64, 1e-3 in float32). Returns the largest difference; raises
    `TextModelMismatch` naming the text model when it is exceeded.
    """
    text_model = model.text_model
    probe = _probe(text_model, seed)
    labels = probe["labels"]
    with _Eval(text_model):
        logits = text_model(**probe).logits
        theirs = logits.double().log_softmax(-1).gather(2, labels.clamp(min=0)[..., None])[..., 0]
        theirs = theirs.masked_fill(labels == -100, 0.0)
        states = text_model.get_encoder()(
            inputs_embeds=probe["inputs_embeds"], attention_mask=probe["attention_mask"]
        )[0]
        ours = model.target_log_probs_from_states(states, probe["attention_mask"], labels)
    difference = float((ours.double() - theirs).abs().max())
    dtype = next(text_model.parameters()).dtype
    tolerance = _PROBE_TOLERANCE.get(dtype, _LOW_PRECISION_TOLERANCE)
    if not difference <= tolerance:
        raise TextModelMismatch(
            f"{type(text_model).__name__}: target log-probabilities differ from its own forward "
            f"by up to {difference:.3g} (tolerance {tolerance:g} in {dtype}); refusing a model "
            f"whose attributions would describe another function"
        )
    return difference


def untie_where_state_differs(module: nn.Module, state: Mapping[str, torch.Tensor]) -> list[str]:
    """Give shared parameters separate storage where `state` holds different values for them.

    A T5/MT5 built from its config shares one tensor between the input embeddings and the output
    head; a checkpoint with an untied head (every mT5) holds two. Loading it as is would keep
    whichever key comes last. Names whose values in `state` match stay shared. Returns the names
    given new storage.
    """
    names_of: dict[int, list[str]] = {}
    for name, param in module.named_parameters(remove_duplicate=False):
        names_of.setdefault(id(param), []).append(name)
    untied: list[str] = []
    for names in names_of.values():
        present = [n for n in names if n in state]
        if len(present) < 2:
            continue
        classes: list[list[str]] = []
        for name in present:
            for group in classes:
                if torch.equal(state[group[0]], state[name]):
                    group.append(name)
                    break
            else:
                classes.append([name])
        for group in classes[1:]:
            original = module.get_parameter(group[0])
            fresh = nn.Parameter(original.detach().clone(), requires_grad=original.requires_grad)
            for name in group:
                parent, _, leaf = name.rpartition(".")
                setattr(module.get_submodule(parent), leaf, fresh)
            untied += group
    _forget_tying(module, untied)
    return untied


def _forget_tying(module: nn.Module, names: list[str]) -> None:
    """Drop untied names from transformers' tying maps, so a later `tie_weights` keeps them
    apart."""
    for sub_name, sub in module.named_modules():
        tied = getattr(sub, "all_tied_weights_keys", None)
        if not isinstance(tied, dict):
            continue
        prefix = f"{sub_name}." if sub_name else ""
        for name in names:
            if name.startswith(prefix):
                tied.pop(name[len(prefix) :], None)
