"""`nmmfast extract`: video files or directories -> a pose store (resumable, parallel).
Arguments are documented in `configure_parser`; the work is `nmmfast.extract.extract_to_store`.
"""

from __future__ import annotations

import argparse
import sys


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "inputs", nargs="+", metavar="VIDEO_OR_DIR", help="video files or directories"
    )
    parser.add_argument("--det-model", help="YOLOX detector ONNX (rtmlib's end2end.onnx)")
    parser.add_argument("--pose-model", help="RTMPose/RTMW/DWPose ONNX (or a TensorRT engine)")
    parser.add_argument(
        "--models",
        metavar="DIR",
        help="directory holding one *yolox*.onnx and one rtmw/rtmpose/dw ONNX",
    )
    parser.add_argument(
        "--out",
        required=True,
        metavar="STORE",
        help="pose store (created if absent); with several ranks each writes its own shard, "
        "STORE.shards/rank-RRRRR-of-WWWWW, and the last rank to finish merges them into STORE",
    )
    parser.add_argument(
        "--det-every",
        type=int,
        default=1,
        metavar="N",
        help="detect every N frames, carrying the box from the keypoints in between (default 1: "
        "every frame, rtmlib's numbers)",
    )
    parser.add_argument(
        "--score",
        choices=("mean", "min"),
        default="mean",
        help="keypoint score from the SimCC maxima (rtmlib: mean)",
    )
    parser.add_argument(
        "--color",
        choices=("bgr", "rgb"),
        default="bgr",
        help="channel order fed to the pose model (rtmlib: bgr)",
    )
    parser.add_argument("--backend", choices=("onnxruntime", "tensorrt"), default="onnxruntime")
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")
    parser.add_argument("--batch-size", type=int, default=None, help="pose crops per model call")
    parser.add_argument(
        "--fp16", action="store_true", help="TensorRT: FP16 engines (check against FP32 first)"
    )
    parser.add_argument("--workers", type=int, default=1, metavar="K", help="processes over videos")
    parser.add_argument(
        "--rank", type=int, default=None, help="this machine's shard (default $RANK)"
    )
    parser.add_argument("--world-size", type=int, default=None, help="shards in all ($WORLD_SIZE)")
    parser.add_argument(
        "--skip-failed", action="store_true", help="do not retry videos the log records as failed"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run_cli(args: argparse.Namespace) -> int:
    from nmmfast.extract import extract_to_store, find_models

    det_model, pose_model = args.det_model, args.pose_model
    if args.models:
        try:
            found_det, found_pose = find_models(args.models)
        except FileNotFoundError as err:
            print(f"nmmfast extract: {err}", file=sys.stderr)
            return 2
        det_model, pose_model = det_model or found_det, pose_model or found_pose
    if args.fp16 and args.backend != "tensorrt":
        print("nmmfast extract: --fp16 needs --backend tensorrt", file=sys.stderr)
        return 2
    if not det_model or not pose_model:
        print(
            "nmmfast extract: give --det-model and --pose-model (or --models DIR)", file=sys.stderr
        )
        return 2
    try:
        report = extract_to_store(
            args.inputs,
            args.out,
            det_model,
            pose_model,
            det_every=args.det_every,
            score=args.score,
            color=args.color,
            backend=args.backend,
            device=args.device,
            batch_size=args.batch_size,
            session_options={"fp16": True} if args.fp16 else None,
            workers=args.workers,
            rank=args.rank,
            world_size=args.world_size,
            retry_failed=not args.skip_failed,
            progress=not args.no_progress,
        )
    except (FileNotFoundError, ValueError) as err:
        print(f"nmmfast extract: {err}", file=sys.stderr)
        return 2
    print(report.summary())
    for sample_id, reason in report.failed.items():
        print(f"  failed {sample_id}: {reason}")
    if report.merge_status:
        print(f"shard {report.store}; {report.merge_status}")
    return 1 if report.failed else 0
