"""Importers and exporters between the pose store's raw form (float32 [T, 133, 3]: x / frame width,
y / frame height, score) and the formats researchers already have: Uni-Sign per-video pkl, `.pose`
(pose-format), the Isharah challenge's Pose86K pickles (remapped, see `POSE86K_TO_COCO`) and plain
NumPy (.npz / .npy). Also the `nmmfast import` command.
"""

from __future__ import annotations

import argparse
import io
import os
import pickle
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nmmfast.skeleton import COCO_WHOLEBODY_NAMES, NUM_COCO_JOINTS

__all__ = [
    "FORMATS",
    "POSE86K_BODY",
    "POSE86K_LIPS",
    "POSE86K_TO_COCO",
    "detect_format",
    "import_poses",
    "iter_samples",
    "pose86k_to_coco",
    "read_npz",
    "read_pose86k",
    "read_pose_file",
    "read_unisign_pkl",
    "write_npz",
    "write_pose_file",
    "write_unisign_pkl",
]

FORMATS = ("unisign", "pose", "pose86k", "npz")
_SUFFIXES = {".pkl": None, ".pose": "pose", ".npz": "npz", ".npy": "npz"}  # .pkl: by content


def _check_raw(raw: Any, where: str) -> np.ndarray:
    arr = np.asarray(raw)
    if arr.ndim != 3 or arr.shape[1:] != (NUM_COCO_JOINTS, 3):
        raise ValueError(
            f"{where}: expected raw pose [T, 133, 3] (x/W, y/H, score), got {arr.shape}"
        )
    if arr.shape[0] == 0:
        raise ValueError(f"{where}: empty sequence (0 frames)")
    arr = np.asarray(arr, dtype=np.float32)
    if not np.isfinite(arr).all():
        t, j, c = np.argwhere(~np.isfinite(arr))[0]
        raise ValueError(f"{where}: non-finite value at frame {t}, joint {j}, channel {c}")
    return arr


def _load_pickle(path: Path) -> Any:
    """Pickles run code when loaded: read only files you trust."""
    try:
        with open(path, "rb") as f:
            return pickle.load(f)
    except (EOFError, pickle.UnpicklingError, ValueError, AttributeError, ImportError) as err:
        raise ValueError(
            f"{path}: unreadable or truncated pickle ({type(err).__name__}: {err})"
        ) from None


# -- Uni-Sign per-video pkl ------------------------------------------------------------------------


def read_unisign_pkl(
    path: str | os.PathLike[str], *, person: int = 0
) -> tuple[np.ndarray, dict[str, Any]]:
    """One Uni-Sign pose pkl: {"keypoints": per frame (P, 133, 2) already divided by [W, H],
    "scores": per frame (P, 133), optional "start"/"end" frame range [start, end)}.

    Returns (raw float32 [T, 133, 3], meta {"source": "unisign-pkl", "start", "end"}).
    """
    path = Path(path)
    data = _load_pickle(path)
    if not isinstance(data, Mapping) or not {"keypoints", "scores"} <= data.keys():
        raise ValueError(
            f"{path}: expected a dict with 'keypoints' and 'scores' (Uni-Sign pose pkl)"
        )
    try:
        keypoints = np.asarray(data["keypoints"], dtype=np.float64)
        scores = np.asarray(data["scores"], dtype=np.float64)
    except ValueError as err:  # ragged per-frame arrays
        raise ValueError(f"{path}: frames have inconsistent shapes ({err})") from None
    if keypoints.ndim == 3:  # frames stored without a person axis
        keypoints, scores = keypoints[:, None], scores[:, None] if scores.ndim == 2 else scores
    if keypoints.ndim != 4 or keypoints.shape[2:] != (NUM_COCO_JOINTS, 2):
        raise ValueError(f"{path}: keypoints must be per frame (P, 133, 2), got {keypoints.shape}")
    if scores.shape != keypoints.shape[:3]:
        raise ValueError(
            f"{path}: scores {scores.shape} do not match keypoints {keypoints.shape[:3]}"
        )
    if not 0 <= person < keypoints.shape[1]:
        raise ValueError(f"{path}: person {person} requested, the file has {keypoints.shape[1]}")
    start, end = data.get("start"), data.get("end")
    lo = 0 if start is None else int(start)
    hi = keypoints.shape[0] if end is None else int(end)
    if not 0 <= lo < hi <= keypoints.shape[0]:
        raise ValueError(
            f"{path}: frame range [{lo}, {hi}) is empty or outside {keypoints.shape[0]} frames"
        )
    raw = np.concatenate(
        [keypoints[lo:hi, person], scores[lo:hi, person, :, None]], axis=-1
    ).astype(np.float32)
    return _check_raw(raw, str(path)), {"source": "unisign-pkl", "start": start, "end": end}


