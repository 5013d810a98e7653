"""Sequence attribution on the tiny pose→text model: targets, lifted stop-gradients, per-token."""

from __future__ import annotations

import copy

import pytest
import torch

from nmmfast.attribution import SequenceAttributor
from nmmfast.model import WordTokenizer, build_model

TEXTS = ["hello world", "yes no maybe", "you go home now"]


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model("tiny", tokenizer=WordTokenizer.build(TEXTS)).eval()


@pytest.fixture(scope="module")
def poses():
    gen = torch.Generator().manual_seed(3)
    return [torch.rand(t, 69, 3, generator=gen) * 2 - 1 for t in (4, 3)]


def test_reference_targets_and_lifted_stop_gradient_close_completeness(model, poses) -> None:
    refs = ["hello world", "yes no"]
    model = copy.deepcopy(model).double()  # float64: what is left of delta is quadrature error
    poses = [p.double() for p in poses]
    lifted = SequenceAttributor(model).attribute(poses, refs, n_steps=8, batch_rows=64)
    blocked = SequenceAttributor(model, lift_stop_gradient=False).attribute(
        poses, refs, n_steps=8, batch_rows=64
    )
    assert lifted.target_source == "reference" and lifted.stop_gradient_lifted
    assert lifted.target_tokens == [["hello", "world", "</s>"], ["yes", "no", "</s>"]]
    assert lifted.target_text == refs
    # lifting changes gradients only: F(x) and F(b) are the same
    torch.testing.assert_close(lifted.ig.f_input, blocked.ig.f_input)
    torch.testing.assert_close(lifted.ig.f_baseline, blocked.ig.f_baseline)
    # F is the teacher-forced Σ log p of the target
    ids = model.tokenize_targets(refs[:1])
    with torch.no_grad():
        expected = model.sequence_log_prob(poses[0][None], torch.ones(1, 4, dtype=torch.bool), ids)
    assert float(lifted.ig.f_input[0]) == pytest.approx(float(expected[0]), rel=1e-6)
    # the stop-gradients cut paths the forward depends on: completeness cannot close with them
    assert float(lifted.ig.relative_delta.max()) < 0.05
    assert float(blocked.ig.relative_delta.max()) > 5 * float(lifted.ig.relative_delta.max())
    assert model.pose_encoder.stop_gradient  # restored after the pass


def test_per_token_rows_sum_to_the_sequence(model, poses) -> None:
    attributor = SequenceAttributor(model)
    ids = attributor.encode_targets(["go home now", "hello"])
    seq = attributor.attribute(poses, ids, n_steps=4, method="riemann_trapezoid", batch_rows=8)
    tok = attributor.attribute(
        poses, ids, n_steps=4, method="riemann_trapezoid", batch_rows=8, per_token=True
    )
    assert seq.target_source == "ids" and tok.per_token
    assert tok.token_lengths() == [4, 2]
    assert tok.ig.delta.shape == (2, 4) and tok.ig.joint.abs.shape == (2, 4, 69)
    for n, length in enumerate(tok.token_lengths()):
        per_token = tok.attributions[n]  # [L, T, J, C]
        assert per_token.shape[0] == 4
        torch.testing.assert_close(per_token.sum(0), seq.attributions[n], rtol=1e-4, atol=1e-7)
        assert bool((per_token[length:] == 0).all())  # padding positions get nothing
        torch.testing.assert_close(tok.ig.total[n].sum(), seq.ig.total[n], rtol=1e-4, atol=1e-7)
        torch.testing.assert_close(tok.ig.f_input[n].sum(), seq.ig.f_input[n], rtol=1e-5, atol=1e-5)


def test_decoded_targets_are_the_models_output(model, poses) -> None:
    with torch.no_grad():  # keep the untrained model from emitting padding or </s> first
        saved = model.text_model.lm_head.weight[:2].clone()
        model.text_model.lm_head.weight[:2] = 0
    try:
        attributor = SequenceAttributor(model)
        res = attributor.attribute(poses[:1], n_steps=1, num_beams=1, max_new_tokens=3)
        for n, x in enumerate(poses[:1]):
            generated = model.generate(
                x[None], torch.ones(1, x.shape[0], dtype=torch.bool), num_beams=1, max_new_tokens=3
            )
            assert res.target_ids[n].tolist() == generated[0, 1:].tolist()
        assert res.target_source == "decoded"
    finally:
        with torch.no_grad():
            model.text_model.lm_head.weight[:2] = saved


