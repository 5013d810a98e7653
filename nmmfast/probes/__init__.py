"""Diagnostics beyond attribution: tracking failure of the face (veils, mistracking), the
counterfactual region probe (does neutralising a region change the output?) and the
signer-identity probe (does a region's encoder feature reveal who signs?).
"""

from __future__ import annotations

from nmmfast.probes.cli import write_json
from nmmfast.probes.counterfactual import (
    DEFAULT_REGIONS,
    REGION_COCO,
    counterfactual_probe,
    markers_of,
    neutralize,
    region_positions,
)
from nmmfast.probes.identity import (
    identity_probe,
    logistic_regression,
    region_features,
    signer_identity_probe,
)
from nmmfast.probes.tracking import (
    CANONICAL_FACE,
    auroc,
    estimate_canonical_face,
    face_coherence,
    face_coherence_parts,
    placement_distance,
    procrustes_distance,
    tracking_report,
)

__all__ = [
    "CANONICAL_FACE",
    "DEFAULT_REGIONS",
    "REGION_COCO",
    "auroc",
    "counterfactual_probe",
    "estimate_canonical_face",
    "face_coherence",
    "placement_distance",
    "face_coherence_parts",
    "identity_probe",
    "logistic_regression",
    "markers_of",
    "neutralize",
    "procrustes_distance",
    "region_features",
    "region_positions",
    "signer_identity_probe",
    "tracking_report",
    "write_json",
]
