from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nmmfast.skeleton import (
    COCO_WHOLEBODY_NAMES,
    REGIONS,
    Layout,
    _normalize_reference,
    available_layouts,
    get_layout,
    joint_label,
    normalize,
    normalize_batch,
    normalize_packed,
    reference_study_labels,
    register_layout,
    select_frames,
    true_label_of_study_label,
)

# -- names and layouts -----------------------------------------------------------------------------


def test_coco_wholebody_names():
    names = COCO_WHOLEBODY_NAMES
    assert len(names) == 133 and len(set(names)) == 133
    assert names[0] == "nose" and names[10] == "right_wrist" and names[16] == "right_ankle"
    assert names[17] == "left_big_toe" and names[22] == "right_heel"
    assert names[23] == "face-0" and names[53] == "face-30" and names[90] == "face-67"
    assert names[91] == "left_hand_root" and names[95] == "left_thumb4"
    assert names[112] == "right_hand_root" and names[124] == "right_middle_finger4"
    assert names[132] == "right_pinky_finger4"


def test_joint_label():
    assert joint_label(10) == "10:right_wrist"
    assert joint_label(91) == "L:91:left_hand_root"
    assert joint_label(124) == "R:124:right_middle_finger4"
    assert joint_label(53) == "53:face-30"
    with pytest.raises(ValueError, match="133"):
        joint_label(133)


def test_unisign69_selection_and_order():
    layout = get_layout("unisign69")
    expected = (
        [0, 3, 4, 5, 6, 7, 8, 9, 10]
        + list(range(91, 112))
        + list(range(112, 133))
        + [23, 25, 27, 29, 31, 33, 35, 37, 39]
        + list(range(83, 91))
        + [53]
    )
    assert layout.coco_indices.dtype == np.int64
    assert layout.coco_indices.tolist() == expected
    assert list(layout.parts) == ["body", "left", "right", "face"]
    assert [len(p) for p in layout.parts.values()] == [9, 21, 21, 18]
    assert np.concatenate(list(layout.parts.values())).tolist() == list(range(69))
    assert REGIONS == ("hands", "face", "body")
    counts = np.bincount(layout.region_of_joint, minlength=3)
    assert counts.tolist() == [42, 18, 9]
    names = layout.names
    assert names[8] == "10:right_wrist"  # the 9th body joint is the right wrist, not COCO 8
    assert layout.region_of_joint[names.index("10:right_wrist")] == REGIONS.index("body")
    pos = names.index("R:124:right_middle_finger4")
    assert layout.region_of_joint[pos] == REGIONS.index("hands")
    assert names[-1] == "53:face-30" and names[9 + 42 + 9] == "83:face-60"
    assert layout.region_mask("face").sum() == 18


def test_unisign69_graphs_and_roots():
    layout = get_layout("unisign69")
    assert sorted(layout.part_edges["body"]) == sorted(
        [(0, 1), (0, 2), (0, 3), (0, 4), (3, 5), (5, 7), (4, 6), (6, 8)]
    )
    hand = layout.part_edges["left"]
    assert len(hand) == 20 and (0, 1) in hand and (0, 17) in hand and (19, 20) in hand
    assert hand == layout.part_edges["right"]
    face = set(layout.part_edges["face"])
    assert len(face) == 8 + 8 + 17
    assert (16, 9) in face and (8, 9) not in face  # lip ring closed, jaw and lip not joined
    assert all((17, i) in face for i in range(17))
    roots = layout.part_roots
    assert roots["body"] == (None, None)
    assert roots["left"] == (0, 7) and roots["right"] == (0, 8) and roots["face"] == (17, 0)
    assert roots["left"].root == 0 and roots["left"].body_joint == 7
    body_coco = layout.part_coco_indices("body")
    assert body_coco[7] == 9 and body_coco[8] == 10 and body_coco[0] == 0  # wrists, nose


def test_nmm87_extends_unisign69():
    base, nmm = get_layout("unisign69"), get_layout("nmm87")
    assert nmm.num_joints == 87 and len(nmm) == 87
    assert nmm.coco_indices[:69].tolist() == base.coco_indices.tolist()
    extra = set(nmm.coco_indices[69:].tolist())
    assert set(range(40, 50)) <= extra  # both eyebrows, face-17..26
    assert {60, 61, 63, 64, 66, 67, 69, 70} <= extra  # eyelids
    assert nmm.part_roots["face"] == (17, 0)
    assert np.bincount(nmm.region_of_joint).tolist() == [42, 36, 9]
    assert "lips64" in available_layouts()


