#!/usr/bin/env bash
# GPU check: builds nmmfast with its CUDA kernels (no build isolation, no network), runs the CUDA
# tests, the kernel benchmark and the IG engine against captum on CUDA (the generic user model
# and the one with attention, the tiny model, the Uni-Sign-sized encoder), and writes logs plus
# summary.json under $OUT (or ./gpu_check_out).
# Meant for a machine with an NVIDIA GPU, nvcc, PyTorch, pybind11, scikit-build-core and captum.
# Every step runs under what is left of an 8-minute budget (GPU_CHECK_BUDGET_S, default 470 s),
# so the whole script ends in time even when a step hangs; a step cut short says so in its log.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-$PWD/gpu_check_out}"
mkdir -p "$out"
started=$(date +%s)
budget="${GPU_CHECK_BUDGET_S:-470}"
status() { echo "[$(($(date +%s) - started))s] $*" | tee -a "$out/progress.log"; }
# step NAME CAP_S COMMAND...: runs COMMAND under min(CAP_S, what is left of the budget)
step() {
  local name=$1 cap=$2; shift 2
  local left=$((budget - ($(date +%s) - started)))
  if [ "$left" -lt 15 ]; then
    echo "skipped: the 8-minute budget is spent" >"$out/$name.log"
    status "$name skipped (budget spent)"
    return 124
  fi
  [ "$cap" -gt "$left" ] && cap=$left
  timeout "$cap" "$@" >"$out/$name.log" 2>&1
  local rc=$?
  status "$name rc=$rc (cap ${cap}s)"
  return $rc
}

{ nvidia-smi; nvcc --version; python --version; python -c "import torch; print('torch', torch.__version__, torch.version.cuda)"; } \
  >"$out/machine.txt" 2>&1
arch="${NMMFAST_CUDA_ARCHITECTURES:-$(python -c "import torch; a, b = torch.cuda.get_device_capability(); print(f'{a}{b}')" 2>/dev/null || echo 90)}"
status "building for sm_$arch"
NMMFAST_CUDA=ON NMMFAST_CUDA_ARCHITECTURES="$arch" \
  step build 200 pip install --no-deps --no-build-isolation -v .
build_rc=$?

python -c "import json, nmmfast; print(json.dumps(nmmfast.info(), indent=2))" >"$out/info.json" 2>&1
if python -c "import pytest" 2>/dev/null; then
  step tests 120 python -m pytest tests/test_kernels.py tests/test_build.py tests/test_runtime.py tests/test_attribution.py -q -p no:cacheprovider \
    -o addopts="" -m "cuda or not cuda" --junitxml="$out/tests.xml"
  tests_rc=$?
else
  echo "pytest is not installed on this machine" >"$out/tests.log"
  tests_rc=127
fi
cd benchmarks
step bench_kernels_cuda 40 python bench_kernels.py --device cuda --json "$out/bench_kernels_cuda.json"
bench_rc=$?
# IG vs captum on CUDA, ragged clips, side by side: equal steps and per-joint accuracy against a
# dense reference on the generic model; equal steps on the attention variant, the tiny model and
# the Uni-Sign-sized encoder
step bench_ig_generic_cuda 60 python bench_ig.py --quick --model generic --device cuda \
  --parts same,accuracy --json "$out/bench_ig_generic_cuda.json"
step bench_ig_attention_cuda 30 python bench_ig.py --quick --model attention --device cuda \
  --parts same --json "$out/bench_ig_attention_cuda.json"
step bench_ig_tiny_cuda 45 python bench_ig.py --quick --samples 6 --device cuda --parts same,sequence \
  --json "$out/bench_ig_tiny_cuda.json"
step bench_ig_unisign_cuda 45 python bench_ig.py --quick --model unisign --device cuda --parts same \
  --json "$out/bench_ig_unisign_cuda.json"
# ONNX Runtime CUDA vs TensorRT on the extraction models, where both exist (skips what is missing)
step bench_extract_gpu 40 python bench_extract.py --quick --gpu --json "$out/bench_extract_gpu.json"
cd ..

python - "$out" "$build_rc" "$tests_rc" "$bench_rc" <<'PY'
import json, pathlib, sys
out, build_rc, tests_rc, bench_rc = pathlib.Path(sys.argv[1]), *map(int, sys.argv[2:])
tests_tail = (out / "tests.log").read_text(errors="replace").strip().splitlines()[-1:] if (out / "tests.log").exists() else []
summary = {"build_rc": build_rc, "tests_rc": tests_rc, "tests": tests_tail, "bench_rc": bench_rc}
for name in ("info.json", "bench_kernels_cuda.json", "bench_ig_generic_cuda.json",
             "bench_ig_attention_cuda.json", "bench_ig_tiny_cuda.json", "bench_ig_unisign_cuda.json",
             "bench_extract_gpu.json"):
    try:
        summary[name.removesuffix(".json")] = json.loads((out / name).read_text())
    except (OSError, ValueError) as exc:
        summary[name.removesuffix(".json")] = f"unavailable: {exc}"
(out / "summary.json").write_text(json.dumps(summary, indent=2))
print(json.dumps({k: summary[k] for k in ("build_rc", "tests_rc", "tests", "bench_rc")}))
PY
status "done"
