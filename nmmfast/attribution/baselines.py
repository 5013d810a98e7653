"""Integrated Gradients baselines of a study: what "no information" means for a pose clip.

- `zero`: the all-zero pose, coordinates and confidences (the reference study's baseline). A
  joint's attribution then includes "the joint was detected at all".
- `mean-pose`: every frame the training split's mean normalised pose (x, y per joint), with the
  clip's own confidences: attribution measures where the clip departs from an average signer.
- `keep-confidence`: zero coordinates with the clip's own confidences: the confidence channel
  is the same at both ends of the path, so it draws no attribution.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

__all__ = ["BASELINES", "baselines_for", "mean_pose"]

BASELINES = ("zero", "mean-pose", "keep-confidence")


def mean_pose(dataset: Any) -> np.ndarray:
    """float32 [J, 2] mean normalised x, y per joint over every frame of `dataset`
    (a `PoseDataset` of the training split, as the model sees it)."""
    total: np.ndarray | None = None
    frames = 0
    for index in range(len(dataset)):
        _, poses, _ = dataset[index]
        xy = poses[..., :2].double().sum(0).numpy()
        total = xy if total is None else total + xy
        frames += poses.shape[0]
    if total is None or frames == 0:
        raise ValueError("mean-pose baseline: the training split has no usable samples")
    return (total / frames).astype(np.float32)


def mean_pose_sha256(mean: np.ndarray) -> str:
    """Identity of a mean pose, for a job's record."""
    return hashlib.sha256(np.ascontiguousarray(mean, dtype=np.float32).tobytes()).hexdigest()


def baselines_for(
    kind: str, poses: Sequence[torch.Tensor], mean: np.ndarray | None = None
) -> list[torch.Tensor] | None:
    """Per-clip baselines shaped like `poses` ([T_i, J, 3] each); None for `zero` (the
    engine's default). `mean`: [J, 2] from `mean_pose`, needed by `mean-pose`."""
    if kind not in BASELINES:
        raise ValueError(f"baseline must be one of {BASELINES}, got {kind!r}")
    if kind == "zero":
        return None
    if kind == "mean-pose" and mean is None:
        raise ValueError("the mean-pose baseline needs the training split's mean pose")
    out = []
    for pose in poses:
        baseline = torch.zeros_like(pose)
        baseline[..., 2] = pose[..., 2]
        if kind == "mean-pose":
            baseline[..., :2] = torch.as_tensor(mean, dtype=pose.dtype, device=pose.device)
        out.append(baseline)
    return out
