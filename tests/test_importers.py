from __future__ import annotations

import pickle

import numpy as np
import pytest

from nmmfast.cli import main
from nmmfast.data import PoseStore
from nmmfast.data.annotations import read_manifest, write_unisign_labels
from nmmfast.data.importers import (
    POSE86K_LIPS,
    POSE86K_TO_COCO,
    detect_format,
    import_poses,
    pose86k_to_coco,
    read_npz,
    read_pose86k,
    read_pose_file,
    read_unisign_pkl,
    write_npz,
    write_pose_file,
    write_unisign_pkl,
)
from nmmfast.skeleton import get_layout, normalize


@pytest.fixture
def raw():
    rng = np.random.default_rng(0)
    arr = rng.random((6, 133, 3), dtype=np.float32)
    arr[2, 40, 2] = 0.0  # a missing joint
    return arr


# -- Uni-Sign pkl ----------------------------------------------------------------------------------


def test_unisign_pkl_roundtrip(tmp_path, raw):
    write_unisign_pkl(tmp_path / "v.pkl", raw)
    with open(tmp_path / "v.pkl", "rb") as f:
        data = pickle.load(f)
    assert data["keypoints"][0].shape == (1, 133, 2) and data["scores"][0].shape == (1, 133)
    back, meta = read_unisign_pkl(tmp_path / "v.pkl")
    np.testing.assert_array_equal(back, raw)
    assert meta["source"] == "unisign-pkl"


def test_unisign_pkl_start_end_and_person(tmp_path, raw):
    two_people = {
        "keypoints": [np.stack([f[:, :2], f[:, :2] + 1]) for f in raw],
        "scores": [np.stack([f[:, 2], f[:, 2] * 0]) for f in raw],
        "start": 1,
        "end": 4,
    }
    with open(tmp_path / "v.pkl", "wb") as f:
        pickle.dump(two_people, f)
    back, meta = read_unisign_pkl(tmp_path / "v.pkl")
    np.testing.assert_allclose(back, raw[1:4])
    assert meta["start"] == 1 and meta["end"] == 4
    second, _ = read_unisign_pkl(tmp_path / "v.pkl", person=1)
    np.testing.assert_allclose(second[..., :2], raw[1:4, :, :2] + 1)


@pytest.mark.parametrize(
    "data, message",
    [
        ({"keypoints": [np.zeros((1, 133, 2))]}, "'keypoints' and 'scores'"),
        ({"keypoints": [np.zeros((1, 69, 2))], "scores": [np.zeros((1, 69))]}, r"\(P, 133, 2\)"),
        (
            {"keypoints": [np.zeros((1, 133, 2))] * 2, "scores": [np.zeros((1, 133))]},
            "do not match",
        ),
        ({"keypoints": [], "scores": []}, r"\(P, 133, 2\)"),
        (
            {"keypoints": [np.zeros((1, 133, 2))], "scores": [np.zeros((1, 133))], "start": 1},
            "range",
        ),
        (
            {"keypoints": [np.full((1, 133, 2), np.nan)], "scores": [np.zeros((1, 133))]},
            "non-finite",
        ),
    ],
)
def test_unisign_pkl_errors(tmp_path, data, message):
    path = tmp_path / "bad.pkl"
    with open(path, "wb") as f:
        pickle.dump(data, f)
    with pytest.raises(ValueError, match=message) as err:
        read_unisign_pkl(path)
    assert "bad.pkl" in str(err.value)


def test_truncated_pickle(tmp_path, raw):
    write_unisign_pkl(tmp_path / "v.pkl", raw)
    (tmp_path / "v.pkl").write_bytes((tmp_path / "v.pkl").read_bytes()[:500])
    with pytest.raises(ValueError, match="v.pkl: unreadable or truncated pickle"):
        read_unisign_pkl(tmp_path / "v.pkl")


# -- .pose -----------------------------------------------------------------------------------------


