"""Planted-truth contrasts: attribution of samples that SynNMM plants a non-manual marker in,
against samples without one."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from nmmfast.skeleton import coco_region


def face_head_shares_by_nmm(
    samples: Sequence[dict[str, Any]], rows_by_id: dict[str, dict[str, Any]], layout: Any
) -> dict[str, list[float]]:
    """Per-sample face+head attribution shares (%) of attributed samples, split by whether the
    manifest plants an NMM in them; samples whose row has no `nmm` field are left out."""
    face_head = face_head_mask(layout)
    groups: dict[str, list[float]] = {"with NMM": [], "without NMM": []}
    for sample in samples:
        nmm = rows_by_id.get(sample["id"], {}).get("nmm")
        if nmm is None:
            continue
        share = float(sample["joint_abs"][face_head].sum() / max(sample["joint_abs"].sum(), 1e-30))
        groups["with NMM" if nmm else "without NMM"].append(100 * share)
    return groups


def face_head_mask(layout: Any) -> np.ndarray:
    """[J] bool: the counterfactual probe's "face+head" joints (face-68 points plus nose, eyes
    and ears, as far as the layout has them)."""
    return np.isin(np.asarray(layout.coco_indices), coco_region("face+head"))
