"""Shared helpers for the bad-input tests: workspaces, one-line error checks, before/after snapshots."""

from __future__ import annotations

import json
import os
from pathlib import Path

import yaml


def snapshot(root: Path) -> dict[str, tuple]:
    """Every path under `root` with its kind, size and modification time (empty when `root` is absent)."""
    root = Path(root)
    if not root.exists():
        return {}
    out = {}
    for p in sorted(root.rglob("*")):
        st = p.lstat()
        out[str(p.relative_to(root))] = ("dir", 0, 0) if p.is_dir() else ("file", st.st_size, st.st_mtime_ns)
    return out


def ptlab_home() -> Path:
    return Path(os.environ["PTLAB_HOME"])


def assert_one_line_error(result, needle: str) -> str:
    """Exit code 2 and exactly one non-empty `error: ...` line on stderr that contains `needle`."""
    lines = result.stderr.splitlines()
    assert result.returncode == 2, f"exit code {result.returncode}, stderr:\n{result.stderr}"
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{result.stderr}"
    line = lines[0]
    assert line.startswith("error: ") and line[len("error: "):].strip(), line
    assert "Traceback" not in line, line
    assert needle in line, f"{needle!r} not in {line!r}"
    return line


def expect_error(ptlab, argv, needle: str, *watch: Path, env: dict | None = None) -> str:
    """Run `ptlab argv`; assert the one-line error, and that neither `watch` nor $PTLAB_HOME changed."""
    roots = [ptlab_home(), *watch]
    before = [snapshot(r) for r in roots]
    result = ptlab(*[str(a) for a in argv], env=env)
    line = assert_one_line_error(result, needle)
    after = [snapshot(r) for r in roots]
    for root, b, a in zip(roots, before, after):
        assert a == b, f"{root} changed: added {sorted(set(a) - set(b))}, changed " \
                       f"{sorted(k for k in set(a) & set(b) if a[k] != b[k])}, removed {sorted(set(b) - set(a))}"
    return line


class Workspace:
    """A test's folder with small writers for the files a case needs."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def __truediv__(self, name: str) -> Path:
        return self.root / name

    def text(self, name: str, text: str | bytes) -> Path:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text)
        return path

    def jsonl(self, name: str, rows: list) -> Path:
        return self.text(name, "".join(json.dumps(r) + "\n" for r in rows))

    def json(self, name: str, obj) -> Path:
        return self.text(name, json.dumps(obj))

    def yaml(self, name: str, data) -> Path:
        return self.text(name, yaml.safe_dump(data, sort_keys=False))

    def dir(self, name: str) -> Path:
        path = self.root / name
        path.mkdir(parents=True, exist_ok=True)
        return path
