"""nmmfast `IntegratedGradients` vs captum `IntegratedGradients` on the same pose model, inputs,
steps and quadrature, checked equal before timing; accuracy scored on the attributions.

    python benchmarks/bench_ig.py [--quick] [--device cpu|cuda] [--threads N] [--json out.json]
                                  [--model generic|attention|tiny|unisign | --run RUN]
                                  [--steps 50] [--samples N] [--parts same,accuracy,sequence]

Models (random weights unless --run):
- `generic`: what a user brings, `forward_func(inputs, mask, rows)`: a per-frame MLP
  (207 → 256 → 256), a temporal Conv1d (k = 5) over masked frames, masked mean pooling and a
  10-class head, one class per sample picked through `rows`; nothing the engine can fold.
- `attention`: the same with one self-attention layer (4 heads, padded keys masked) after the
  convolution.
- `tiny`: the `tiny` config (Uni-Sign pose encoder with small widths + a 2+2-layer T5), F(x) =
  Σ_t log p(y_t | y_<t, x) of a fixed target, teacher-forced, stop-gradients lifted.
- `unisign`: the Uni-Sign-sized pose encoder (5.3 M parameters) in front of the same small T5.
- `--run RUN`: a trained run's best weights on the first test samples of its partition, with
  their reference texts as targets.

Inputs are ragged: random poses of 60–200 frames (generic, attention) or 64–128 (tiny,
unisign); --quick uses fewer and shorter clips. captum is called once per clip (its inputs
must share one shape), at its defaults (all steps in one batch) and over a sweep of
`internal_batch_size`; the engine at its defaults (rows per batch tuned on its first batches,
so the timed calls come after a warm-up call, as for captum).

Parts:
- same: equal steps and method (default 50 Gauss–Legendre points): captum's defaults, captum at
  its best `internal_batch_size`, captum's defaults on the engine's batch-norm-folded model
  (models that fold), the engine, and a bare loop of the same forward+backward passes, all
  timed side by side in rounds.
- accuracy: a dense reference per clip (composite Simpson on `--reference-nodes` points, in
  float64 where the model runs in it), then every method scored by per-joint relative L1 error
  Σ_j |A_j − A*_j| / Σ_j |A*_j| (A_j: the joint's attribution summed over frames and channels),
  by region-share error (percentage points, max over hands/face/body of the share of Σ|attr|),
  and by |δ| / |ΔF|, each the median over clips. Equal accuracy: the fastest of the engine's
  strategies whose median per-joint error is at most captum's defaults'.
- sequence (tiny, unisign, --run): whole-sequence attribution vs captum's per-token loop.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import timeit, timeit_side_by_side  # noqa: E402

from nmmfast.attribution import IntegratedGradients, quadrature  # noqa: E402
from nmmfast.skeleton import get_layout  # noqa: E402

PARTS = {"same", "accuracy", "sequence"}
MODELS = ("generic", "attention", "tiny", "unisign")
TEXTS = ["my friend did not write the book yesterday .", "does the new car go home ?"]
LAYOUT = "unisign69"


# ---- models -------------------------------------------------------------------------------------


class GenericPoseModel(nn.Module):
    """Per-frame MLP, temporal convolution over masked frames, optional self-attention, masked
    mean pooling, class logits: padding-invariant (padded frames are zeroed before the
    convolution and left out of the attention keys and the mean)."""

    def __init__(self, joints: int = 69, channels: int = 3, hidden: int = 256,
                 classes: int = 10, attention: bool = False) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(joints * channels, hidden), nn.ReLU(),
                                 nn.Linear(hidden, hidden), nn.ReLU())
        self.conv = nn.Conv1d(hidden, hidden, 5, padding=2)
        self.attention = nn.MultiheadAttention(hidden, 4, batch_first=True) if attention else None
        self.head = nn.Linear(hidden, classes)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        weight = mask.to(x.dtype)[..., None]  # [B, T, 1]
        h = self.mlp(x.flatten(2)) * weight
        h = torch.relu(self.conv(h.transpose(1, 2))).transpose(1, 2)
        if self.attention is not None:
            h = h + self.attention(h, h, h, key_padding_mask=~mask, need_weights=False)[0]
        pooled = (h * weight).sum(1) / weight.sum(1)
        return self.head(pooled)


@dataclass
class Case:
    """A model and inputs as both sides see them: `score(x [B, T, J, C], mask [B, T], extra
    [B, ...])` gives F per row; `extras[n]` is what clip n's rows carry (a class or target ids)."""

    name: str
    model: nn.Module
    score: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
    xs: list[torch.Tensor]
    extras: torch.Tensor
    folds: bool
    sequence: bool


