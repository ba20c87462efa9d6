#!/usr/bin/env bash
# Set up, then run the demo in a real napari window (under Xvfb when there is no display): a synthetic grain
# micrograph segmented into phases and grains (grain table printed, screenshot and CSV in out/), then a 64^3
# volume reconstructed from the real ceramics micrograph (screenshot in out/).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ -n "${DISPLAY:-}" ]; then
  .venv/bin/python scripts/demo.py "$@"
else
  xvfb-run -a -s "-screen 0 1920x1080x24" .venv/bin/python scripts/demo.py "$@"
fi
