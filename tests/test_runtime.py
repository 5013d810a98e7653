"""Runtime sessions: shapes read at load, fixed vs dynamic batch, outputs equal to plain ONNX
Runtime, clear errors for missing/invalid models and unusable devices; TensorRT profile and
cache-key logic on the CPU, and engine build/run against ONNX Runtime where TensorRT and a GPU
exist.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from _tiny_pose_models import make_detector, make_pose_model

from nmmfast.runtime import (
    BACKENDS,
    ModelNotFoundError,
    SessionError,
    open_session,
    parse_device,
)
from nmmfast.runtime.trt import batch_profiles, engine_cache_key


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("runtime")
    return {
        "pose": make_pose_model(root / "pose.onnx", input_hw=(64, 48)),
        "pose_b1": make_pose_model(root / "pose_b1.onnx", input_hw=(64, 48), dynamic_batch=False),
        "det": make_detector(root / "det.onnx", size=320),
        "root": root,
    }


def test_onnxruntime_session_reads_shapes_and_matches_plain_ort(models) -> None:
    session = open_session(models["pose"])
    assert session.backend == "onnxruntime" and session.device == "cpu"
    assert session.input.name == "input" and session.input.shape == (None, 3, 64, 48)
    assert session.max_batch is None and not session.fixed_batch
    assert session.output_names == ["simcc_x", "simcc_y"]
    assert session.outputs[0].shape[1:] == (133, 96) and session.outputs[1].shape[1:] == (133, 128)
    crops = np.random.default_rng(0).normal(size=(5, 3, 64, 48)).astype(np.float32)
    got = session.run({"input": crops})
    assert list(got) == ["simcc_x", "simcc_y"]
    plain = ort.InferenceSession(str(models["pose"]), providers=["CPUExecutionProvider"])
    for name, expected in zip(
        ["simcc_x", "simcc_y"], plain.run(None, {"input": crops}), strict=True
    ):
        np.testing.assert_array_equal(got[name], expected)
    assert got["simcc_x"].shape == (5, 133, 96)
    spinning = open_session(models["pose"], spinning=True, threads=2).run({"input": crops})
    np.testing.assert_array_equal(spinning["simcc_y"], got["simcc_y"])
    assert "pose.onnx" in repr(session)


def test_fixed_batch_and_detector_contract(models) -> None:
    fixed = open_session(models["pose_b1"], threads=1)
    assert fixed.max_batch == 1 and fixed.fixed_batch
    detector = open_session(models["det"])
    assert detector.input.shape == (1, 3, 320, 320) and detector.output_names == ["dets", "labels"]
    image = np.random.default_rng(1).integers(0, 256, (1, 3, 320, 320)).astype(np.float32)
    out = detector.run({"input": image})
    assert (
        out["dets"].ndim == 3
        and out["dets"].shape[2] == 5
        and out["labels"].shape == out["dets"].shape[:2]
    )


def test_errors_name_the_file(models, tmp_path) -> None:
    with pytest.raises(
        ModelNotFoundError, match=r"missing\.onnx: model file not found\. get it here"
    ):
        open_session(tmp_path / "missing.onnx", hint="get it here")
    with pytest.raises(ModelNotFoundError, match="is a directory"):
        open_session(tmp_path)
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not an onnx model")
    with pytest.raises(SessionError, match="garbage.onnx: ONNX Runtime cannot load"):
        open_session(garbage)
    with pytest.raises(ValueError, match="unknown backend 'openvino'"):
        open_session(models["pose"], backend="openvino")
    with pytest.raises(ValueError, match=r"backend 'tensorrt' runs on \['cuda'\], not on 'cpu'"):
        open_session(models["pose"], backend="tensorrt", device="cpu")
    with pytest.raises(ValueError, match="device must be"):
        open_session(models["pose"], device="gpu")
    session = open_session(models["pose"])
    with pytest.raises(
        SessionError, match=r"pose\.onnx: inference failed for inputs \{'input': \(2, 3, 32, 32\)\}"
    ):
        session.run({"input": np.zeros((2, 3, 32, 32), np.float32)})
    with pytest.raises(ValueError, match="threads must be >= 1"):
        open_session(models["pose"], threads=0)


@pytest.mark.skipif(
    "CUDAExecutionProvider" in ort.get_available_providers(), reason="this onnxruntime has CUDA"
)
def test_cuda_request_without_cuda_provider_fails_loudly(models) -> None:
    with pytest.raises(SessionError, match="onnxruntime-gpu"):
        open_session(models["pose"], device="cuda:0")
    assert open_session(models["pose"], device="auto").device == "cpu"


def test_backend_table_and_devices() -> None:
    assert set(BACKENDS) == {("onnxruntime", "cpu"), ("onnxruntime", "cuda"), ("tensorrt", "cuda")}
    assert parse_device("cpu") == ("cpu", 0)
    assert parse_device("cuda") == ("cuda", 0)
    assert parse_device("cuda:3") == ("cuda", 3)
    for bad in ("cpu:1", "cuda:x", "tpu"):
        with pytest.raises(ValueError, match="device must be"):
            parse_device(bad)


def test_tensorrt_profiles_from_onnx(models) -> None:
    profiles = batch_profiles(models["pose"], 1, 8, 32)
    assert profiles == {"input": ((1, 3, 64, 48), (8, 3, 64, 48), (32, 3, 64, 48))}
    assert batch_profiles(models["pose_b1"]) == {"input": ((1, 3, 64, 48),) * 3}
    with pytest.raises(ValueError, match="min_batch <= opt_batch <= max_batch"):
        batch_profiles(models["pose"], 4, 2, 8)


def test_engine_cache_key_covers_every_setting() -> None:
    base = dict(
        trt_version="10.9.0",
        gpu_name="NVIDIA H100",
        compute_capability=(9, 0),
        profiles={"input": ((1, 3, 64, 48), (16, 3, 64, 48), (64, 3, 64, 48))},
        fp16=False,
    )
    key = engine_cache_key("ab" * 32, **base)
    assert key == engine_cache_key("ab" * 32, **base) and len(key) == 24
    changes = [
        {"trt_version": "11.4.0"},
        {"gpu_name": "NVIDIA H200"},
        {"compute_capability": (8, 9)},
        {"profiles": {"input": ((1, 3, 64, 48), (16, 3, 64, 48), (128, 3, 64, 48))}},
        {"fp16": True},
    ]
    keys = {key, engine_cache_key("cd" * 32, **base)}
    for change in changes:
        keys.add(engine_cache_key("ab" * 32, **{**base, **change}))
    assert len(keys) == 2 + len(changes)


def _tensorrt_usable() -> str:
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return "TensorRT is not installed (pip install tensorrt)"
    import torch

    if not torch.cuda.is_available():
        return "no CUDA GPU visible to torch"
    return ""


_NO_TRT = _tensorrt_usable()


@pytest.mark.cuda
@pytest.mark.skipif(bool(_NO_TRT), reason=_NO_TRT or "TensorRT usable")
def test_tensorrt_engine_matches_onnxruntime(models, tmp_path) -> None:
    from nmmfast.extract import RTMPose
    from nmmfast.runtime.trt import build_engine

    cache = tmp_path / "engines"
    session = open_session(
        models["pose"], "tensorrt", "cuda", max_batch=8, opt_batch=4, cache_dir=cache
    )
    assert session.max_batch == 8 and not session.fixed_batch
    engine = session.engine_path
    assert engine.parent == cache and engine.with_suffix(".json").is_file()
    mtime = engine.stat().st_mtime_ns
    assert build_engine(models["pose"], max_batch=8, opt_batch=4, cache_dir=cache) == engine
    assert engine.stat().st_mtime_ns == mtime  # served from the cache
    crops = np.random.default_rng(0).normal(size=(5, 3, 64, 48)).astype(np.float32)
    expected = open_session(models["pose"]).run({"input": crops})
    got = session.run({"input": crops})
    for name in ("simcc_x", "simcc_y"):
        np.testing.assert_allclose(got[name], expected[name], atol=1e-3, rtol=1e-3)
    with pytest.raises(SessionError, match="exceeds the engine profile maximum 8"):
        session.run({"input": np.zeros((9, 3, 64, 48), np.float32)})
    # the pose model class on TensorRT agrees with ONNX Runtime at the keypoint level
    frames = [
        np.random.default_rng(i).integers(0, 256, (120, 160, 3), dtype=np.uint8) for i in range(6)
    ]
    boxes = np.array([[10, 5, 120, 110]] * 6, np.float32)
    trt_kpts, _ = RTMPose(session)(frames, boxes)
    ort_kpts, _ = RTMPose(models["pose"])(frames, boxes)
    assert np.mean(np.abs(trt_kpts - ort_kpts) < 1e-2) > 0.99
    fp16 = open_session(models["pose"], "tensorrt", "cuda", fp16=True, max_batch=8, cache_dir=cache)
    assert fp16.engine_path != engine
    half = fp16.run({"input": crops})
    np.testing.assert_allclose(half["simcc_x"], expected["simcc_x"], atol=5e-2, rtol=5e-2)


@pytest.mark.cuda
@pytest.mark.skipif(bool(_NO_TRT), reason=_NO_TRT or "TensorRT usable")
def test_tensorrt_detector_with_nms_and_whole_pipeline(models, tmp_path) -> None:
    from _tiny_pose_models import write_video

    from nmmfast.extract import extract_video

    cache = tmp_path / "engines"
    detector = open_session(models["det"], "tensorrt", "cuda", cache_dir=cache)
    assert detector.fixed_batch and detector.max_batch == 1
    image = np.random.default_rng(1).integers(0, 256, (1, 3, 320, 320)).astype(np.float32)
    expected = open_session(models["det"]).run({"input": image})["dets"]
    got = detector.run({"input": image})["dets"]  # a data-dependent shape: kept boxes only
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=1e-2, rtol=1e-3)
    video = write_video(tmp_path / "clip.mp4", frames=10)
    options = {"cache_dir": cache, "max_batch": 16}
    trt_kpts, trt_scores = extract_video(
        video,
        models["det"],
        models["pose"],
        backend="tensorrt",
        device="cuda",
        session_options=options,
    )
    ort_kpts, ort_scores = extract_video(video, models["det"], models["pose"])
    assert np.mean(np.abs(trt_kpts - ort_kpts) < 1e-2) > 0.99
    np.testing.assert_allclose(trt_scores, ort_scores, atol=1e-2)
