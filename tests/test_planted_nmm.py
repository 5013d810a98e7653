"""Planted truth through trained models, for three training seeds.

Small SLT models are trained (three seeds, two at a time) on a SynNMM corpus whose only
non-manual marker is the yes/no question (brow raise + forward head tilt): half the clips are
questions, and a question changes the text ("Does the friend read the book?") but none of the
manual signs, so a model can only get the marking right from the face and head. Once it does,
attribution and the counterfactual probe must find that, for every seed:

- position-controlled: a question's final "?" draws more face+head attribution than the word
  just before it, each token attributed on its own with adaptive steps until its completeness
  delta is within 5 %;
- through the study's own per-token attribution job, the same in its region shares, with every
  token's completeness checked;
- neutralising face and head flips the question marking; neutralising nothing changes nothing.
"""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pytest
import torch

SEEDS = (0, 1, 2)
TOLERANCE = 0.05  # per token: |delta| <= 5 % of that token's |F(x) - F(b)|
MAX_STEPS = 129


def _train(job: tuple) -> str:
    from nmmfast.train import train

    corpus, run, seed = job
    torch.set_num_threads(1)
    train(
        corpus,
        "control",
        "slt",
        run,
        epochs=12,
        batch_size=8,
        lr=1e-3,
        seed=seed,
        dev_beam=1,
        dev_from=9,
        max_new_tokens=24,
        progress=False,
        device="cpu",
    )
    return run


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from nmmfast.data.annotations import read_manifest
    from nmmfast.data.dataset import Corpus
    from nmmfast.data.partitions import make_partitions, write_partitions
    from nmmfast.data.synth import generate, write_corpus
    from nmmfast.model import load_model

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
    jobs = [(str(corpus), str(root / f"run-{seed}"), seed) for seed in SEEDS]
    with ProcessPoolExecutor(max_workers=2) as pool:
        runs = list(pool.map(_train, jobs))
    models = {
        seed: load_model(run, f"{run}/best.pt").eval()
        for seed, run in zip(SEEDS, runs, strict=True)
    }
    opened = Corpus.open(corpus)
    return opened, models, opened.partition("control")["test"]


def _is_question(row) -> bool:
    return any(span["type"] == "question" for span in row["nmm"])


def _face_head(model) -> torch.Tensor:
    from nmmfast.probes.planted import face_head_mask
    from nmmfast.skeleton import get_layout

    return torch.from_numpy(face_head_mask(get_layout(model.config.layout)))


@pytest.mark.parametrize("seed", SEEDS)
def test_the_model_learned_the_question_marker(trained, seed) -> None:
    from nmmfast.data.dataset import PoseDataset
    from nmmfast.decode import predict

    corpus, models, test_ids = trained
    model = models[seed]
    dataset = PoseDataset(corpus, test_ids, "slt", max_frames=model.config.max_frames)
    predictions = predict(model, dataset, num_beams=1, max_new_tokens=24)
    right = [
        predictions[i].endswith("?") == _is_question(corpus.rows[i]) for i in dataset.sample_ids
    ]
    assert np.mean(right) >= 0.9, np.mean(right)


def _pairs_won(high: list[float], low: list[float]) -> float:
    """Share of (high, low) pairs where the first is larger: the Mann-Whitney AUC."""
    return float(np.mean([h > lo for h in high for lo in low]))


def _token_attributions(model, poses, texts, positions):
    """Integrated Gradients of one token's log-probability per clip, log p(y_k | y_<k, x) at
    k = `positions[n]` of the teacher-forced reference: adaptive Simpson panels per clip until
    its delta is within `TOLERANCE` of that token's |F(x) - F(b)|."""
    from nmmfast.attribution import IntegratedGradients

    ids = model.tokenize_targets(texts)

    def forward(x, mask, rows, targets):
        return model.token_log_probs(x, mask, targets)

    engine = IntegratedGradients(forward, model=model, layout=model.config.layout)
    with model.stop_gradient_lifted():
        return engine.attribute(
            poses,
            target=torch.as_tensor(positions),
            additional_forward_args=(ids,),
            method="simpson",
            n_steps=5,
            tolerance=TOLERANCE,
            max_steps=MAX_STEPS,
        )


