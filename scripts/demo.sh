#!/usr/bin/env bash
# Set up, then run the demo: a synthetic grain micrograph segmented into phases and grains in a real napari
# window (under Xvfb when there is no display); prints the grain table, saves a screenshot and a CSV in out/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ -n "${DISPLAY:-}" ]; then
  .venv/bin/python scripts/demo.py "$@"
else
  xvfb-run -a -s "-screen 0 1920x1080x24" .venv/bin/python scripts/demo.py "$@"
fi