def write_unisign_pkl(path: str | os.PathLike[str], raw: Any) -> None:
    """Write raw [T, 133, 3] as a Uni-Sign pose pkl (per-frame (1, 133, 2) keypoints and (1, 133)
    scores, float32)."""
    arr = _check_raw(raw, str(path))
    data = {
        "keypoints": [frame[None, :, :2].copy() for frame in arr],
        "scores": [frame[None, :, 2].copy() for frame in arr],
    }
    with open(path, "wb") as f:
        pickle.dump(data, f, protocol=pickle.HIGHEST_PROTOCOL)


# -- .pose (pose-format) ---------------------------------------------------------------------------


def read_pose_file(
    path: str | os.PathLike[str], *, person: int = 0, assume_coco_wholebody: bool = False
) -> tuple[np.ndarray, dict[str, Any]]:
    """A `.pose` file with 133 COCO-WholeBody points (pixel coordinates, confidence).

    Points must carry our canonical names (as `write_pose_file` writes them) unless
    `assume_coco_wholebody` says that 133 differently named points are in COCO-WholeBody order.
    Masked points become (0, 0, 0). Returns (raw float32 [T, 133, 3], meta fps/width/height).
    """
    from pose_format import Pose

    path = Path(path)
    try:
        pose = Pose.read(path.read_bytes())
    except Exception as err:  # pose-format raises assorted errors on malformed files
        raise ValueError(f"{path}: unreadable .pose file ({type(err).__name__}: {err})") from None
    names = [p for c in pose.header.components for p in c.points]
    if len(names) != NUM_COCO_JOINTS:
        comps = [(c.name, len(c.points)) for c in pose.header.components]
        raise ValueError(
            f"{path}: expected 133 COCO-WholeBody points, the file has {len(names)} "
            f"in components {comps}"
        )
    if names != list(COCO_WHOLEBODY_NAMES) and not assume_coco_wholebody:
        raise ValueError(
            f"{path}: point names are not nmmfast's COCO-WholeBody names (first: "
            f"{names[:3]}); pass assume_coco_wholebody=True if they are in that order"
        )
    data = pose.body.data
    if data.ndim != 4 or data.shape[0] == 0:
        raise ValueError(f"{path}: no frames (data shape {data.shape})")
    if not 0 <= person < data.shape[1]:
        raise ValueError(f"{path}: person {person} requested, the file has {data.shape[1]}")
    width, height = int(pose.header.dimensions.width), int(pose.header.dimensions.height)
    if width <= 0 or height <= 0:
        raise ValueError(f"{path}: header dimensions {width}x{height}; need the frame size")
    xy = np.ma.getdata(data[:, person, :, :2]).astype(np.float64)
    missing = np.ma.getmaskarray(data[:, person, :, :2]).any(axis=-1)
    score = np.asarray(pose.body.confidence[:, person], dtype=np.float64)
    raw = np.concatenate([xy / [width, height], score[..., None]], axis=-1)
    raw[missing] = 0.0
    meta = {"fps": float(pose.body.fps), "width": width, "height": height, "source": "pose"}
    return _check_raw(raw, str(path)), meta


