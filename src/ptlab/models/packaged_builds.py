"""Built models shipped inside the package, so a fresh install does not rebuild them.

Pretraining `tiny` takes ~9 minutes on two cores; its output is deterministic, so
the bytes of one build can ship with ptlab. `packaged/<name>-<key>/` holds such a
build for exactly one registry key (the key changes whenever the builder's version
does, e.g. when the task generators change), plus a manifest (`packaged.json`)
with the SHA-256 of every file. `resolve` copies it into the cache instead of
building (`copy_packaged`), only when the key matches and every copied file
matches its hash; otherwise it builds as before. `ptlab models package NAME`
(`package`) rewrites the packaged copy from a build.

Machine-dependent records (build seconds, CPU-seconds per step) go to
`TIMING_FILE`, which is never packaged: every packaged file is identical between
two builds, and the slow test checks that a fresh build reproduces them.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
import tempfile
from pathlib import Path

from ptlab.atomic import MARKER, atomic_dir, mark, write_json

PACKAGED_ROOT = Path(__file__).parent / "packaged"
MANIFEST = "packaged.json"
TIMING_FILE = "build_timing.json"  # written by builds, never packaged: its numbers differ on every run


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def reproducible_files(build_dir: Path) -> list[Path]:
    """The files of a build that are packaged: all but markers, the timing record and a manifest."""
    return [path for path in sorted(Path(build_dir).iterdir())
            if path.is_file() and not path.name.startswith(".") and path.name not in (TIMING_FILE, MANIFEST)]


def packaged_dir(name: str, key: str, root: Path | None = None) -> Path:
    return (root or PACKAGED_ROOT) / f"{name}-{key}"


def read_manifest(path: Path) -> dict | None:
    """The manifest of a packaged directory, or None when it has none (not one `package` wrote)."""
    try:
        manifest = json.loads((path / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) else None


class _Mismatch(Exception):
    pass


def copy_packaged(name: str, key: str, out: Path, root: Path | None = None) -> bool:
    """Copy the packaged build of `name` for `key` to `out` (atomically); False when there is none or it fails.

    Every copied file is hashed after the copy, so `out` holds only bytes the manifest vouches for; a missing
    or altered file (a damaged install, a hand edit) makes the caller build instead, with a one-line note.
    """
    src = packaged_dir(name, key, root)
    if not (src / MANIFEST).is_file():
        return False
    try:
        manifest = read_manifest(src)
        if not manifest or manifest.get("name") != name or manifest.get("key") != key:
            raise _Mismatch(f"{MANIFEST} is not for {name}-{key}")
        files = manifest["files"]
        if "config.json" not in files or any(Path(f).name != f or f.startswith(".") for f in files):
            raise _Mismatch(f"{MANIFEST} lists no config.json or a file outside the directory")
        with atomic_dir(out, "model cache entry") as tmp:
            for filename, digest in files.items():
                shutil.copyfile(src / filename, tmp / filename)
                if sha256_file(tmp / filename) != digest:
                    raise _Mismatch(f"{filename} does not match its SHA-256")
    except (_Mismatch, OSError, KeyError, TypeError, AttributeError) as e:
        print(f"ptlab: packaged model {src} is unusable ({e}); building {name} instead", file=sys.stderr, flush=True)
        return False
    return True


def package(name: str, from_cache: bool = False, root: Path | None = None) -> Path:
    """Write `packaged/<name>-<key>/` from a build of `name` and return it; remove older packaged builds of `name`.

    Builds into a temporary directory unless `from_cache` and the cache holds the entry. Only directories with
    a manifest for `name` are removed (never `tiny-test-*` when packaging `tiny`, never anything hand-made).
    """
    from ptlab.models.registry import tiny_build
    from ptlab.paths import cache_dir

    root = root or PACKAGED_ROOT
    key, build = tiny_build(name)
    target = packaged_dir(name, key, root)
    with tempfile.TemporaryDirectory(prefix=f"ptlab-package-{name}-") as tmp:
        src = cache_dir("models") / f"{name}-{key}"
        if not (from_cache and (src / "config.json").is_file()):
            src = Path(tmp) / f"{name}-{key}"
            build(src)
        if (read_manifest(target) or {}).get("name") == name:
            mark(target)  # ours (the marker is removed below): atomic_dir may replace it
        with atomic_dir(target, "packaged model") as out:
            files = {}
            for path in reproducible_files(src):
                shutil.copyfile(path, out / path.name)
                files[path.name] = sha256_file(out / path.name)
            write_json(out / MANIFEST, {"name": name, "key": key, "version": getattr(build, "version", None),
                                        "built_with": library_versions(), "files": files})
    (target / MARKER).unlink(missing_ok=True)  # the source tree holds the manifest's files only
    for old in root.glob(f"{name}-*"):
        manifest = read_manifest(old)
        if old != target and old.is_dir() and manifest and manifest.get("name") == name:
            shutil.rmtree(old)
    return target


def library_versions() -> dict[str, str]:
    """Library versions of the build (the bytes are reproducible for these; a mismatch explains a failed check)."""
    from importlib.metadata import version

    return {lib: version(lib) for lib in ("torch", "transformers", "tokenizers", "safetensors")}
