"""SynNMM's body side: signers (proportions, face shape, camera) and the vectorised geometry that
turns per-frame manual, head and face parameters into COCO-WholeBody keypoints in body units.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from nmmfast.data.synth.language import HAND_STATE
from nmmfast.skeleton.coco import (
    EYES,
    FACE0,
    LEFT_HAND0,
    NOSE_TIP,
    NUM_COCO_JOINTS,
    NUM_FACE_POINTS,
    NUM_HAND_POINTS,
    RIGHT_HAND0,
)

# face-k (face-local k, not COCO) hidden by a veil: all but the eyes
VEILED_FACE = tuple(k for k in range(NUM_FACE_POINTS) if FACE0 + k not in EYES)
# how a veil's hidden face points come out of the pose estimator: "mistrack", a whole face drawn
# in a wrong place, size or orientation that moves smoothly (MISTRACK_MODES); "noise", points
# scattered anew over the head every frame
VEIL_KINDS = ("mistrack", "noise")
MISTRACK_MODES = ("collapse", "shift", "mirror", "rotate")

# --------------------------------------------------------------------------------------------
# Face: a 3-D face-68 template plus both ears (rows 68 = left ear, 69 = right ear), in face units
# (half the jaw width ~ 1), x to the image right, y down, z towards the camera. The subject's right
# side (face-0, face-36..41) is on the image left, as in the 68-point convention.
# --------------------------------------------------------------------------------------------
_FACE_BOX = np.array(
    [
        (0.00, 0.20),
        (0.00, 0.33),
        (0.02, 0.46),
        (0.05, 0.58),
        (0.10, 0.70),
        (0.18, 0.80),
        (0.28, 0.88),
        (0.38, 0.94),
        (0.50, 0.96),
        (0.62, 0.94),
        (0.72, 0.88),
        (0.82, 0.80),
        (0.90, 0.70),
        (0.95, 0.58),
        (0.98, 0.46),
        (1.00, 0.33),
        (1.00, 0.20),  # jaw 0-16
        (0.08, 0.08),
        (0.15, 0.03),
        (0.24, 0.02),
        (0.33, 0.04),
        (0.41, 0.08),  # brow 17-21
        (0.59, 0.08),
        (0.67, 0.04),
        (0.76, 0.02),
        (0.85, 0.03),
        (0.92, 0.08),  # brow 22-26
        (0.50, 0.20),
        (0.50, 0.30),
        (0.50, 0.39),
        (0.50, 0.48),  # nose bridge 27-30
        (0.40, 0.54),
        (0.45, 0.56),
        (0.50, 0.57),
        (0.55, 0.56),
        (0.60, 0.54),  # nostrils 31-35
        (0.17, 0.20),
        (0.22, 0.17),
        (0.29, 0.17),
        (0.35, 0.21),
        (0.29, 0.23),
        (0.22, 0.23),
        (0.65, 0.21),
        (0.71, 0.17),
        (0.78, 0.17),
        (0.83, 0.20),
        (0.78, 0.23),
        (0.71, 0.23),
        (0.34, 0.72),
        (0.39, 0.68),
        (0.45, 0.66),
        (0.50, 0.67),
        (0.55, 0.66),
        (0.61, 0.68),
        (0.66, 0.72),
        (0.61, 0.77),
        (0.55, 0.79),
        (0.50, 0.80),
        (0.45, 0.79),
        (0.39, 0.77),
        (0.36, 0.72),
        (0.45, 0.70),
        (0.50, 0.70),
        (0.55, 0.70),
        (0.64, 0.72),
        (0.55, 0.74),
        (0.50, 0.74),
        (0.45, 0.74),  # inner lip 60-67
    ]
)


def _face_template() -> np.ndarray:
    """[70, 3] float64: face-68 then left ear, right ear."""
    xy = (_FACE_BOX - np.array([0.5, 0.45])) * 2.0
    z = np.zeros(68)
    jaw = np.arange(17)
    z[jaw] = -0.55 * np.cos(np.pi * jaw / 16.0) ** 2 - 0.05
    z[17:27] = 0.05
    z[27:31] = np.linspace(0.15, 0.4, 4)
    z[31:36] = 0.22
    z[36:48] = 0.02
    z[48:68] = 0.15
    face = np.column_stack([xy, z])
    ears = np.array([[1.12, -0.25, -0.95], [-1.12, -0.25, -0.95]])
    return np.vstack([face, ears])


FACE_TEMPLATE = _face_template()
HEAD_PIVOT = np.array([0.0, 1.3, -1.2])  # the head turns and nods about the top of the neck


def _expression_bases() -> np.ndarray:
    """[6, 70, 3] displacement per unit of: brow raise, brow furrow, squint, mouth corners down
    (with pressed lips and raised chin), mouth open, blink."""
    bases = np.zeros((6, 70, 3))
    raise_, furrow, squint, down, open_, blink = bases
    upper_lids, lower_lids = [37, 38, 43, 44], [40, 41, 46, 47]
    raise_[17:27, 1] = -0.17
    raise_[upper_lids, 1] = -0.04
    furrow[17:27, 1] = 0.07
    furrow[[19, 20, 21], 0] = 0.07
    furrow[[22, 23, 24], 0] = -0.07
    furrow[[20, 21, 22, 23], 1] += 0.05
    squint[upper_lids, 1] = 0.05
    squint[lower_lids, 1] = -0.03
    corners = [48, 54, 60, 64]
    down[corners, 1] = 0.28
    down[[48, 60], 0] = 0.06
    down[[54, 64], 0] = -0.06
    down[55:60, 1] = 0.06
    down[[61, 62, 63], 1] = 0.05
    down[[65, 66, 67], 1] = -0.04
    down[[6, 7, 8, 9, 10], 1] = [-0.07, -0.1, -0.12, -0.1, -0.07]
    open_[55:60, 1] = 0.12
    open_[[65, 66, 67], 1] = 0.12
    open_[corners, 1] = 0.04
    open_[4:13, 1] = 0.1 * np.sin(np.pi * (np.arange(4, 13) - 3) / 10.0)
    blink[upper_lids, 1] = 0.055
    blink[lower_lids, 1] = -0.01
    return bases


EXPRESSION_BASES = _expression_bases()
_EXPRESSION_BASES32 = EXPRESSION_BASES.astype(np.float32)
EXPRESSIONS = ("brow_raise", "brow_furrow", "squint", "mouth_down", "mouth_open", "blink")

# --------------------------------------------------------------------------------------------
# Hand: 21 points in hand units (wrist to middle fingertip ~ 1), for a right hand.
# Local axes: along the fingers, across the palm towards the thumb, palm normal.
# --------------------------------------------------------------------------------------------
_MCP = np.array([[0.42, 0.11], [0.44, 0.0], [0.42, -0.09], [0.38, -0.17]])
_SEGMENTS = np.array(
    [[0.23, 0.15, 0.11], [0.25, 0.17, 0.12], [0.23, 0.15, 0.11], [0.18, 0.12, 0.1]]
)
_SPREAD_CLOSED = np.radians([3.0, 0.0, -2.0, -5.0])
_SPREAD_OPEN = np.radians([13.0, 0.0, -10.0, -21.0])
_THUMB_BASE = np.array([0.1, 0.12, 0.0])
_THUMB_SEGMENTS = np.array([0.2, 0.15, 0.13])
# local (along, across, normal) -> camera (x, y, z) for a right hand, palm to camera, fingers up
_LOCAL_TO_CAMERA = np.array([[0.0, -1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def hand_rotation(orientation_deg: np.ndarray) -> np.ndarray:
    """[N, 3] (finger angle, palm roll, tilt to camera) in degrees -> [N, 3, 3] rotation."""
    theta, psi, chi = np.radians(orientation_deg).T
    n = len(theta)
    ct, st, cp, sp, cc, sc = (
        np.cos(theta),
        np.sin(theta),
        np.cos(psi),
        np.sin(psi),
        np.cos(chi),
        np.sin(chi),
    )
    rz = np.zeros((n, 3, 3))
    rz[:, 0, 0], rz[:, 0, 1], rz[:, 1, 0], rz[:, 1, 1], rz[:, 2, 2] = ct, -st, st, ct, 1.0
    rx = np.zeros((n, 3, 3))
    rx[:, 0, 0], rx[:, 1, 1], rx[:, 1, 2], rx[:, 2, 1], rx[:, 2, 2] = 1.0, cc, sc, -sc, cc
    ry = np.zeros((n, 3, 3))
    ry[:, 0, 0], ry[:, 0, 2], ry[:, 1, 1], ry[:, 2, 0], ry[:, 2, 2] = cp, sp, 1.0, -sp, cp
    return rz @ rx @ ry @ _LOCAL_TO_CAMERA


def hand_points(config: np.ndarray, orientation_deg: np.ndarray) -> np.ndarray:
    """Right-hand keypoints relative to the wrist, in hand units.

    config [N, HAND_PARAMS] (curls thumb..pinky, spread, opposition, knuckle, hook),
    orientation_deg [N, 3] -> [N, 21, 2] float32 (image x, y). Mirror x for a left hand.
    """
    n = len(config)
    config = config.astype(np.float32)
    curl, spread, opposition = config[:, 0:5], config[:, 5], config[:, 6]
    knuckle, hook = config[:, 7:8], config[:, 8:9]
    local = np.zeros((n, 21, 3), dtype=np.float32)
    # the four fingers at once: [N, finger, joint]
    sigma = _SPREAD_CLOSED + (_SPREAD_OPEN - _SPREAD_CLOSED) * spread[:, None]
    c = curl[:, 1:]
    flex = np.stack(
        [
            np.radians(80.0) * c + np.radians(85.0) * knuckle,
            np.radians(100.0) * c + np.radians(95.0) * hook,
            np.radians(65.0) * c + np.radians(70.0) * hook,
        ],
        axis=-1,
    ).cumsum(axis=-1)
    cos_flex = np.cos(flex) * _SEGMENTS  # [N, 4, 3]: in-plane length of each segment
    bone = np.empty((n, 4, 3, 3), dtype=np.float32)
    bone[..., 0] = cos_flex * np.cos(sigma)[:, :, None]
    bone[..., 1] = cos_flex * np.sin(sigma)[:, :, None]
    bone[..., 2] = np.sin(flex) * _SEGMENTS
    joints = bone  # running sum along each finger, written out (cumsum on a middle axis is slow)
    joints[:, :, 1] += joints[:, :, 0]
    joints[:, :, 2] += joints[:, :, 1]
    joints[..., :2] += _MCP[:, None, :]
    fingers = np.zeros((n, 4, 4, 3), dtype=np.float32)  # MCP, PIP, DIP, tip per finger
    fingers[:, :, 0, :2] = _MCP
    fingers[:, :, 1:] = joints
    local[:, 5:] = fingers.reshape(n, 16, 3)
    # thumb: abducted along the palm side, swung across the palm by opposition, then curled
    along_side = np.array([0.77, 0.64, 0.0])
    across = np.array([0.45, -0.3, 0.84])
    o = opposition[:, None]
    thumb_dir = _unit((1.0 - o) * along_side + o * across)
    bend = np.array([0.0, -0.6, 0.8])
    bend = _unit(bend - (thumb_dir * bend).sum(axis=-1, keepdims=True) * thumb_dir)
    thumb_flex = (np.radians([30.0, 45.0, 55.0]) * curl[:, 0:1]).cumsum(axis=-1)
    point = np.broadcast_to(_THUMB_BASE, (n, 3)).copy()
    local[:, 1] = point
    for k in range(3):
        phi = thumb_flex[:, k : k + 1]
        point = point + _THUMB_SEGMENTS[k] * (np.cos(phi) * thumb_dir + np.sin(phi) * bend)
        local[:, 2 + k] = point
    return _rotate_xy(hand_rotation(orientation_deg), local)


def _rotate_xy(rotation: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Image-plane part of rotated points: rotation [N, 3, 3], points [N, P, 3] -> [N, P, 2].

    Written out per component: for stacks of tiny matrices that is quicker than NumPy's batched
    matmul (timings: benchmarks/RESULTS.md)."""
    r = rotation[:, :2, :, None].astype(np.float32)  # [N, 2, 3, 1]
    x, y, z = points[..., 0], points[..., 1], points[..., 2]
    out = np.empty(points.shape[:2] + (2,), dtype=np.float32)
    for i in range(2):
        out[..., i] = r[:, i, 0] * x + r[:, i, 1] * y + r[:, i, 2] * z
    return out


