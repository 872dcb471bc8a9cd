import os
import tempfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# A hermetic ptlab home for the whole session (models are built once per session;
# subprocesses inherit it). Set PTLAB_HOME yourself to reuse a warm cache.
os.environ.setdefault("PTLAB_HOME", tempfile.mkdtemp(prefix="ptlab-test-home-"))
