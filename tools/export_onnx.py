"""Export a run's pose encoder to ONNX: the same as `nmmfast export` (`nmmfast.model.export`).

Usage: python tools/export_onnx.py --run RUN_DIR [--out RUN_DIR/pose_encoder.onnx] [--opset 17]
"""

from __future__ import annotations

import sys

from nmmfast.cli import main

if __name__ == "__main__":
    sys.exit(main(["export", *sys.argv[1:]]))
