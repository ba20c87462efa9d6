#!/usr/bin/env bash
# Set up, then run the whole test suite under Xvfb (GUI tests need a real OpenGL context).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
xvfb-run -a -s "-screen 0 1920x1080x24" .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