def elbow_positions(
    shoulder: np.ndarray, wrist: np.ndarray, upper: np.ndarray, fore: np.ndarray, outward: float
) -> np.ndarray:
    """Two-link inverse kinematics in the image plane, elbow bent down and outwards.

    shoulder, wrist [N, 2]; upper, fore [N] segment lengths; outward = -1 for the signer's right
    arm (image left), +1 for the left -> [N, 2].
    """
    # the upper arm mostly points forward while signing, so its image is foreshortened
    upper = 0.75 * upper
    delta = wrist - shoulder
    dist = np.linalg.norm(delta, axis=-1)
    dist_c = np.clip(dist, np.abs(upper - fore) + 1e-3, (upper + fore) * 0.999)
    direction = delta / np.maximum(dist, 1e-6)[:, None]
    cos_a = (upper**2 + dist_c**2 - fore**2) / (2.0 * upper * dist_c)
    sin_a = np.sqrt(np.clip(1.0 - cos_a**2, 0.0, 1.0))
    perp = np.stack([-direction[:, 1], direction[:, 0]], axis=-1)
    preference = perp[:, 1] + 0.3 * outward * perp[:, 0]
    perp = np.where((preference >= 0)[:, None], perp, -perp)
    return shoulder + upper[:, None] * (cos_a[:, None] * direction + sin_a[:, None] * perp)


