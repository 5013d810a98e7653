"""Target log-probabilities equal the text model's own forward, for the text models users bring.

Each text model is built here, saved as a user's directory would be (config.json, weights, a
SentencePiece `spiece.model` trained here with its tokenizer_config.json) and loaded through
`build_model("unisign-base", text_model=DIR)`:

- an MT5 with an untied head and `tie_word_embeddings: false` in config.json, as every mT5 and
  Uni-Sign checkpoint (its forward never rescales the decoder states);
- a T5 with tied embeddings (its forward rescales them by d_model^-0.5);
- a T5 with an untied head (T5 v1.1 style: no rescaling).
"""

from __future__ import annotations

import json

import pytest
import torch
from _text_models import KINDS, save_text_model, sentencepiece_model

from nmmfast.model import build_model, load_model, load_unisign_checkpoint, save_model
from nmmfast.model.text_head import TextModelMismatch, untie_where_state_differs

TEXTS = ["the man is happy", "we find a very big apple today", "where", "you not go to school"]


@pytest.fixture(scope="module")
def text_model_dirs(tmp_path_factory):
    spiece = sentencepiece_model()
    dirs = {}
    for kind in KINDS:
        dirs[kind] = tmp_path_factory.mktemp(kind)
        save_text_model(dirs[kind], kind, spiece)
    return dirs


def _model(directory, dtype=torch.float64):
    torch.manual_seed(1)
    return build_model("unisign-base", text_model=directory).to(dtype).eval()


def _ragged_batch(model, dtype=torch.float64):
    generator = torch.Generator().manual_seed(2)
    poses = torch.randn(len(TEXTS), 9, 69, 3, generator=generator, dtype=dtype)
    mask = torch.ones(len(TEXTS), 9, dtype=torch.bool)
    for row, frames in enumerate((9, 4, 7, 2)):
        mask[row, frames:] = False
    targets = model.tokenize_targets(TEXTS)
    lengths = (targets != model.pad_token_id).sum(1)
    assert len(set(lengths.tolist())) == len(TEXTS)  # ragged and padded
    return poses, mask, targets


def _hf_token_log_probs(model, poses, mask, targets):
    """log_softmax of the text model's own forward logits at the targets, 0 at padding."""
    inputs, attention = model.encoder_inputs(model.pose_embeddings(poses, mask), mask)
    labels = targets.masked_fill(targets == model.pad_token_id, -100)
    logits = model.text_model(inputs_embeds=inputs, attention_mask=attention, labels=labels).logits
    values = logits.log_softmax(-1).gather(2, targets[..., None])[..., 0]
    return values.masked_fill(labels == -100, 0.0)


@pytest.mark.parametrize("kind", KINDS)
def test_target_log_probs_equal_the_text_models_own_forward(text_model_dirs, kind):
    model = _model(text_model_dirs[kind])
    head = model.text_model.get_output_embeddings().weight
    embeddings = model.text_model.get_input_embeddings().weight
    assert (head.data_ptr() == embeddings.data_ptr()) == (kind == "t5-tied")
    poses, mask, targets = _ragged_batch(model)
    with torch.no_grad():
        expected = _hf_token_log_probs(model, poses, mask, targets)
        tokens = model.token_log_probs(poses, mask, targets)
        one_at_a_time = model.token_log_probs(poses, mask, targets, chunk_tokens=1)
        sequences = model.sequence_log_prob(poses, mask, targets)
    assert tokens.dtype == torch.float64
    torch.testing.assert_close(tokens, expected, rtol=0, atol=1e-6)
    torch.testing.assert_close(sequences, expected.sum(1), rtol=0, atol=1e-6)
    torch.testing.assert_close(one_at_a_time, tokens, rtol=0, atol=1e-12)
    # the values are far from uniform: a misplaced 1/sqrt(d_model) would show
    assert expected[expected != 0].std() > 0.3


@pytest.mark.parametrize("kind", KINDS)
def test_beam_scores_agree_with_sequence_log_prob(text_model_dirs, kind):
    model = _model(text_model_dirs[kind])
    poses, mask, _ = _ragged_batch(model)
    with torch.no_grad():
        inputs, attention = model.encoder_inputs(model.pose_embeddings(poses, mask), mask)
        out = model.text_model.generate(
            inputs_embeds=inputs,
            attention_mask=attention,
            num_beams=4,
            max_new_tokens=6,
            do_sample=False,
            length_penalty=1.0,
            suppress_tokens=[model.pad_token_id],  # applied after the log-softmax
            output_scores=True,
            return_dict_in_generate=True,
        )
        generated = out.sequences[:, 1:]  # without the decoder start token
        lengths = (generated != model.pad_token_id).sum(1)
        ours = model.sequence_log_prob(poses, mask, generated)
    # transformers keeps beam scores in float32 whatever the model's dtype
    scores = out.sequences_scores.double() * lengths
    torch.testing.assert_close(ours, scores, rtol=1e-6, atol=1e-5)