def test_layout_spec_roundtrip_and_registration():
    base = get_layout("unisign69")
    spec = base.to_spec()
    again = Layout.from_spec(spec)
    assert again.coco_indices.tolist() == base.coco_indices.tolist()
    assert again.part_edges == base.part_edges and again.part_roots == base.part_roots
    spec["name"] = "test-hands-only"
    spec["parts"] = {"body": spec["parts"]["body"], "left": spec["parts"]["left"]}
    layout = register_layout(spec, replace=True)
    assert get_layout("test-hands-only") is layout and layout.num_joints == 30
    with pytest.raises(ValueError, match="exists"):
        register_layout(spec)
    with pytest.raises(ValueError, match="unknown layout"):
        get_layout("nope")


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda s: s["parts"].update(face=[0] + s["parts"]["face"][1:]), "twice"),
        (lambda s: s["edges"].update(body=[[0, 9]]), "edge"),
        (lambda s: s["roots"].update(body=[0, None]), "body part"),
        (lambda s: s["roots"].update(left=[None, 7]), "root"),
        (lambda s: s["regions"].update(face="head"), "region"),
        (lambda s: s["parts"].pop("body"), "body"),
    ],
)
def test_layout_spec_errors(change, message):
    spec = get_layout("unisign69").to_spec()
    change(spec)
    with pytest.raises(ValueError, match=message):
        Layout.from_spec(spec)


# -- normalisation: hand-computed cases ------------------------------------------------------------


def _frame() -> np.ndarray:
    raw = np.zeros((1, 133, 3))
    # body: nose, ears, shoulders confident; elbows and wrists exactly at the threshold.
    for coco, x, y, s in [
        (0, 0.5, 0.2, 0.9),
        (3, 0.4, 0.2, 0.9),
        (4, 0.6, 0.2, 0.9),
        (5, 0.3, 0.4, 0.9),
        (6, 0.7, 0.4, 0.9),
        (7, 0.9, 0.9, 0.3),
        (8, 0.9, 0.9, 0.3),
        (9, 0.9, 0.9, 0.3),
        (10, 0.9, 0.9, 0.3),
    ]:
        raw[0, coco] = (x, y, s)
    return raw


def test_normalize_hand_computed():
    raw = _frame()
    # box x 0.3..0.7, y 0.2..0.4 -> scale 0.4, square origin (0.3, 0.1)
    raw[0, 91] = (0.35, 0.5, 0.9)  # left wrist (root)
    raw[0, 95] = (0.45, 0.6, 0.8)  # left thumb tip: (0.1, 0.1) / 0.4
    raw[0, 96] = (1.15, 0.5, 1.7)  # 0.8 / 0.4 = 2 -> clipped to 1; score clipped to 1
    raw[0, 97] = (0.40, 0.5, 0.30000001)  # just above the threshold
    raw[0, 112] = (0.7, 0.5, 0.1)  # right wrist, low confidence: still the root
    raw[0, 113] = (0.8, 0.5, 0.9)
    raw[0, 53] = (0.5, 0.25, 0.9)  # nose tip (face root)
    raw[0, 23] = (0.4, 0.3, 0.9)  # jaw point
    raw[0, 83] = (0.5, 0.3, 0.3)  # inner lip at the threshold -> zero
    layout = get_layout("unisign69")
    out = normalize(raw)
    assert out.dtype == np.float32 and out.shape == (1, 69, 3)
    pos = {name: i for i, name in enumerate(layout.names)}
    expect = {
        "0:nose": (0.0, -0.5, 0.9),
        "3:left_ear": (-0.5, -0.5, 0.9),
        "5:left_shoulder": (-1.0, 0.5, 0.9),
        "6:right_shoulder": (1.0, 0.5, 0.9),
        "7:left_elbow": (0, 0, 0),
        "10:right_wrist": (0, 0, 0),
        "L:91:left_hand_root": (0.0, 0.0, 0.9),
        "L:95:left_thumb4": (0.25, 0.25, 0.8),
        "L:96:left_forefinger1": (1.0, 0.0, 1.0),
        "L:97:left_forefinger2": (0.125, 0.0, 0.30000001),
        "L:98:left_forefinger3": (0, 0, 0),
        "R:112:right_hand_root": (0, 0, 0),
        "R:113:right_thumb1": (0.25, 0.0, 0.9),
        "53:face-30": (0.0, 0.0, 0.9),
        "23:face-0": (-0.25, 0.125, 0.9),
        "83:face-60": (0, 0, 0),
    }
    for name, value in expect.items():
        np.testing.assert_allclose(out[0, pos[name]], value, atol=1e-6, err_msg=name)


