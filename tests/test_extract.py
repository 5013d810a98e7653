"""Pose extraction: our keypoints and scores against rtmlib's `Wholebody`/`RTMPose` on the same tiny
models and frames; detection every N frames with box carrying; fixed-batch models; bad videos and
models; the store runner (atomic writes, resume, failures recorded, worker processes); the CLI.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from _tiny_pose_models import make_detector, make_pose_model, write_video

from nmmfast.cli import main
from nmmfast.data import PoseStore
from nmmfast.extract import (
    YOLOX,
    NoPersonError,
    RTMPose,
    VideoError,
    VideoReader,
    Wholebody,
    discover_videos,
    extract_to_store,
    extract_video,
    find_models,
    largest_box,
    shard,
    simcc_decode,
)
from nmmfast.extract.runner import LOG_NAME
from nmmfast.runtime import ModelNotFoundError

rtmlib = pytest.importorskip("rtmlib", reason="rtmlib is the oracle (pip install rtmlib)")

DET_SIZE = 320
POSE_HW = (64, 48)
FRAMES = 30


@pytest.fixture(scope="module")
def assets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("extract")
    return {
        "det": make_detector(root / "yolox_tiny.onnx", size=DET_SIZE),
        "nobody": make_detector(root / "yolox_nobody.onnx", size=DET_SIZE, score_bias=-30.0),
        "pose": make_pose_model(root / "rtmw_tiny.onnx", input_hw=POSE_HW),
        "pose_b1": make_pose_model(
            root / "rtmw_tiny_b1.onnx", input_hw=POSE_HW, dynamic_batch=False
        ),
        "video": write_video(root / "clip.mp4", frames=FRAMES, size=(160, 120)),
        "root": root,
    }


@pytest.fixture(scope="module")
def frames(assets: dict[str, Path]) -> list[np.ndarray]:
    return list(VideoReader(assets["video"]))


@pytest.fixture(scope="module")
def oracle(assets: dict[str, Path]):  # noqa: ANN201 - rtmlib's Wholebody
    return rtmlib.Wholebody(
        det=str(assets["det"]),
        det_input_size=(DET_SIZE, DET_SIZE),
        pose=str(assets["pose"]),
        pose_input_size=(POSE_HW[1], POSE_HW[0]),
    )


def _oracle_largest(oracle, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:  # noqa: ANN001
    """rtmlib's keypoints and scores of the largest detected person (all persons when none)."""
    keypoints, scores = oracle(frame)
    boxes = oracle.det_model(frame)
    index = 0
    if len(boxes):
        areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        index = int(np.argmax(areas))
    return keypoints[index], scores[index], len(boxes)


# -- equality with rtmlib --------------------------------------------------------------------------


def test_extract_video_equals_rtmlib_wholebody(assets, frames, oracle) -> None:
    keypoints, scores = extract_video(assets["video"], assets["det"], assets["pose"])
    assert keypoints.shape == (FRAMES, 133, 2) and scores.shape == (FRAMES, 133)
    assert keypoints.dtype == np.float32 and scores.dtype == np.float32
    persons = []
    for t, frame in enumerate(frames):
        expected_kpts, expected_scores, count = _oracle_largest(oracle, frame)
        persons.append(count)
        np.testing.assert_allclose(
            keypoints[t], expected_kpts, atol=1e-3, rtol=0, err_msg=f"frame {t}"
        )
        np.testing.assert_allclose(
            scores[t], expected_scores, atol=1e-5, rtol=0, err_msg=f"frame {t}"
        )
    # the comparison is meaningful: several persons to choose from, moving keypoints, invalid ones
    assert max(persons) >= 2
    assert np.ptp(keypoints[:, :, 0], axis=0).mean() > 5.0
    assert 0.01 < (scores <= 0).mean() < 0.5
    assert np.unique(keypoints.reshape(FRAMES, -1), axis=0).shape[0] == FRAMES