def rotation_matrices(pitch: np.ndarray, yaw: np.ndarray, roll: np.ndarray) -> np.ndarray:
    """Head rotation [N, 3, 3] from angles in degrees: pitch > 0 nods forward (the nose goes down),
    yaw > 0 turns the nose to the image right, roll > 0 tilts clockwise in the image."""
    p, y, r = np.radians(pitch), np.radians(yaw), np.radians(roll)
    n = len(p)
    rp = np.zeros((n, 3, 3))
    rp[:, 0, 0], rp[:, 1, 1], rp[:, 1, 2], rp[:, 2, 1], rp[:, 2, 2] = (
        1.0,
        np.cos(p),
        np.sin(p),
        -np.sin(p),
        np.cos(p),
    )
    ry = np.zeros((n, 3, 3))
    ry[:, 0, 0], ry[:, 0, 2], ry[:, 1, 1], ry[:, 2, 0], ry[:, 2, 2] = (
        np.cos(y),
        np.sin(y),
        1.0,
        -np.sin(y),
        np.cos(y),
    )
    rr = np.zeros((n, 3, 3))
    rr[:, 0, 0], rr[:, 0, 1], rr[:, 1, 0], rr[:, 1, 1], rr[:, 2, 2] = (
        np.cos(r),
        -np.sin(r),
        np.sin(r),
        np.cos(r),
        1.0,
    )
    return ry @ rp @ rr