def test_bad_targets(model, poses) -> None:
    attributor = SequenceAttributor(model)
    with pytest.raises(ValueError, match="targets has 1 entries but poses has 2"):
        attributor.attribute(poses, ["hello"])
    with pytest.raises(ValueError, match="sample 1: the target sequence is empty"):
        attributor.attribute(poses, [torch.tensor([4, 1]), torch.tensor([0, 0])])
    with pytest.raises(TypeError, match="targets must be"):
        attributor.attribute(poses, ["hello", 3])


def test_engine_folds_batch_norm_and_still_matches_captum(model, poses) -> None:
    from captum.attr import IntegratedGradients as CaptumIG

    from nmmfast.attribution import IntegratedGradients

    model = copy.deepcopy(model).double()
    gen = torch.Generator().manual_seed(5)
    with torch.no_grad():  # trained-looking batch norms, so folding changes the weights
        for sub in model.modules():
            if isinstance(sub, torch.nn.BatchNorm2d):
                sub.running_mean.uniform_(-0.5, 0.5, generator=gen)
                sub.running_var.uniform_(0.5, 2.0, generator=gen)
                sub.weight.uniform_(0.5, 1.5, generator=gen)
                sub.bias.uniform_(-0.5, 0.5, generator=gen)
    x = poses[0].double()
    target = model.tokenize_targets(["you go home now"])
    seen = []

    def forward(batch, mask, rows, ids):
        seen.append(model.pose_encoder.batch_norm_is_folded)
        return model.sequence_log_prob(batch, mask, ids)

    with model.stop_gradient_lifted():
        ours = IntegratedGradients(forward, model=model).attribute(
            [x], additional_forward_args=(target,), n_steps=6, batch_rows=4
        )

        def captum_forward(batch, ids):
            mask = torch.ones(batch.shape[:2], dtype=torch.bool)
            return model.sequence_log_prob(batch, mask, ids.expand(batch.shape[0], -1))

        theirs = CaptumIG(captum_forward).attribute(
            x[None], additional_forward_args=(target,), n_steps=6, method="gausslegendre"
        )
    assert seen and all(seen)  # every pass ran the folded encoder
    assert not model.pose_encoder.batch_norm_is_folded  # and the model got its own back
    scale = float(theirs.abs().max())
    assert float((ours.attributions[0] - theirs[0]).abs().max()) <= 1e-5 * scale


def test_per_token_tolerance_refines_each_sample_until_every_token_closes(model, poses) -> None:
    model = copy.deepcopy(model).double()
    poses = [p.double() for p in poses]
    attributor = SequenceAttributor(model)
    refs = ["you go home now", "hello"]
    tolerance = 0.01
    res = attributor.attribute(
        poses, refs, n_steps=3, method="simpson", per_token=True, tolerance=tolerance,
        max_steps=257, batch_rows=64,
    )  # fmt: skip
    ig = res.ig
    assert bool(ig.converged.all()) and int(ig.n_steps.max()) > 3  # some sample needed more
    for n, length in enumerate(res.token_lengths()):
        gap = (ig.f_input[n, :length] - ig.f_baseline[n, :length]).abs()
        delta = ig.delta[n, :length].abs()
        assert bool(((delta <= tolerance * gap) | (delta <= 1e-4)).all()), (n, delta, gap)
        # each sample's rows are those of a plain run at the steps it ended with
        alone = attributor.attribute(
            [poses[n]], [refs[n]], n_steps=int(ig.n_steps[n]), method="simpson",
            per_token=True, batch_rows=64,
        )  # fmt: skip
        torch.testing.assert_close(res.attributions[n][:length], alone.attributions[0][:length])
        torch.testing.assert_close(ig.delta[n, :length], alone.ig.delta[0, :length])
    # a budget too small to close every token says so
    capped = attributor.attribute(
        poses, refs, n_steps=3, method="simpson", per_token=True, tolerance=1e-9, max_steps=5,
        batch_rows=64,
    )  # fmt: skip
    assert not bool(capped.ig.converged.all()) and int(capped.ig.n_steps.max()) == 5
