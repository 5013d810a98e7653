"""The Uni-Sign pose→text model: pose encoder + prompt + T5/mT5 encoder-decoder.

`build_model` makes the `unisign-base` (local mT5 directory) and `tiny` (small T5 + word-level
tokenizer) configs; the model computes the training loss, per-token and per-sequence target
log-probabilities for attribution, beam-search decoding, and saves/loads itself with its tokenizer.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from nmmfast.model.checkpoint import read_checkpoint
from nmmfast.model.log_probs import target_log_probs
from nmmfast.model.pose_encoder import (
    PoseEncoder,
    PoseEncoderConfig,
    PoseGraph,
    pose_graph_from_layout,
)
from nmmfast.model.text_head import (
    TextModelMismatch,
    check_target_log_probs,
    decoder_output_scale,
    untie_where_state_differs,
)
from nmmfast.model.tokenizer import FILE_NAME as WORD_TOKENIZER_FILE
from nmmfast.model.tokenizer import WordTokenizer

__all__ = [
    "CONFIGS",
    "ModelConfig",
    "UniSignModel",
    "build_model",
    "load_model",
    "save_model",
]

PROMPT_TEMPLATE = "Translate sign language video to {lang}: "
POSE_POSITIONS = ("none", "sinusoidal")
MODEL_FILE = "model.pt"
CONFIG_FILE = "model_config.json"


@dataclass(frozen=True)
class ModelConfig:
    """Everything that fixes the model's architecture (the text side of `unisign-base` comes from
    its mT5 directory; `text` holds the small T5's sizes for `tiny`)."""

    name: str
    layout: str = "unisign69"
    pose: PoseEncoderConfig = field(default_factory=PoseEncoderConfig)
    text: dict[str, Any] | None = None
    prompt_language: str = "English"
    max_target_tokens: int = 50
    max_frames: int = 256
    label_smoothing: float = 0.2
    # "sinusoidal" adds fixed sine/cosine frame positions to the pose embeddings. T5 has no
    # absolute positions and its cross-attention none at all; a pretrained mT5 copes, a small T5
    # trained from scratch learns frame order slowly without them (SynNMM control CSLR, 6 epochs:
    # dev WER 43 with, 89 without). Uni-Sign has none ("none").
    pose_positions: str = "none"

    def __post_init__(self) -> None:
        if self.pose_positions not in POSE_POSITIONS:
            raise ValueError(
                f"pose_positions must be one of {POSE_POSITIONS}, got {self.pose_positions!r}"
            )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        data = dict(data)
        pose = dict(data.pop("pose", {}))
        for key in ("spatial_channels", "temporal_channels"):
            if key in pose:
                pose[key] = tuple(pose[key])
        return cls(pose=PoseEncoderConfig(**pose), **data)


CONFIGS: dict[str, ModelConfig] = {
    # Uni-Sign's exact sizes: pose side 5,346,088 parameters with mT5-base (d_model 768).
    "unisign-base": ModelConfig(name="unisign-base"),
    # Small enough to train on SynNMM on 2 CPU cores: narrow pose side, at most 64 frames (random
    # sorted subsets in training, uniform at evaluation), a 2+2-layer T5 without dropout (a model
    # trained for a few epochs from scratch has nothing to regularise yet). Projection init std
    # 1.0: the pose embeddings start at the scale of the prompt's embeddings instead of far
    # below them (`PoseEncoderConfig.projection_init_std`). Figures behind both choices:
    # benchmarks/RESULTS.md, "The whole study".
    "tiny": ModelConfig(
        name="tiny",
        pose=PoseEncoderConfig(
            embed_channels=16,
            spatial_channels=(16, 32, 32),
            temporal_channels=(32, 32),
            projection_init_std=1.0,
        ),
        text={
            "d_model": 128,
            "d_ff": 256,
            "num_layers": 2,
            "num_decoder_layers": 2,
            "num_heads": 4,
            "d_kv": 32,
            "dropout_rate": 0.0,
            "feed_forward_proj": "relu",
        },
        max_frames=64,
        pose_positions="sinusoidal",
    ),
}