def make_generic(name: str, n_samples: int, lengths: tuple[int, int], device: str) -> Case:
    torch.manual_seed(0)
    model = GenericPoseModel(attention=name == "attention").to(device).eval()
    classes = torch.arange(n_samples, device=device) % 10

    def score(x, mask, cls):
        return model(x, mask).gather(1, cls.view(-1, 1))[:, 0]

    return Case(name, model, score, make_inputs(n_samples, *lengths, device), classes,
                folds=False, sequence=False)


def make_text_model(pose: str, device: str):
    from nmmfast.model import CONFIGS, WordTokenizer, build_model
    from nmmfast.model.pose_encoder import PoseEncoderConfig

    config = CONFIGS["tiny"]
    if pose == "unisign":
        from dataclasses import replace

        config = replace(config, name="tiny-text-unisign-pose", pose=PoseEncoderConfig())
    torch.manual_seed(0)
    return build_model(config, tokenizer=WordTokenizer.build(TEXTS)).to(device).eval()


def from_run(run: str, n_samples: int, device: str):
    """A trained run's best model, its first n test samples (poses) and their references."""
    from nmmfast.data.dataset import Corpus, PoseDataset
    from nmmfast.model import load_run

    model, meta, _ = load_run(run, "best", device)
    corpus = Corpus.open(meta["corpus"])
    test = corpus.partition(meta["partition"])["test"][:n_samples]
    dataset = PoseDataset(corpus, test, meta["task"], layout=model.config.layout,
                          max_frames=model.config.max_frames)
    xs = [dataset[i][1].to(device) for i in range(len(dataset))]
    return model, xs, list(dataset.targets)


def make_text_case(name: str, n_samples: int, lengths: tuple[int, int], device: str,
                   run: str | None) -> Case:
    if run:
        model, xs, texts = from_run(run, n_samples, device)
    else:
        model = make_text_model(name, device)
        xs = make_inputs(n_samples, *lengths, device)
        texts = [TEXTS[n % 2] for n in range(n_samples)]
    ids = model.tokenize_targets(texts)

    def score(x, mask, target):
        return model.sequence_log_prob(x, mask, target)

    label = model.config.name + (f" (trained: {run})" if run else "")
    return Case(label, model, score, xs, ids, folds=True, sequence=True)