# --------------------------------------------------------------------------------------------
# Signers
# --------------------------------------------------------------------------------------------
CAMERAS = ((1280, 720), (720, 720), (1920, 1080))


@dataclass(frozen=True)
class Signer:
    """One signer: body proportions (metres), face shape, motion style and camera."""

    index: int
    code: str  # two digits, as in sample ids
    handedness: str  # "right" or "left"
    veiled: bool
    shoulder_half: float
    upper_arm: float
    forearm: float
    neck: float  # neck base to face centre
    head_scale: float  # metres per face unit
    hand_length: float
    space_scale: float  # size of the signing space relative to the lexicon's
    speed: float  # duration factor (> 1 is slower)
    pitch0: float  # resting head pose, degrees
    yaw0: float
    roll0: float
    tilt: float  # forward head tilt of a yes/no question, degrees
    shake: float  # head-shake amplitude, degrees
    shake_hz: float
    width: int
    height: int
    fps: int
    pixels_per_metre: float
    neck_x: float  # neck position in the frame, fraction of width / height
    neck_y: float
    face: np.ndarray  # [70, 3] face-68 + ears, face units
    veil_kind: str | None = None  # one of VEIL_KINDS for a veiled signer, else None

    def describe(self) -> dict:
        out = {k: v for k, v in self.__dict__.items() if k != "face"}
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in out.items()}