def test_the_question_mark_draws_more_face_and_head_than_the_word_before_it(trained) -> None:
    """Each question's final "?" against the word just before it in the same clip (adjacent
    positions, so no position effect), each token attributed on its own with its completeness
    checked: the "?" is decided by the face and head, the word by the hands.

    Not asserted, measured on this fixture (seeds 0 / 1 / 2): the "?" of questions against the
    "." of statements at the same position draws about the same face+head share (pairwise AUC
    0.60 / 0.53 / 0.78): a statement's full stop needs the face and head read too, to rule the
    question out; and a question's fronted auxiliary against a statement's first word goes
    either way (0.38 / 0.00 / 0.89)."""
    from nmmfast.data.dataset import PoseDataset

    corpus, models, test_ids = trained
    questions = [i for i in test_ids if _is_question(corpus.rows[i])][:10]
    wins = {}
    for seed, model in models.items():
        dataset = PoseDataset(corpus, questions, "slt", max_frames=model.config.max_frames)
        poses = [dataset[k][1] for k in range(len(dataset))]
        texts = [dataset[k][2] for k in range(len(dataset))]
        lengths = [len(model.tokenize_targets([t])[0]) for t in texts]  # with </s>
        assert {t.split()[-1][-1] for t in texts} == {"?"}
        face_head = _face_head(model)
        shares = {}
        for name, offset in (("question mark", 2), ("word before", 3)):
            ig = _token_attributions(model, poses, texts, [n - offset for n in lengths])
            assert bool(ig.converged.all()), ig.n_steps  # every token's delta within 5 %
            shares[name] = ig.joint.abs[:, face_head].sum(1) / ig.joint.abs.sum(1)
        wins[seed] = int((shares["question mark"] > shares["word before"]).sum())
    # under no difference each clip goes either way: 22 or more of 30 happen 0.8 % of the time;
    # and no seed may reverse the effect
    assert sum(wins.values()) >= 22 and min(wins.values()) >= 5, wins


def test_study_attribution_and_counterfactual_recover_the_marker(trained, tmp_path) -> None:
    from nmmfast.attribution.job import run_attribution
    from nmmfast.attribution.summary import load_samples
    from nmmfast.probes.counterfactual import counterfactual_probe

    corpus, models, test_ids = trained
    face = ["hands", "face", "body"].index("face")
    wins: dict[int, list[bool]] = {}
    for seed, model in models.items():
        out = tmp_path / f"job-{seed}"
        run_attribution(
            model,
            corpus,
            "control",
            out,
            task="slt",
            target="reference",
            method="simpson",
            n_steps=17,
            per_token=True,
            max_samples=16,
            num_beams=1,
            max_new_tokens=24,
        )
        samples = load_samples(out)
        # every token's own completeness: median |delta| within 10 % of its |F(x) - F(b)|
        relative = np.concatenate(
            [
                np.abs(s["token_delta"])
                / np.maximum(np.abs(s["token_f_input"] - s["token_f_baseline"]), 1e-6)
                for s in samples
            ]
        )
        assert np.median(relative) < 0.1, (seed, np.median(relative))
        # the job's per-token region shares: in question clips the final "?" reads the face
        # more than the sentence's other words do on average (the head joints count in "body"
        # in this layout; the position-controlled comparison is the test above)
        wins[seed] = []
        for sample in samples:
            if sample["tokens"][-2] == "?":
                region = sample["token_region_abs"]
                share = region[:, face] / np.maximum(region.sum(1), 1e-30)
                wins[seed].append(bool(share[-2] > share[:-2].mean()))

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
        # neutralising nothing flips nothing; face and head alone flip a third or more of the
        # question marks (0.42 to 0.7 over these seeds). The rest a model can read from the
        # arms: Uni-Sign's per-clip body box includes the nose and ears, so a head tilt that
        # widens the box moves every normalised body joint a little (test_skeleton.py bounds it)
        assert flips["category_changed_rate"] >= 0.33, (seed, flips)
        assert probe["regions"]["none"]["change_rate"] == 0
        assert probe["regions"]["hands"]["change_rate"] > 0.5  # the manual signs: the content
    pooled = [w for seed_wins in wins.values() for w in seed_wins]
    # 18 question clips over the seeds (measured 15): under no difference 14 or more of 18
    # happen 1.5 % of the time; and no seed reverses it
    assert np.mean(pooled) >= 0.75 and min(np.mean(w) for w in wins.values()) > 0.5, wins
