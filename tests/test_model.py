"""Model: exact Uni-Sign sizes, the fast GCN against the einsum port, checkpoint key map,
stop-gradient switch, batch invariance, target log-probabilities, decoding and save/load."""

from __future__ import annotations

import math

import pytest
import torch

from nmmfast.model import (
    CONFIGS,
    PoseEncoder,
    PoseEncoderConfig,
    WordTokenizer,
    build_model,
    load_model,
    load_unisign_checkpoint,
    pose_graph_from_layout,
    save_model,
)
from nmmfast.model._reference import ReferencePoseEncoder
from nmmfast.model.stgcn import FoldedGraphConv, GraphConv, part_adjacency

SMALL = PoseEncoderConfig(
    embed_channels=8, spatial_channels=(8, 12, 16), temporal_channels=(16, 16)
)
TEXTS = ["Is the man happy?", "The man is not happy.", "MAN HAPPY", "WE FIND APPLE"]


@pytest.fixture(scope="module")
def graph():
    return pose_graph_from_layout("unisign69")


@pytest.fixture(scope="module")
def tokenizer():
    return WordTokenizer.build(["Translate sign language video to English: ", *TEXTS])


@pytest.fixture()
def tiny(tokenizer):
    torch.manual_seed(0)
    return build_model("tiny", tokenizer=tokenizer).eval()


class _Holder(torch.nn.Module):
    def __init__(self, encoder: PoseEncoder) -> None:
        super().__init__()
        self.pose_encoder = encoder


def _randomize(module: torch.nn.Module, seed: int = 0) -> None:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in module.parameters():
            param.copy_(torch.randn(param.shape, generator=generator) * 0.3)
        for sub in module.modules():
            if isinstance(sub, torch.nn.BatchNorm2d):
                sub.running_mean.copy_(torch.randn(sub.running_mean.shape, generator=generator))
                sub.running_var.copy_(torch.rand(sub.running_var.shape, generator=generator) + 0.5)


def _ported(graph, config=SMALL, d_model=12):
    reference = ReferencePoseEncoder(graph, config, d_model)
    _randomize(reference)
    ours = PoseEncoder(graph, dict_config(config, pad_invariant=False), d_model)
    load_unisign_checkpoint({"model": reference.state_dict()}, _Holder(ours))
    return reference, ours


def dict_config(config: PoseEncoderConfig, **changes) -> PoseEncoderConfig:
    from dataclasses import replace

    return replace(config, **changes)


def test_unisign_base_pose_side_has_the_original_parameter_count(graph):
    encoder = PoseEncoder(graph, PoseEncoderConfig(), d_model=768)
    count = sum(p.numel() for p in encoder.parameters())
    # Per part: 1,515,648 + 12 V² in the two chains + Linear(3, 64); hands counted once.
    per_part = {
        name: 1_515_648 + 12 * v * v + 256 for name, v in (("body", 9), ("hand", 21), ("face", 18))
    }
    expected = sum(per_part.values()) + 1024 + (1024 * 768 + 768)
    assert count == expected == 5_346_088


@pytest.mark.slow
def test_unisign_base_total_matches_the_released_checkpoint(graph):
    from transformers import MT5Config, MT5ForConditionalGeneration

    # mT5-base's layers, built on the meta device with an 8-token vocabulary; the two
    # 250,112 × 768 tables (shared embedding, untied lm_head in mT5-base) are added back.
    small_vocab, vocab, width = 8, 250_112, 768
    mt5_base = MT5Config(
        vocab_size=small_vocab,
        d_model=width,
        d_kv=64,
        d_ff=2048,
        num_layers=12,
        num_decoder_layers=12,
        num_heads=12,
        feed_forward_proj="gated-gelu",
    )
    with torch.device("meta"):
        text = MT5ForConditionalGeneration(mt5_base)
    layers = sum(
        p.numel()
        for name, p in text.named_parameters()
        if "shared" not in name and "lm_head" not in name and "embed_tokens" not in name
    )
    text_count = layers + 2 * vocab * width
    pose_count = sum(p.numel() for p in PoseEncoder(graph, PoseEncoderConfig(), 768).parameters())
    assert text_count + pose_count == 587_747_368  # "n_parameters: 587.747368" of Uni-Sign runs