def make_inputs(n_samples: int, min_len: int, max_len: int, device: str, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    lengths = torch.randint(min_len, max_len + 1, (n_samples,), generator=gen).tolist()
    return [(torch.rand(t, 69, 3, generator=gen) * 2 - 1).to(device) for t in lengths]


def folded(case: Case):
    fold = getattr(case.model, "batch_norm_folded", None)
    return fold() if case.folds and callable(fold) else contextlib.nullcontext()


def lifted(model: nn.Module):
    lift = getattr(model, "stop_gradient_lifted", None)
    return lift() if callable(lift) else contextlib.nullcontext()


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


# ---- accuracy on the attributions ---------------------------------------------------------------


def per_joint_error(attr: torch.Tensor, ref: torch.Tensor) -> float:
    """Σ_j |A_j − A*_j| / Σ_j |A*_j| with A_j summed over frames and channels."""
    got, want = attr.double().sum(dim=(0, 2)), ref.double().sum(dim=(0, 2))
    return float((got - want).abs().sum() / want.abs().sum().clamp_min(1e-300))


def region_share_error(attr: torch.Tensor, ref: torch.Tensor, regions: torch.Tensor) -> float:
    """Max over regions of |share − share*| in percentage points; share = the region's Σ|attr|
    over frames, joints and channels / the clip's Σ|attr|."""

    def shares(a: torch.Tensor) -> torch.Tensor:
        per_joint = a.double().abs().sum(dim=(0, 2))
        per_region = torch.zeros(int(regions.max()) + 1, dtype=torch.float64).index_add_(
            0, regions, per_joint.cpu())
        return 100 * per_region / per_region.sum().clamp_min(1e-300)

    return float((shares(attr) - shares(ref)).abs().max())


def scores(attributions: list[torch.Tensor], refs: list[torch.Tensor], rel_delta: list[float],
           regions: torch.Tensor) -> dict[str, Any]:
    joint = [per_joint_error(a, r) for a, r in zip(attributions, refs, strict=True)]
    share = [region_share_error(a, r, regions) for a, r in zip(attributions, refs, strict=True)]
    return {
        "per_joint_error": joint,
        "median_per_joint_error": statistics.median(joint),
        "median_region_share_error_pp": statistics.median(share),
        "median_rel_delta": statistics.median(rel_delta),
    }


def reference_model(case: Case) -> tuple[nn.Module, torch.dtype]:
    """A float64 copy of the model where it runs in float64, else the model in float32."""
    copy64 = copy.deepcopy(case.model).double()
    x = case.xs[0][None, :8].double()
    mask = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
    try:
        with torch.no_grad(), lifted(copy64):
            out = _score_with(case, copy64)(x, mask, case.extras[:1])
        if out.dtype == torch.float64 and bool(torch.isfinite(out).all()):
            return copy64, torch.float64
    except (RuntimeError, TypeError, ValueError):
        pass
    return case.model, torch.float32


def _score_with(case: Case, model: nn.Module):
    if isinstance(case.model, GenericPoseModel):
        return lambda x, mask, cls: model(x, mask).gather(1, cls.view(-1, 1))[:, 0]
    return lambda x, mask, target: model.sequence_log_prob(x, mask, target)


# ---- the benchmark ------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, about a minute")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--model", choices=MODELS, help="default tiny")
    parser.add_argument("--pose", choices=["tiny", "unisign"], help="same as --model")
    parser.add_argument("--run", help="a trained run directory (its best.pt and test samples)")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--samples", type=int)
    parser.add_argument("--steps", type=int, default=50,
                        help="Gauss–Legendre points at equal steps (captum's default: 50)")
    parser.add_argument("--reference-nodes", type=int, default=257,
                        help="Simpson points of the dense reference (odd)")
    parser.add_argument("--repeats", type=int, help="timed rounds (default 5, --quick 2)")
    parser.add_argument("--tolerances", type=lambda v: [float(t) for t in v.split(",")],
                        help="panel tolerances scored in the accuracy part (comma list; "
                             "default 0.03,0.01,0.003, --quick 0.03,0.01)")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    parser.add_argument("--parts", default="same,accuracy,sequence",
                        help="comma list of what to measure: same (steps and method as captum), "
                             "accuracy (per-joint accuracy vs a dense reference), sequence "
                             "(whole sequence vs per-token loop); default: all")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    if not parts <= PARTS:
        parser.error(f"--parts: unknown {sorted(parts - PARTS)}")
    if args.model and args.pose and args.model != args.pose:
        parser.error("--model and --pose disagree")
    model_name = args.model or args.pose or "tiny"
    try:
        from captum.attr import IntegratedGradients as CaptumIG
    except ImportError:  # pragma: no cover - captum is a test dependency
        print("captum is not installed: pip install captum", file=sys.stderr)
        sys.exit(1)
    if args.threads:
        torch.set_num_threads(args.threads)
    device, quick = args.device, args.quick
    generic = model_name in ("generic", "attention") and not args.run
    if generic:
        n_samples = args.samples or (4 if quick else 8)
        lengths = (60, 120) if quick else (60, 200)
        case = make_generic(model_name, n_samples, lengths, device)
    else:
        n_samples = args.samples or (2 if quick else 6)
        lengths = (64, 64) if quick else (64, 128)
        case = make_text_case(model_name, n_samples, lengths, device, args.run)
        n_samples = len(case.xs)
    repeats = args.repeats or (2 if quick else 5)
    xs, extras, score, model = case.xs, case.extras, case.score, case.model
    regions = torch.as_tensor(get_layout(LAYOUT).region_of_joint, dtype=torch.int64)
    results: dict[str, Any] = {
        "device": torch.cuda.get_device_name() if device == "cuda" else platform.processor()
        or platform.machine(),
        "threads": torch.get_num_threads(),
        "model": case.name,
        "goals_of": "tiny" if args.run else model_name,
        "quick": quick,
        "samples": n_samples,
        "frames": [x.shape[0] for x in xs],
    }
    if case.sequence:
        results["target_tokens"] = int((extras != model.pad_token_id).sum(1).max())

    def f_one(x, extra):  # captum's forward: one clip's rows, every frame real
        mask = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
        return score(x, mask, extra)

    def captum_run(n_steps: int, method: str, ibs: int | None, delta: bool = False):
        ig = CaptumIG(f_one)
        out = [ig.attribute(x[None], additional_forward_args=(extras[n : n + 1],),
                            n_steps=n_steps, method=method, internal_batch_size=ibs,
                            return_convergence_delta=delta) for n, x in enumerate(xs)]
        sync(device)
        return out

    ours_ig = IntegratedGradients(lambda x, mask, rows, extra: score(x, mask, extra),
                                  model=model, layout=LAYOUT)

    last_stats: dict[str, Any] = {}

    def ours_run(n_steps: int | None, method: str | None, rows: int | None = None,
                 tolerance: float | None = None, delta: bool = True, stop: str = "joint"):
        res = ours_ig.attribute(xs, additional_forward_args=(extras,), n_steps=n_steps,
                                method=method, batch_rows=rows, tolerance=tolerance,
                                return_convergence_delta=delta, stop=stop)
        sync(device)
        last_stats.update(res.stats)
        return res

    def bare_run(n_steps: int, method: str, rows: int):
        """The same forward+backward passes (batch norms folded where the engine folds them),
        written plainly, one clip at a time: no kernels, no sums, no deltas."""
        rule = quadrature(method, n_steps)
        alphas = rule.points.to(device, torch.float32)
        chunks = -(-n_steps // rows)
        bounds = [(c * n_steps) // chunks for c in range(chunks + 1)]
        with folded(case):
            for n, x in enumerate(xs):
                total = torch.zeros_like(x)
                for start, end in zip(bounds[:-1], bounds[1:], strict=True):
                    scaled = (alphas[start:end].view(-1, 1, 1, 1) * x).requires_grad_(True)
                    mask = torch.ones(scaled.shape[:2], dtype=torch.bool, device=device)
                    with torch.enable_grad():
                        out = score(scaled, mask, extras[n : n + 1].expand(
                            scaled.shape[0], *extras.shape[1:]))
                        (grad,) = torch.autograd.grad(out.sum(), scaled)
                    w = rule.weights[start:end].to(device, torch.float32)
                    total += (w.view(-1, 1, 1, 1) * grad).sum(0)
                _ = total * x
        sync(device)

    n_steps, method = args.steps, "gausslegendre"
    with lifted(model):
        for p in model.parameters():  # captum leaves parameters as they are; freeze for all
            p.requires_grad_(False)
        # ---- correctness first ----------------------------------------------------------------
        began = time.perf_counter()
        ours = ours_run(n_steps, method, delta=False)
        results["ours_first_call_s"] = time.perf_counter() - began
        theirs = captum_run(n_steps, method, None)
        worst = max(
            float((ours.attributions[n] - theirs[n][0]).abs().max() / theirs[n].abs().max())
            for n in range(n_samples)
        )
        results["max_rel_diff_vs_captum"] = worst
        assert worst < 1e-3, f"ours and captum disagree: max relative difference {worst:.3g}"

        # ---- same steps and method ---------------------------------------------------------------
        t_captum_default = None
        if "same" in parts:
            ibs_grid = [10, 25] if quick else [4, 8, 16, 25]
            ibs_grid = [b for b in ibs_grid if b < n_steps]
            fns: dict[str, Callable[[], Any]] = {
                "captum_default": lambda: captum_run(n_steps, method, None)}
            for ibs in ibs_grid:
                fns[f"captum_ibs_{ibs}"] = lambda ibs=ibs: captum_run(n_steps, method, ibs)
            fns["ours"] = lambda: ours_run(n_steps, method, delta=False)
            rounds = timeit_side_by_side(fns, warmup=1, repeats=repeats)
            timed = {name: min(values) for name, values in rounds.items()}
            # the rows the engine settled on (CUDA: sized by memory, no tuner)
            best_rows = int(last_stats.get("batch_rows") or n_steps)
            extra_fns: dict[str, Callable[[], Any]] = {
                "ours": fns["ours"], "bare_loop": lambda: bare_run(n_steps, method, best_rows)}
            if case.folds:
                def captum_folded():
                    with folded(case):
                        captum_run(n_steps, method, None)
                extra_fns["captum_default_on_folded_model"] = captum_folded
            more_rounds = timeit_side_by_side(extra_fns, warmup=0,
                                              repeats=max(2, repeats // 2 + 1))
            more = {name: min(values) for name, values in more_rounds.items()}
            captum_sweep = {"none": timed["captum_default"]}
            captum_sweep.update({str(b): timed[f"captum_ibs_{b}"] for b in ibs_grid})
            best_ibs = min(captum_sweep, key=captum_sweep.get)
            t_captum_default = timed["captum_default"]
            t_ours = timed["ours"]
            results["same_steps"] = {
                "n_steps": n_steps, "method": method,
                "captum_default_s": t_captum_default,
                "captum_sweep_s": captum_sweep,
                "captum_best_internal_batch_size": best_ibs,
                "ours_s": t_ours, "ours_batch_rows": best_rows,
                "ours_s_second_round": more["ours"], "bare_loop_s": more["bare_loop"],
                "captum_default_on_folded_model_s": more.get("captum_default_on_folded_model"),
                "speedup_vs_captum_default": t_captum_default / t_ours,
                "speedup_vs_captum_best": captum_sweep[best_ibs] / t_ours,
                "overhead_vs_bare_loop": more["ours"] / more["bare_loop"] - 1,
                "samples_per_s_ours": n_samples / t_ours,
                "samples_per_s_captum_default": n_samples / t_captum_default,
                "timing": "best of the side-by-side rounds; every round in rounds_s",
                "rounds_s": {**rounds, **{f"{k} (second)": v for k, v in more_rounds.items()}},
                "median_speedup_vs_captum_default": statistics.median(rounds["captum_default"])
                / statistics.median(rounds["ours"]),
            }

        # ---- accuracy on the attributions ------------------------------------------------------
        if "accuracy" in parts:
            results["equal_accuracy"] = accuracy_part(
                case, args, captum_run, ours_run, regions, device, quick, repeats,
                t_captum_default, n_steps,
            )

        # ---- sequence vs per-token attribution: passes and time ----------------------------------
        if "sequence" in parts and case.sequence:
            results["sequence"] = sequence_part(case, CaptumIG, device, quick, n_samples)
    for p in model.parameters():
        p.requires_grad_(True)
    report(results)
    if args.json:
        results["summary"] = summary(results)
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n")


def accuracy_part(case: Case, args, captum_run, ours_run, regions, device: str, quick: bool,
                  repeats: int, t_captum_default: float | None, n_steps: int) -> dict[str, Any]:
    xs, extras = case.xs, case.extras
    nodes = args.reference_nodes + (args.reference_nodes % 2 == 0)
    ref_model, ref_dtype = reference_model(case)
    ref_score = _score_with(case, ref_model)
    ref_ig = IntegratedGradients(lambda x, mask, rows, extra: ref_score(x, mask, extra),
                                 model=ref_model)
    began = time.perf_counter()
    with lifted(ref_model):
        reference = ref_ig.attribute([x.to(ref_dtype) for x in xs],
                                     additional_forward_args=(extras,), n_steps=nodes,
                                     method="simpson")
    ref_s = time.perf_counter() - began
    refs = [a.double() for a in reference.attributions]

    def scored(res) -> dict[str, Any]:
        rel = [float(v) for v in res.relative_delta]
        return scores(list(res.attributions), refs, rel, regions)

    # captum's defaults: 50 Gauss–Legendre steps, all in one batch, with its deltas
    captum_out = captum_run(50, "gausslegendre", None, delta=True)
    rel = []
    for n, (_, delta) in enumerate(captum_out):
        with torch.no_grad():
            pair = torch.stack([torch.zeros_like(xs[n]), xs[n]])
            mask = torch.ones(pair.shape[:2], dtype=torch.bool, device=pair.device)
            values = case.score(pair, mask, extras[n : n + 1].expand(2, *extras.shape[1:]))
        rel.append(abs(float(delta)) / max(abs(float(values[1] - values[0])), 1e-300))
    captum_scores = scores([a[0] for a, _ in captum_out], refs, rel, regions)
    # the engine's strategies: panels (two stopping rules), fewer Gauss–Legendre points
    strategies: dict[str, dict[str, Any]] = {}
    tolerances = args.tolerances or ([0.03, 0.01] if quick else [0.03, 0.01, 0.003])
    for tol in tolerances:
        strategies[f"panels, joint rule, tolerance {tol:g}"] = dict(tolerance=tol, stop="joint")
    for tol in ([0.01] if quick else [0.01, 0.003]):
        strategies[f"panels, signed rule, tolerance {tol:g}"] = dict(tolerance=tol, stop="signed")
    for steps in ([16, 32] if quick else [8, 16, 24, 32, 40]):
        strategies[f"Gauss–Legendre, {steps} points"] = dict(n_steps=steps,
                                                             method="gausslegendre")
    fns: dict[str, Callable[[], Any]] = {}
    found: dict[str, dict[str, Any]] = {}
    for name, options in strategies.items():
        res = ours_run(options.get("n_steps"), options.get("method"),
                       tolerance=options.get("tolerance"), stop=options.get("stop", "joint"))
        found[name] = {**scored(res), "steps_used": res.n_steps.tolist(),
                       "mean_steps": float(res.n_steps.double().mean())}
        fns[name] = (lambda o=options: ours_run(o.get("n_steps"), o.get("method"),
                                                tolerance=o.get("tolerance"),
                                                stop=o.get("stop", "joint")))
    fns["captum_default"] = lambda: captum_run(50, "gausslegendre", None)
    rounds = timeit_side_by_side(fns, warmup=0, repeats=2 if quick else 3)
    timed = {name: min(values) for name, values in rounds.items()}
    captum_s = timed["captum_default"]
    bar = captum_scores["median_per_joint_error"]
    for name, entry in found.items():
        entry["s"] = timed[name]
        entry["speedup_vs_captum_default"] = captum_s / timed[name]
        entry["no_worse_than_captum"] = entry["median_per_joint_error"] <= bar
    qualifying = [n for n, e in found.items() if e["no_worse_than_captum"]]
    best = min(qualifying, key=lambda n: found[n]["s"]) if qualifying else None
    return {
        "reference": {"method": "simpson", "n_steps": nodes, "dtype": str(ref_dtype),
                      "median_rel_delta": float(reference.relative_delta.median()),
                      "s": ref_s},
        "captum_default": {**captum_scores, "s": captum_s},
        "captum_default_same_steps_s": t_captum_default,
        "ours": found,
        "fastest_at_equal_accuracy": best,
        "speedup_at_equal_accuracy": captum_s / found[best]["s"] if best else None,
    }


def sequence_part(case: Case, CaptumIG, device: str, quick: bool, n_samples: int) -> dict:
    model, xs, ids = case.model, case.xs, case.extras
    seq_steps = 4 if quick else 16
    method = "gausslegendre"
    lengths = (ids != model.pad_token_id).sum(1).tolist()

    def token_forward(x, target, position):
        mask = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
        return model.token_log_probs(x, mask, target.expand(x.shape[0], -1))[:, position]

    def captum_per_token():
        ig = CaptumIG(token_forward)
        return [[ig.attribute(x[None], additional_forward_args=(ids[n : n + 1], position),
                              n_steps=seq_steps, method=method)[0]
                 for position in range(lengths[n])] for n, x in enumerate(xs)]

    seq_ig = IntegratedGradients(lambda x, mask, rows, target: model.sequence_log_prob(
        x, mask, target), model=model, layout=LAYOUT)
    tok_ig = IntegratedGradients(lambda x, mask, rows, target: model.token_log_probs(
        x, mask, target), model=model, layout=LAYOUT)

    def ours_sequence():
        return seq_ig.attribute(xs, additional_forward_args=(ids,), n_steps=seq_steps,
                                method=method)

    def ours_per_token():
        return tok_ig.attribute(xs, additional_forward_args=(ids,), n_steps=seq_steps,
                                method=method, per_output=True)

    loop = captum_per_token()
    per_token = ours_per_token()
    worst_token = max(
        float((per_token.attributions[n][k] - loop[n][k]).abs().max()
              / loop[n][k].abs().max().clamp_min(1e-30))
        for n in range(n_samples) for k in range(lengths[n])
    )
    assert worst_token < 1e-3, (
        f"per-token attributions disagree with captum's loop: {worst_token:.3g}")
    t_loop = timeit(lambda: (captum_per_token(), sync(device)), warmup=0, repeats=1)
    t_seq = timeit(lambda: (ours_sequence(), sync(device)), warmup=1, repeats=3)
    t_tok = timeit(lambda: (ours_per_token(), sync(device)), warmup=0, repeats=1)
    tokens = sum(lengths)
    return {
        "n_steps": seq_steps, "target_tokens": lengths,
        "per_token_max_rel_diff_vs_captum": worst_token,
        "captum_per_token_loop": {"forward_rows": tokens * seq_steps,
                                  "backward_rows": tokens * seq_steps, "s": t_loop},
        "ours_sequence": {"forward_rows": n_samples * (seq_steps + 2),
                          "backward_rows": n_samples * seq_steps, "s": t_seq},
        "ours_per_token": {"forward_rows": n_samples * (seq_steps + 2),
                           "backward_rows": tokens * seq_steps, "s": t_tok},
        "passes_ratio_loop_vs_sequence": tokens * seq_steps / (n_samples * seq_steps),
        "speedup_sequence_vs_loop": t_loop / t_seq,
        "speedup_per_token_vs_loop": t_loop / t_tok,
    }


# ---- summary and report -------------------------------------------------------------------------

# Goals per model (DESIGN.md "Numbers to reach"): equal steps vs captum's defaults, vs its best
# internal_batch_size, and at equal per-joint accuracy.
GOALS = {
    "generic": (1.0, 1.0, 2.0),
    "attention": (1.0, 1.0, 2.0),
    "tiny": (1.3, 1.0, 3.0),
    "unisign": (2.0, 1.2, 3.0),
}


def _status(ratio: float | None, goal: float | None, precondition: bool = True) -> str:
    if goal is None:
        return "no goal"
    return "met" if ratio is not None and precondition and ratio >= goal else "missed"


def summary(r: dict) -> list[dict]:
    """The measured claims, one row each, for `nmmfast bench` (status: met, missed, no goal)."""
    same_goal, best_goal, accuracy_goal = GOALS[r.get("goals_of", "tiny")]
    rows: list[dict] = []
    model = r["model"]
    if "same_steps" in r:
        s = r["same_steps"]
        best = min(float(v) for v in s["captum_sweep_s"].values())
        ratio = s["captum_default_s"] / s["ours_s"]
        rows.append({"claim": f"IG {s['n_steps']} GL steps vs captum defaults ({model})",
                     "ours": f"{s['ours_s']:.2f} s", "peer": f"{s['captum_default_s']:.2f} s",
                     "ratio": ratio, "goal": f"≥ {same_goal:g}x",
                     "status": _status(ratio, same_goal)})
        ratio = best / s["ours_s"]
        rows.append({"claim": f"IG same steps vs captum's best internal_batch_size "
                              f"({s['captum_best_internal_batch_size']}, {model})",
                     "ours": f"{s['ours_s']:.2f} s", "peer": f"{best:.2f} s", "ratio": ratio,
                     "goal": f"≥ {best_goal:g}x", "status": _status(ratio, best_goal)})
        ratio = s["bare_loop_s"] / s["ours_s_second_round"]
        rows.append({"claim": f"IG overhead over a bare forward+backward loop ({model})",
                     "ours": f"{s['ours_s_second_round']:.2f} s",
                     "peer": f"{s['bare_loop_s']:.2f} s", "ratio": ratio,
                     "goal": "≥ 0.91x (≤ 10 % overhead)", "status": _status(ratio, 0.91)})
    if "equal_accuracy" in r:
        e = r["equal_accuracy"]
        c = e["captum_default"]
        best = e["fastest_at_equal_accuracy"]
        ratio = e["speedup_at_equal_accuracy"]
        ours = e["ours"][best] if best else None
        rows.append({
            "claim": f"IG at equal per-joint accuracy vs captum 50 GL steps ({model}): "
                     + (f"{best}, median per-joint error {ours['median_per_joint_error']:.2e} "
                        f"vs {c['median_per_joint_error']:.2e}" if best else
                        f"no strategy reached captum's {c['median_per_joint_error']:.2e}"),
            "ours": f"{ours['s']:.2f} s" if ours else "-", "peer": f"{c['s']:.2f} s",
            "ratio": ratio, "goal": f"≥ {accuracy_goal:g}x at no worse per-joint error",
            "status": _status(ratio, accuracy_goal, best is not None)})
    if "sequence" in r:
        q = r["sequence"]
        rows.append({"claim": "sequence attribution vs captum's per-token loop (passes)",
                     "ours": f"{q['ours_sequence']['backward_rows']} rows",
                     "peer": f"{q['captum_per_token_loop']['backward_rows']} rows",
                     "ratio": q["passes_ratio_loop_vs_sequence"], "goal": "≥ T_out x",
                     "status": _status(q["passes_ratio_loop_vs_sequence"],
                                       float(max(q["target_tokens"])))})
    return rows


def report(r: dict) -> None:
    print(f"device {r['device']}, {r['threads']} threads, model {r['model']}, "
          f"{r['samples']} samples of {r['frames']} frames, J=69, C=3"
          + (f", target {r['target_tokens']} tokens" if "target_tokens" in r else ""))
    print(f"correctness: max relative difference vs captum {r['max_rel_diff_vs_captum']:.2e}; "
          f"the engine's first call (rows tuned on its batches) {r['ours_first_call_s']:.3f} s")
    if "same_steps" in r:
        _report_same_steps(r)
    if "equal_accuracy" in r:
        _report_accuracy(r["equal_accuracy"])
    if "sequence" in r:
        _report_sequence(r["sequence"])


def _report_same_steps(r: dict) -> None:
    s = r["same_steps"]
    print(f"\nsame steps ({s['n_steps']} {s['method']}), side by side, best of rounds:  seconds  "
          f" samples/s  captum/ours (medians: {s['median_speedup_vs_captum_default']:.2f}x)")
    base = s["ours_s"]
    rows = [("captum defaults (internal_batch_size=None)", s["captum_default_s"])]
    for ibs, seconds in s["captum_sweep_s"].items():
        if ibs != "none":
            rows.append((f"captum internal_batch_size={ibs}", seconds))
    rows.append((f"nmmfast defaults (rows tuned: {s['ours_batch_rows']})", base))
    for name, seconds in rows:
        print(f"  {name:<48} {seconds:8.3f} {r['samples'] / seconds:10.2f} {seconds / base:7.2f}x")
    print("second round:")
    second = s["ours_s_second_round"]
    rows = [("nmmfast defaults", second),
            (f"bare loop, same passes ({s['ours_batch_rows']} rows)", s["bare_loop_s"])]
    if s.get("captum_default_on_folded_model_s"):
        rows.append(("captum defaults on the engine's folded model",
                     s["captum_default_on_folded_model_s"]))
    for name, seconds in rows:
        print(f"  {name:<48} {seconds:8.3f} {r['samples'] / seconds:10.2f} "
              f"{seconds / second:7.2f}x")
    print(f"  overhead vs bare loop: {100 * s['overhead_vs_bare_loop']:+.1f} %")


def _report_accuracy(e: dict) -> None:
    ref = e["reference"]
    print(f"\naccuracy vs a dense reference ({ref['n_steps']}-point Simpson, {ref['dtype']}, "
          f"median |delta|/|dF| {ref['median_rel_delta']:.1e}, {ref['s']:.1f} s); medians over "
          f"clips:")
    print(f"  {'':<44} {'per-joint':>10} {'share pp':>9} {'|d|/|dF|':>9} {'steps':>6} "
          f"{'seconds':>8} {'speed-up':>8}")
    c = e["captum_default"]
    print(f"  {'captum defaults (50 GL)':<44} {c['median_per_joint_error']:10.2e} "
          f"{c['median_region_share_error_pp']:9.3f} {c['median_rel_delta']:9.2e} {50:6d} "
          f"{c['s']:8.3f} {1:8.2f}")
    for name, a in e["ours"].items():
        mark = "" if a["no_worse_than_captum"] else "  (worse)"
        print(f"  {name:<44} {a['median_per_joint_error']:10.2e} "
              f"{a['median_region_share_error_pp']:9.3f} {a['median_rel_delta']:9.2e} "
              f"{a['mean_steps']:6.1f} {a['s']:8.3f} {a['speedup_vs_captum_default']:8.2f}{mark}")
    if e["fastest_at_equal_accuracy"]:
        print(f"  equal per-joint accuracy: {e['fastest_at_equal_accuracy']}, "
              f"{e['speedup_at_equal_accuracy']:.2f}x captum's defaults")
    else:
        print("  equal per-joint accuracy: no strategy reached captum's median")


def _report_sequence(q: dict) -> None:
    print(f"\nsequence attribution ({q['n_steps']} steps, target tokens {q['target_tokens']}; "
          f"ours per token vs captum's loop: max relative difference "
          f"{q['per_token_max_rel_diff_vs_captum']:.1e}):  forward rows  backward rows  seconds")
    for name in ("captum_per_token_loop", "ours_per_token", "ours_sequence"):
        v = q[name]
        print(f"  {name:<24} {v['forward_rows']:12d} {v['backward_rows']:14d} {v['s']:8.3f}")
    print(f"  passes: per-token loop / sequence = {q['passes_ratio_loop_vs_sequence']:.1f}x; "
          f"time: {q['speedup_sequence_vs_loop']:.1f}x (sequence), "
          f"{q['speedup_per_token_vs_loop']:.1f}x (per token)")


if __name__ == "__main__":
    main()