def write_pose_file(
    path: str | os.PathLike[str], raw: Any, *, fps: float, width: int, height: int
) -> None:
    """Write raw [T, 133, 3] as a `.pose` file: one component `COCO_WHOLEBODY` (format XYC) in
    pixels; joints with score 0 are masked."""
    from pose_format import Pose
    from pose_format.numpy.pose_body import NumPyPoseBody
    from pose_format.pose_header import PoseHeader, PoseHeaderComponent, PoseHeaderDimensions

    arr = _check_raw(raw, str(path))
    if width <= 0 or height <= 0 or fps <= 0:
        raise ValueError(
            f"{path}: need positive fps, width and height, got {fps}, {width}, {height}"
        )
    from nmmfast.skeleton import get_layout

    limbs = []
    layout = get_layout("unisign69")
    for part, positions in layout.parts.items():
        coco = layout.coco_indices[positions]
        limbs += [(int(coco[i]), int(coco[j])) for i, j in layout.part_edges[part]]
    component = PoseHeaderComponent(
        "COCO_WHOLEBODY", list(COCO_WHOLEBODY_NAMES), limbs, [(255, 255, 255)], "XYC"
    )
    header = PoseHeader(0.1, PoseHeaderDimensions(int(width), int(height), 0), [component])
    xy = (arr[:, None, :, :2] * np.array([width, height], np.float32)).astype(np.float32)
    confidence = arr[:, None, :, 2].copy()
    mask = np.repeat((confidence == 0)[..., None], 2, axis=-1)
    body = NumPyPoseBody(float(fps), np.ma.masked_array(xy, mask), confidence)
    buffer = io.BytesIO()
    Pose(header, body).write(buffer)
    Path(path).write_bytes(buffer.getvalue())


# -- Isharah Pose86K -------------------------------------------------------------------------------

# MediaPipe FaceMesh lip points in Pose86K's lip block (joints 42-60), in stored (sorted) order.
POSE86K_LIPS = (
    0,
    17,
    37,
    39,
    40,
    61,
    84,
    91,
    146,
    181,
    185,
    267,
    269,
    270,
    291,
    314,
    321,
    375,
    405,
)
# Pose86K's body block (61-85) read as MediaPipe Pose landmarks 0-24.
POSE86K_BODY = tuple(range(25))
# face-68 outer lip (face-48..59, COCO 71..82) <- nearest MediaPipe lip point: corners 61/291,
# Cupid's bow 37/267, midlines 0/17; 39, 84, 146, 185, 269, 314, 375 have no face-68 counterpart.
_LIP_TO_FACE68 = {
    48: 61,
    49: 40,
    50: 37,
    51: 0,
    52: 267,
    53: 270,
    54: 291,
    55: 321,
    56: 405,
    57: 17,
    58: 181,
    59: 91,
}
# COCO body joint <- MediaPipe Pose landmark
_MP_POSE_TO_COCO = {
    0: 0,
    1: 2,
    2: 5,
    3: 7,
    4: 8,
    5: 11,
    6: 12,
    7: 13,
    8: 14,
    9: 15,
    10: 16,
    11: 23,
    12: 24,
}


def _pose86k_table() -> tuple[tuple[int, int], ...]:
    pairs = [(i, 112 + i) for i in range(21)]  # right hand -> COCO right hand
    pairs += [(21 + i, 91 + i) for i in range(21)]  # left hand -> COCO left hand
    pairs += [(42 + POSE86K_LIPS.index(mp), 23 + f68) for f68, mp in _LIP_TO_FACE68.items()]
    pairs += [(61 + mp, coco) for coco, mp in _MP_POSE_TO_COCO.items()]
    pairs.append((61 + 0, 53))  # MediaPipe nose -> face-30 (nose tip), the face root
    return tuple(sorted(pairs, key=lambda p: p[1]))