def test_unisign_base_from_a_local_mt5_directory(tmp_path, tokenizer):
    from transformers import MT5Config, MT5ForConditionalGeneration

    config = MT5Config(
        vocab_size=len(tokenizer),
        d_model=48,
        d_kv=8,
        d_ff=64,
        num_layers=1,
        num_decoder_layers=1,
        num_heads=2,
        decoder_start_token_id=0,
    )
    MT5ForConditionalGeneration(config).save_pretrained(tmp_path)
    model = build_model("unisign-base", text_model=tmp_path, tokenizer=tokenizer)
    assert model.d_model == 48
    assert model.pose_encoder.proj.weight.shape == (48, 1024)
    assert model.count_parameters("pose") == 5_346_088 - 787_200 + 1024 * 48 + 48
    with pytest.raises(ValueError, match="needs text_model"):
        build_model("unisign-base")


def test_fast_gcn_matches_the_einsum_formulation():
    torch.manual_seed(0)
    adjacency = part_adjacency(5, [(0, 1), (1, 2), (2, 3), (3, 4)]) + 0.1 * torch.rand(2, 5, 5)
    gcn = GraphConv(6, 7, adjacency).double()
    x = torch.randn(3, 4, 5, 6, dtype=torch.float64, requires_grad=True)  # [N, T, V, C]
    ours = gcn.aggregate(x)
    # Uni-Sign: 1×1 conv to K·C_out, view (N, K, C, T, V), einsum nkctv,kvw->nctw.
    conv = torch.nn.functional.conv2d(
        x.permute(0, 3, 1, 2), gcn.conv.weight[:, :, None, None], gcn.conv.bias
    )
    conv = conv.view(3, 2, 7, 4, 5)
    reference = torch.einsum("nkctv,kvw->nctw", conv, gcn.A).permute(0, 2, 3, 1)
    torch.testing.assert_close(ours, reference, rtol=1e-12, atol=1e-12)
    grad = torch.randn_like(ours)
    ours_grads = torch.autograd.grad(ours, (x, gcn.A, gcn.conv.weight), grad)
    reference_grads = torch.autograd.grad(reference, (x, gcn.A, gcn.conv.weight), grad)
    for a, b in zip(ours_grads, reference_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("frames", [1, 4])
def test_folded_gcn_equals_the_eval_mode_gcn(frames):
    generator = torch.Generator().manual_seed(3)
    adjacency = part_adjacency(6, [(0, 1), (1, 2), (2, 3), (1, 4), (4, 5)])
    adjacency = adjacency + 0.2 * torch.rand(2, 6, 6, generator=generator)
    gcn = GraphConv(5, 7, adjacency).double()
    with torch.no_grad():
        gcn.conv.weight.normal_(generator=generator)
        gcn.conv.bias.normal_(generator=generator)
        gcn.bn.running_mean.normal_(generator=generator)
        gcn.bn.running_var.uniform_(0.5, 2.0, generator=generator)
        gcn.bn.weight.uniform_(0.5, 1.5, generator=generator)
        gcn.bn.bias.normal_(generator=generator)
    gcn.eval()
    folded = FoldedGraphConv(gcn)
    assert not list(folded.parameters())  # constants only: gradients flow to the input alone
    x = torch.randn(3, frames, 6, 5, dtype=torch.float64, generator=generator, requires_grad=True)
    expected = gcn(x)
    ours = folded(x)
    torch.testing.assert_close(ours, expected, rtol=1e-12, atol=1e-12)
    grad = torch.randn(ours.shape, dtype=torch.float64, generator=generator)
    (ours_grad,) = torch.autograd.grad(ours, x, grad)
    (expected_grad,) = torch.autograd.grad(expected, x, grad)
    torch.testing.assert_close(ours_grad, expected_grad, rtol=1e-12, atol=1e-12)
    with pytest.raises(RuntimeError, match="eval mode"):
        FoldedGraphConv(gcn.train())


def _backward_nodes(tensor: torch.Tensor) -> set[str]:
    seen, names, stack = set(), set(), [tensor.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        names.add(type(node).__name__)
        stack.extend(next_node for next_node, _ in node.next_functions)
    return names


@pytest.mark.parametrize("train", [True, False])
def test_gcn_backward_copies_no_activation_back(train):
    """The ReLU runs in place on the batch norm's output: on a permuted view of it, autograd
    would add a CopySlices node that copies the whole activation back in every backward."""
    gcn = GraphConv(6, 7, part_adjacency(5, [(0, 1), (1, 2)])).train(train)
    x = torch.randn(3, 4, 5, 6, requires_grad=True)
    y = gcn(x)
    assert "CopySlices" not in _backward_nodes(y)
    expected = torch.relu(gcn.bn(gcn.aggregate(x).permute(0, 3, 1, 2))).permute(0, 2, 3, 1)
    torch.testing.assert_close(y, expected)


def test_part_adjacency_is_column_normalised():
    adjacency = part_adjacency(3, [(0, 1), (1, 2)])
    assert adjacency.shape == (2, 3, 3)
    torch.testing.assert_close(adjacency.sum((0, 1)), torch.ones(3))  # columns of (I + E) D⁻¹
    assert torch.equal(adjacency[0], torch.diag(adjacency[0].diagonal()))
    # column 1 has three entries (self, 0, 2), column 0 two (self, 1)
    assert adjacency[1, 0, 2] == 0 and adjacency[1, 0, 1] == pytest.approx(1 / 3)
    assert adjacency[1, 1, 0] == pytest.approx(1 / 2) and adjacency[0, 1, 1] == pytest.approx(1 / 3)


@pytest.mark.parametrize("train", [False, True])
def test_encoder_matches_the_uni_sign_port_through_the_key_map(graph, train):
    reference, ours = _ported(graph)
    reference.train(train)
    ours.train(train)
    poses = torch.randn(2, 9, 69, 3, requires_grad=True)
    expected = reference(poses)
    got = ours(poses)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
    grad_expected = torch.autograd.grad(expected.square().sum(), poses)[0]
    grad_got = torch.autograd.grad(got.square().sum(), poses)[0]
    torch.testing.assert_close(grad_got, grad_expected, rtol=1e-4, atol=1e-5)


def test_checkpoint_loader_is_strict_and_lists_keys(graph):
    reference, ours = _ported(graph)
    state = dict(reference.state_dict())
    state["rgb_support_backbone.weight"] = torch.zeros(1)
    with pytest.raises(ValueError, match="rgb_support_backbone.weight"):
        load_unisign_checkpoint(state, _Holder(ours))
    report = load_unisign_checkpoint(state, _Holder(ours), strict=False)
    assert report["unmatched"] == ["rgb_support_backbone.weight"]
    partial = {k: v for k, v in reference.state_dict().items() if k != "part_para"}
    with pytest.raises(ValueError, match="pose_encoder.part_bias"):
        load_unisign_checkpoint(partial, _Holder(ours))
    split_hands = dict(reference.state_dict())
    split_hands["proj_linear.left.bias"] = split_hands["proj_linear.left.bias"] + 1
    with pytest.raises(ValueError, match="both map to pose_encoder.input_proj.hand.bias"):
        load_unisign_checkpoint(split_hands, _Holder(ours))


def test_checkpoint_file_and_text_keys(tmp_path, tokenizer):
    torch.manual_seed(0)
    model = build_model("tiny", tokenizer=tokenizer)
    ours = model.state_dict()
    theirs = {
        "mt5_model." + k[len("text_model.") :]: v
        for k, v in ours.items()
        if k.startswith("text_model.")
    }
    reference = ReferencePoseEncoder(model.graph, model.config.pose, model.d_model)
    _randomize(reference)
    theirs.update(reference.state_dict())
    torch.save({"model": theirs}, tmp_path / "unisign.pth")
    fresh = build_model("tiny", tokenizer=tokenizer)
    load_unisign_checkpoint(tmp_path / "unisign.pth", fresh)
    torch.testing.assert_close(fresh.pose_encoder.part_bias, reference.part_para)
    torch.testing.assert_close(fresh.text_model.lm_head.weight, model.text_model.lm_head.weight)


def test_stop_gradient_lift_changes_gradients_not_values(graph):
    torch.manual_seed(0)
    encoder = PoseEncoder(graph, SMALL, 12)
    poses = torch.randn(1, 6, 69, 3, requires_grad=True)
    body = list(graph.positions["body"])
    stopped = encoder.part_features(poses)["left"]
    grad_stopped = torch.autograd.grad(stopped.sum(), poses)[0]
    with encoder.stop_gradient_lifted():
        lifted = encoder.part_features(poses)["left"]
        grad_lifted = torch.autograd.grad(lifted.sum(), poses)[0]
    assert encoder.stop_gradient  # restored on exit
    assert torch.equal(stopped, lifted)
    assert grad_stopped[:, :, body].abs().max() == 0
    assert grad_lifted[:, :, body].abs().max() > 0


def test_padded_batch_gives_the_same_embeddings_as_a_single_sample(tiny):
    torch.manual_seed(1)
    short, long = torch.randn(1, 5, 69, 3), torch.randn(1, 9, 69, 3)
    batch = torch.cat([torch.cat([short, short[:, -1:].expand(1, 4, 69, 3)], 1), long])
    mask = torch.tensor([[True] * 5 + [False] * 4, [True] * 9])
    with torch.no_grad():
        alone = tiny.pose_embeddings(short, torch.ones(1, 5, dtype=torch.bool))
        batched = tiny.pose_embeddings(batch, mask)
    torch.testing.assert_close(batched[0, :5], alone[0], rtol=1e-5, atol=1e-6)


def test_sequence_log_prob_matches_full_log_softmax(tiny):
    torch.manual_seed(2)
    poses, mask = torch.randn(2, 7, 69, 3), torch.ones(2, 7, dtype=torch.bool)
    mask[1, 5:] = False
    targets = tiny.tokenize_targets(["Is the man happy?", "MAN HAPPY"])
    assert (targets[1] == 0).any()  # the second row is padded
    with torch.no_grad():
        got = tiny.sequence_log_prob(poses, mask, targets)
        inputs, attention = tiny.encoder_inputs(tiny.pose_embeddings(poses, mask), mask)
        labels = targets.masked_fill(targets == 0, -100)
        logits = tiny.text_model(
            inputs_embeds=inputs, attention_mask=attention, labels=labels
        ).logits
        log_probs = logits.log_softmax(-1).gather(2, targets[..., None])[..., 0]
        expected = (log_probs * (labels != -100)).sum(1)
        as_minus_100 = tiny.sequence_log_prob(poses, mask, labels)
        longer = tiny.sequence_log_prob(poses, mask, torch.nn.functional.pad(targets, (0, 3)))
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(as_minus_100, got)
    torch.testing.assert_close(longer, got)
    assert (got < 0).all()


def test_loss_is_label_smoothed_cross_entropy_over_real_tokens(tiny):
    torch.manual_seed(3)
    poses, mask = torch.randn(2, 6, 69, 3), torch.ones(2, 6, dtype=torch.bool)
    targets = tiny.tokenize_targets(["The man is not happy.", "MAN HAPPY"])
    labels = targets.masked_fill(targets == 0, -100)
    with torch.no_grad():
        plain = tiny.loss(poses, mask, targets, label_smoothing=0.0)
        token = tiny.token_log_probs(poses, mask, targets)
        smoothed = tiny.loss(poses, mask, targets)
        inputs, attention = tiny.encoder_inputs(tiny.pose_embeddings(poses, mask), mask)
        logits = tiny.text_model(
            inputs_embeds=inputs, attention_mask=attention, labels=labels
        ).logits
        expected = torch.nn.functional.cross_entropy(
            logits.flatten(0, 1), labels.flatten(), ignore_index=-100, label_smoothing=0.2
        )
    torch.testing.assert_close(plain, -token.sum() / (targets != 0).sum())
    torch.testing.assert_close(smoothed, expected)  # the config's 0.2, as Uni-Sign


def test_generate_is_deterministic_and_decodes_to_strings(tiny):
    torch.manual_seed(4)
    poses, mask = torch.randn(2, 6, 69, 3), torch.ones(2, 6, dtype=torch.bool)
    first = tiny.generate(poses, mask, num_beams=3, max_new_tokens=5)
    second = tiny.generate(poses, mask, num_beams=3, max_new_tokens=5)
    assert torch.equal(first, second)
    assert first.shape[0] == 2 and first.shape[1] <= 6
    texts = tiny.decode(first)
    assert len(texts) == 2 and all(isinstance(t, str) for t in texts)


def test_word_tokenizer_round_trip(tmp_path, tokenizer):
    ids = tokenizer.encode("Is the man happy?")
    assert ids[-1] == tokenizer.eos_token_id and tokenizer.unk_token_id not in ids
    assert tokenizer.decode(ids) == "Is the man happy?"
    assert tokenizer.decode(tokenizer.encode("the zebra")) == "the <unk>"
    batch = tokenizer(["MAN HAPPY", "Is the man happy?"], max_length=4)
    assert batch["input_ids"].shape == (2, 4) and batch["input_ids"][1, -1] == 1
    tokenizer.save_pretrained(tmp_path)
    assert WordTokenizer.from_pretrained(tmp_path).vocab == tokenizer.vocab


def test_save_and_load_reproduce_the_model(tmp_path, tiny):
    save_model(tiny, tmp_path)
    loaded = load_model(tmp_path)
    poses, mask = torch.randn(1, 4, 69, 3), torch.ones(1, 4, dtype=torch.bool)
    targets = tiny.tokenize_targets(["MAN HAPPY"])
    with torch.no_grad():
        torch.testing.assert_close(
            loaded.sequence_log_prob(poses, mask, targets),
            tiny.sequence_log_prob(poses, mask, targets),
        )
    assert loaded.config == tiny.config


def test_bad_inputs_are_named(tiny):
    with pytest.raises(ValueError, match=r"poses must be \[B, T, J, 3\]"):
        tiny.pose_embeddings(torch.zeros(2, 3, 69), torch.ones(2, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="69 joints"):
        tiny.pose_embeddings(torch.zeros(1, 3, 70, 3), torch.ones(1, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="unknown model config"):
        build_model("huge")


def test_sinusoidal_pose_positions_are_added_to_the_pose_embeddings(tokenizer):
    from dataclasses import replace

    from nmmfast.model.unisign import sinusoidal_positions

    torch.manual_seed(0)
    with_positions = build_model("tiny", tokenizer=tokenizer).eval()
    assert with_positions.config.pose_positions == "sinusoidal"
    without = build_model(replace(CONFIGS["tiny"], pose_positions="none"), tokenizer=tokenizer)
    embeddings = torch.randn(2, 7, with_positions.d_model)
    mask = torch.ones(2, 7, dtype=torch.bool)
    prompt = len(with_positions.prompt_ids)
    a, _ = with_positions.encoder_inputs(embeddings, mask)
    b, _ = without.encoder_inputs(embeddings, mask)
    table = sinusoidal_positions(7, with_positions.d_model, "cpu")
    torch.testing.assert_close(a[:, prompt:], embeddings + table)
    torch.testing.assert_close(b[:, prompt:], embeddings)
    assert table[0, 0] == 0 and table[0, 1] == 1 and table[3, 0] == pytest.approx(math.sin(3))
    with pytest.raises(ValueError, match="pose_positions"):
        build_model(replace(CONFIGS["tiny"], pose_positions="learned"), tokenizer=tokenizer)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_folded_batch_norm_computes_the_same_function(graph, dtype, seed):
    generator = torch.Generator().manual_seed(seed)
    sizes = [SMALL, PoseEncoderConfig()] if dtype == torch.float64 else [SMALL]
    config = sizes[seed % len(sizes)]
    encoder = PoseEncoder(graph, config, 12).to(dtype)
    _randomize(encoder, seed)
    with torch.no_grad():  # BN with a non-trivial affine part, as after training
        for sub in encoder.modules():
            if isinstance(sub, torch.nn.BatchNorm2d):
                sub.weight.uniform_(0.5, 1.5, generator=generator)
                sub.bias.uniform_(-0.5, 0.5, generator=generator)
    encoder.eval()
    batch = 1 + seed
    frames = int(torch.randint(1, 12, (1,), generator=generator))
    poses = torch.randn(batch, frames, 69, 3, generator=generator, dtype=dtype)
    mask = torch.ones(batch, frames, dtype=torch.bool)
    mask[0, max(1, frames // 2) :] = False  # a ragged row
    poses.requires_grad_(True)
    before = {k: v.clone() for k, v in encoder.state_dict().items()}
    plain = encoder(poses, mask)
    (grad_plain,) = torch.autograd.grad(plain.square().sum(), poses)
    folded = encoder.folded_copy()
    assert folded.batch_norm_is_folded and folded.folded_copy() is folded
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    out = folded(poses, mask)
    (grad_folded,) = torch.autograd.grad(out.square().sum(), poses)
    rel = 1e-10 if dtype == torch.float64 else 1e-4  # float32: rounding of the folded weights
    for ours, theirs in ((out, plain), (grad_folded, grad_plain)):
        torch.testing.assert_close(
            ours, theirs, rtol=rel, atol=rel * float(theirs.detach().abs().max())
        )
    for key, value in encoder.state_dict().items():  # the source encoder is untouched
        assert torch.equal(value, before[key]), key


def test_batch_norm_folded_swaps_the_encoder_for_the_block_only(tiny):
    poses = torch.randn(2, 7, 69, 3)
    mask = torch.ones(2, 7, dtype=torch.bool)
    original = tiny.pose_encoder
    with torch.no_grad():
        plain = tiny.pose_embeddings(poses, mask)
        with tiny.batch_norm_folded():
            assert tiny.pose_encoder is not original and tiny.pose_encoder.batch_norm_is_folded
            with tiny.batch_norm_folded():  # nesting keeps the folded copy
                folded = tiny.pose_embeddings(poses, mask)
    assert tiny.pose_encoder is original and not original.batch_norm_is_folded
    torch.testing.assert_close(folded, plain, rtol=1e-5, atol=1e-6)
    tiny.train()
    with pytest.raises(RuntimeError, match="eval mode"):
        with tiny.batch_norm_folded():
            pass
    assert tiny.pose_encoder is original


def test_projection_init_scale_is_a_config_setting(graph):
    torch.manual_seed(0)
    uni_sign = PoseEncoder(graph, SMALL, 64)
    scaled = PoseEncoder(graph, dict_config(SMALL, projection_init_std=2.0), 64)
    assert float(uni_sign.proj.weight.detach().std()) == pytest.approx(0.02, rel=0.1)
    truncated = 2.0 * 0.88  # std of a normal truncated at ±2σ
    assert float(scaled.proj.weight.detach().std()) == pytest.approx(truncated, rel=0.1)
    assert float(scaled.proj.weight.detach().abs().max()) <= 4.0
    assert float(scaled.input_proj["body"].weight.detach().std()) == pytest.approx(0.02, rel=0.3)
    assert CONFIGS["unisign-base"].pose.projection_init_std is None  # Uni-Sign's own init
