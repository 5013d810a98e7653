"""Pose-extraction throughput: ours (`nmmfast.extract.Wholebody`) vs rtmlib's `Wholebody` on the
same video, the same ONNX models and ONNX Runtime on the CPU, side by side in one run. Keypoints are
compared first (ours with detection every frame must equal rtmlib's within 1e-3 px).

Without --det-model/--pose-model the script builds synthetic models with rtmlib's I/O contracts
(tests/_tiny_pose_models.py: a 640x640 YOLOX-like detector that finds one signer, a 256x192 SimCC
pose model) and a synthetic video; pass rtmlib's real end2end.onnx files (and --video) for real
numbers. rtmlib runs as its README shows: OpenCV decoding, `Wholebody(frame)` per frame.

With --gpu it then times the same pipeline on ONNX Runtime CUDA and on TensorRT (FP32 engines,
built once into a temporary cache), keypoints compared first, for tools/gpu_check.sh.

Run: python benchmarks/bench_extract.py [--quick] [--frames 90] [--det-every 1,8] [--gpu]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.append(str(ROOT))  # the source tree, when nmmfast is not installed
from _timing import timeit  # noqa: E402

from nmmfast.extract import VideoReader, Wholebody  # noqa: E402


def _synthetic(root: Path, quick: bool, frames: int) -> tuple[Path, Path, Path, tuple[int, int]]:
    from _tiny_pose_models import make_detector, make_pose_model, write_video

    det_size = 416 if quick else 640
    det = make_detector(root / "det.onnx", size=det_size, boxes=1, score_bias=5.0, width=32)
    pose = make_pose_model(root / "pose.onnx", input_hw=(256, 192), channels=8)
    size = (320, 240) if quick else (640, 480)
    video = write_video(root / "clip.mp4", frames=frames, size=size)
    return det, pose, video, (det_size, det_size)


def _input_hw(path: Path) -> tuple[int, int]:
    from nmmfast.runtime import open_session

    shape = open_session(path).input.shape
    return int(shape[2]), int(shape[3])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small video and detector (< 60 s)")
    parser.add_argument("--frames", type=int, default=None, help="frames of the synthetic video")
    parser.add_argument("--det-every", default="1,8", help="comma-separated det_every values")
    parser.add_argument("--det-model", type=Path, help="rtmlib YOLOX end2end.onnx")
    parser.add_argument("--pose-model", type=Path, help="rtmlib RTMPose/RTMW end2end.onnx")
    parser.add_argument("--video", type=Path, help="a real video (default: synthetic)")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--gpu", action="store_true", help="also ONNX Runtime CUDA vs TensorRT")
    parser.add_argument("--json", type=Path, help="write the CPU results and summary here as JSON")
    args = parser.parse_args()
    try:
        import rtmlib
    except ImportError:
        raise SystemExit(
            "rtmlib is not installed (pip install rtmlib): nothing to compare with"
        ) from None
    import cv2

    frames = args.frames or (24 if args.quick else 90)
    repeats = args.repeats or 3
    det_every = [int(x) for x in args.det_every.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        if args.det_model and args.pose_model:
            det, pose = args.det_model, args.pose_model
            det_hw = _input_hw(det)
            if args.video is None:
                from _tiny_pose_models import write_video

                video = write_video(Path(tmp) / "clip.mp4", frames=frames, size=(640, 480))
            else:
                video = args.video
        else:
            det, pose, video, det_hw = _synthetic(Path(tmp), args.quick, frames)
            if args.video is not None:
                video = args.video
        pose_hw = _input_hw(pose)
        decoded = list(VideoReader(video))
        count = len(decoded)
        print(
            f"extraction: {count} frames {decoded[0].shape[1]}x{decoded[0].shape[0]}, "
            f"detector {det.name} {det_hw[1]}x{det_hw[0]}, pose {pose.name} "
            f"{pose_hw[1]}x{pose_hw[0]}, ONNX Runtime CPU, {os.cpu_count()} cores"
        )
        devnull = open(os.devnull, "w")  # noqa: SIM115 - rtmlib prints on load
        stdout, sys.stdout = sys.stdout, devnull
        try:
            theirs = rtmlib.Wholebody(
                det=str(det),
                det_input_size=det_hw,
                pose=str(pose),
                pose_input_size=(pose_hw[1], pose_hw[0]),
            )
        finally:
            sys.stdout = stdout
            devnull.close()
        # ours with rtmlib's runtime settings (one crop per call, ONNX Runtime threads spinning):
        # what the pipeline alone (threaded decoding, table normalisation) is worth
        like_rtmlib = Wholebody(det, pose, batch_size=1, session_options={"spinning": True})
        solutions = {n: Wholebody(det, pose, det_every=n) for n in det_every}

        # correctness first: detection every frame must give rtmlib's keypoints (largest person)
        check = min(count, 12)
        ours = np.concatenate([k for k, *_ in Wholebody(det, pose).track(decoded[:check])])
        worst = 0.0
        for t, frame in enumerate(decoded[:check]):
            keypoints, _ = theirs(frame)
            boxes = theirs.det_model(frame)
            index = 0
            if len(boxes):
                areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
                index = int(np.argmax(areas))
            worst = max(worst, float(np.abs(keypoints[index] - ours[t]).max()))
        if worst > 1e-3:
            raise SystemExit(f"ours and rtmlib disagree by {worst:.4g} px: not timing")
        print(f"  keypoints equal rtmlib's on {check} frames (max |diff| {worst:.2e} px)")

        def run_rtmlib() -> None:
            capture = cv2.VideoCapture(str(video))
            while True:
                ok, frame = capture.read()
                if not ok:
                    break
                theirs(frame)
            capture.release()

        base = timeit(run_rtmlib, warmup=1, repeats=repeats)
        rows = [("rtmlib Wholebody (per frame)", base)]
        seconds = timeit(lambda: like_rtmlib.extract(video), warmup=1, repeats=repeats)
        rows.append(("nmmfast det_every=1 (batch 1, spinning)", seconds))
        for n, solution in solutions.items():
            seconds = timeit(lambda s=solution: s.extract(video), warmup=1, repeats=repeats)
            label = f"nmmfast det_every={n} (batch {solution.pose.batch_size})"
            rows.append((label, seconds))
        for label, seconds in rows:
            ratio = "  (base)" if seconds is base else f"{base / seconds:8.2f}x"
            print(f"  {label:<40}{seconds * 1e3:10.1f} ms{count / seconds:10.1f} frames/s {ratio}")
        if args.json:
            summary = [
                {"claim": f"extraction frames/s vs rtmlib Wholebody, ORT CPU, {label[8:]}",
                 "ours": f"{count / seconds:.1f} frames/s", "peer": f"{count / base:.1f} frames/s",
                 "ratio": base / seconds, "goal": "≥ 2x"}
                for label, seconds in rows[1:]
            ]
            args.json.write_text(json.dumps({
                "benchmark": "extract", "frames": count, "max_keypoint_diff_px": worst,
                "rows": [{"run": label, "seconds": seconds, "frames_per_s": count / seconds}
                         for label, seconds in rows],
                "summary": summary}, indent=1))
        if args.gpu:
            _bench_gpu(det, pose, video, count, det_every, repeats, Path(tmp) / "engines")


def _bench_gpu(
    det: Path, pose: Path, video: Path, count: int, det_every: list[int], repeats: int, cache: Path
) -> None:
    """ONNX Runtime CUDA (base, when available) vs TensorRT on the same video and models."""
    import onnxruntime as ort

    from nmmfast.runtime import SessionError

    print("GPU: ONNX Runtime CUDA vs TensorRT (FP32), keypoints compared first")
    candidates = {}
    if "CUDAExecutionProvider" in ort.get_available_providers():
        candidates["onnxruntime-cuda"] = dict(backend="onnxruntime", device="cuda")
    candidates["tensorrt"] = dict(
        backend="tensorrt", device="cuda", session_options={"cache_dir": cache, "max_batch": 32}
    )
    for n in det_every:
        results, rows = {}, []
        for name, options in candidates.items():
            try:
                solution = Wholebody(det, pose, det_every=n, **options)
            except (SessionError, ImportError) as err:
                print(f"  {name}: skipped ({err})")
                continue
            results[name] = solution.extract(video).keypoints
            seconds = timeit(lambda s=solution: s.extract(video), warmup=1, repeats=repeats)
            rows.append((f"{name} det_every={n}", seconds))
        if len(results) == 2:
            worst = float(np.abs(results["tensorrt"] - results["onnxruntime-cuda"]).max())
            agree = float(np.mean(np.abs(results["tensorrt"] - results["onnxruntime-cuda"]) < 0.5))
            print(f"  det_every={n}: max |diff| {worst:.3g} px, {agree:.1%} within 0.5 px")
        base = rows[0][1] if rows else None
        for label, seconds in rows:
            ratio = "  (base)" if seconds is base else f"{base / seconds:8.2f}x"
            print(f"  {label:<40}{seconds * 1e3:10.1f} ms{count / seconds:10.1f} frames/s {ratio}")


if __name__ == "__main__":
    main()
