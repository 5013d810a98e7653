"""COCO-WholeBody, the 133-point format every raw pose is stored in: part offsets, canonical joint
names and table labels, and the named regions (sets of raw COCO indices) that the probes, SynNMM and
the report neutralise, plant markers on or plot. Everything that indexes a raw [.., 133, ..] pose
takes its indices from here.
"""

from __future__ import annotations

__all__ = [
    "BROWS",
    "CHIN",
    "COCO_PARTS",
    "COCO_WHOLEBODY_NAMES",
    "EYES",
    "FACE",
    "FACE0",
    "FACE_HEAD",
    "FEET0",
    "HANDS",
    "HEAD",
    "INNER_LIP",
    "JAW",
    "LEFT_HAND0",
    "MOUTH",
    "NOSE_TIP",
    "NUM_COCO_JOINTS",
    "NUM_FACE_POINTS",
    "NUM_HAND_POINTS",
    "OUTER_LIP",
    "REGION_COCO",
    "RIGHT_HAND0",
    "coco_region",
    "joint_label",
]

NUM_COCO_JOINTS = 133
NUM_FACE_POINTS = 68  # the 68-point face convention (face-0 .. face-67)
NUM_HAND_POINTS = 21  # root (wrist) + 4 joints per finger

# First COCO index of each part; face-k is COCO FACE0 + k, and so on.
FEET0 = 17
FACE0 = 23
LEFT_HAND0 = 91  # the signer's left hand
RIGHT_HAND0 = 112

# The parts, as contiguous COCO index ranges (slice a raw pose with slice(r.start, r.stop)).
COCO_PARTS: dict[str, range] = {
    "body": range(0, FEET0),
    "feet": range(FEET0, FACE0),
    "face": range(FACE0, FACE0 + NUM_FACE_POINTS),
    "left_hand": range(LEFT_HAND0, LEFT_HAND0 + NUM_HAND_POINTS),
    "right_hand": range(RIGHT_HAND0, RIGHT_HAND0 + NUM_HAND_POINTS),
}

_BODY_NAMES = [
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee",
    "right_knee", "left_ankle", "right_ankle",
]  # fmt: skip
_FOOT_NAMES = [
    "left_big_toe", "left_small_toe", "left_heel", "right_big_toe", "right_small_toe", "right_heel",
]  # fmt: skip
_FINGERS = ("thumb", "forefinger", "middle_finger", "ring_finger", "pinky_finger")


def _hand_names(side: str) -> list[str]:
    return [f"{side}_hand_root"] + [f"{side}_{f}{k}" for f in _FINGERS for k in range(1, 5)]


COCO_WHOLEBODY_NAMES: tuple[str, ...] = tuple(
    _BODY_NAMES
    + _FOOT_NAMES
    + [f"face-{i}" for i in range(NUM_FACE_POINTS)]
    + _hand_names("left")
    + _hand_names("right")
)
assert len(COCO_WHOLEBODY_NAMES) == NUM_COCO_JOINTS


def joint_label(coco_index: int) -> str:
    """Table label of a COCO-WholeBody joint: `<index>:<name>`, hands prefixed `L:`/`R:`.

    >>> joint_label(10), joint_label(124), joint_label(53)
    ('10:right_wrist', 'R:124:right_middle_finger4', '53:face-30')
    """
    if not 0 <= coco_index < NUM_COCO_JOINTS:
        raise ValueError(f"joint_label: COCO index must be in [0, 133), got {coco_index}")
    label = f"{coco_index}:{COCO_WHOLEBODY_NAMES[coco_index]}"
    if coco_index >= RIGHT_HAND0:
        return "R:" + label
    if coco_index >= LEFT_HAND0:
        return "L:" + label
    return label


def _face(first: int, stop: int) -> tuple[int, ...]:
    """COCO indices of face-first .. face-(stop - 1)."""
    return tuple(range(FACE0 + first, FACE0 + stop))


# Landmark groups of the 68-point face, as COCO indices.
JAW = _face(0, 17)
BROWS = _face(17, 27)  # right brow face-17..21, left brow face-22..26
EYES = _face(36, 48)  # right eye face-36..41, left eye face-42..47
MOUTH = _face(48, 68)
OUTER_LIP = _face(48, 60)
INNER_LIP = _face(60, 68)
CHIN = _face(6, 11)  # the jaw points around the chin, which a pressed, downturned mouth lifts
NOSE_TIP = FACE0 + 30  # face-30; Uni-Sign's face root

# Regions a probe can neutralise, as raw COCO indices. Face, head, hands and body split the 133
# joints: the nose, eyes and ears are body keypoints but follow the head, so they form "head",
# apart from "body". Brows and eyes are parts of the face.
HEAD: tuple[int, ...] = tuple(range(0, 5))  # nose, eyes, ears
FACE: tuple[int, ...] = tuple(COCO_PARTS["face"])
HANDS: tuple[int, ...] = tuple(range(LEFT_HAND0, RIGHT_HAND0 + NUM_HAND_POINTS))
REGION_COCO: dict[str, tuple[int, ...]] = {
    "face": FACE,  # face-68
    "head": HEAD,  # nose, eyes, ears (body keypoints that follow the head)
    "hands": HANDS,  # both hands, 21 points each
    "body": tuple(range(5, FACE0)),  # shoulders, elbows, wrists, hips, legs, feet
    # parts of the face, for probes of one articulator (a yes/no question's brow raise)
    "brows": BROWS,
    "eyes": EYES,
}


def coco_region(region: str) -> tuple[int, ...]:
    """Sorted COCO indices of `region`: a name of `REGION_COCO`, several joined by "+" (e.g.
    "face+head"), "all" or "none"."""
    if region == "none":
        return ()
    if region == "all":
        return tuple(range(NUM_COCO_JOINTS))
    coco: set[int] = set()
    for name in region.split("+"):
        if name not in REGION_COCO:
            raise ValueError(
                f"unknown region {name!r} in {region!r}; expected {sorted(REGION_COCO)}, "
                f"'a+b', 'all' or 'none'"
            )
        coco.update(REGION_COCO[name])
    return tuple(sorted(coco))


# What the study calls the face and head together: every point that moves with the head.
FACE_HEAD = coco_region("face+head")
