"""Keypoint layouts (which COCO-WholeBody joints a model sees, in which order) and Uni-Sign's
normalisation of raw whole-body poses. `coco` holds the 133-point format's offsets, names and
regions; `layouts` the Layout registry; `normalize` the normalisation; `study_labels` the
reference study's joint labels. Tables name joints from the COCO index only.
"""

from __future__ import annotations

from nmmfast.skeleton.coco import (
    COCO_PARTS,
    COCO_WHOLEBODY_NAMES,
    FACE_HEAD,
    NUM_COCO_JOINTS,
    REGION_COCO,
    coco_region,
    joint_label,
)
from nmmfast.skeleton.layouts import (
    REGIONS,
    Layout,
    PartRoot,
    available_layouts,
    get_layout,
    register_layout,
)
from nmmfast.skeleton.normalize import (
    MAX_FRAMES,
    SCORE_THRESHOLD,
    normalize,
    normalize_batch,
    normalize_packed,
    select_frames,
)
from nmmfast.skeleton.normalize import (
    _normalize_reference as _normalize_reference,  # test oracle, benchmark baseline
)
from nmmfast.skeleton.study_labels import reference_study_labels, true_label_of_study_label

__all__ = [
    "COCO_PARTS",
    "COCO_WHOLEBODY_NAMES",
    "FACE_HEAD",
    "NUM_COCO_JOINTS",
    "REGIONS",
    "REGION_COCO",
    "SCORE_THRESHOLD",
    "MAX_FRAMES",
    "Layout",
    "PartRoot",
    "coco_region",
    "get_layout",
    "register_layout",
    "available_layouts",
    "joint_label",
    "normalize",
    "normalize_batch",
    "normalize_packed",
    "select_frames",
    "reference_study_labels",
    "true_label_of_study_label",
]