def test_fixed_batch_model_and_batch_sizes_agree(assets, frames) -> None:
    reference = Wholebody(assets["det"], assets["pose"], batch_size=16)
    assert reference.pose.batch_size == 16
    expected = np.concatenate([k for k, *_ in reference.track(frames)])
    for pose, batch in ((assets["pose"], 1), (assets["pose"], 7), (assets["pose_b1"], None)):
        solution = Wholebody(assets["det"], pose, batch_size=batch)
        got = np.concatenate([k for k, *_ in solution.track(frames)])
        np.testing.assert_allclose(got, expected, atol=1e-3, rtol=0)
    fixed = RTMPose(assets["pose_b1"], batch_size=16)
    assert fixed.session.fixed_batch and fixed.batch_size == 1


def test_fixed_batch_larger_than_one_pads_partial_batches(tmp_path, assets, frames) -> None:
    import onnx

    model = onnx.load(str(assets["pose_b1"]))
    for value in (*model.graph.input, *model.graph.output):
        value.type.tensor_type.shape.dim[0].dim_value = 4
    path = tmp_path / "pose_b4.onnx"
    onnx.save(model, str(path))
    pose4, pose1 = RTMPose(path), RTMPose(assets["pose_b1"])
    assert pose4.batch_size == 4
    boxes = np.array([[10, 5, 120, 110]] * 6, np.float32)
    got, got_scores = pose4(frames[:6], boxes)  # one full call of 4, one padded call of 2
    want, want_scores = pose1(frames[:6], boxes)
    np.testing.assert_allclose(got, want, atol=1e-3, rtol=0)
    np.testing.assert_allclose(got_scores, want_scores, atol=1e-5, rtol=0)


def test_rgb_option_equals_rtmlib_pose_on_rgb_frames(assets, frames, oracle) -> None:
    solution = Wholebody(assets["det"], assets["pose"], color="rgb")
    for frame in frames[:6]:
        box = largest_box(oracle.det_model(frame))
        expected, expected_scores = oracle.pose_model(
            np.ascontiguousarray(frame[..., ::-1]), bboxes=[box]
        )
        got, got_scores = solution(frame)
        np.testing.assert_allclose(got, expected[0], atol=1e-3, rtol=0)
        np.testing.assert_allclose(got_scores, expected_scores[0], atol=1e-5, rtol=0)
    bgr, _ = Wholebody(assets["det"], assets["pose"])(frames[0])
    assert not np.allclose(bgr, solution(frames[0])[0])  # the option changes the input


def test_no_detection_falls_back_to_whole_frame_like_rtmlib(assets, frames) -> None:
    oracle = rtmlib.Wholebody(
        det=str(assets["nobody"]),
        det_input_size=(DET_SIZE, DET_SIZE),
        pose=str(assets["pose"]),
        pose_input_size=(POSE_HW[1], POSE_HW[0]),
    )
    solution = Wholebody(assets["nobody"], assets["pose"])
    keypoints, scores, boxes, detected = (
        np.concatenate(p) for p in zip(*solution.track(frames[:8]), strict=True)
    )
    assert not detected.any()
    np.testing.assert_array_equal(boxes, np.tile([0, 0, 160, 120], (8, 1)))
    for t, frame in enumerate(frames[:8]):
        expected, expected_scores = oracle(frame)
        assert expected.shape[0] == 1
        np.testing.assert_allclose(keypoints[t], expected[0], atol=1e-3, rtol=0)
        np.testing.assert_allclose(scores[t], expected_scores[0], atol=1e-5, rtol=0)


def test_simcc_decode_matches_rtmlib_and_min_score() -> None:
    from rtmlib.tools.pose_estimation.post_processings import get_simcc_maximum

    rng = np.random.default_rng(3)
    offset = rng.normal(scale=2.0, size=(5, 133, 1))  # some keypoints' maxima fall below zero
    simcc_x = (rng.normal(size=(5, 133, 96)) + offset).astype(np.float32)
    simcc_y = (rng.normal(size=(5, 133, 128)) + offset).astype(np.float32)
    locs, scores = simcc_decode(simcc_x, simcc_y)
    expected_locs, expected_scores = get_simcc_maximum(simcc_x, simcc_y)
    np.testing.assert_array_equal(locs, expected_locs / 2.0)
    np.testing.assert_array_equal(scores, expected_scores)
    assert (expected_scores <= 0).any()
    _, min_scores = simcc_decode(simcc_x, simcc_y, score="min")
    np.testing.assert_array_equal(min_scores, np.minimum(simcc_x.max(-1), simcc_y.max(-1)))
    with pytest.raises(ValueError, match="score must be"):
        simcc_decode(simcc_x, simcc_y, score="max")
    with pytest.raises(ValueError, match=r"simcc_x \[N, K, Wx\]"):
        simcc_decode(simcc_x[0], simcc_y[0])