def _face_identity(rng: np.random.Generator) -> np.ndarray:
    """A signer's own face: the template reshaped by a few global traits and per-point offsets."""
    face = FACE_TEMPLATE.copy()
    jaw = slice(0, 17)
    face[jaw, 0] *= rng.uniform(0.86, 1.14)
    lower = face[:, 1] > 0.1
    face[lower, 1] *= rng.uniform(0.86, 1.16)  # face length below the nose
    spacing = rng.uniform(-0.09, 0.09)
    face[36:42, 0] -= spacing
    face[42:48, 0] += spacing
    eye_size = rng.uniform(0.8, 1.25)
    for eye in (slice(36, 42), slice(42, 48)):
        centre = face[eye].mean(axis=0)
        face[eye] = centre + (face[eye] - centre) * eye_size
    face[27:36, 1] += rng.uniform(-0.08, 0.08) * np.linspace(0.2, 1.0, 9)  # nose length
    mouth = slice(48, 68)
    face[mouth, 0] *= rng.uniform(0.82, 1.18)
    face[mouth, 1] += rng.uniform(-0.06, 0.06)
    face[17:27, 1] += rng.uniform(-0.07, 0.07)  # brow height
    face[:68] += rng.normal(0.0, 0.025, (68, 3))
    return face


def make_signers(
    n_signers: int,
    n_veiled: int,
    n_left_handed: int,
    rng: np.random.Generator,
    veil_kinds: Sequence[str] = ("mistrack",),
) -> list[Signer]:
    """Draw `n_signers` signers; `n_veiled` of them veiled and `n_left_handed` left-handed.

    The veiled signers, in index order, take their `veil_kind` from `veil_kinds` in turn (so
    ("mistrack", "noise") splits them between the two kinds); the kinds draw nothing at random,
    so they leave every other trait of every signer as it is.
    """
    if n_signers < 1 or n_signers > 99:
        raise ValueError(f"n_signers must be in [1, 99] (two-digit ids), got {n_signers}")
    if not 0 <= n_veiled <= n_signers or not 0 <= n_left_handed <= n_signers:
        raise ValueError(
            f"n_veiled ({n_veiled}) and n_left_handed ({n_left_handed}) must be in [0, n_signers]"
        )
    if not veil_kinds or any(kind not in VEIL_KINDS for kind in veil_kinds):
        raise ValueError(f"veil kinds must be among {VEIL_KINDS}, got {tuple(veil_kinds)}")
    veiled = set(rng.choice(n_signers, n_veiled, replace=False).tolist())
    left = set(rng.choice(n_signers, n_left_handed, replace=False).tolist())
    kind_of = {i: veil_kinds[k % len(veil_kinds)] for k, i in enumerate(sorted(veiled))}
    signers = []
    for i in range(n_signers):
        shoulder = rng.uniform(0.17, 0.21)
        width, height = CAMERAS[rng.integers(len(CAMERAS))]
        signers.append(
            Signer(
                index=i,
                code=f"{i + 1:02d}",
                handedness="left" if i in left else "right",
                veiled=i in veiled,
                shoulder_half=shoulder,
                upper_arm=1.55 * shoulder * rng.uniform(0.95, 1.05),
                forearm=1.4 * shoulder * rng.uniform(0.95, 1.05),
                neck=rng.uniform(0.19, 0.23),
                head_scale=rng.uniform(0.066, 0.078),
                hand_length=rng.uniform(0.17, 0.2),
                space_scale=shoulder / 0.19 * rng.uniform(0.95, 1.05),
                speed=rng.uniform(0.85, 1.2),
                pitch0=rng.normal(0.0, 2.5),
                yaw0=rng.normal(0.0, 3.0),
                roll0=rng.normal(0.0, 2.0),
                tilt=rng.uniform(13.0, 18.0),
                shake=rng.uniform(18.0, 26.0),
                shake_hz=rng.uniform(2.2, 2.8),
                width=width,
                height=height,
                fps=int(rng.choice([25, 30])),
                pixels_per_metre=min(height, 0.8 * width) * rng.uniform(0.95, 1.08),
                neck_x=0.5 + rng.normal(0.0, 0.02),
                neck_y=rng.uniform(0.37, 0.41),
                face=_face_identity(rng),
                veil_kind=kind_of.get(i),
            )
        )
    return signers