@pytest.mark.parametrize("kind", KINDS)
def test_save_and_load_keep_the_head_and_the_function(tmp_path, text_model_dirs, kind):
    model = _model(text_model_dirs[kind], torch.float32)
    save_model(model, tmp_path / "run")
    loaded = load_model(tmp_path / "run")
    head = loaded.text_model.get_output_embeddings().weight
    embeddings = loaded.text_model.get_input_embeddings().weight
    assert (head.data_ptr() == embeddings.data_ptr()) == (kind == "t5-tied")
    torch.testing.assert_close(head, model.text_model.get_output_embeddings().weight)
    assert loaded.decoder_output_scale == model.decoder_output_scale
    poses, mask, targets = _ragged_batch(model, torch.float32)
    with torch.no_grad():
        torch.testing.assert_close(
            loaded.sequence_log_prob(poses, mask, targets),
            model.sequence_log_prob(poses, mask, targets),
        )


def test_a_saved_model_whose_rescaling_changed_is_refused(tmp_path, text_model_dirs):
    model = _model(text_model_dirs["mt5-untied"], torch.float32)
    save_model(model, tmp_path)
    description = json.loads((tmp_path / "model_config.json").read_text())
    description["decoder_output_scale"] = 32**-0.5  # as if saved where MT5 rescaled
    (tmp_path / "model_config.json").write_text(json.dumps(description))
    with pytest.raises(TextModelMismatch, match=r"model_config\.json: saved with decoder states"):
        load_model(tmp_path)


def test_uni_sign_checkpoint_with_an_untied_head_loads_into_a_tied_model(text_model_dirs):
    from transformers import AutoModelForSeq2SeqLM

    from nmmfast.model._reference import ReferencePoseEncoder

    source = _model(text_model_dirs["mt5-untied"], torch.float32)
    # the same MT5 built from its config, as transformers 5 builds it: head and embeddings tied
    tied = AutoModelForSeq2SeqLM.from_config(source.text_model.config)
    assert tied.lm_head.weight is tied.shared.weight
    target = build_model("unisign-base", text_model=tied, tokenizer=source.tokenizer)
    reference = ReferencePoseEncoder(source.graph, source.config.pose, source.d_model)
    checkpoint = {
        "mt5_model." + k[len("text_model.") :]: v
        for k, v in source.state_dict().items()
        if k.startswith("text_model.")
    }
    checkpoint.update(reference.state_dict())
    load_unisign_checkpoint({"model": checkpoint}, target)
    assert target.text_model.lm_head.weight is not target.text_model.shared.weight
    torch.testing.assert_close(target.text_model.lm_head.weight, source.text_model.lm_head.weight)
    torch.testing.assert_close(target.text_model.shared.weight, source.text_model.shared.weight)
    poses, mask, targets = _ragged_batch(target, torch.float32)
    with torch.no_grad():
        torch.testing.assert_close(
            target.token_log_probs(poses, mask, targets),
            _hf_token_log_probs(target, poses, mask, targets),
            rtol=1e-5,
            atol=1e-5,
        )


def test_untie_where_state_differs_keeps_equal_names_shared():
    embedding = torch.nn.Embedding(5, 3)
    head = torch.nn.Linear(3, 5, bias=False)
    head.weight = embedding.weight
    module = torch.nn.ModuleDict({"embed": embedding, "head": head})
    same = {"embed.weight": torch.ones(5, 3), "head.weight": torch.ones(5, 3)}
    assert untie_where_state_differs(module, same) == []
    assert module["head"].weight is module["embed"].weight
    different = {"embed.weight": torch.ones(5, 3), "head.weight": torch.zeros(5, 3)}
    assert untie_where_state_differs(module, different) == ["head.weight"]
    module.load_state_dict(different)
    assert module["embed"].weight.sum() == 15 and module["head"].weight.sum() == 0


def test_a_text_model_with_something_after_its_head_is_refused(text_model_dirs):
    """A forward that adds a bias after the head (as BART's final_logits_bias) is not what
    nmmfast's head path computes: building on it is refused."""
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    directory = text_model_dirs["mt5-untied"]
    text_model = AutoModelForSeq2SeqLM.from_pretrained(str(directory))
    original = type(text_model).forward
    bias = torch.randn(text_model.config.vocab_size)

    def forward_with_logit_bias(self, *args, **kwargs):
        out = original(self, *args, **kwargs)
        out.logits = out.logits + bias
        return out

    text_model.forward = forward_with_logit_bias.__get__(text_model)
    tokenizer = AutoTokenizer.from_pretrained(str(directory))
    with pytest.raises(TextModelMismatch, match="differ from its own forward"):
        build_model("unisign-base", text_model=text_model, tokenizer=tokenizer)


def test_the_tokenizer_is_the_directorys_sentencepiece(text_model_dirs):
    model = _model(text_model_dirs["mt5-untied"], torch.float32)
    assert type(model.tokenizer).__name__ == "T5Tokenizer"
    ids = model.tokenize_targets(TEXTS)
    assert model.decode(ids) == TEXTS
