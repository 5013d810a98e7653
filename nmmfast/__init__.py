"""nmmfast: fast, verifiable diagnosis of how pose-based sign-language models use non-manual
markers.

The package root exposes the build report (`info`) and the version; every concept lives in its own
module (`skeleton`, `data`, `model`, `metrics`, `attribution`, `kernels`, ...). The compiled core is
loaded on first use, so pure-Python modules import without it.
"""

from __future__ import annotations

from typing import Any

__all__ = ["__version__", "info"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from nmmfast import _native

        return getattr(_native, name)
    raise AttributeError(f"module 'nmmfast' has no attribute {name!r}")
