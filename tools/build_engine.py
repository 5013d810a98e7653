"""Build TensorRT engines from ONNX models (rtmlib's detector and pose files, the pose encoder)
with a dynamic batch profile, into the engine cache `nmmfast.runtime.trt` reads (or --cache-dir).

    python tools/build_engine.py rtmw.onnx [yolox.onnx ...] [--fp16] [--max-batch 64]

FP16 uses the builder flag on TensorRT 10 and an FP16-converted ONNX on TensorRT >= 11 (needs
nvidia-modelopt or onnxconverter-common). Prints one line per engine: source, engine path, seconds.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.append(str(Path(__file__).resolve().parent.parent))  # the source tree, when not installed

from nmmfast.runtime.trt import build_engine, default_cache_dir  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("onnx", nargs="+", type=Path, help="ONNX model files")
    parser.add_argument("--fp16", action="store_true", help="build FP16 engines")
    parser.add_argument("--min-batch", type=int, default=1)
    parser.add_argument("--opt-batch", type=int, default=16)
    parser.add_argument("--max-batch", type=int, default=64)
    parser.add_argument("--workspace-gib", type=float, default=1.0, help="builder workspace")
    parser.add_argument(
        "--cache-dir", type=Path, default=None, help=f"default {default_cache_dir()}"
    )
    parser.add_argument("--device", default="cuda", help="cuda or cuda:N")
    parser.add_argument("--rebuild", action="store_true", help="rebuild even if cached")
    args = parser.parse_args(argv)
    failures = 0
    for model in args.onnx:
        began = time.perf_counter()
        try:
            engine = build_engine(
                model,
                fp16=args.fp16,
                min_batch=args.min_batch,
                opt_batch=args.opt_batch,
                max_batch=args.max_batch,
                workspace=int(args.workspace_gib * (1 << 30)),
                cache_dir=args.cache_dir,
                device=args.device,
                rebuild=args.rebuild,
            )
        except (RuntimeError, ValueError, OSError) as err:
            print(f"{model}: FAILED: {err}", file=sys.stderr)
            failures += 1
            continue
        print(f"{model} -> {engine} ({time.perf_counter() - began:.1f} s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
