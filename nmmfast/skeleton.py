"""Keypoint layouts (which COCO-WholeBody joints a model sees, in which order) and Uni-Sign's
normalisation of raw whole-body poses, vectorised over ragged batches of samples.

Layouts are data: a spec dict lists COCO indices per part, part graphs, roots and regions, so a user
can register a new one with `register_layout`. Tables name joints from the COCO index only.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

__all__ = [
    "COCO_WHOLEBODY_NAMES",
    "NUM_COCO_JOINTS",
    "REGIONS",
    "SCORE_THRESHOLD",
    "MAX_FRAMES",
    "Layout",
    "PartRoot",
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

NUM_COCO_JOINTS = 133
SCORE_THRESHOLD = 0.3  # Uni-Sign: a joint is confident iff score > 0.3
MAX_FRAMES = 256  # Uni-Sign's max_length
REGIONS: tuple[str, ...] = ("hands", "face", "body")

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
    + [f"face-{i}" for i in range(68)]
    + _hand_names("left")
    + _hand_names("right")
)
assert len(COCO_WHOLEBODY_NAMES) == NUM_COCO_JOINTS

_FACE0 = 23  # COCO index of face-68 point 0
_LEFT_HAND0 = 91
_RIGHT_HAND0 = 112


def joint_label(coco_index: int) -> str:
    """Table label of a COCO-WholeBody joint: `<index>:<name>`, hands prefixed `L:`/`R:`.

    >>> joint_label(10), joint_label(124), joint_label(53)
    ('10:right_wrist', 'R:124:right_middle_finger4', '53:face-30')
    """
    if not 0 <= coco_index < NUM_COCO_JOINTS:
        raise ValueError(f"joint_label: COCO index must be in [0, 133), got {coco_index}")
    label = f"{coco_index}:{COCO_WHOLEBODY_NAMES[coco_index]}"
    if coco_index >= _RIGHT_HAND0:
        return "R:" + label
    if coco_index >= _LEFT_HAND0:
        return "L:" + label
    return label


# ----------------------------------------------------------------------------------------------
# Layouts


class PartRoot(NamedTuple):
    """Where a part is anchored. `root`: part-local index subtracted from every joint of the part
    (None for the part normalised by the square body box). `body_joint`: body-part-local index of
    the body joint whose feature the model adds to this part (None for the body itself)."""

    root: int | None
    body_joint: int | None


@dataclass(frozen=True, eq=False)
class Layout:
    """A selection of COCO-WholeBody joints in model order (parts concatenated in `parts` order).

    Attributes (J = number of joints):
        name:             registry name.
        coco_indices:     int64 [J], COCO index of each layout position.
        names:            list[str] [J], table labels (`joint_label`).
        region_of_joint:  int64 [J], index into `REGIONS`.
        regions:          the region names, `REGIONS`.
        parts:            part -> int64 [K_part] layout positions, keys in model order.
        part_edges:       part -> [(i, j)] undirected edges in part-local indices.
        part_roots:       part -> PartRoot(root, body_joint).
        part_regions:     part -> region name.
    """

    name: str
    coco_indices: np.ndarray
    names: list[str]
    region_of_joint: np.ndarray
    parts: dict[str, np.ndarray]
    part_edges: dict[str, list[tuple[int, int]]]
    part_roots: dict[str, PartRoot]
    part_regions: dict[str, str]
    regions: tuple[str, ...] = field(default=REGIONS)

    @property
    def num_joints(self) -> int:
        return int(self.coco_indices.shape[0])

    def __len__(self) -> int:
        return self.num_joints

    def __repr__(self) -> str:
        sizes = ", ".join(f"{p}={len(v)}" for p, v in self.parts.items())
        return f"Layout({self.name!r}, J={self.num_joints}: {sizes})"

    @property
    def anchored_joints(self) -> np.ndarray:
        """int64 layout positions whose normalised x and y are 0 on every frame by construction:
        the root of each part normalised relative to it (Uni-Sign's hand roots and face anchor).
        Their attribution comes from the confidence channel alone."""
        return np.array(
            sorted(
                int(self.parts[part][root.root])
                for part, root in self.part_roots.items()
                if root.root is not None
            ),
            dtype=np.int64,
        )

    def part_coco_indices(self, part: str) -> np.ndarray:
        """COCO indices of one part, in part-local order."""
        return self.coco_indices[self.parts[part]]

    def region_mask(self, region: str) -> np.ndarray:
        """bool [J]: which layout positions belong to `region` (one of `REGIONS`)."""
        if region not in self.regions:
            raise ValueError(f"layout {self.name!r}: unknown region {region!r}, expected {REGIONS}")
        return self.region_of_joint == self.regions.index(region)

    def to_spec(self) -> dict[str, Any]:
        """The plain-data spec this layout was built from (JSON-serialisable)."""
        return {
            "name": self.name,
            "parts": {p: [int(i) for i in self.part_coco_indices(p)] for p in self.parts},
            "edges": {p: [list(e) for e in self.part_edges[p]] for p in self.parts},
            "roots": {p: list(self.part_roots[p]) for p in self.parts},
            "regions": dict(self.part_regions),
        }

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> Layout:
        """Build and validate a layout from plain data.

        spec = {"name": str,
                "parts": {part: [COCO index, ...]},            # model order = dict order
                "edges": {part: [[i, j], ...]},                 # part-local
                "roots": {part: [root or None, body_joint or None]},
                "regions": {part: "hands" | "face" | "body"}}
        Exactly one part must be named "body" with root None: it defines the per-clip scale.
        """
        name = str(spec.get("name", ""))
        where = f"layout spec {name!r}"
        for key in ("parts", "edges", "roots", "regions"):
            if key not in spec:
                raise ValueError(f"{where}: missing key {key!r}")
        parts_in = dict(spec["parts"])
        if "body" not in parts_in:
            raise ValueError(f"{where}: needs a 'body' part (it defines the normalisation scale)")
        parts: dict[str, np.ndarray] = {}
        edges: dict[str, list[tuple[int, int]]] = {}
        roots: dict[str, PartRoot] = {}
        regions: dict[str, str] = {}
        coco: list[int] = []
        region_of_joint: list[int] = []
        body_size = len(parts_in["body"])
        for part, indices in parts_in.items():
            idx = [int(i) for i in indices]
            if not idx:
                raise ValueError(f"{where}: part {part!r} is empty")
            if any(not 0 <= i < NUM_COCO_JOINTS for i in idx):
                raise ValueError(f"{where}: part {part!r} has COCO indices outside [0, 133)")
            parts[part] = np.arange(len(coco), len(coco) + len(idx), dtype=np.int64)
            coco.extend(idx)
            region = spec["regions"].get(part)
            if region not in REGIONS:
                raise ValueError(f"{where}: part {part!r} region {region!r} not in {REGIONS}")
            regions[part] = region
            region_of_joint.extend([REGIONS.index(region)] * len(idx))
            part_edges = [(int(a), int(b)) for a, b in spec["edges"].get(part, [])]
            for a, b in part_edges:
                if not (0 <= a < len(idx) and 0 <= b < len(idx)) or a == b:
                    raise ValueError(
                        f"{where}: part {part!r} edge ({a}, {b}) is not a pair of "
                        f"distinct part-local indices in [0, {len(idx)})"
                    )
            edges[part] = part_edges
            root, body_joint = spec["roots"].get(part, (None, None))
            root = None if root is None else int(root)
            body_joint = None if body_joint is None else int(body_joint)
            if part == "body":
                if root is not None or body_joint is not None:
                    raise ValueError(f"{where}: the body part takes roots [None, None]")
            else:
                if root is None or not 0 <= root < len(idx):
                    raise ValueError(f"{where}: part {part!r} needs a part-local root index")
                if body_joint is not None and not 0 <= body_joint < body_size:
                    raise ValueError(
                        f"{where}: part {part!r} body_joint {body_joint} is not a "
                        f"body-local index in [0, {body_size})"
                    )
            roots[part] = PartRoot(root, body_joint)
        if len(set(coco)) != len(coco):
            raise ValueError(f"{where}: a COCO joint appears twice")
        coco_arr = np.asarray(coco, dtype=np.int64)
        return cls(
            name=name,
            coco_indices=coco_arr,
            names=[joint_label(int(i)) for i in coco_arr],
            region_of_joint=np.asarray(region_of_joint, dtype=np.int64),
            parts=parts,
            part_edges=edges,
            part_roots=roots,
            part_regions=regions,
        )


def _chain(nodes: Sequence[int]) -> list[list[int]]:
    return [[a, b] for a, b in zip(nodes[:-1], nodes[1:], strict=True)]


def _ring(nodes: Sequence[int]) -> list[list[int]]:
    return _chain(list(nodes) + [nodes[0]])


_HAND_EDGES = [e for f in range(5) for e in _chain([0] + [1 + 4 * f + k for k in range(4)])]
_BODY_EDGES = [[0, 1], [0, 2], [0, 3], [0, 4], [3, 5], [5, 7], [4, 6], [6, 8]]
_UNISIGN_BODY = [0, 3, 4, 5, 6, 7, 8, 9, 10]
_UNISIGN_FACE = [_FACE0 + i for i in range(0, 17, 2)] + [_FACE0 + i for i in range(60, 68)] + [53]
# Uni-Sign's face graph: jaw chain 0..8, inner-lip ring 9..16, nose tip 17 joined to every node.
_UNISIGN_FACE_EDGES = _chain(range(9)) + _ring(range(9, 17)) + [[17, i] for i in range(17)]
# nmm87 appends to the unisign69 face (so its first 69 joints are unisign69): both eyebrows
# (face-17..26) and the eyelids (face-37, 38, 40, 41, 43, 44, 46, 47). The four eye corners are left
# out: they move with the head rather than with brow raise, furrow or squint, which the jaw and
# nose points already capture.
_BROWS = [_FACE0 + i for i in range(17, 27)]
_LIDS = [_FACE0 + i for i in (37, 38, 40, 41, 43, 44, 46, 47)]
_NMM_FACE_EDGES = (
    _UNISIGN_FACE_EDGES
    + _chain(range(18, 23)) + _chain(range(23, 28))  # right and left brow
    + _ring([28, 29, 30, 31]) + _ring([32, 33, 34, 35])  # right and left eyelids
    + [[17, i] for i in range(18, 36)]
)  # fmt: skip
# lips64: for sources without jaw or inner lip (Isharah Pose86K): the face part is the 12-point
# outer lip contour (face-48..59) with the nose tip as root.
_OUTER_LIP = [_FACE0 + i for i in range(48, 60)]
_LIPS_FACE_EDGES = _ring(range(12)) + [[12, i] for i in range(12)]


def _hands_spec(name: str, face: list[int], face_edges: list[list[int]]) -> dict[str, Any]:
    return {
        "name": name,
        "parts": {
            "body": _UNISIGN_BODY,
            "left": list(range(_LEFT_HAND0, _LEFT_HAND0 + 21)),
            "right": list(range(_RIGHT_HAND0, _RIGHT_HAND0 + 21)),
            "face": face,
        },
        "edges": {
            "body": _BODY_EDGES,
            "left": _HAND_EDGES,
            "right": _HAND_EDGES,
            "face": face_edges,
        },
        # hands: root = wrist (local 0), fed the body wrist (7 left, 8 right);
        # face: root = nose tip, fed the body nose (0).
        "roots": {
            "body": [None, None],
            "left": [0, 7],
            "right": [0, 8],
            "face": [face.index(53), 0],
        },
        "regions": {"body": "body", "left": "hands", "right": "hands", "face": "face"},
    }


_LAYOUTS: dict[str, Layout] = {}


def register_layout(spec: Mapping[str, Any] | Layout, *, replace: bool = False) -> Layout:
    """Add a layout to the registry (from a `Layout` or a spec dict, see `Layout.from_spec`)."""
    layout = spec if isinstance(spec, Layout) else Layout.from_spec(spec)
    if not layout.name:
        raise ValueError("register_layout: the layout needs a non-empty name")
    if layout.name in _LAYOUTS and not replace:
        raise ValueError(f"register_layout: {layout.name!r} exists; pass replace=True")
    _LAYOUTS[layout.name] = layout
    return layout


register_layout(_hands_spec("unisign69", _UNISIGN_FACE, _UNISIGN_FACE_EDGES))
register_layout(_hands_spec("nmm87", _UNISIGN_FACE + _BROWS + _LIDS, _NMM_FACE_EDGES))
register_layout(_hands_spec("lips64", _OUTER_LIP + [53], _LIPS_FACE_EDGES))


def available_layouts() -> list[str]:
    """Names of the registered layouts."""
    return sorted(_LAYOUTS)


def get_layout(name: str | Layout) -> Layout:
    """The registered layout called `name` (`unisign69`, `nmm87`, `lips64`, or a registered one)."""
    if isinstance(name, Layout):
        return name
    try:
        return _LAYOUTS[name]
    except KeyError:
        raise ValueError(f"unknown layout {name!r}; available: {available_layouts()}") from None


# ----------------------------------------------------------------------------------------------
# Normalisation


def _check_raw(raw: Any, where: str) -> np.ndarray:
    arr = np.asarray(raw)
    if arr.ndim != 3 or arr.shape[1:] != (NUM_COCO_JOINTS, 3):
        raise ValueError(
            f"{where}: expected raw pose [T, 133, 3] (x/W, y/H, score), got shape {arr.shape}"
        )
    if not np.issubdtype(arr.dtype, np.floating):
        arr = arr.astype(np.float64)
    if not np.isfinite(arr).all():
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise ValueError(
            f"{where}: non-finite value at frame {bad[0]}, joint {bad[1]}, channel {bad[2]}"
        )
    return arr


def normalize_packed(
    packed: np.ndarray,
    lengths: Sequence[int] | np.ndarray,
    layout: str | Layout = "unisign69",
    threshold: float = SCORE_THRESHOLD,
) -> np.ndarray:
    """Uni-Sign normalisation of many samples stored back to back.

    packed:  float [N, 133, 3], N = sum(lengths); samples concatenated along frames; finite
             (not checked here: `normalize`, `normalize_batch` and the pose store check it).
             Computed in packed's dtype (float32 or float64), so the result is bit-identical to
             Uni-Sign's per-sample code run in that dtype.
    lengths: int [B], frames per sample (zeros allowed).
    Returns float32 [N, J, 3] in layout order, same packing.
    """
    layout = get_layout(layout)
    packed = np.asarray(packed)
    if packed.ndim != 3 or packed.shape[1:] != (NUM_COCO_JOINTS, 3):
        raise ValueError(f"normalize_packed: packed must be [N, 133, 3], got {packed.shape}")
    if not np.issubdtype(packed.dtype, np.floating):
        packed = packed.astype(np.float64)
    lengths = np.asarray(lengths, dtype=np.int64)
    if lengths.ndim != 1 or (lengths < 0).any() or int(lengths.sum()) != packed.shape[0]:
        raise ValueError(
            f"normalize_packed: lengths must be non-negative and sum to "
            f"{packed.shape[0]} frames, got sum {int(lengths.sum())}"
        )
    dtype = packed.dtype
    n_frames = packed.shape[0]
    if n_frames == 0:
        return np.zeros((0, layout.num_joints, 3), dtype=np.float32)
    one = dtype.type(1)
    # Channels gathered apart ([N, J] each, contiguous); parts are contiguous position ranges,
    # worked on in place below with the same operations, in the same order and dtype, as
    # Uni-Sign's per-sample code, so results are bit-identical to it.
    flat = packed.reshape(n_frames, NUM_COCO_JOINTS * 3)
    xs, ys, scores = (np.take(flat, layout.coco_indices * 3 + c, axis=1) for c in range(3))

    # Per-clip square box over the confident body joints of all frames (Uni-Sign's crop_scale).
    body = layout.parts["body"]
    body_span = slice(int(body[0]), int(body[-1]) + 1)
    confident = scores[:, body_span] > threshold  # [N, Kb]
    nonempty = lengths > 0
    starts = (np.cumsum(lengths) - lengths)[nonempty]
    inf = dtype.type(np.inf)
    body_x, body_y = xs[:, body_span], ys[:, body_span]
    frame_min_x = np.where(confident, body_x, inf).min(axis=1)
    frame_max_x = np.where(confident, body_x, -inf).max(axis=1)
    frame_min_y = np.where(confident, body_y, inf).min(axis=1)
    frame_max_y = np.where(confident, body_y, -inf).max(axis=1)
    count = np.zeros(lengths.shape[0], dtype=np.int64)
    count[nonempty] = np.add.reduceat(confident.sum(axis=1), starts)
    xmin = np.full(lengths.shape[0], inf, dtype=dtype)
    xmax, ymin, ymax = -xmin, xmin.copy(), -xmin
    xmin[nonempty] = np.minimum.reduceat(frame_min_x, starts)
    xmax[nonempty] = np.maximum.reduceat(frame_max_x, starts)
    ymin[nonempty] = np.minimum.reduceat(frame_min_y, starts)
    ymax[nonempty] = np.maximum.reduceat(frame_max_y, starts)
    valid = count >= 4
    with np.errstate(invalid="ignore"):  # inf - inf for clips without confident joints
        scale = np.maximum(xmax - xmin, ymax - ymin)
        valid &= scale != 0
        scale = np.where(valid, scale, one)
        xmin, xmax = np.where(valid, xmin, 0), np.where(valid, xmax, 0)
        ymin, ymax = np.where(valid, ymin, 0), np.where(valid, ymax, 0)
    origin_x = (xmin + xmax - scale) / 2
    origin_y = (ymin + ymax - scale) / 2

    frame_scale = np.repeat(scale, lengths)[:, None]  # [N, 1]
    for part, positions in layout.parts.items():
        span = slice(int(positions[0]), int(positions[-1]) + 1)
        root = layout.part_roots[part].root
        for coord, origin in ((xs[:, span], origin_x), (ys[:, span], origin_y)):
            if root is None:
                coord -= np.repeat(origin, lengths)[:, None]
                coord /= frame_scale
                coord -= 0.5
                coord *= 2
            else:
                coord -= coord[:, root : root + 1].copy()
                coord /= frame_scale
    # all channels clipped to [-1, 1]; then joints with (clipped) score <= threshold, and every
    # joint of a clip without a body box, become (0, 0, 0)
    keep = (scores > threshold) & np.repeat(valid, lengths)[:, None]
    out = np.empty((n_frames, layout.num_joints, 3), dtype=np.float32)
    for channel, values in enumerate((xs, ys, scores)):
        np.clip(values, -1, 1, out=values)
        np.multiply(values, keep, out=out[..., channel], casting="same_kind")
    out += 0.0  # the -0.0 of a negative coordinate times 0 becomes +0.0
    return out


def normalize(raw: Any, layout: str | Layout = "unisign69") -> np.ndarray:
    """Uni-Sign normalisation of one sample.

    raw: float [T, 133, 3], COCO-WholeBody (x / frame width, y / frame height, score).
    Returns float32 [T, J, 3] in layout order: body mapped by one square box per clip (over body
    joints with score > 0.3) to [-1, 1]; other parts relative to their root, divided by the same
    scale; all channels clipped to [-1, 1]; joints with score <= 0.3 set to 0; a clip with fewer
    than 4 confident body joints (or a zero-size box) is all zeros.
    """
    arr = _check_raw(raw, "normalize")
    return normalize_packed(arr, [arr.shape[0]], layout)


def normalize_batch(raws: Iterable[Any], layout: str | Layout = "unisign69") -> list[np.ndarray]:
    """`normalize` over a list of ragged samples [T_i, 133, 3] in one vectorised pass.

    Returns a list of float32 [T_i, J, 3] views into one packed array.
    """
    arrays = [_check_raw(r, f"normalize_batch: sample {i}") for i, r in enumerate(raws)]
    if not arrays:
        return []
    dtype = np.result_type(*arrays)
    lengths = np.array([a.shape[0] for a in arrays], dtype=np.int64)
    packed = np.concatenate([a.astype(dtype, copy=False) for a in arrays], axis=0)
    out = normalize_packed(packed, lengths, layout)
    return np.split(out, np.cumsum(lengths)[:-1])


def _normalize_reference(raw: np.ndarray, layout: str | Layout = "unisign69") -> np.ndarray:
    """Direct per-sample, per-frame port of Uni-Sign's `load_part_kp` + `crop_scale` (test oracle
    and benchmark baseline). Same dtype rules as Uni-Sign: computes in raw's dtype."""
    layout = get_layout(layout)
    thr = SCORE_THRESHOLD
    results: dict[str, np.ndarray] = {}
    scale: Any = None
    # "body" first: the other parts use its scale
    for part in ["body"] + [p for p in layout.parts if p != "body"]:
        idx = list(layout.part_coco_indices(part))
        root = layout.part_roots[part].root
        kps, confs = [], []
        for frame in raw:
            sel = frame[idx, :2]
            if root is not None:
                sel = sel - sel[root, :]
            kps.append(sel)
            confs.append(frame[idx, 2])
        motion = np.concatenate([np.stack(kps, 0), np.stack(confs, 0)[..., None]], axis=-1)
        if root is None:
            result = motion.copy()
            valid = motion[motion[..., 2] > thr][:, :2]
            if len(valid) < 4:
                results[part], scale = np.zeros(motion.shape), 0
                continue
            xmin, xmax = min(valid[:, 0]), max(valid[:, 0])
            ymin, ymax = min(valid[:, 1]), max(valid[:, 1])
            scale = max(xmax - xmin, ymax - ymin)
            if scale == 0:
                results[part], scale = np.zeros(motion.shape), 0
                continue
            xs, ys = (xmin + xmax - scale) / 2, (ymin + ymax - scale) / 2
            result[..., :2] = (motion[..., :2] - np.array([xs, ys])) / scale
            result[..., :2] = (result[..., :2] - 0.5) * 2
            result = np.clip(result, -1, 1)
            result[result[..., 2] <= thr] = 0
        elif scale == 0:
            result = np.zeros(motion.shape)
        else:
            result = motion
            result[..., :2] = result[..., :2] / scale
            result = np.clip(result, -1, 1)
            result[result[..., 2] <= thr] = 0
        results[part] = result
    return np.concatenate([results[p] for p in layout.parts], axis=1).astype(np.float32)


def select_frames(
    num_frames: int,
    max_frames: int = MAX_FRAMES,
    *,
    train: bool = False,
    rng: np.random.Generator | int | None = None,
) -> np.ndarray:
    """Frame indices (int64, sorted) to feed a model: all frames when num_frames <= max_frames;
    otherwise `max_frames` indices spread uniformly (evaluation, deterministic) or drawn at random
    without replacement and sorted (training, as Uni-Sign; `rng` seeds it)."""
    if num_frames < 0 or max_frames <= 0:
        raise ValueError(
            f"select_frames: need num_frames >= 0 and max_frames > 0, "
            f"got {num_frames}, {max_frames}"
        )
    if num_frames <= max_frames:
        return np.arange(num_frames, dtype=np.int64)
    if not train:
        return np.linspace(0, num_frames - 1, num=max_frames).round().astype(np.int64)
    generator = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    return np.sort(generator.choice(num_frames, size=max_frames, replace=False)).astype(np.int64)


# ----------------------------------------------------------------------------------------------
# The reference study's joint labels


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
                study = f"{_FACE0 + local}:{COCO_WHOLEBODY_NAMES[_FACE0 + local]}"
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
