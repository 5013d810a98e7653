"""Integrated Gradients for pose→text models: quadrature rules, the batch engine
(`IntegratedGradients`), sequence attribution (`SequenceAttributor`) and the study's share tables;
jobs over a partition and the `nmmfast attribute` command live in `nmmfast.attribution.job`.
"""

from __future__ import annotations

from nmmfast.attribution.integrated_gradients import (
    AbsSigned,
    IGResult,
    IntegratedGradients,
    frozen_eval,
)
from nmmfast.attribution.quadrature import CAPTUM_METHODS, METHODS, quadrature, refine
from nmmfast.attribution.sequence import SequenceAttributor, SequenceResult
from nmmfast.attribution.shares import (
    Shares,
    attribution_shares,
    completeness_stats,
    format_share_table,
    frame_region_curves,
    share_table,
    token_region_shares,
)

__all__ = [
    "CAPTUM_METHODS",
    "METHODS",
    "AbsSigned",
    "IGResult",
    "IntegratedGradients",
    "SequenceAttributor",
    "SequenceResult",
    "Shares",
    "attribution_shares",
    "completeness_stats",
    "format_share_table",
    "frame_region_curves",
    "frozen_eval",
    "quadrature",
    "refine",
    "share_table",
    "token_region_shares",
]
