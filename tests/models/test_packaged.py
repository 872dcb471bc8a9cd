"""Packaged builds: `resolve` copies the package's build for its exact key (verified) instead of building."""

import hashlib
import json

import pytest

from ptlab.atomic import MARKER, atomic_dir, write_json
from ptlab.models import packaged_builds
from ptlab.models.packaged_builds import (
    MANIFEST,
    TIMING_FILE,
    library_versions,
    package,
    packaged_dir,
    read_manifest,
    reproducible_files,
    sha256_file,
)
from ptlab.models.registry import resolve, tiny_build
from ptlab.models.tiny import TINY_BUILDERS

NAME = "fake-tiny"


class FakeBuilder:
    """A builder that writes a small deterministic model directory (plus a timing record) and counts its calls."""

    def __init__(self, version="fake-v1"):
        self.version, self.calls = version, 0

    def __call__(self, out):
        self.calls += 1
        with atomic_dir(out) as tmp:
            write_json(tmp / "config.json", {"model_type": "llama", "hidden_size": 8})
            (tmp / "model.safetensors").write_bytes(bytes(range(256)) * 4)
            write_json(tmp / "model_card.json", {"name": NAME, "accuracy_eval_id": {"math": {"accuracy": 0.5}}})
            write_json(tmp / TIMING_FILE, {"seconds": {"total": 1.0 + self.calls}})


@pytest.fixture
def fake(monkeypatch, tmp_path):
    """A registered fake builder, an empty ptlab home and an empty packaged root (the real ones are untouched)."""
    monkeypatch.setenv("PTLAB_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(packaged_builds, "PACKAGED_ROOT", tmp_path / "packaged")
    builder = FakeBuilder()
    monkeypatch.setitem(TINY_BUILDERS, NAME, builder)
    return builder


def fresh_home(monkeypatch, tmp_path, name="home2"):
    monkeypatch.setenv("PTLAB_HOME", str(tmp_path / name))


def test_package_writes_the_reproducible_files_and_a_manifest(fake):
    target = package(NAME)
    key, _ = tiny_build(NAME)
    assert target == packaged_dir(NAME, key) and fake.calls == 1
    manifest = read_manifest(target)
    assert manifest["name"] == NAME and manifest["key"] == key and manifest["version"] == "fake-v1"
    assert set(manifest["files"]) == {"config.json", "model.safetensors", "model_card.json"}  # no timing, no marker
    assert sorted(p.name for p in target.iterdir()) == sorted([*manifest["files"], MANIFEST])
    assert all(sha256_file(target / f) == digest for f, digest in manifest["files"].items())
    assert manifest["built_with"] == library_versions()
    assert package(NAME) == target and fake.calls == 2 and read_manifest(target) == manifest  # a refresh replaces it


def test_resolve_copies_the_packaged_build_instead_of_building(fake, monkeypatch, tmp_path):
    packaged = package(NAME)
    fresh_home(monkeypatch, tmp_path)
    path = resolve(NAME)
    assert fake.calls == 1  # only the packaging build
    assert path.name == packaged.name and (path / MARKER).is_file()
    assert {p.name for p in reproducible_files(path)} == set(read_manifest(packaged)["files"])
    assert all((path / f).read_bytes() == (packaged / f).read_bytes() for f in read_manifest(packaged)["files"])
    assert resolve(NAME) == path and fake.calls == 1  # and the cache serves it from then on


def test_a_tampered_packaged_file_builds_instead(fake, monkeypatch, tmp_path, capsys):
    packaged = package(NAME)
    (packaged / "model.safetensors").write_bytes(b"not the packaged weights")
    fresh_home(monkeypatch, tmp_path)
    path = resolve(NAME)
    assert fake.calls == 2 and (path / TIMING_FILE).is_file()  # a real build, not a copy
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "model.safetensors does not match its SHA-256" in err[0] and "building" in err[0]


def test_a_missing_packaged_file_or_a_foreign_manifest_builds_instead(fake, monkeypatch, tmp_path, capsys):
    packaged = package(NAME)
    (packaged / "model_card.json").unlink()
    fresh_home(monkeypatch, tmp_path)
    resolve(NAME)
    assert fake.calls == 2
    manifest = read_manifest(packaged)
    (packaged / MANIFEST).write_text(json.dumps({**manifest, "key": "00000000"}))
    fresh_home(monkeypatch, tmp_path, "home3")
    resolve(NAME)
    assert fake.calls == 3 and capsys.readouterr().err.count("building") == 2


def test_a_different_key_builds(fake, monkeypatch, tmp_path):
    packaged = package(NAME)
    fake.version = "fake-v2"  # e.g. the task generators changed
    fresh_home(monkeypatch, tmp_path)
    path = resolve(NAME)
    assert fake.calls == 2 and path.name != packaged.name and (path / TIMING_FILE).is_file()
    assert packaged.is_dir()  # building never touches the package


def test_package_removes_only_its_own_older_builds_of_the_name(fake):
    root = packaged_builds.PACKAGED_ROOT
    old = package(NAME)
    other = root / f"{NAME}-x-12345678"  # another model whose name starts like this one
    other.mkdir()
    write_json(other / MANIFEST, {"name": f"{NAME}-x", "key": "12345678", "files": {}})
    hand = root / f"{NAME}-handmade"
    hand.mkdir()
    (hand / "notes.txt").write_text("mine")
    fake.version = "fake-v2"
    new = package(NAME)
    assert new != old and new.is_dir() and not old.exists()
    assert other.is_dir() and hand.is_dir()


def test_cli_package_and_a_real_tiny_model_round_trip(ptlab, monkeypatch, tmp_path):
    """End to end with the real `tiny-test` builder: package it, then a fresh home loads the copy, unbuilt."""
    monkeypatch.setenv("PTLAB_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(packaged_builds, "PACKAGED_ROOT", tmp_path / "packaged")
    result = ptlab("models", "package", "tiny-test")
    assert result.returncode == 0, result.stderr
    key, _ = tiny_build("tiny-test")
    assert result.stdout.strip() == str(packaged_dir("tiny-test", key))

    def no_build(*args, **kwargs):
        raise AssertionError("built instead of copying the packaged build")

    monkeypatch.setattr("ptlab.models.tiny.build_tiny", no_build)
    fresh_home(monkeypatch, tmp_path)
    from ptlab.models.registry import load

    model, tok = load("tiny-test")
    assert model.num_parameters() > 0 and tok.eos_token is not None


def test_package_refuses_a_name_it_does_not_build(ptlab):
    result = ptlab("models", "package", "smollm2-135m")
    assert result.returncode != 0


@pytest.mark.slow
def test_a_fresh_build_reproduces_the_packaged_tiny(request):
    """Every packaged file of `tiny` for the current key is what a fresh build writes, byte for byte."""
    key, _ = tiny_build("tiny")
    packaged = packaged_dir("tiny", key)
    manifest = read_manifest(packaged)
    if manifest is None:
        pytest.skip(f"no packaged copy of tiny for the current key {key} ({packaged}); "
                    "write one with `ptlab models package tiny`")
    assert all(sha256_file(packaged / f) == d for f, d in manifest["files"].items()), "packaged copy is damaged"
    built = request.getfixturevalue("tiny_base_build")
    fresh = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in reproducible_files(built)}
    differ = sorted(f for f in set(fresh) | set(manifest["files"]) if fresh.get(f) != manifest["files"].get(f))
    assert not differ, (f"fresh build differs from the packaged copy in {differ}; packaged with "
                        f"{manifest['built_with']}, built now with {library_versions()}")