def test_score_min_option(assets, frames) -> None:
    _, mean_scores = extract_video(assets["video"], assets["det"], assets["pose"])
    keypoints, min_scores = extract_video(
        assets["video"], assets["det"], assets["pose"], score="min"
    )
    assert (min_scores <= mean_scores + 1e-6).all() and (min_scores < mean_scores - 1e-3).any()
    assert keypoints.shape == (FRAMES, 133, 2)


# -- detection every N frames ----------------------------------------------------------------------


class _CountingDetector(YOLOX):
    def __init__(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003
        super().__init__(*args, **kwargs)
        self.calls = 0

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        self.calls += 1
        return super().__call__(frame)


def test_det_every_carries_boxes_from_keypoints(assets, frames) -> None:
    detector = _CountingDetector(assets["det"])
    solution = Wholebody(detector, assets["pose"], det_every=4, redetect_below=-1e9, batch_size=1)
    parts = list(solution.track(frames))
    keypoints, scores, boxes, detected = (np.concatenate(p) for p in zip(*parts, strict=True))
    assert detector.calls == len(range(0, FRAMES, 4))
    np.testing.assert_array_equal(np.flatnonzero(detected), np.arange(0, FRAMES, 4))
    # a carried box spans the previous frame's confident keypoints, expanded by 1.25, in the frame
    for t in (1, 2, 5):
        confident = keypoints[t - 1][scores[t - 1] > 0.3]
        low, high = confident.min(0), confident.max(0)
        center, half = (low + high) / 2, (high - low) / 2 * 1.25
        expected = np.clip(np.concatenate([center - half, center + half]), 0, [160, 120, 160, 120])
        np.testing.assert_allclose(boxes[t], expected, atol=1e-3)
    assert np.isfinite(keypoints).all()


def test_batched_tracking_carries_boxes_across_batches(assets, frames) -> None:
    detector = _CountingDetector(assets["det"])
    solution = Wholebody(detector, assets["pose"], det_every=8, redetect_below=-1e9, batch_size=6)
    parts = list(solution.track(frames))
    assert [len(p[0]) for p in parts] == [6, 6, 6, 6, 6]
    keypoints, scores, boxes, detected = (np.concatenate(p) for p in zip(*parts, strict=True))
    np.testing.assert_array_equal(np.flatnonzero(detected), [0, 8, 16, 24])
    assert detector.calls == 4
    # inside a batch, frames after a detection reuse the detected box
    np.testing.assert_array_equal(boxes[1:6], np.repeat(boxes[:1], 5, axis=0))
    np.testing.assert_array_equal(boxes[9:12], np.repeat(boxes[8:9], 3, axis=0))
    # the next batch's box spans the confident keypoints of frames 8..11 (since the detection)
    confident = keypoints[8:12][scores[8:12] > 0.3]
    low, high = confident.min(0), confident.max(0)
    center, half = (low + high) / 2, (high - low) / 2 * 1.25
    expected = np.clip(np.concatenate([center - half, center + half]), 0, [160, 120, 160, 120])
    np.testing.assert_allclose(boxes[12], expected, atol=1e-3)
    np.testing.assert_array_equal(boxes[13:16], np.repeat(boxes[12:13], 3, axis=0))


def test_low_confidence_triggers_redetection(assets, frames) -> None:
    detector = _CountingDetector(assets["det"])
    always = Wholebody(detector, assets["pose"], det_every=10, redetect_below=1e9, batch_size=1)
    got = np.concatenate([k for k, *_ in always.track(frames)])
    assert detector.calls == FRAMES  # confidence always "drops": every frame re-detects
    every_frame = np.concatenate(
        [k for k, *_ in Wholebody(assets["det"], assets["pose"]).track(frames)]
    )
    np.testing.assert_allclose(got, every_frame, atol=1e-3, rtol=0)


# -- bad inputs ------------------------------------------------------------------------------------


def _bad_videos(root: Path, good: Path) -> dict[str, Path]:
    root.mkdir(parents=True, exist_ok=True)
    corrupt = root / "corrupt.mp4"
    corrupt.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    truncated = root / "truncated.mp4"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    empty = root / "empty.mp4"
    empty.write_bytes(b"")
    return {"corrupt": corrupt, "truncated": truncated, "empty": empty}


@pytest.mark.parametrize("suffix", [".avi", ".mkv"])
def test_truncated_stream_is_detected(tmp_path, assets, suffix) -> None:
    whole = write_video(tmp_path / f"whole{suffix}", frames=40, size=(64, 48))
    reader = VideoReader(whole)
    assert reader.frames == 40 and len(list(reader)) == 40
    cut = tmp_path / f"cut{suffix}"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size * 3 // 5])
    with pytest.raises(VideoError, match=rf"cut\{suffix}: truncated: decoded \d+ of the 40 frames"):
        list(VideoReader(cut))
    with pytest.raises(VideoError, match="truncated"):
        extract_video(cut, assets["det"], assets["pose"])


def test_bad_videos_raise_naming_the_file(tmp_path, assets) -> None:
    bad = _bad_videos(tmp_path, assets["video"])
    reasons = {
        "corrupt": "not a readable video",
        "truncated": "not a readable video",
        "empty": "empty",
    }
    for name, path in bad.items():
        with pytest.raises(VideoError, match=rf"{path.name}: .*{reasons[name]}"):
            extract_video(path, assets["det"], assets["pose"])
    with pytest.raises(VideoError, match="no such video"):
        extract_video(tmp_path / "missing.mp4", assets["det"], assets["pose"])
    zero = write_video(tmp_path / "zero.mp4", frames=0)
    with pytest.raises(VideoError, match="zero.mp4"):
        extract_video(zero, assets["det"], assets["pose"])


def test_no_person_raises(assets) -> None:
    with pytest.raises(NoPersonError, match=r"clip\.mp4: no person detected in any of 30 frames"):
        extract_video(assets["video"], assets["nobody"], assets["pose"])


def test_missing_model_says_where_to_get_it(tmp_path, assets) -> None:
    for kind, kwargs in (
        ("detector", {"det_model": tmp_path / "nope.onnx", "pose_model": assets["pose"]}),
        ("pose", {"det_model": assets["det"], "pose_model": tmp_path / "nope.onnx"}),
    ):
        with pytest.raises(ModelNotFoundError) as info:
            extract_video(assets["video"], **kwargs)
        message = str(info.value)
        assert "nope.onnx" in message and "download.openmmlab.com" in message
        assert f"rtmlib's {kind} ONNX" in message


def test_video_reader_backends_agree(assets) -> None:
    pyav = VideoReader(assets["video"], backend="pyav")
    assert (pyav.width, pyav.height, pyav.fps) == (160, 120, 25.0)
    first = list(pyav)
    second = list(VideoReader(assets["video"], backend="opencv"))
    assert len(first) == len(second) == FRAMES
    assert all(a.shape == b.shape == (120, 160, 3) for a, b in zip(first, second, strict=True))
    # the two decoders convert YUV to BGR with slightly different rounding
    assert np.abs(first[5].astype(int) - second[5].astype(int)).mean() < 3.0
    with pytest.raises(VideoError, match="iterated once"):
        list(pyav)


def test_stopping_early_releases_the_decoder(assets) -> None:
    reader = VideoReader(assets["video"], prefetch=2)
    for index, _ in enumerate(reader):
        if index == 3:
            break
    assert reader._handle is None


# -- the store runner ------------------------------------------------------------------------------


def _videos_dir(root: Path, good: Path) -> Path:
    videos = root / "videos"
    (videos / "signer02").mkdir(parents=True)
    write_video(videos / "01_0001.mp4", frames=12, seed=1)
    write_video(videos / "signer02" / "02_0007.avi", frames=9, seed=2, size=(128, 96))
    _bad_videos(videos, good)
    return videos


def test_runner_writes_resumes_and_records_failures(tmp_path, assets) -> None:
    videos = _videos_dir(tmp_path, assets["video"])
    store_path = tmp_path / "poses"
    report = extract_to_store([videos], store_path, assets["det"], assets["pose"], progress=False)
    assert sorted(report.done) == ["01_0001", "02_0007"]
    assert sorted(report.failed) == ["corrupt", "empty", "truncated"]
    assert all(name in reason for name, reason in report.failed.items())
    assert report.frames == 21

    store = PoseStore(store_path)
    assert sorted(store.ids()) == ["01_0001", "02_0007"]
    keypoints, scores = extract_video(
        videos / "signer02" / "02_0007.avi", assets["det"], assets["pose"]
    )
    raw = store["02_0007"]
    np.testing.assert_allclose(raw[..., 0], keypoints[..., 0] / 128, atol=1e-6)
    np.testing.assert_allclose(raw[..., 1], keypoints[..., 1] / 96, atol=1e-6)
    np.testing.assert_array_equal(raw[..., 2], scores)
    meta = store.meta("02_0007")
    assert (meta["frames"], meta["width"], meta["height"], meta["fps"]) == (9, 128, 96, 25.0)
    assert meta["source"].endswith("02_0007.avi") and meta["frames_detected"] == 9
    assert meta["extract"]["det_every"] == 1 and meta["extract"]["pose_model"] == "rtmw_tiny.onnx"
    assert (
        meta["extract"]["pose_sha256"]
        == hashlib.sha256(assets["pose"].read_bytes()).hexdigest()[:16]
    )
    store.close()

    log = [json.loads(line) for line in (store_path / LOG_NAME).read_text().splitlines()]
    assert {r["id"]: r["status"] for r in log} == {
        "01_0001": "ok",
        "02_0007": "ok",
        "corrupt": "failed",
        "empty": "failed",
        "truncated": "failed",
    }

    again = extract_to_store([videos], store_path, assets["det"], assets["pose"], progress=False)
    assert sorted(again.skipped) == ["01_0001", "02_0007"] and not again.done
    assert sorted(again.failed) == ["corrupt", "empty", "truncated"]  # failures are retried
    quiet = extract_to_store(
        [videos], store_path, assets["det"], assets["pose"], progress=False, retry_failed=False
    )
    assert len(quiet.skipped) == 5 and not quiet.failed and not quiet.done
    assert PoseStore(store_path).total_frames == 21  # nothing written twice


def test_runner_records_no_person(tmp_path, assets) -> None:
    report = extract_to_store(
        [assets["video"]], tmp_path / "s", assets["nobody"], assets["pose"], progress=False
    )
    assert list(report.failed) == ["clip"] and "no person" in report.failed["clip"]
    assert len(PoseStore(tmp_path / "s")) == 0


def test_runner_workers_and_shards_match_single_process(tmp_path, assets) -> None:
    videos = tmp_path / "v"
    videos.mkdir()
    for i in range(3):
        write_video(videos / f"s_{i}.mp4", frames=6, seed=10 + i)
    single = extract_to_store(
        [videos], tmp_path / "one", assets["det"], assets["pose"], progress=False
    )
    multi = extract_to_store(
        [videos], tmp_path / "two", assets["det"], assets["pose"], progress=False, workers=2
    )
    assert sorted(single.done) == sorted(multi.done) == ["s_0", "s_1", "s_2"]
    for rank in range(2):  # two "machines", one shard each; the last to finish merges them
        extract_to_store(
            [videos],
            tmp_path / "ranks",
            assets["det"],
            assets["pose"],
            progress=False,
            rank=rank,
            world_size=2,
        )
    one, two, ranks = (
        PoseStore(tmp_path / "one"),
        PoseStore(tmp_path / "two"),
        PoseStore(tmp_path / "ranks"),
    )
    assert sorted(ranks.ids()) == ["s_0", "s_1", "s_2"]
    assert PoseStore(tmp_path / "ranks.shards" / "rank-00001-of-00002").ids() == ["s_1"]
    for sample in one.ids():
        np.testing.assert_array_equal(one[sample], two[sample])
        np.testing.assert_array_equal(one[sample], ranks[sample])


def test_runner_takes_rank_from_torchrun_environment(tmp_path, assets, monkeypatch) -> None:
    videos = tmp_path / "v"
    videos.mkdir()
    for name in ("a", "b", "c", "d"):
        (videos / f"{name}.mp4").write_bytes(b"\x00" * 64)  # fast failures: only the shard matters
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    report = extract_to_store(
        [videos], tmp_path / "s", assets["det"], assets["pose"], progress=False
    )
    assert sorted(report.failed) == ["b", "d"]


def test_shard_and_discovery(tmp_path) -> None:
    ids = [f"v{i}" for i in range(7)]
    parts = [shard(ids, r, 3) for r in range(3)]
    assert sorted(sum(parts, [])) == sorted(ids) and not set(parts[0]) & set(parts[1])
    with pytest.raises(ValueError, match="rank"):
        shard(ids, 3, 3)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "x.mp4").write_bytes(b"1")
    (tmp_path / "b" / "x.avi").write_bytes(b"1")
    (tmp_path / "b" / "notes.txt").write_text("not a video")
    with pytest.raises(ValueError, match="x: "):
        discover_videos([tmp_path])
    assert list(discover_videos([tmp_path / "b"])) == ["x"]
    with pytest.raises(FileNotFoundError, match="nothing"):
        discover_videos([tmp_path / "nothing"])


