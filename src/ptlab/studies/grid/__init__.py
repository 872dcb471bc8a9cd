"""The one grid engine every study runs on: config loading, manifest, store, executors, progress, run loop."""
