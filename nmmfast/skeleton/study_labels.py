"""The reference study's joint labels: its tables name the i-th selected body joint COCO joint i
and the i-th face joint COCO joint 23 + i, so most of its body and face labels name the wrong joint.
These functions give, for each label it printed, the joint it really denotes.
"""

from __future__ import annotations

import re

from nmmfast.skeleton.coco import COCO_WHOLEBODY_NAMES, FACE0
from nmmfast.skeleton.layouts import Layout, get_layout

__all__ = ["reference_study_labels", "true_label_of_study_label"]


def reference_study_labels(layout: str | Layout = "unisign69") -> list[tuple[str, str]]:
    """(label printed by the reference study, true joint label) for every joint, in layout order.

    The reference study labelled the i-th selected body joint as COCO joint i and the i-th face
    joint as COCO joint 23 + i; hands are contiguous, so their labels are right. E.g. its
    "8:right_elbow" is `10:right_wrist` and its "32:face-9" is `83:face-60` (inner lip).
    """
    layout = get_layout(layout)
    pairs: list[tuple[str, str]] = []
    for part, positions in layout.parts.items():
        region = layout.part_regions[part]
        for local, pos in enumerate(positions):
            true = layout.names[int(pos)]
            if region == "body":
                study = f"{local}:{COCO_WHOLEBODY_NAMES[local]}"
            elif region == "face":
                study = f"{FACE0 + local}:{COCO_WHOLEBODY_NAMES[FACE0 + local]}"
            else:
                study = true
            pairs.append((study, true))
    return pairs


_LABEL_RE = re.compile(r"^(?:[LR]:)?(\d+):(.+)$")


def true_label_of_study_label(label: str, layout: str | Layout = "unisign69") -> str:
    """Map one label from the reference study's tables to the joint it really denotes.

    Hand labels are accepted with or without the `L:`/`R:` prefix.
    """
    table = dict(reference_study_labels(layout))
    if label in table:
        return table[label]
    match = _LABEL_RE.match(label.strip())
    if match:
        for prefix in ("L:", "R:"):
            if prefix + match.group(0) in table:
                return table[prefix + match.group(0)]
    raise ValueError(
        f"{label!r} is not a joint label of the reference study's {get_layout(layout).name} "
        f"tables (expected e.g. '8:right_elbow', '32:face-9', '91:left_hand_root')"
    )