# (Pose86K joint, COCO-WholeBody joint) pairs. Hands 1:1 (MediaPipe and COCO share the 21-point
# order); body from MediaPipe Pose 0-24 (nose, eyes, ears, shoulders, elbows, wrists, hips); the
# 12 face-68 outer-lip points from the nearest of the 19 lip points; the nose tip from the nose.
# Knees, ankles, feet, jaw, brows, eyes, nose and inner lip stay absent (score 0): use the
# `lips64` layout, whose face part is the outer lip rooted at the nose tip.
POSE86K_TO_COCO: tuple[tuple[int, int], ...] = _pose86k_table()


def pose86k_to_coco(
    keypoints: Any, *, swap_hands: bool = False, where: str = "pose86k"
) -> np.ndarray:
    """Remap one Pose86K sample (T, 86, D >= 2; coordinates in [0, 1] of the frame; missing points
    all zero) to raw COCO-WholeBody [T, 133, 3]. The score is presence: 1 where the source point is
    not all-zero, else 0 (Pose86K has no confidence). `swap_hands` exchanges left and right for
    sources that name hands from the camera's view."""
    arr = np.asarray(keypoints, dtype=np.float64)
    if arr.ndim != 3 or arr.shape[1] != 86 or arr.shape[2] < 2:
        raise ValueError(f"{where}: expected Pose86K keypoints (T, 86, D>=2), got {arr.shape}")
    if arr.shape[0] == 0:
        raise ValueError(f"{where}: empty sequence (0 frames)")
    if not np.isfinite(arr[..., :2]).all():
        t, j = np.argwhere(~np.isfinite(arr[..., :2]).all(-1))[0]
        raise ValueError(f"{where}: non-finite coordinate at frame {t}, joint {j}")
    src = np.array([s for s, _ in POSE86K_TO_COCO])
    dst = np.array([d for _, d in POSE86K_TO_COCO])
    if swap_hands:
        src = np.where(src < 21, src + 21, np.where(src < 42, src - 21, src))
    xy = arr[:, src, :2]
    present = (xy != 0).any(axis=-1)
    raw = np.zeros((arr.shape[0], NUM_COCO_JOINTS, 3), dtype=np.float32)
    raw[:, dst, :2] = np.where(present[..., None], xy, 0)
    raw[:, dst, 2] = present
    return raw


