#!/usr/bin/env bash
# GPU check: builds nmmfast with its CUDA kernels (no build isolation, no network), runs the CUDA
# tests and the kernel benchmark, and writes logs plus summary.json under $OUT (or ./gpu_check_out).
# Meant for a machine with an NVIDIA GPU, nvcc, PyTorch, pybind11 and scikit-build-core; ~4-7 min.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-$PWD/gpu_check_out}"
mkdir -p "$out"
started=$(date +%s)
status() { echo "[$(($(date +%s) - started))s] $*" | tee -a "$out/progress.log"; }

{ nvidia-smi; nvcc --version; python --version; python -c "import torch; print('torch', torch.__version__, torch.version.cuda)"; } \
  >"$out/machine.txt" 2>&1
arch="${NMMFAST_CUDA_ARCHITECTURES:-$(python -c "import torch; a, b = torch.cuda.get_device_capability(); print(f'{a}{b}')" 2>/dev/null || echo 90)}"
status "building for sm_$arch"
NMMFAST_CUDA=ON NMMFAST_CUDA_ARCHITECTURES="$arch" \
  timeout 300 pip install --no-deps --no-build-isolation -v . >"$out/build.log" 2>&1
build_rc=$?
status "build rc=$build_rc"

python -c "import json, nmmfast; print(json.dumps(nmmfast.info(), indent=2))" >"$out/info.json" 2>&1
if python -c "import pytest" 2>/dev/null; then
  timeout 240 python -m pytest tests/test_kernels.py tests/test_build.py tests/test_runtime.py tests/test_attribution.py -q -p no:cacheprovider \
    -o addopts="" -m "cuda or not cuda" --junitxml="$out/tests.xml" >"$out/tests.log" 2>&1
  tests_rc=$?
else
  echo "pytest is not installed on this machine" >"$out/tests.log"
  tests_rc=127
fi
status "tests rc=$tests_rc"
(cd benchmarks && timeout 120 python bench_kernels.py --device cuda --json "$out/bench_kernels_cuda.json") \
  >"$out/bench_kernels_cuda.log" 2>&1
bench_rc=$?
(cd benchmarks && timeout 120 python bench_kernels.py --device cpu --quick --json "$out/bench_kernels_cpu.json") \
  >"$out/bench_kernels_cpu.log" 2>&1
status "bench rc=$bench_rc"
# ONNX Runtime CUDA vs TensorRT on the extraction models, where both exist (skips what is missing).
(cd benchmarks && timeout 150 python bench_extract.py --quick --gpu --json "$out/bench_extract_gpu.json") \
  >"$out/bench_extract_gpu.log" 2>&1
status "extract bench rc=$?"
# IG vs captum on CUDA: six samples on the tiny model, rows per batch swept from 8 to all six
# samples' steps in one batch; then the Uni-Sign-sized encoder at the same steps
(cd benchmarks && timeout 150 python bench_ig.py --quick --samples 6 --device cuda --json "$out/bench_ig_cuda.json") \
  >"$out/bench_ig_cuda.log" 2>&1
status "IG bench rc=$?"
(cd benchmarks && timeout 90 python bench_ig.py --quick --pose unisign --parts same --device cuda \
  --json "$out/bench_ig_unisign_cuda.json") >"$out/bench_ig_unisign_cuda.log" 2>&1
status "IG bench (Uni-Sign-sized) rc=$?"

python - "$out" "$build_rc" "$tests_rc" "$bench_rc" <<'PY'
import json, pathlib, re, sys
out, build_rc, tests_rc, bench_rc = pathlib.Path(sys.argv[1]), *map(int, sys.argv[2:])
tests_tail = (out / "tests.log").read_text(errors="replace").strip().splitlines()[-1:] if (out / "tests.log").exists() else []
summary = {"build_rc": build_rc, "tests_rc": tests_rc, "tests": tests_tail, "bench_rc": bench_rc}
for name in ("info.json", "bench_kernels_cuda.json", "bench_kernels_cpu.json", "bench_extract_gpu.json", "bench_ig_cuda.json",
             "bench_ig_unisign_cuda.json"):
    try:
        summary[name.removesuffix(".json")] = json.loads((out / name).read_text())
    except (OSError, ValueError) as exc:
        summary[name.removesuffix(".json")] = f"unavailable: {exc}"
(out / "summary.json").write_text(json.dumps(summary, indent=2))
print(json.dumps({k: summary[k] for k in ("build_rc", "tests_rc", "tests", "bench_rc")}))
PY
status "done"