def test_normalize_scale_is_per_clip():
    raw = np.repeat(_frame(), 2, axis=0)
    raw[1, [0, 3, 4, 5, 6], 0] += 0.2  # the signer steps right in frame 1: box x 0.3..0.9
    out = normalize(raw)
    # scale 0.6, origin x = (0.3 + 0.9 - 0.6) / 2 = 0.3, origin y = (0.2 + 0.4 - 0.6) / 2 = 0
    np.testing.assert_allclose(
        out[0, 0], [((0.5 - 0.3) / 0.6 - 0.5) * 2, (0.2 / 0.6 - 0.5) * 2, 0.9]
    )
    np.testing.assert_allclose(
        out[1, 0], [((0.7 - 0.3) / 0.6 - 0.5) * 2, (0.2 / 0.6 - 0.5) * 2, 0.9]
    )


def test_degenerate_clips_are_zero():
    raw = np.zeros((2, 133, 3))
    raw[:, 91:133] = (0.5, 0.5, 0.9)  # confident hands do not rescue the clip
    raw[0, [0, 3, 4], :] = [(0.1, 0.1, 0.9), (0.2, 0.3, 0.9), (0.3, 0.1, 0.9)]
    assert not normalize(raw).any()  # 3 confident body joints
    raw[1, 5] = (0.4, 0.4, 0.9)  # a 4th, in another frame: counted over the clip
    assert normalize(raw).any()
    same = np.zeros((1, 133, 3))
    same[0, [0, 3, 4, 5], :] = (0.5, 0.5, 0.9)  # zero-size box
    same[0, 91:95] = (0.6, 0.6, 0.9)
    assert not normalize(same).any()


def _random_batch(rng, lengths, dtype):
    raws = []
    for t in lengths:
        raw = rng.random((t, 133, 3)).astype(dtype)
        raw[..., 2] *= 1.3  # scores above 1 and below the threshold
        raws.append(raw)
    return raws


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_batch_matches_reference_port_exactly(dtype):
    rng = np.random.default_rng(0)
    raws = _random_batch(rng, [7, 1, 0, 33, 2], dtype)
    raws[3][:, [0, 3, 4, 5, 6, 7, 8, 9, 10], 2] = 0.1  # too few confident body joints
    raws[3][5, [0, 3, 4, 5], 2] = 0.9
    raws[4][..., 2] = 0.2  # nothing confident
    outs = normalize_batch(raws)
    for raw, out in zip(raws, outs, strict=True):
        assert out.dtype == np.float32 and out.shape == (raw.shape[0], 69, 3)
        if raw.shape[0]:
            np.testing.assert_array_equal(out, _normalize_reference(raw))
            np.testing.assert_array_equal(out, normalize(raw))
    for name in ("nmm87", "lips64"):
        for raw, out in zip(raws, normalize_batch(raws, name), strict=True):
            if raw.shape[0]:
                np.testing.assert_array_equal(out, _normalize_reference(raw, name))


@settings(max_examples=40, deadline=None)
@given(
    lengths=st.lists(st.integers(0, 6), min_size=1, max_size=4),
    seed=st.integers(0, 2**32 - 1),
    confident_share=st.floats(0.0, 1.0),
    layout=st.sampled_from(["unisign69", "nmm87", "lips64"]),
)
def test_batch_matches_reference_property(lengths, seed, confident_share, layout):
    rng = np.random.default_rng(seed)
    raws = []
    for t in lengths:
        raw = rng.uniform(-0.2, 1.2, size=(t, 133, 3)).astype(np.float32)
        confident = rng.random((t, 133)) < confident_share
        raw[..., 2] = np.where(
            confident, rng.uniform(0.3, 1.5, (t, 133)), rng.uniform(0, 0.3, (t, 133))
        )
        raw[rng.random((t, 133)) < 0.1, 2] = 0.3  # exactly at the threshold
        raws.append(raw)
    for raw, out in zip(raws, normalize_batch(raws, layout), strict=True):
        if raw.shape[0]:
            np.testing.assert_array_equal(out, _normalize_reference(raw, layout))
            assert np.abs(out).max() <= 1
            assert not np.signbit(out[out == 0]).any()


def test_normalize_packed_contract():
    rng = np.random.default_rng(1)
    raws = _random_batch(rng, [3, 4], np.float32)
    packed = np.concatenate(raws)
    out = normalize_packed(packed, [3, 4])
    np.testing.assert_array_equal(out[:3], normalize(raws[0]))
    assert normalize_packed(np.zeros((0, 133, 3)), []).shape == (0, 69, 3)
    assert normalize_batch([]) == []
    with pytest.raises(ValueError, match="sum to 7"):
        normalize_packed(packed, [3, 3])
    non_contiguous = np.asfortranarray(raws[1])
    np.testing.assert_array_equal(normalize(non_contiguous), normalize(raws[1]))


