"""The compiled kernels' Python wrappers, one module per op family: `ig` (Integrated Gradients batch
building and reduction) and `graph_conv` (the fused ST-GCN graph convolution). Each public function
validates its arguments, then makes one native call; `_reference` holds the plain-PyTorch twins.
"""

from __future__ import annotations

from nmmfast.kernels.graph_conv import fused_graph_conv, fused_graph_conv_usable, kernel_isas
from nmmfast.kernels.ig import IgReduceResult, ig_reduce, ig_scale

__all__ = [
    "IgReduceResult",
    "fused_graph_conv",
    "fused_graph_conv_usable",
    "ig_reduce",
    "ig_scale",
    "kernel_isas",
]
