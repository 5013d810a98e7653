"""Planted truth through a trained model.

A small SLT model is trained (about 100 s on one core) on a SynNMM corpus whose only non-manual
marker is the yes/no question (brow raise + forward head tilt): half the clips are questions, and
a question changes the text ("Does the friend read the book?") but none of the manual signs, so
the model can only get the marking right from the face and head. Once it does, attribution and
the counterfactual probe must find that: question tokens draw more face+head attribution than the
other tokens, and neutralising face and head flips the marking (whole question clips are not
compared with statements: see the note in the last test).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

QUESTION_TOKENS = {"?", "Do", "Does", "Did", "Will"}  # the fronted auxiliary is capitalised


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from nmmfast.data.annotations import read_manifest
    from nmmfast.data.dataset import Corpus
    from nmmfast.data.partitions import make_partitions, write_partitions
    from nmmfast.data.synth import generate, write_corpus
    from nmmfast.model import load_model
    from nmmfast.train import train

    root = tmp_path_factory.mktemp("planted")
    corpus = root / "corpus"
    data = generate(
        400,
        seed=0,
        n_signers=8,
        n_veiled=0,
        n_left_handed=1,
        n_glosses=16,
        n_sentences=16,
        question_rate=0.5,
        # no negation: at this training budget the model's "not" stays at chance (at a rate of
        # 0.3, 72.5% of test clips right against 75% for never saying "not"); twice the epochs
        # learn it, at twice the time
        negation_rate=0.0,
        intensifier_rate=0.0,
    )
    write_corpus(data, corpus)
    write_partitions(corpus, make_partitions(read_manifest(corpus / "manifest.jsonl"), seed=0))
    run = root / "run"
    train(
        corpus,
        "control",
        "slt",
        run,
        epochs=12,
        batch_size=8,
        lr=1e-3,
        seed=0,
        dev_beam=1,
        dev_from=9,
        max_new_tokens=24,
        progress=False,
        device="cpu",
    )
    model = load_model(run, run / "best.pt").eval()
    opened = Corpus.open(corpus)
    test_ids = opened.partition("control")["test"]
    return opened, model, test_ids


def _is_question(row) -> bool:
    return any(span["type"] == "question" for span in row["nmm"])


def test_the_model_learned_the_question_marker(trained) -> None:
    from nmmfast.data.dataset import PoseDataset
    from nmmfast.decode import predict

    corpus, model, test_ids = trained
    dataset = PoseDataset(corpus, test_ids, "slt", max_frames=model.config.max_frames)
    predictions = predict(model, dataset, num_beams=1, max_new_tokens=24)
    right = [
        predictions[i].endswith("?") == _is_question(corpus.rows[i]) for i in dataset.sample_ids
    ]
    assert np.mean(right) >= 0.9, np.mean(right)


def test_question_tokens_draw_face_and_head_attribution(trained) -> None:
    from nmmfast.attribution import SequenceAttributor
    from nmmfast.data.dataset import PoseDataset
    from nmmfast.report.build import face_head_mask
    from nmmfast.skeleton import get_layout

    corpus, model, test_ids = trained
    questions = [i for i in test_ids if _is_question(corpus.rows[i])][:16]
    dataset = PoseDataset(corpus, questions, "slt", max_frames=model.config.max_frames)
    poses = [dataset[k][1] for k in range(len(dataset))]
    res = SequenceAttributor(model).attribute(poses, n_steps=8, per_token=True, num_beams=1)
    face_head = torch.from_numpy(face_head_mask(get_layout(model.config.layout)))
    marker, other, clip_wins = [], [], []
    for row, tokens in enumerate(res.target_tokens):
        per_joint = res.ig.attributions[row][: len(tokens)].abs().sum(dim=(1, 3))  # [L, J]
        shares = per_joint[:, face_head].sum(1) / per_joint.sum(1).clamp_min(1e-30)
        clip_marker = [s for t, s in zip(tokens, shares.tolist(), strict=True)
                       if t in QUESTION_TOKENS]
        clip_other = [s for t, s in zip(tokens, shares.tolist(), strict=True)
                      if t not in QUESTION_TOKENS and t != "</s>"]
        assert clip_marker and clip_other  # every question was decoded as a question
        marker += clip_marker
        other += clip_other
        clip_wins.append(np.mean(clip_marker) > np.mean(clip_other))
    # Pooled over tokens, and paired within clips: if the shares did not depend on the token
    # kind, each clip would go either way with even odds and 12 or more of 16 would happen
    # 3.8 % of the time.
    assert np.mean(marker) > np.mean(other), (np.mean(marker), np.mean(other))
    assert sum(clip_wins) >= 12, clip_wins


def test_study_attribution_and_counterfactual_recover_the_marker(trained, tmp_path) -> None:
    from nmmfast.attribution.job import load_samples, run_attribution
    from nmmfast.probes.counterfactual import counterfactual_probe
    from nmmfast.report.build import face_head_shares_by_nmm
    from nmmfast.skeleton import get_layout

    corpus, model, test_ids = trained
    run_attribution(
        model,
        corpus,
        "control",
        tmp_path,
        task="slt",
        n_steps=8,
        num_beams=1,
        max_new_tokens=24,
    )
    groups = face_head_shares_by_nmm(
        load_samples(tmp_path), corpus.rows, get_layout(model.config.layout)
    )
    assert len(groups["with NMM"]) >= 10 and len(groups["without NMM"]) >= 10
    # No claim on how the two groups compare: a statement needs the head read as much as a
    # question does (to rule the marker out), and over whole sentences the marker's token is
    # one of many: trained with other seeds, this model puts "with" below "without" more often
    # than above. The per-token test above and the counterfactual probe below are the direct
    # checks.

    probe = counterfactual_probe(
        model,
        corpus,
        test_ids,
        regions=("none", "face+head", "hands"),
        num_beams=1,
        max_new_tokens=24,
        samples=False,
    )
    flips = probe["regions"]["face+head"]["marking"]["question"]
    assert flips["category_changed_rate"] >= 0.5, flips
    assert probe["regions"]["none"]["change_rate"] == 0
    assert probe["regions"]["hands"]["change_rate"] > 0.5  # the manual signs carry the content
