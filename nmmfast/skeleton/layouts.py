"""Layouts: which COCO-WholeBody joints a model sees, in which order, grouped into parts with their
graphs, roots and share regions. Layouts are data (`Layout.from_spec`), kept in a registry that
ships `unisign69`, `nmm87` and `lips64` and takes user layouts through `register_layout`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from nmmfast.skeleton.coco import (
    BROWS,
    FACE0,
    INNER_LIP,
    LEFT_HAND0,
    NOSE_TIP,
    NUM_COCO_JOINTS,
    NUM_HAND_POINTS,
    OUTER_LIP,
    RIGHT_HAND0,
    joint_label,
)

__all__ = [
    "REGIONS",
    "Layout",
    "PartRoot",
    "available_layouts",
    "get_layout",
    "register_layout",
]

REGIONS: tuple[str, ...] = ("hands", "face", "body")


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
_UNISIGN_FACE = [FACE0 + i for i in range(0, 17, 2)] + list(INNER_LIP) + [NOSE_TIP]
# Uni-Sign's face graph: jaw chain 0..8, inner-lip ring 9..16, nose tip 17 joined to every node.
_UNISIGN_FACE_EDGES = _chain(range(9)) + _ring(range(9, 17)) + [[17, i] for i in range(17)]
# nmm87 appends to the unisign69 face (so its first 69 joints are unisign69): both eyebrows
# (face-17..26) and the eyelids (face-37, 38, 40, 41, 43, 44, 46, 47). The four eye corners are left
# out: they move with the head rather than with brow raise, furrow or squint, which the jaw and
# nose points already capture.
_LIDS = [FACE0 + i for i in (37, 38, 40, 41, 43, 44, 46, 47)]
_NMM_FACE_EDGES = (
    _UNISIGN_FACE_EDGES
    + _chain(range(18, 23)) + _chain(range(23, 28))  # right and left brow
    + _ring([28, 29, 30, 31]) + _ring([32, 33, 34, 35])  # right and left eyelids
    + [[17, i] for i in range(18, 36)]
)  # fmt: skip
# lips64: for sources without jaw or inner lip (Isharah Pose86K): the face part is the 12-point
# outer lip contour (face-48..59) with the nose tip as root.
_LIPS_FACE_EDGES = _ring(range(12)) + [[12, i] for i in range(12)]


def _hands_spec(name: str, face: list[int], face_edges: list[list[int]]) -> dict[str, Any]:
    return {
        "name": name,
        "parts": {
            "body": _UNISIGN_BODY,
            "left": list(range(LEFT_HAND0, LEFT_HAND0 + NUM_HAND_POINTS)),
            "right": list(range(RIGHT_HAND0, RIGHT_HAND0 + NUM_HAND_POINTS)),
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
            "face": [face.index(NOSE_TIP), 0],
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
register_layout(_hands_spec("nmm87", _UNISIGN_FACE + list(BROWS) + _LIDS, _NMM_FACE_EDGES))
register_layout(_hands_spec("lips64", list(OUTER_LIP) + [NOSE_TIP], _LIPS_FACE_EDGES))


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