@dataclass
class SignerTable:
    """Signer attributes stacked for per-frame indexing."""

    shoulder_half: np.ndarray  # [S]
    upper_arm: np.ndarray
    forearm: np.ndarray
    neck: np.ndarray
    head_scale: np.ndarray
    hand_length: np.ndarray
    space_scale: np.ndarray
    left_handed: np.ndarray  # [S] bool
    veiled: np.ndarray  # [S] bool
    veil_kind: np.ndarray  # [S] int: 0 unveiled, 1 + VEIL_KINDS.index(kind) for a veiled signer
    face: np.ndarray  # [S, 70, 3]

    @classmethod
    def of(cls, signers: list[Signer]) -> SignerTable:
        def col(name: str) -> np.ndarray:
            return np.array([getattr(s, name) for s in signers])

        return cls(
            shoulder_half=col("shoulder_half"),
            upper_arm=col("upper_arm"),
            forearm=col("forearm"),
            neck=col("neck"),
            head_scale=col("head_scale"),
            hand_length=col("hand_length"),
            space_scale=col("space_scale"),
            left_handed=col("handedness") == "left",
            veiled=col("veiled").astype(bool),
            veil_kind=np.array(
                [0 if s.veil_kind is None else 1 + VEIL_KINDS.index(s.veil_kind) for s in signers]
            ),
            face=np.stack([s.face for s in signers]).astype(np.float32),
        )


# --------------------------------------------------------------------------------------------
# One batch of frames -> 133 keypoints in body units (metres from the neck, y down)
# --------------------------------------------------------------------------------------------
def pose_body_units(
    table: SignerTable,
    signer: np.ndarray,
    manual: np.ndarray,
    head_angles: np.ndarray,
    expressions: np.ndarray,
    sway: np.ndarray,
) -> np.ndarray:
    """Keypoints of N frames before camera, noise and veil.

    signer [N] int; manual [N, MANUAL_STATE] (dominant hand then the other, right-dominant
    coordinates); head_angles [N, 3] (pitch, yaw, roll, degrees); expressions [N, 6] (levels of
    EXPRESSIONS); sway [N, 2] body offset -> [N, 133, 2] float64.
    """
    n = len(signer)
    out = np.zeros((n, NUM_COCO_JOINTS, 2), dtype=np.float32)
    sh = table.shoulder_half[signer]
    left_handed = table.left_handed[signer]
    h = HAND_STATE

    # torso and legs; legs fall out of the frame
    shoulder_l = np.stack([sh, np.zeros(n)], axis=-1)
    shoulder_r = np.stack([-sh, np.zeros(n)], axis=-1)
    out[:, 5], out[:, 6] = shoulder_l, shoulder_r
    for index, fx, y in ((11, 0.75, 0.52), (13, 0.7, 0.98), (15, 0.7, 1.4)):
        out[:, index] = np.stack([fx * sh, np.full(n, y)], axis=-1)
        out[:, index + 1] = np.stack([-fx * sh, np.full(n, y)], axis=-1)
    for first, side in ((17, 1.0), (20, -1.0)):  # big toe, small toe, heel
        ankle = out[:, 15] if side > 0 else out[:, 16]
        out[:, first] = ankle + np.array([side * 0.03, 0.08])
        out[:, first + 1] = ankle + np.array([side * 0.08, 0.07])
        out[:, first + 2] = ankle + np.array([0.0, 0.03])

    # wrists: right-dominant coordinates, mirrored for left-handed signers
    scale = table.space_scale[signer][:, None]
    dominant, other = manual[:, :h], manual[:, h:]
    mirror = np.array([-1.0, 1.0])
    right_state = np.where(left_handed[:, None], other, dominant)
    left_state = np.where(left_handed[:, None], dominant, other)
    right_wrist = np.where(left_handed[:, None], other[:, 0:2] * mirror, dominant[:, 0:2]) * scale
    left_wrist = np.where(left_handed[:, None], dominant[:, 0:2] * mirror, other[:, 0:2]) * scale
    out[:, 9], out[:, 10] = left_wrist, right_wrist
    upper, fore = table.upper_arm[signer], table.forearm[signer]
    out[:, 7] = elbow_positions(shoulder_l, left_wrist, upper, fore, outward=1.0)
    out[:, 8] = elbow_positions(shoulder_r, right_wrist, upper, fore, outward=-1.0)

    hand_len = table.hand_length[signer][:, None, None]
    right = hand_points(right_state[:, 5:h], right_state[:, 2:5]) * hand_len
    left = hand_points(left_state[:, 5:h], left_state[:, 2:5]) * hand_len
    left[:, :, 0] *= -1.0  # a left hand is the mirror image of a right hand
    out[:, RIGHT_HAND0 : RIGHT_HAND0 + NUM_HAND_POINTS] = right + right_wrist[:, None]
    out[:, LEFT_HAND0 : LEFT_HAND0 + NUM_HAND_POINTS] = left + left_wrist[:, None]

    # head: identity face + expression, rotated about the neck pivot, projected
    face = table.face[signer]
    levels = expressions.astype(np.float32)
    for k, basis in enumerate(_EXPRESSION_BASES32):
        # element-wise, not a matrix product: BLAS threads only contend on a busy machine
        face += levels[:, k, None, None] * basis
    face -= HEAD_PIVOT.astype(np.float32)
    rotation = rotation_matrices(head_angles[:, 0], head_angles[:, 1], head_angles[:, 2])
    face = _rotate_xy(rotation, face) + HEAD_PIVOT[:2].astype(np.float32)
    centre = np.stack([np.zeros(n), -table.neck[signer]], axis=-1)
    face = face * table.head_scale[signer][:, None, None] + centre[:, None]
    out[:, FACE0 : FACE0 + NUM_FACE_POINTS] = face[:, :NUM_FACE_POINTS]
    out[:, 0] = face[:, NOSE_TIP - FACE0]
    out[:, 1] = face[:, 42:48].mean(axis=1)
    out[:, 2] = face[:, 36:42].mean(axis=1)
    out[:, 3], out[:, 4] = face[:, 68], face[:, 69]
    out += sway[:, None, :].astype(np.float32)
    return out


