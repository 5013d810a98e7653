"""Decoding: JSON Lines rows with ids in split order, batch-size independence, skipped samples,
and the pose encoder exported to ONNX and run under ONNX Runtime (CPU) against PyTorch."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from nmmfast.cli import main as cli_main
from nmmfast.data.dataset import Corpus, PoseDataset, collate
from nmmfast.decode import PoseEncoderSession, decode, predict
from nmmfast.model import load_model
from nmmfast.train import train


def _export_tool():
    from nmmfast.model import export

    return export


# The fixture's 8 test clips are 90..159 frames long; MAX_FRAMES cuts the two longest and leaves
# the others shorter, so a batch of them is padded (to its longest clip). The fixture's model
# decodes clip-dependent, non-empty text, so the comparisons below compare something.
MAX_FRAMES = 128


def _test_split(corpus: Path, model) -> PoseDataset:
    data = Corpus.open(corpus)
    return PoseDataset(
        data,
        data.partition("control")["test"],
        "slt",
        layout=model.config.layout,
        max_frames=model.config.max_frames,
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from nmmfast.data.annotations import read_manifest
    from nmmfast.data.partitions import make_partitions, write_partitions
    from nmmfast.data.synth import generate, write_corpus

    corpus = tmp_path_factory.mktemp("corpus")
    write_corpus(generate(40, 2), corpus)
    write_partitions(corpus, make_partitions(read_manifest(corpus / "manifest.jsonl"), 0))
    run = tmp_path_factory.mktemp("run")
    # 105 steps at a high learning rate: enough for the 28 training clips to steer the decoder
    train(
        corpus,
        "control",
        "slt",
        run,
        epochs=15,
        batch_size=4,
        lr=2e-3,
        dev_beam=1,
        dev_from=15,
        max_new_tokens=4,
        max_frames=MAX_FRAMES,
        progress=False,
        device="cpu",
    )
    model = load_model(run, weights=run / "best.pt")
    assert model.config.max_frames == MAX_FRAMES
    dataset = _test_split(corpus, model)
    lengths = sorted(dataset.lengths)
    assert lengths[0] < 0.75 * MAX_FRAMES and lengths[-1] == MAX_FRAMES, lengths
    texts = list(predict(model, dataset, batch_size=1, num_beams=2, max_new_tokens=5).values())
    assert all(texts) and len(set(texts)) > 1, texts
    return corpus, run


def test_decode_cli_writes_rows_in_split_order(trained, tmp_path):
    corpus, run = trained
    out = tmp_path / "predictions.jsonl"
    code = cli_main(
        [
            "decode",
            "--run",
            str(run),
            "--corpus",
            str(corpus),
            "--partition",
            "control",
            "--out",
            str(out),
            "--beam",
            "2",
            "--max-new-tokens",
            "5",
            "--no-progress",
        ]
    )
    assert code == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    data = Corpus.open(corpus)
    assert [r["id"] for r in rows] == data.partition("control")["test"]
    assert all(set(r) == {"id", "prediction", "reference", "task"} for r in rows)
    assert all(r["task"] == "slt" and r["reference"] == data.rows[r["id"]]["text"] for r in rows)
    assert all(isinstance(r["prediction"], str) for r in rows)


def test_predictions_do_not_depend_on_batching(trained):
    corpus, run = trained
    model = load_model(run, weights=run / "best.pt")
    dataset = _test_split(corpus, model)
    for beams in (1, 2):
        one = predict(model, dataset, batch_size=1, num_beams=beams, max_new_tokens=5)
        assert len(one) == len(dataset) and all(one.values())
        for batch_size in (3, 8):  # batches of 3, 3 and 2 clips, then all 8 padded to 128
            many = predict(model, dataset, batch_size=batch_size, num_beams=beams, max_new_tokens=5)
            assert many == one, (beams, batch_size)
    # what the search reads: the padded batch's encoder states on each clip's own positions
    items = [dataset[i] for i in range(len(dataset))]
    padded = collate(items)
    with torch.no_grad():
        states, _ = model.encode(padded.poses, padded.mask)
        for row, item in enumerate(items):
            alone = collate([item])
            expected = model.encode(alone.poses, alone.mask)[0][0]
            assert (states[row, : len(expected)] - expected).abs().max() <= 1e-4, item[0]


def test_skipped_samples_get_a_null_prediction(trained, tmp_path):
    corpus, run = trained
    partition = json.loads((corpus / "partitions" / "control.json").read_text())
    partition["test"] = partition["test"][:2] + ["unknown_clip"]
    (corpus / "partitions" / "odd.json").write_text(json.dumps(partition))
    rows = decode(run, corpus, "odd", beam=1, max_new_tokens=3)
    assert rows[-1]["id"] == "unknown_clip" and rows[-1]["prediction"] is None
    assert rows[-1]["skipped"] == "not in manifest"
    assert all(isinstance(r["prediction"], str) for r in rows[:2])


def test_onnx_pose_encoder_matches_pytorch_and_decodes_the_same(trained, tmp_path):
    corpus, run = trained
    tool = _export_tool()
    model = load_model(run, weights=run / "best.pt")
    path = tool.export_pose_encoder(model, tmp_path / "pose_encoder.onnx")
    assert tool.max_abs_error(model, path) <= 1e-4
    poses, mask = torch.randn(2, 11, 69, 3), torch.ones(2, 11, dtype=torch.bool)
    mask[0, 7:] = False
    with torch.no_grad():
        expected = model.pose_embeddings(poses, mask)
    got = PoseEncoderSession(path)(poses, mask)
    assert (got - expected).abs().max() <= 1e-4
    torch_rows = decode(run, corpus, "control", beam=2, max_new_tokens=5)
    onnx_rows = decode(
        run,
        corpus,
        "control",
        beam=2,
        max_new_tokens=5,
        encoder_backend="onnxruntime",
        onnx_model=path,
    )
    predictions = [r["prediction"] for r in torch_rows]
    assert all(predictions) and len(set(predictions)) > 1
    assert [r["prediction"] for r in onnx_rows] == predictions
    assert cli_main(["export", "--run", str(run), "--out", str(tmp_path / "cli.onnx")]) == 0
    assert (tmp_path / "cli.onnx").is_file()


def test_pose_encoder_tensorrt_profile_spans_batch_and_frames(trained, tmp_path):
    from nmmfast.runtime.trt import batch_profiles

    _, run = trained
    model = load_model(run, weights=run / "best.pt")
    path = _export_tool().export_pose_encoder(model, tmp_path / "pose_encoder.onnx")
    profiles = batch_profiles(path, 1, 16, 16, axes={"frames": (1, 64, 64)})
    assert profiles["poses"] == ((1, 1, 69, 3), (16, 64, 69, 3), (16, 64, 69, 3))
    assert profiles["mask"] == ((1, 1), (16, 64), (16, 64))
    with pytest.raises(ValueError, match="dynamic axis 1 \\(frames\\)"):
        batch_profiles(path)


def _tensorrt_missing() -> str | None:
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return "TensorRT is not installed"
    return None if torch.cuda.is_available() else "no CUDA device"


@pytest.mark.cuda
@pytest.mark.skipif(_tensorrt_missing() is not None, reason=str(_tensorrt_missing()))
def test_tensorrt_pose_encoder_decodes_like_pytorch(trained, tmp_path):
    corpus, run = trained
    model = load_model(run, weights=run / "best.pt")
    path = _export_tool().export_pose_encoder(model, tmp_path / "pose_encoder.onnx")
    torch_rows = decode(run, corpus, "control", beam=2, max_new_tokens=5, device="cuda")
    trt_rows = decode(
        run,
        corpus,
        "control",
        beam=2,
        max_new_tokens=5,
        device="cuda",
        encoder_backend="tensorrt",
        onnx_model=path,
    )
    assert [r["prediction"] for r in trt_rows] == [r["prediction"] for r in torch_rows]
