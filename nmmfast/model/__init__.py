"""The Uni-Sign pose→text model: ST-GCN pose encoder, prompt, T5/mT5; configs and checkpoints.

Entry points: `build_model`, `load_model`/`save_model`, `load_run`, `load_unisign_checkpoint`,
`CONFIGS`, `WordTokenizer` (the `tiny` config's vocabulary).
"""

from __future__ import annotations

from nmmfast.model.checkpoint import load_unisign_checkpoint, map_unisign_key
from nmmfast.model.pose_encoder import (
    PART_ORDER,
    PoseEncoder,
    PoseEncoderConfig,
    PoseGraph,
    pose_graph_from_layout,
)
from nmmfast.model.tokenizer import WordTokenizer
from nmmfast.model.unisign import (
    CONFIGS,
    ModelConfig,
    UniSignModel,
    build_model,
    load_model,
    load_run,
    save_model,
)

__all__ = [
    "CONFIGS",
    "PART_ORDER",
    "ModelConfig",
    "PoseEncoder",
    "PoseEncoderConfig",
    "PoseGraph",
    "UniSignModel",
    "WordTokenizer",
    "build_model",
    "load_model",
    "load_run",
    "load_unisign_checkpoint",
    "map_unisign_key",
    "pose_graph_from_layout",
    "save_model",
]