def test_normalize_input_errors():
    with pytest.raises(ValueError, match=r"\[T, 133, 3\]"):
        normalize(np.zeros((4, 69, 3)))
    raw = np.zeros((4, 133, 3))
    raw[2, 7, 1] = np.nan
    with pytest.raises(ValueError, match="frame 2, joint 7, channel 1"):
        normalize(raw)
    with pytest.raises(ValueError, match="sample 1"):
        normalize_batch([np.zeros((1, 133, 3)), np.zeros((1, 133, 2))])


# -- frame selection -------------------------------------------------------------------------------


def test_select_frames():
    assert select_frames(10).tolist() == list(range(10))
    assert select_frames(0).tolist() == []
    evaluation = select_frames(1000)
    assert len(evaluation) == 256 and evaluation[0] == 0 and evaluation[-1] == 999
    assert (np.diff(evaluation) > 0).all()
    np.testing.assert_array_equal(evaluation, select_frames(1000))
    train = select_frames(1000, train=True, rng=3)
    assert len(train) == 256 and (np.diff(train) > 0).all() and train.max() < 1000
    np.testing.assert_array_equal(train, select_frames(1000, train=True, rng=3))
    assert not np.array_equal(train, select_frames(1000, train=True, rng=4))
    with pytest.raises(ValueError):
        select_frames(10, 0)


# -- the reference study's labels ------------------------------------------------------------------


def test_reference_study_label_mapping():
    pairs = reference_study_labels()
    assert len(pairs) == 69
    table = dict(pairs)
    assert table["8:right_elbow"] == "10:right_wrist"
    assert table["0:nose"] == "0:nose"
    assert table["1:left_eye"] == "3:left_ear"
    assert table["32:face-9"] == "83:face-60"
    assert table["40:face-17"] == "53:face-30"  # the nose tip, last face joint
    assert table["L:91:left_hand_root"] == "L:91:left_hand_root"
    assert [t for _, t in pairs] == get_layout("unisign69").names
    assert true_label_of_study_label("8:right_elbow") == "10:right_wrist"
    assert true_label_of_study_label("124:right_middle_finger4") == "R:124:right_middle_finger4"
    with pytest.raises(ValueError, match="not a joint label"):
        true_label_of_study_label("99:nothing")


def test_a_head_movement_reaches_other_joints_only_through_the_body_box():
    """Uni-Sign's per-clip body box spans every confident body joint, the nose and ears
    included. A head movement that stays inside the span of the shoulders, elbows and wrists
    leaves every other normalised joint exactly as it was; one that leaves it (a tilt raising
    the nose above the hands' span) moves them by at most 2 (|Δorigin| + |Δscale|) / scale, the
    bound the README states. nmmfast keeps the normalisation as Uni-Sign has it."""
    from nmmfast.skeleton import get_layout, normalize

    layout = get_layout("unisign69")
    rng = np.random.default_rng(0)
    raw = np.zeros((6, 133, 3), np.float32)
    raw[..., 2] = 0.9
    arms = [5, 6, 7, 8, 9, 10]  # shoulders, elbows, wrists span x 0.3..0.7, y 0.3..0.8
    raw[:, arms, 0] = rng.uniform(0.3, 0.7, (6, len(arms)))
    raw[:, arms, 1] = rng.uniform(0.3, 0.8, (6, len(arms)))
    raw[:, [5, 6, 9, 10], 0] = [0.3, 0.7, 0.3, 0.7]  # fix the box: x 0.3..0.7, y 0.3..0.8
    raw[:, [5, 6], 1], raw[:, [9, 10], 1] = 0.3, 0.8
    head = [0, 1, 2, 3, 4, *range(23, 91)]
    raw[:, head, 0] = rng.uniform(0.45, 0.55, (6, len(head)))
    raw[:, head, 1] = rng.uniform(0.35, 0.45, (6, len(head)))
    raw[:, 91:, :2] = rng.uniform(0.3, 0.8, (6, 42, 2))
    others = np.flatnonzero(~np.isin(layout.coco_indices, head))
    before = normalize(raw, layout)

    tilted = raw.copy()
    tilted[:, head, 1] += 0.04  # forward tilt, still inside the box
    np.testing.assert_array_equal(normalize(tilted, layout)[:, others], before[:, others])

    raised = raw.copy()
    raised[:, head, 1] -= 0.1  # the nose now 0.05 above the shoulders: the box grows
    after = normalize(raised, layout)
    # the box: y 0.3..0.8 (scale 0.5, the larger side) becomes 0.25..0.8 (scale 0.55); x 0.3..0.7
    origin = np.array([0.5 - 0.25, 0.3]), np.array([0.5 - 0.275, 0.25])
    scale = 0.5, 0.55
    bound = 2 * (np.abs(origin[1] - origin[0]).max() + abs(scale[1] - scale[0])) / scale[1]
    moved = np.abs(after[:, others, :2] - before[:, others, :2]).max()
    assert 0 < moved <= bound + 1e-6, (moved, bound)