# --------------------------------------------------------------------------------------------
# A veil's mistrack: the estimator's face drawn in a wrong place, size or orientation
# --------------------------------------------------------------------------------------------
# the face a pose estimator falls back on where it sees no face: the generic template (no signer
# identity), at rest, for the points a veil hides
_PRIOR_FACE = FACE_TEMPLATE[list(VEILED_FACE), :2].astype(np.float32)


def mistracked_face(
    table: SignerTable,
    signer: np.ndarray,
    sway: np.ndarray,
    mode: np.ndarray,
    centre: np.ndarray,
    scale: np.ndarray,
    angle: np.ndarray,
) -> np.ndarray:
    """Veiled face points (VEILED_FACE) of N frames as a pose estimator mistracks them.

    The generic face (mirrored left-right for the "mirror" mode: every point takes its mirror
    twin's place) is rotated by `angle`, scaled by `scale` and put at `centre`, all relative to
    where the signer's face rests on the body (neck and sway, not the head's own motion, so the
    mistracked points carry no head tilt or shake).

    signer [N] int; sway [N, 2] body offset; mode [N] int (index into MISTRACK_MODES);
    centre [N, 2] face units from the resting face centre (y down); scale [N] (1 = the signer's
    face size); angle [N] radians (clockwise in the image) -> [N, len(VEILED_FACE), 2] float32,
    body units.
    """
    prior = np.broadcast_to(_PRIOR_FACE, (len(signer),) + _PRIOR_FACE.shape).copy()
    mirrored = mode == MISTRACK_MODES.index("mirror")
    prior[mirrored, :, 0] *= -1.0
    cos = (np.cos(angle) * scale).astype(np.float32)[:, None]
    sin = (np.sin(angle) * scale).astype(np.float32)[:, None]
    x, y = prior[..., 0], prior[..., 1]
    out = np.empty_like(prior)
    out[..., 0] = cos * x - sin * y
    out[..., 1] = sin * x + cos * y
    out += centre.astype(np.float32)[:, None, :]
    out *= table.head_scale[signer].astype(np.float32)[:, None, None]
    rest = np.stack([np.zeros(len(signer)), -table.neck[signer]], axis=-1) + sway
    out += rest.astype(np.float32)[:, None, :]
    return out