# -- command line ----------------------------------------------------------------------------------


def test_cli_extract(tmp_path, assets, capsys) -> None:
    videos = tmp_path / "v"
    videos.mkdir()
    write_video(videos / "a.mp4", frames=5)
    (videos / "broken.mp4").write_bytes(b"\x00" * 100)
    out = tmp_path / "store"
    common = [
        "--det-model",
        str(assets["det"]),
        "--pose-model",
        str(assets["pose"]),
        "--no-progress",
    ]
    code = main(["extract", str(videos), "--out", str(out), "--det-every", "2", *common])
    printed = capsys.readouterr()
    assert code == 1 and "1 videos extracted" in printed.out and "broken.mp4" in printed.out
    assert PoseStore(out).meta("a")["extract"]["det_every"] == 2
    assert main(["extract", str(videos / "a.mp4"), "--out", str(out), *common]) == 0
    assert "1 already in the store" in capsys.readouterr().out
    code = main(
        [
            "extract",
            str(videos),
            "--out",
            str(out),
            "--det-model",
            str(tmp_path / "no.onnx"),
            "--pose-model",
            str(assets["pose"]),
        ]
    )
    assert code == 2 and "download.openmmlab.com" in capsys.readouterr().err


def test_models_directory_lookup(tmp_path, assets) -> None:
    models = tmp_path / "models"
    models.mkdir()
    (models / "yolox_m.onnx").write_bytes(assets["det"].read_bytes())
    (models / "rtmw-x-l.onnx").write_bytes(assets["pose"].read_bytes())
    assert find_models(models) == (models / "yolox_m.onnx", models / "rtmw-x-l.onnx")
    (models / "dwpose-l.onnx").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match="several pose ONNX files"):
        find_models(models)
    with pytest.raises(FileNotFoundError, match="no detector ONNX files"):
        find_models(tmp_path / "models" / "..")
    (models / "dwpose-l.onnx").unlink()
    out = tmp_path / "store"
    code = main(
        [
            "extract",
            str(assets["video"]),
            "--models",
            str(models),
            "--out",
            str(out),
            "--no-progress",
        ]
    )
    assert code == 0 and PoseStore(out).ids() == ["clip"]


def test_presets(assets) -> None:
    tracking = Wholebody.from_preset("tracking", assets["det"], assets["pose"], batch_size=4)
    assert (tracking.det_every, tracking.pose.batch_size, tracking.pose.color) == (8, 4, "bgr")
    assert Wholebody.from_preset("rtmlib", assets["det"], assets["pose"]).det_every == 1
    with pytest.raises(ValueError, match="unknown preset 'fast'"):
        Wholebody.from_preset("fast", assets["det"], assets["pose"])
    with pytest.raises(ValueError, match="det_every must be >= 1"):
        Wholebody(assets["det"], assets["pose"], det_every=0)
    with pytest.raises(ValueError, match="color must be one of"):
        Wholebody(assets["det"], assets["pose"], color="yuv")