def sinusoidal_positions(frames: int, width: int, device: torch.device | str) -> torch.Tensor:
    """[frames, width] float32: sin on even, cos on odd channels, wavelengths 2π … 10000·2π."""
    position = torch.arange(frames, device=device, dtype=torch.float32)[:, None]
    rates = 10000.0 ** (-torch.arange(0, width, 2, device=device, dtype=torch.float32) / width)
    table = torch.zeros(frames, width, device=device)
    table[:, 0::2] = torch.sin(position * rates)
    table[:, 1::2] = torch.cos(position * rates[: width // 2])
    return table


def _resolve_config(config: str | ModelConfig) -> ModelConfig:
    if isinstance(config, ModelConfig):
        return config
    try:
        return CONFIGS[config]
    except KeyError:
        raise ValueError(f"unknown model config {config!r}; known: {sorted(CONFIGS)}") from None


class UniSignModel(nn.Module):
    """Pose encoder + text model. Poses are normalised [B, T, J, 3] in layout order (body, left
    hand, right hand, face); masks are [B, T] bool, True on real frames; targets are token ids
    [B, L] padded with the tokenizer's pad id or -100."""

    def __init__(
        self,
        config: ModelConfig,
        graph: PoseGraph,
        text_model: nn.Module,
        tokenizer: Any,
    ) -> None:
        super().__init__()
        self.config = config
        self.graph = graph
        self.tokenizer = tokenizer
        self.text_model = text_model
        self.d_model = int(text_model.config.d_model)
        self.pose_encoder = PoseEncoder(graph, config.pose, self.d_model)
        prompt = tokenizer([self.prompt_text], return_tensors="pt")["input_ids"][0]
        self.register_buffer("prompt_ids", prompt.long(), persistent=False)
        self.pad_token_id = int(tokenizer.pad_token_id)
        self.eos_token_id = int(tokenizer.eos_token_id)
        generation = getattr(text_model, "generation_config", None)
        if generation is not None:
            generation.decoder_start_token_id = int(text_model.config.decoder_start_token_id)
            generation.pad_token_id = self.pad_token_id
            generation.eos_token_id = self.eos_token_id
        # What the text model's forward applies between its decoder and its head, read off the
        # model itself (`nmmfast.model.text_head`); then proven on a probe.
        self.decoder_output_scale = decoder_output_scale(text_model)
        check_target_log_probs(self)

    @property
    def prompt_text(self) -> str:
        return PROMPT_TEMPLATE.format(lang=self.config.prompt_language)

    # ---- stop-gradient switch -------------------------------------------------------------
    def lift_stop_gradient(self, lifted: bool = True) -> None:
        """Let gradients flow through the body-context paths (forward values are unchanged)."""
        self.pose_encoder.stop_gradient = not lifted

    @contextlib.contextmanager
    def stop_gradient_lifted(self) -> Iterator[None]:
        with self.pose_encoder.stop_gradient_lifted():
            yield

    @contextlib.contextmanager
    def batch_norm_folded(self) -> Iterator[None]:
        """Within the block the pose encoder runs with its batch norms folded into the layers
        before them (eval mode only; `PoseEncoder.folded_copy`): the same outputs up to rounding,
        faster forward and backward. The model's own weights are untouched."""
        original = self.pose_encoder
        self.pose_encoder = original.folded_copy()
        try:
            yield
        finally:
            self.pose_encoder = original

    # ---- encoder side -----------------------------------------------------------------------
    def pose_embeddings(self, poses: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """poses [B, T, J, 3] float, mask [B, T] bool -> [B, T, d_model] (after the projection)."""
        return self.pose_encoder(poses, mask)

    def encoder_inputs(
        self, pose_embeddings: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Prompt embeddings + pose embeddings [B, P+T, d] and the attention mask [B, P+T]."""
        batch, frames, width = pose_embeddings.shape
        if self.config.pose_positions == "sinusoidal":
            positions = sinusoidal_positions(frames, width, pose_embeddings.device)
            pose_embeddings = pose_embeddings + positions.to(pose_embeddings.dtype)
        embed = self.text_model.get_input_embeddings()
        prompt = embed(self.prompt_ids).to(pose_embeddings.dtype)
        prompt = prompt.unsqueeze(0).expand(batch, -1, -1)
        inputs = torch.cat([prompt, pose_embeddings], dim=1)
        prompt_mask = torch.ones(batch, prompt.shape[1], dtype=torch.long, device=mask.device)
        return inputs, torch.cat([prompt_mask, mask.long()], dim=1)

    def encode(
        self,
        poses: torch.Tensor,
        mask: torch.Tensor,
        pose_embeddings: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Text-encoder states [B, P+T, d] and their attention mask [B, P+T]."""
        if pose_embeddings is None:
            pose_embeddings = self.pose_embeddings(poses, mask)
        inputs, attention = self.encoder_inputs(pose_embeddings, mask)
        states = self.text_model.get_encoder()(inputs_embeds=inputs, attention_mask=attention)[0]
        return states, attention

    # ---- decoder side -----------------------------------------------------------------------
    def _target_padding(self, target_ids: torch.Tensor) -> torch.Tensor:
        return (target_ids == -100) | (target_ids == self.pad_token_id)

    def _decoder_states(
        self, states: torch.Tensor, attention: torch.Tensor, target_ids: torch.Tensor
    ) -> torch.Tensor:
        """The output head's input at every target position, as the text model's forward
        computes it (teacher-forced: the decoder sees the start token and the targets shifted)."""
        labels = target_ids.masked_fill(self._target_padding(target_ids), self.pad_token_id)
        start = torch.full_like(labels[:, :1], int(self.text_model.config.decoder_start_token_id))
        decoder_input_ids = torch.cat([start, labels[:, :-1]], dim=1)
        hidden = self.text_model.get_decoder()(
            input_ids=decoder_input_ids,
            encoder_hidden_states=states,
            encoder_attention_mask=attention,
        )[0]
        if self.decoder_output_scale != 1.0:
            hidden = hidden * self.decoder_output_scale
        return hidden

    def loss(
        self,
        poses: torch.Tensor,
        mask: torch.Tensor,
        target_ids: torch.Tensor,
        label_smoothing: float | None = None,
    ) -> torch.Tensor:
        """Mean token cross-entropy (label smoothing from the config unless given)."""
        states, attention = self.encode(poses, mask)
        hidden = self._decoder_states(states, attention, target_ids)
        valid = ~self._target_padding(target_ids)
        logits = self.text_model.get_output_embeddings()(hidden[valid])
        smoothing = self.config.label_smoothing if label_smoothing is None else label_smoothing
        return F.cross_entropy(logits.float(), target_ids[valid], label_smoothing=smoothing)

    forward = loss

    def token_log_probs(
        self,
        poses: torch.Tensor,
        mask: torch.Tensor,
        target_ids: torch.Tensor,
        chunk_tokens: int = 4096,
        pose_embeddings: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """log p(y_l | y_<l, x) per target token, [B, L] float32 (float64 for a float64 model),
        0 at padding: the values of `log_softmax(text_model(...).logits)` at the targets.

        Only real target positions reach the vocabulary projection, in chunks of `chunk_tokens`,
        and each needs just logsumexp and the target logit: no [B, L, V] log-softmax, and the
        backward recomputes each chunk's logits instead of keeping them
        (`nmmfast.model.log_probs`).
        """
        states, attention = self.encode(poses, mask, pose_embeddings)
        return self.target_log_probs_from_states(states, attention, target_ids, chunk_tokens)

    def target_log_probs_from_states(
        self,
        states: torch.Tensor,
        attention: torch.Tensor,
        target_ids: torch.Tensor,
        chunk_tokens: int = 4096,
    ) -> torch.Tensor:
        """`token_log_probs` from text-encoder states [B, S, d] and their mask [B, S]."""
        hidden = self._decoder_states(states, attention, target_ids)
        valid = ~self._target_padding(target_ids)
        rows = hidden[valid]
        targets = target_ids[valid]
        head = self.text_model.get_output_embeddings()
        if not isinstance(head, nn.Linear):  # every T5/mT5 head is one
            raise TypeError(
                f"token_log_probs: the text model's output projection must be an nn.Linear, got "
                f"{type(head).__name__}"
            )
        values = target_log_probs(rows, head.weight, head.bias, targets, chunk_tokens)
        out = torch.zeros(target_ids.shape, dtype=values.dtype, device=hidden.device)
        return out.masked_scatter(valid, values)

    def sequence_log_prob(
        self,
        poses: torch.Tensor,
        mask: torch.Tensor,
        target_ids: torch.Tensor,
        pose_embeddings: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Σ_l log p(y_l | y_<l, x) of each target row, [B] float32 (float64 for a float64
        model); no label smoothing."""
        return self.token_log_probs(poses, mask, target_ids, pose_embeddings=pose_embeddings).sum(1)

    # ---- decoding -----------------------------------------------------------------------------
    @torch.no_grad()
    def generate(
        self,
        poses: torch.Tensor | None,
        mask: torch.Tensor,
        num_beams: int = 4,
        max_new_tokens: int = 100,
        pose_embeddings: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Beam search; token ids [B, L] starting with the decoder start token, padded with pad."""
        if pose_embeddings is None:
            pose_embeddings = self.pose_embeddings(poses, mask)
        inputs, attention = self.encoder_inputs(pose_embeddings, mask)
        return self.text_model.generate(
            inputs_embeds=inputs,
            attention_mask=attention,
            num_beams=num_beams,
            max_new_tokens=max_new_tokens,
            do_sample=False,
        )

    def decode(self, token_ids: torch.Tensor | Sequence[Sequence[int]]) -> list[str]:
        """Token ids -> strings, special tokens removed."""
        return [s.strip() for s in self.tokenizer.batch_decode(token_ids, skip_special_tokens=True)]

    def tokenize_targets(self, texts: Sequence[str]) -> torch.Tensor:
        """Target strings -> ids [B, L] (≤ max_target_tokens, </s> included), padded with pad id."""
        encoded = self.tokenizer(
            list(texts),
            padding="longest",
            truncation=True,
            max_length=self.config.max_target_tokens,
            return_tensors="pt",
        )
        return encoded["input_ids"].to(self.prompt_ids.device)

    def count_parameters(self, part: str = "all") -> int:
        """Distinct parameters of "pose", "text" or "all" (shared weights counted once)."""
        module = {"pose": self.pose_encoder, "text": self.text_model, "all": self}[part]
        return sum(p.numel() for p in module.parameters())


def _text_model_from_dir(path: str | os.PathLike) -> nn.Module:
    from transformers import AutoModelForSeq2SeqLM

    return AutoModelForSeq2SeqLM.from_pretrained(str(path))


def _tiny_text_model(sizes: dict[str, Any], vocab_size: int) -> nn.Module:
    from transformers import T5Config, T5ForConditionalGeneration

    config = T5Config(
        vocab_size=vocab_size,
        pad_token_id=0,
        eos_token_id=1,
        decoder_start_token_id=0,
        # Tied (T5 v1.0 style): decoder states are scaled by d_model^-0.5 before the shared
        # embedding, which keeps the initial logits small when training from scratch.
        tie_word_embeddings=True,
        **sizes,
    )
    return T5ForConditionalGeneration(config)


def build_model(
    config: str | ModelConfig,
    text_model: str | os.PathLike | nn.Module | None = None,
    tokenizer: Any = None,
    layout: Any = None,
) -> UniSignModel:
    """Build a model.

    `build_model("unisign-base", text_model=DIR)` loads any local MT5/T5 directory (its d_model
    sets the projection size; its tokenizer is used unless `tokenizer` is given).
    `build_model("tiny", tokenizer=WordTokenizer.build(texts))` builds the small T5 from the config.
    `layout` (name or layout object) defaults to the config's.
    """
    cfg = _resolve_config(config)
    graph = pose_graph_from_layout(layout if layout is not None else cfg.layout)
    if cfg.text is None:
        if text_model is None:
            raise ValueError(
                f"config {cfg.name!r} needs text_model: a local MT5/T5 directory or model"
            )
        if isinstance(text_model, nn.Module):
            model = text_model
        else:
            model = _text_model_from_dir(text_model)
        if tokenizer is None:
            if isinstance(text_model, nn.Module):
                raise ValueError("build_model: pass the tokenizer along with a text model object")
            from transformers import AutoTokenizer

            try:
                tokenizer = AutoTokenizer.from_pretrained(str(text_model))
            except (OSError, ValueError) as error:
                raise ValueError(
                    f"build_model: no tokenizer could be loaded from {text_model}; pass one"
                ) from error
    else:
        if tokenizer is None:
            raise ValueError(f"config {cfg.name!r} needs a tokenizer (WordTokenizer.build(texts))")
        if text_model is not None:
            raise ValueError(
                f"config {cfg.name!r} builds its own text model; text_model must be None"
            )
        model = _tiny_text_model(cfg.text, len(tokenizer))
    return UniSignModel(cfg, graph, model, tokenizer)


def save_model(model: UniSignModel, directory: str | os.PathLike, weights: bool = True) -> None:
    """Write model_config.json, the tokenizer and (unless `weights` is False) model.pt."""
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    description = {
        "config": model.config.to_dict(),
        "graph": model.graph.to_dict(),
        "text_config": model.text_model.config.to_dict(),
        "decoder_output_scale": model.decoder_output_scale,
    }
    (path / CONFIG_FILE).write_text(json.dumps(description, indent=1))
    model.tokenizer.save_pretrained(path / "tokenizer")
    if not weights:
        return
    tmp = path / f".{MODEL_FILE}.tmp"
    torch.save(model.state_dict(), tmp)
    os.replace(tmp, path / MODEL_FILE)


def model_from_description(directory: str | os.PathLike) -> UniSignModel:
    """Rebuild the architecture saved by `save_model` (weights untrained)."""
    path = Path(directory)
    description = json.loads((path / CONFIG_FILE).read_text())
    cfg = ModelConfig.from_dict(description["config"])
    graph = PoseGraph.from_dict(description["graph"])
    tokenizer_dir = path / "tokenizer"
    if (tokenizer_dir / WORD_TOKENIZER_FILE).exists():
        tokenizer = WordTokenizer.from_pretrained(tokenizer_dir)
    else:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    from transformers import AutoConfig, AutoModelForSeq2SeqLM

    text_config = dict(description["text_config"])
    text_config = AutoConfig.for_model(text_config.pop("model_type"), **text_config)
    text_model = AutoModelForSeq2SeqLM.from_config(text_config)
    model = UniSignModel(cfg, graph, text_model, tokenizer)
    saved_scale = description.get("decoder_output_scale")
    measured = model.decoder_output_scale
    if saved_scale is not None and abs(saved_scale - measured) > 1e-6 * saved_scale:
        raise TextModelMismatch(
            f"{path / CONFIG_FILE}: saved with decoder states scaled by {saved_scale:.6g} before "
            f"the output head, but this transformers version's {type(text_model).__name__} "
            f"scales them by {measured:.6g}: the loaded model would compute "
            f"another function"
        )
    return model


def load_model(
    directory: str | os.PathLike, weights: str | os.PathLike | None = None
) -> UniSignModel:
    """Load a model saved by `save_model` (or a training run's best weights via `weights`)."""
    model = model_from_description(directory)
    state = read_checkpoint(Path(weights) if weights else Path(directory) / MODEL_FILE)
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    untie_where_state_differs(model, state)  # a text model built from its config comes tied
    model.load_state_dict(state)
    model.eval()
    return model


def default_device() -> str:
    """"cuda" where available (under torchrun the local rank's GPU, "cuda:LOCAL_RANK"), else
    "cpu"."""
    if not torch.cuda.is_available():
        return "cpu"
    if "LOCAL_RANK" in os.environ:
        return f"cuda:{int(os.environ['LOCAL_RANK'])}"
    return "cuda"


def load_run(
    run: str | os.PathLike, checkpoint: str = "best", device: str | None = None
) -> tuple[UniSignModel, dict[str, Any], str]:
    """A training run's model with its `checkpoint` weights (best or last) on `device` (default:
    `default_device()`), the run's arguments (run.json: corpus, partition, task, ...) and the
    device chosen."""
    run = Path(run)
    weights = run / f"{checkpoint}.pt"
    if not weights.is_file():
        raise FileNotFoundError(f"{weights}: no {checkpoint!r} checkpoint in run {run}")
    meta = json.loads((run / "run.json").read_text(encoding="utf-8"))
    device = device or default_device()
    return load_model(run, weights=weights).to(device), meta, device
