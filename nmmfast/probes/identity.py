"""Signer-identity probe: how well a linear classifier on each region's pooled pose-encoder
features predicts who is signing (is the face an identity cue?). Features come from the encoder's
per-part node features; the classifier is a cross-validated L2-regularised softmax regression.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

__all__ = [
    "FEATURE_REGIONS",
    "identity_probe",
    "logistic_regression",
    "region_features",
    "signer_identity_probe",
    "stratified_folds",
]

# Region -> encoder parts pooled into its feature ("all" = the final per-frame embedding).
FEATURE_REGIONS: dict[str, tuple[str, ...]] = {
    "body": ("body",),
    "hands": ("left", "right"),
    "face": ("face",),
    "all": (),
}


@torch.no_grad()
def region_features(
    model: Any,
    corpus: Any,
    ids: Sequence[str],
    *,
    task: str = "slt",
    batch_size: int = 16,
    max_frames: int | None = None,
    device: str | torch.device = "cpu",
    progress: bool = False,
) -> dict[str, Any]:
    """Pooled pose-encoder features of each region, one row per sample.

    model: a `UniSignModel`; corpus: an open `Corpus` or its directory; ids: sample ids (samples
    a `PoseDataset` skips are left out); max_frames: frames fed per sample (uniformly selected;
    default the model's). Each part's node features after the temporal chain
    (`PoseEncoder.part_features`, [B, T, V, C]) are averaged over its nodes and the real frames;
    "hands" concatenates the left and right hand ([2C]); "all" averages the final embedding
    ([d_model]). The face and hand parts include the body feature the encoder adds at their
    anchor joint (nose, wrists) before the temporal chain, as the model sees them.

    Returns {"ids": [N], "signers": [N] str, "features": {region: float32 [N, C_region]}}.
    """
    from nmmfast.data.dataset import BucketBatchSampler, Corpus, PoseDataset, collate
    from nmmfast.model.pose_encoder import PART_ORDER

    if isinstance(corpus, (str, os.PathLike)):
        corpus = Corpus.open(corpus)
    model.eval()
    model.to(device)
    dataset = PoseDataset(
        corpus,
        list(ids),
        task,
        layout=model.config.layout,
        max_frames=max_frames or model.config.max_frames,
    )
    batches = list(BucketBatchSampler(dataset.lengths, batch_size))
    if progress:
        from tqdm import tqdm

        batches = tqdm(batches, desc="identity features", unit="batch", leave=False)
    pooled: dict[str, list[np.ndarray]] = {region: [] for region in FEATURE_REGIONS}
    order: list[str] = []
    for indices in batches:
        batch = collate([dataset[i] for i in indices]).to(device)
        weights = batch.mask.to(batch.poses.dtype)
        frames = weights.sum(1, keepdim=True).clamp(min=1.0)  # [B, 1]

        def over_time(
            per_frame: torch.Tensor, weights: torch.Tensor = weights, frames: torch.Tensor = frames
        ) -> np.ndarray:
            # per_frame [B, T, C] -> [B, C], mean over real frames
            return ((per_frame * weights[..., None]).sum(1) / frames).float().cpu().numpy()

        parts = model.pose_encoder.part_features(batch.poses, batch.mask)
        for region, names in FEATURE_REGIONS.items():
            if names:
                pooled[region].append(
                    np.concatenate([over_time(parts[name].mean(2)) for name in names], axis=1)
                )
            else:  # the encoder's own final step (PoseEncoder.forward) on these features
                encoder = model.pose_encoder
                joined = torch.cat([parts[name].mean(2) for name in PART_ORDER], dim=-1)
                pooled[region].append(over_time(encoder.proj(joined + encoder.part_bias)))
        order.extend(batch.ids)
    position = {sample_id: i for i, sample_id in enumerate(order)}
    rows = [position[i] for i in dataset.sample_ids]
    features = {
        region: (np.concatenate(chunks)[rows] if chunks else np.zeros((0, 0), np.float32))
        for region, chunks in pooled.items()
    }
    signers = [str(corpus.store.meta(i).get("signer")) for i in dataset.sample_ids]
    return {"ids": list(dataset.sample_ids), "signers": signers, "features": features}


def stratified_folds(labels: Sequence[Any], folds: int, seed: int = 0) -> np.ndarray:
    """Fold index (int64 [N], 0..folds-1) per sample: each class spread evenly over the folds,
    in a random order drawn from `seed`."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    fold_of = np.empty(len(labels), dtype=np.int64)
    offset = 0
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        fold_of[members] = (offset + np.arange(len(members))) % folds
        offset += len(members)
    return fold_of


def logistic_regression(
    train_x: np.ndarray,
    train_y: np.ndarray,
    n_classes: int,
    *,
    l2: float = 1e-2,
    max_iter: int = 100,
) -> tuple[np.ndarray, np.ndarray]:
    """Multinomial logistic regression fitted by L-BFGS (float64, deterministic).

    train_x: float [N, C] (standardise first); train_y: int [N] in [0, n_classes); l2: weight
    of the squared-norm penalty on the weights (per sample). Returns weights [C, K] and bias [K].
    """
    x = torch.as_tensor(np.asarray(train_x), dtype=torch.float64)
    y = torch.as_tensor(np.asarray(train_y), dtype=torch.int64)
    weights = torch.zeros(x.shape[1], n_classes, dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(n_classes, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS(
        [weights, bias], lr=1.0, max_iter=max_iter, line_search_fn="strong_wolfe"
    )

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(x @ weights + bias, y)
        loss = loss + l2 * (weights * weights).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    return weights.detach().numpy(), bias.detach().numpy()


def signer_identity_probe(
    features: Mapping[str, np.ndarray],
    signers: Sequence[Any],
    *,
    folds: int = 5,
    seed: int = 0,
    l2: float = 1e-2,
    max_iter: int = 100,
) -> dict[str, Any]:
    """Cross-validated accuracy of predicting the signer from each region's features.

    features: region -> float [N, C_region] (e.g. `region_features(...)["features"]`);
    signers: [N] signer of each row. Folds are stratified by signer (`stratified_folds`); each
    fold standardises the features on its training rows and fits `logistic_regression`.

    Returns a JSON-ready dict:
      probe: "identity"; settings: {folds, seed, l2, max_iter, signature};
      samples: N; classes: number of signers; chance: share of the most frequent signer (what
      always guessing it scores); uniform_chance: 1 / classes;
      regions: {region: {accuracy, accuracy_std, fold_accuracies, features, above_chance}}.
    """
    labels_text = [str(s) for s in signers]
    classes = sorted(set(labels_text))
    labels = np.array([classes.index(s) for s in labels_text], dtype=np.int64)
    n = len(labels)
    if n == 0:
        raise ValueError("signer_identity_probe: no samples")
    if not 2 <= folds <= n:
        raise ValueError(f"signer_identity_probe: folds must be in [2, {n}], got {folds}")
    fold_of = stratified_folds(labels, folds, seed)
    chance = float(np.bincount(labels).max() / n)
    # the fits are tiny: worker threads only wait on each other (badly so on busy cores)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        regions = {
            region: _cross_validate(
                np.asarray(values, dtype=np.float64),
                labels,
                len(classes),
                fold_of,
                folds,
                region,
                l2,
                max_iter,
            )
            for region, values in features.items()
        }
    finally:
        torch.set_num_threads(threads)
    for entry in regions.values():
        entry["above_chance"] = entry["accuracy"] - chance
    return {
        "probe": "identity",
        "settings": {
            "folds": folds,
            "seed": seed,
            "l2": l2,
            "max_iter": max_iter,
            "signature": f"identity|logreg:lbfgs+l2.{l2}|folds:{folds}|seed:{seed}",
        },
        "samples": n,
        "classes": len(classes),
        "chance": chance,
        "uniform_chance": 1.0 / len(classes),
        "regions": regions,
    }


def _cross_validate(
    values: np.ndarray,
    labels: np.ndarray,
    n_classes: int,
    fold_of: np.ndarray,
    folds: int,
    region: str,
    l2: float,
    max_iter: int,
) -> dict[str, Any]:
    """Accuracy of `logistic_regression` on each held-out fold of one region's features."""
    if values.ndim != 2 or values.shape[0] != len(labels):
        raise ValueError(
            f"signer_identity_probe: region {region!r} has features of shape {values.shape}, "
            f"expected [{len(labels)}, C] rows (one per signer label)"
        )
    accuracies = []
    for fold in range(folds):
        test = fold_of == fold
        train = ~test
        if not test.any():
            continue
        mean = values[train].mean(0)
        std = values[train].std(0)
        std[std < 1e-12] = 1.0
        weights, bias = logistic_regression(
            (values[train] - mean) / std, labels[train], n_classes, l2=l2, max_iter=max_iter
        )
        predicted = (((values[test] - mean) / std) @ weights + bias).argmax(1)
        accuracies.append(float((predicted == labels[test]).mean()))
    return {
        "accuracy": float(np.mean(accuracies)),
        "accuracy_std": float(np.std(accuracies)),
        "fold_accuracies": accuracies,
        "features": int(values.shape[1]),
    }


def identity_probe(
    model: Any,
    corpus: Any,
    ids: Sequence[str],
    *,
    task: str = "slt",
    folds: int = 5,
    seed: int = 0,
    l2: float = 1e-2,
    batch_size: int = 16,
    max_frames: int | None = None,
    device: str | torch.device = "cpu",
    progress: bool = False,
) -> dict[str, Any]:
    """`region_features` of `ids` then `signer_identity_probe` on them; the result also carries
    the probed ids under "ids" and the feature source under settings["features"]."""
    pooled = region_features(
        model,
        corpus,
        ids,
        task=task,
        batch_size=batch_size,
        max_frames=max_frames,
        device=device,
        progress=progress,
    )
    result = signer_identity_probe(
        pooled["features"], pooled["signers"], folds=folds, seed=seed, l2=l2
    )
    result["settings"]["features"] = "pose_encoder.part_features, mean over nodes and real frames"
    result["settings"]["layout"] = model.config.layout
    result["ids"] = pooled["ids"]
    return result