def test_pose_file_roundtrip(tmp_path, raw):
    write_pose_file(tmp_path / "v.pose", raw, fps=25.0, width=640, height=480)
    back, meta = read_pose_file(tmp_path / "v.pose")
    assert meta == {"fps": 25.0, "width": 640, "height": 480, "source": "pose"}
    expected = raw.copy()
    expected[2, 40] = 0  # pose-format masks zero-confidence points: they come back as (0, 0, 0)
    np.testing.assert_allclose(back, expected, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(normalize(back), normalize(raw), atol=1e-6)


def test_pose_file_errors(tmp_path, raw):
    from pose_format import Pose
    from pose_format.numpy.pose_body import NumPyPoseBody
    from pose_format.pose_header import PoseHeader, PoseHeaderComponent, PoseHeaderDimensions

    component = PoseHeaderComponent("POSE", [f"p{i}" for i in range(5)], [], [(0, 0, 0)], "XYC")
    header = PoseHeader(0.1, PoseHeaderDimensions(10, 10, 0), [component])
    body = NumPyPoseBody(25.0, np.zeros((3, 1, 5, 2), np.float32), np.ones((3, 1, 5), np.float32))
    with open(tmp_path / "mp.pose", "wb") as f:
        Pose(header, body).write(f)
    with pytest.raises(ValueError, match=r"mp.pose: expected 133 .* has 5"):
        read_pose_file(tmp_path / "mp.pose")
    (tmp_path / "junk.pose").write_bytes(b"\x00\x01garbage")
    with pytest.raises(ValueError, match="junk.pose: unreadable .pose"):
        read_pose_file(tmp_path / "junk.pose")
    with pytest.raises(ValueError, match="positive fps"):
        write_pose_file(tmp_path / "x.pose", raw, fps=25.0, width=0, height=480)


# -- Pose86K ---------------------------------------------------------------------------------------


def _pose86k(frames=3):
    arr = np.zeros((frames, 86, 3))
    arr[:, :, 0] = np.arange(86) / 100 + 0.001  # x encodes the source joint
    arr[:, :, 1] = 0.5
    arr[:, :, 2] = -0.3  # MediaPipe z: not a confidence
    arr[1, 0:21] = 0  # right hand missing in frame 1
    return arr


def test_pose86k_remap():
    src = _pose86k()
    raw = pose86k_to_coco(src)
    assert raw.shape == (3, 133, 3) and raw.dtype == np.float32
    table = dict((coco, p86) for p86, coco in POSE86K_TO_COCO)
    assert table[112] == 0 and table[132] == 20 and table[91] == 21  # hands 1:1
    assert table[0] == 61 and table[10] == 61 + 16 and table[5] == 61 + 11  # body from MediaPipe
    assert table[53] == 61  # nose tip from the nose
    assert table[23 + 48] == 42 + POSE86K_LIPS.index(61)  # mouth corner
    assert table[23 + 57] == 42 + POSE86K_LIPS.index(17)  # lower lip midline
    for coco, p86 in table.items():
        np.testing.assert_allclose(raw[0, coco], [src[0, p86, 0], 0.5, 1.0], rtol=1e-6)
    assert not raw[1, 112:133].any()  # missing hand -> score 0, coordinates 0
    assert (raw[1, 91:112, 2] == 1).all()
    unmapped = sorted(set(range(133)) - set(table))
    assert not raw[:, unmapped].any()
    swapped = pose86k_to_coco(src, swap_hands=True)
    np.testing.assert_array_equal(swapped[:, 91:112], raw[:, 112:133])
    # with the lips64 layout the face part is populated; unisign69's face stays empty
    face = get_layout("lips64").parts["face"]
    body_ok = raw.copy()
    body_ok[:, [0, 3, 4, 5, 6], :2] += np.array([0, 0.05, 0.1, 0.15, 0.2])[:, None]
    assert normalize(body_ok, "lips64")[0, face[:-1]].any()
    assert not normalize(body_ok, "unisign69")[0, get_layout("unisign69").parts["face"][:-1]].any()


def test_pose86k_pickle(tmp_path):
    data = {"01_0001": {"keypoints": _pose86k()}, "01_0002": {"keypoints": _pose86k(5)}}
    with open(tmp_path / "pose86k.pkl", "wb") as f:
        pickle.dump(data, f)
    assert detect_format(tmp_path / "pose86k.pkl") == "pose86k"
    samples = read_pose86k(tmp_path / "pose86k.pkl")
    assert list(samples) == ["01_0001", "01_0002"] and samples["01_0002"].shape == (5, 86, 3)
    with open(tmp_path / "bad.pkl", "wb") as f:
        pickle.dump({"x": {"keypoints": np.zeros((3, 85, 2))}}, f)
    with pytest.raises(ValueError, match=r"bad.pkl: sample 'x': expected \(T, 86"):
        read_pose86k(tmp_path / "bad.pkl")
    with pytest.raises(ValueError, match="empty sequence"):
        pose86k_to_coco(np.zeros((0, 86, 2)))


# -- NumPy -----------------------------------------------------------------------------------------


def test_npz(tmp_path, raw):
    write_npz(tmp_path / "a.npz", {"x": raw, "y": raw[:2]})
    samples = read_npz(tmp_path / "a.npz")
    np.testing.assert_array_equal(samples["x"], raw)
    assert samples["y"].shape == (2, 133, 3)
    np.save(tmp_path / "z.npy", raw)
    assert list(read_npz(tmp_path / "z.npy")) == ["z"]
    bad = raw.copy()
    bad[1, 2, 0] = np.nan
    np.savez(tmp_path / "bad.npz", s=bad)
    with pytest.raises(ValueError, match="bad.npz: sample 's': non-finite value at frame 1"):
        read_npz(tmp_path / "bad.npz")


# -- bulk import and the CLI -----------------------------------------------------------------------


def test_import_poses_mixed_formats(tmp_path, raw):
    src = tmp_path / "src"
    src.mkdir()
    write_unisign_pkl(src / "S000001_P0001_T00.pkl", raw)
    write_pose_file(src / "b.pose", raw[:3], fps=30.0, width=100, height=50)
    write_npz(src / "c.npz", {"c1": raw[:2]})
    rows = [
        {
            "id": "clipA",
            "signer": "P0001",
            "sentence": "S000001",
            "gloss": "",
            "text": "t",
            "video_path": "S000001_P0001_T00.mp4",
        }
    ]
    store = PoseStore.create(tmp_path / "poses")
    result = import_poses(store, [src], rows=rows, defaults={"fps": 25.0}, chunk=2)
    assert sorted(result["added"]) == ["b", "c1", "clipA"] and result["skipped"] == []
    assert store.meta("clipA")["signer"] == "P0001" and store.meta("clipA")["fps"] == 25.0
    assert store.meta("b")["fps"] == 30.0 and store.meta("b")["width"] == 100
    np.testing.assert_array_equal(store["clipA"], raw)
    again = import_poses(store, [src], rows=rows)
    assert again["added"] == [] and len(again["skipped"]) == 3
    with pytest.raises(ValueError, match="already in the store"):
        import_poses(store, [src / "c.npz"], skip_existing=False)
    with pytest.raises(FileNotFoundError, match="missing"):
        import_poses(store, [tmp_path / "missing"])


def test_import_cli(tmp_path, raw, capsys):
    src = tmp_path / "src"
    src.mkdir()
    for name in ("01_0001", "02_0001", "03_0002"):
        write_unisign_pkl(src / f"{name}.pkl", raw)
    labels = tmp_path / "train.csv"
    labels.write_text("id|gloss|text\n01_0001|a b|x\n02_0001|a b|x\n04_0003|c|y\n", "utf-8")
    out = tmp_path / "corpus"
    assert (
        main(["import", str(src), "--out", str(out), "--labels", str(labels), "--fps", "30"]) == 0
    )
    printed = capsys.readouterr().out
    assert "3 samples imported" in printed
    assert "1 manifest rows without poses: 04_0003" in printed
    assert "1 poses without manifest rows: 03_0002" in printed
    assert [r["id"] for r in read_manifest(out / "manifest.jsonl")] == [
        "01_0001",
        "02_0001",
        "04_0003",
    ]
    assert PoseStore(out / "poses").meta("02_0001")["signer"] == "02"
    # a second import with conflicting labels is refused rather than overwriting
    labels.write_text("id|gloss|text\n01_0001|changed|x\n", "utf-8")
    assert main(["import", str(src), "--out", str(out), "--labels", str(labels)]) == 2
    assert "refusing to overwrite" in capsys.readouterr().err
    uni = tmp_path / "labels.gz"
    write_unisign_labels(
        uni, [{"id": "03_0002", "signer": None, "sentence": None, "gloss": "", "text": "z"}]
    )
    assert main(["import", str(src), "--out", str(out), "--labels", str(uni)]) == 0
    assert len(read_manifest(out / "manifest.jsonl")) == 4
    capsys.readouterr()
    # without --labels: poses are compared with the manifest there is, or reported unlabelled
    assert main(["import", str(src), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "compared with the 4 rows" in printed and "1 manifest rows without poses" in printed
    assert main(["import", str(src), "--out", str(tmp_path / "bare")]) == 0
    printed = capsys.readouterr().out
    assert "no labels yet" in printed
    assert "3 poses without manifest rows: 01_0001, 02_0001, 03_0002" in printed
