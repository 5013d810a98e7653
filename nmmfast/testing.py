"""Shared test parametrisation and tolerances: the dtypes and devices every kernel test sweeps, and
the "no worse than a plain implementation in the same precision" comparison."""

from __future__ import annotations

import torch

pose_dtypes = [torch.float32, torch.float64]
out_dtypes = [torch.float32, torch.float16, torch.bfloat16, torch.float64]
grad_dtypes = [torch.float32, torch.float16, torch.bfloat16, torch.float64]


def devices() -> list[str]:
    """Devices with usable kernels: "cpu", plus "cuda" when built with CUDA and a GPU is present."""
    from nmmfast import info

    return ["cpu", "cuda"] if info()["gpu_usable"] else ["cpu"]


def assert_within_plain_error(
    actual: torch.Tensor,
    plain: torch.Tensor,
    truth: torch.Tensor,
    *,
    factor: float = 2.0,
    scale: torch.Tensor | None = None,
    name: str = "result",
) -> None:
    """Assert that `actual` is at most `factor` times as far from `truth` (float64) as `plain` is.

    `plain` is the straightforward implementation run in the same precision as `actual`, so the
    tolerance follows the precision instead of a magic atol. A floor of a few units in the last
    place of the result's scale absorbs differences in rounding order (fused multiply-add).
    """
    assert actual.shape == truth.shape, (
        f"{name}: shape {tuple(actual.shape)} != {tuple(truth.shape)}"
    )
    if truth.numel() == 0:
        return
    truth = truth.double().cpu()
    err_actual = (actual.double().cpu() - truth).abs().max().item()
    err_plain = (plain.double().cpu() - truth).abs().max().item()
    magnitude = truth.abs().max().item() if scale is None else scale.double().abs().max().item()
    floor = 4 * torch.finfo(actual.dtype).eps * max(magnitude, 1e-30)
    assert err_actual <= factor * err_plain + floor, (
        f"{name}: max error {err_actual:.3g} vs plain {err_plain:.3g} (allowed "
        f"{factor} x plain + {floor:.3g})"
    )
