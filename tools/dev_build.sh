#!/usr/bin/env bash
# Builds the compiled core and places it in the source tree, so `python -m pytest` and
# `python -m nmmfast.cli` run straight from the checkout while editing. Extra arguments go to pip
# (e.g. -Ccmake.define.NMMFAST_CUDA=OFF).
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf build/dev-install
pip install --no-build-isolation --no-deps --target build/dev-install "$@" . >/dev/null
# a new file, not an overwrite: processes that have the old one loaded keep their mapping
for lib in build/dev-install/nmmfast/_C*.so; do
  cp "$lib" "nmmfast/.$(basename "$lib").new" && mv -f "nmmfast/.$(basename "$lib").new" "nmmfast/$(basename "$lib")"
done
python -c "import nmmfast, json; print(json.dumps(nmmfast.info()))"