def read_pose86k(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """An Isharah challenge pose pickle: {id: {"keypoints": (T, 86, D)}} (or {id: array}).
    Returns {id: float array (T, 86, D)} as stored; `pose86k_to_coco` converts one."""
    path = Path(path)
    data = _load_pickle(path)
    if not isinstance(data, Mapping):
        raise ValueError(f"{path}: expected a dict id -> {{'keypoints': (T, 86, D)}}")
    out = {}
    for key, value in data.items():
        arr = value.get("keypoints") if isinstance(value, Mapping) else value
        if arr is None:
            raise ValueError(f"{path}: sample {key!r} has no 'keypoints'")
        arr = np.asarray(arr)
        if arr.ndim != 3 or arr.shape[1] != 86 or arr.shape[2] < 2:
            raise ValueError(f"{path}: sample {key!r}: expected (T, 86, D>=2), got {arr.shape}")
        out[str(key)] = arr
    return out


# -- plain NumPy -----------------------------------------------------------------------------------


def read_npz(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """`.npz` with one raw [T, 133, 3] array per sample id (or a `.npy` holding one, id = stem)."""
    path = Path(path)
    try:
        if path.suffix == ".npy":
            samples = {path.stem: np.load(path, allow_pickle=False)}
        else:
            with np.load(path, allow_pickle=False) as npz:
                samples = {key: npz[key] for key in npz.files}
    except (OSError, ValueError, EOFError) as err:
        raise ValueError(f"{path}: unreadable NumPy file ({type(err).__name__}: {err})") from None
    return {key: _check_raw(arr, f"{path}: sample {key!r}") for key, arr in samples.items()}


def write_npz(path: str | os.PathLike[str], samples: Mapping[str, Any]) -> None:
    """Write {id: raw [T, 133, 3]} as a compressed `.npz`."""
    checked = {key: _check_raw(arr, f"{path}: sample {key!r}") for key, arr in samples.items()}
    with open(path, "wb") as f:
        np.savez_compressed(f, **checked)


# -- bulk import -----------------------------------------------------------------------------------


def detect_format(path: str | os.PathLike[str]) -> str:
    """`unisign`, `pose`, `pose86k` or `npz`, from the suffix (and for .pkl, from the content)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in _SUFFIXES:
        raise ValueError(f"{path}: unknown pose file type {suffix!r}; expected {sorted(_SUFFIXES)}")
    if _SUFFIXES[suffix] is not None:
        return _SUFFIXES[suffix]
    data = _load_pickle(path)
    if isinstance(data, Mapping) and {"keypoints", "scores"} <= data.keys():
        return "unisign"
    return "pose86k"


def iter_samples(
    paths: Iterable[str | os.PathLike[str]],
    fmt: str = "auto",
    *,
    swap_hands: bool = False,
    assume_coco_wholebody: bool = False,
) -> Iterator[tuple[str, np.ndarray, dict[str, Any]]]:
    """(sample id, raw [T, 133, 3], meta) for every sample in the given files. Per-file formats
    (Uni-Sign pkl, .pose, .npy) take the file stem as id; Pose86K pickles and .npz their keys."""
    for item in paths:
        path = Path(item)
        kind = detect_format(path) if fmt == "auto" else fmt
        if kind == "unisign":
            raw, meta = read_unisign_pkl(path)
            yield path.stem, raw, meta
        elif kind == "pose":
            raw, meta = read_pose_file(path, assume_coco_wholebody=assume_coco_wholebody)
            yield path.stem, raw, meta
        elif kind == "pose86k":
            for key, arr in read_pose86k(path).items():
                raw = pose86k_to_coco(arr, swap_hands=swap_hands, where=f"{path}: sample {key!r}")
                yield key, raw, {"source": "pose86k"}
        elif kind == "npz":
            for key, raw in read_npz(path).items():
                yield key, raw, {"source": "npz"}
        else:
            raise ValueError(f"unknown pose format {kind!r}; expected one of {FORMATS}")


def _expand(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    files: list[Path] = []
    for item in paths:
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix.lower() in _SUFFIXES)
            if not found:
                raise ValueError(f"{path}: no pose files ({', '.join(sorted(_SUFFIXES))}) in it")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise FileNotFoundError(f"{path}: no such file or directory")
    return files


def import_poses(
    store: Any,
    paths: Iterable[str | os.PathLike[str]],
    fmt: str = "auto",
    *,
    rows: Sequence[Mapping[str, Any]] | None = None,
    skip_existing: bool = True,
    chunk: int = 1000,
    defaults: Mapping[str, Any] | None = None,
    swap_hands: bool = False,
    assume_coco_wholebody: bool = False,
) -> dict[str, list[str]]:
    """Import pose files (or directories of them) into a `PoseStore`, committing every `chunk`
    samples. With manifest `rows`, each sample takes its signer/sentence from its row; a file whose
    stem is a row's `video_path` stem is stored under that row's id. `defaults` fills metadata
    the files lack (fps, width, height, source). Returns {"added": ids, "skipped": ids already
    in the store}."""
    by_id = {r["id"]: r for r in rows or ()}
    alias = {Path(r["video_path"]).stem: r["id"] for r in rows or () if r.get("video_path")}
    added: list[str] = []
    skipped: list[str] = []
    batch: list[tuple[str, np.ndarray, dict[str, Any]]] = []

    def flush() -> None:
        store.extend(batch)
        added.extend(sample_id for sample_id, _, _ in batch)
        batch.clear()

    samples = iter_samples(
        _expand(paths), fmt, swap_hands=swap_hands, assume_coco_wholebody=assume_coco_wholebody
    )
    for sample_id, raw, meta in samples:
        sample_id = alias.get(sample_id, sample_id) if sample_id not in by_id else sample_id
        if sample_id in store:
            if not skip_existing:
                raise ValueError(f"{store.path}: sample {sample_id!r} is already in the store")
            skipped.append(sample_id)
            continue
        full = {k: v for k, v in (defaults or {}).items() if v is not None}
        full.update({k: v for k, v in meta.items() if v is not None})
        row = by_id.get(sample_id)
        if row is not None:
            full["signer"], full["sentence"] = row.get("signer"), row.get("sentence")
        batch.append((sample_id, raw, full))
        if len(batch) >= chunk:
            flush()
    if batch:
        flush()
    return {"added": added, "skipped": skipped}


# -- command line ----------------------------------------------------------------------------------


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "sources",
        nargs="+",
        metavar="SRC",
        help="pose files or directories of them (.pkl, .pose, .npz, .npy)",
    )
    parser.add_argument(
        "--out",
        required=True,
        metavar="DIR",
        help="corpus directory: poses go to DIR/poses, labels to DIR/manifest.jsonl",
    )
    parser.add_argument(
        "--format",
        default="auto",
        choices=("auto", *FORMATS),
        help="pose format (default: from suffix; .pkl by content)",
    )
    parser.add_argument(
        "--labels",
        metavar="FILE",
        help="annotations: Isharah CSV, Uni-Sign gzip-pickle labels or a manifest",
    )
    parser.add_argument(
        "--labels-format", default="auto", choices=("auto", "isharah", "unisign", "manifest")
    )
    parser.add_argument("--fps", type=float, help="frame rate, where the files do not say")
    parser.add_argument(
        "--width", type=int, help="frame width in pixels, where the files do not say"
    )
    parser.add_argument("--height", type=int, help="frame height in pixels, where not given")
    parser.add_argument(
        "--swap-hands",
        action="store_true",
        help="Pose86K: exchange left and right hands (camera-view naming)",
    )
    parser.add_argument(
        "--assume-coco-wholebody",
        action="store_true",
        help=".pose: accept 133 differently named points as COCO-WholeBody order",
    )


def _merge_manifest(path: Path, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    from nmmfast.data.annotations import read_manifest

    if not path.exists():
        return rows
    merged = read_manifest(path)
    known = {r["id"]: r for r in merged}
    for row in rows:
        old = known.get(row["id"])
        if old is None:
            merged.append(row)
        elif any(old.get(k) != row.get(k) for k in ("signer", "sentence", "gloss", "text")):
            raise ValueError(
                f"{path}: sample {row['id']!r} is already in the manifest with other "
                f"labels; refusing to overwrite"
            )
    return merged


def run_cli(args: argparse.Namespace) -> int:
    from nmmfast.data.annotations import check_coverage, read_labels, read_manifest, write_manifest
    from nmmfast.data.store import PoseStore

    out = Path(args.out)
    rows = read_labels(args.labels, args.labels_format) if args.labels else []
    manifest = out / "manifest.jsonl"
    merged = _merge_manifest(manifest, rows) if rows else []  # refuses before any write
    with PoseStore.create(out / "poses", exist_ok=True) as store:
        result = import_poses(
            store,
            args.sources,
            args.format,
            rows=rows,
            defaults={"fps": args.fps, "width": args.width, "height": args.height},
            swap_hands=args.swap_hands,
            assume_coco_wholebody=args.assume_coco_wholebody,
        )
        print(
            f"{len(result['added'])} samples imported into {store.path} "
            f"({len(result['skipped'])} already there, skipped); {len(store)} in the store"
        )
        if rows:
            write_manifest(manifest, merged)
            print(f"{len(rows)} label rows from {args.labels}; {manifest}: {len(merged)} rows")
        elif manifest.is_file():
            merged = read_manifest(manifest)
            print(f"no --labels: poses compared with the {len(merged)} rows of {manifest}")
        else:
            print(f"no labels yet ({manifest} does not exist): give them with --labels FILE")
        print(check_coverage(merged, store.ids()).report())
    return 0
