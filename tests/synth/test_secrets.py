"""API keys and URL credentials never reach a file, a message or a traceback; bad ones are one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from ptlab.errors import ConfigError
from ptlab.synth.secrets import read_api_key, redact_url

KEY = "sk-test-Whitespace-Key-7f3a9c"
VAR = "PTLAB_SECRET_TEST_KEY"


def synth_args(url: str, out: Path, *extra: str) -> list[str]:
    return ["synth", "teacher.backend=openai", "teacher.model=echo", f"teacher.base_url={url}",
            f"teacher.api_key_env={VAR}", "teacher.max_retries=0", "strategy.queries=4", "seeds.n=3",
            f"output={out}", *extra]


def all_bytes(*roots: Path) -> bytes:
    return b"".join(p.read_bytes() for root in roots if root.exists() for p in root.rglob("*") if p.is_file())


# ---- reading the key -------------------------------------------------------------------------
def test_surrounding_whitespace_is_stripped(monkeypatch):
    monkeypatch.setenv(VAR, f"  {KEY}\t\n")
    assert read_api_key(VAR, required=True, where="teacher") == KEY
    monkeypatch.setenv(VAR, " \n ")
    assert read_api_key(VAR, required=False, where="teacher") is None  # only whitespace: unset


@pytest.mark.parametrize(("value", "why"), [
    ("sk-abc\ndef-Secret99", "contains a line break"),
    ("sk-abc\rdef-Secret99", "contains a line break"),
    ("sk-abc\x1bdef-Secret99", "contains a control character"),
    ("sk-ключ-Secret99", "contains a non-ASCII character"),
])
def test_bad_keys_are_refused_naming_the_variable_not_the_value(monkeypatch, value, why):
    monkeypatch.setenv(VAR, value)
    with pytest.raises(ConfigError) as err:
        read_api_key(VAR, required=False, where="teacher http://h/v1")
    msg = str(err.value)
    assert msg == f"teacher http://h/v1: the API key in environment variable {VAR} {why} " \
                  f"(a key is one line of printable ASCII)"
    assert "Secret99" not in msg and "sk-abc" not in msg


# ---- end to end through the CLI ------------------------------------------------------------------
def test_a_padded_key_works_and_is_never_written_or_printed(tmp_path, serve, ptlab):
    srv = serve(api_key=KEY)
    home = tmp_path / "home"
    done = ptlab(*synth_args(srv.url, tmp_path / "out"), env={"PTLAB_HOME": str(home), VAR: f"  {KEY}  \n"})
    assert done.returncode == 0, done.stderr
    meta = json.loads((tmp_path / "out" / "synth.json").read_text())
    assert meta["stats"]["teacher"]["paid"] == 4 and meta["config"]["teacher"]["api_key_env"] == VAR
    assert (home / "teacher" / "replies.sqlite").is_file()
    assert KEY.encode() not in all_bytes(tmp_path / "out", home)
    assert KEY not in done.stdout + done.stderr


@pytest.mark.parametrize("value", ["sk-abc\ndef-Secret99", "sk-ключ-Secret99", "sk-abc\tdef-Secret99"])
def test_a_malformed_key_is_exit_2_naming_the_variable(tmp_path, serve, ptlab, value):
    srv = serve(api_key="whatever-key")
    done = ptlab(*synth_args(srv.url, tmp_path / "out"), env={"PTLAB_HOME": str(tmp_path / "home"), VAR: value})
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and f"environment variable {VAR}" in lines[0]
    assert "Secret99" not in done.stdout + done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "out").exists()
    assert srv.stats.as_dict()["counts"].get("received", 0) == 0  # refused before anything was sent


@pytest.mark.parametrize("pasted", ["sk-abc123DEF456ghi789JKL", "hf_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789",
                                    "Bearer sk-abc123", "12345678901234567890"])
def test_a_key_pasted_as_api_key_env_is_refused_without_echo(tmp_path, ptlab, pasted):
    cfg = tmp_path / "synth.yaml"
    cfg.write_text(json.dumps({"teacher": {"backend": "openai", "api_key_env": pasted}}))  # JSON is YAML
    done = ptlab("synth", str(cfg), env={"PTLAB_HOME": str(tmp_path / "home")})
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"error: {cfg}: teacher.api_key_env: must be the NAME of an environment variable (letters, digits, _), "
        "not the key itself"]
    assert pasted not in done.stdout + done.stderr


def test_ordinary_variable_names_are_accepted(tmp_path):
    from ptlab.synth.config import TeacherConfig

    for name in ("OPENAI_API_KEY", "my_key", "_K2", "AZUREOPENAIAPIKEY2024PRODUCTION", None, ""):
        assert TeacherConfig(api_key_env=name).api_key_env == name


# ---- credentials in base_url ----------------------------------------------------------------------
def test_base_url_with_credentials_is_refused_and_never_written(tmp_path, serve, ptlab):
    srv = serve()
    url = srv.url.replace("http://", "http://alice:hunter2-Pass@")
    home = tmp_path / "home"
    done = ptlab(*synth_args(url, tmp_path / "out"), env={"PTLAB_HOME": str(home), VAR: KEY})
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: config: teacher.base_url: base_url must not contain "
                                                   "credentials (got http://***@127.0.0.1:")
    assert "hunter2" not in done.stdout + done.stderr and "alice" not in done.stderr
    assert not (tmp_path / "out").exists() and b"hunter2" not in all_bytes(home)
    assert srv.stats.as_dict()["counts"].get("received", 0) == 0


def test_base_url_credentials_are_refused_by_every_way_in(monkeypatch):
    from ptlab.synth import make_teacher
    from ptlab.synth.config import TeacherConfig
    from ptlab.synth.teachers.openai import OpenAITeacher

    url = "https://bob:s3cret-Word@api.example.com/v1"
    with pytest.raises(ConfigError) as err:
        OpenAITeacher("m", url, api_key_env=None)
    assert "s3cret" not in str(err.value) and "https://***@api.example.com/v1" in str(err.value)
    with pytest.raises(ConfigError) as err:
        make_teacher({"backend": "openai", "model": "m", "base_url": url})
    assert "s3cret" not in str(err.value)
    cfg = TeacherConfig(backend="openai")
    with pytest.raises(ValidationError):  # validate_assignment: no way around it
        cfg.base_url = url
    ftp = "ftp://bob:s3cret-Word@host/v1"
    with pytest.raises(ConfigError) as err:
        make_teacher({"backend": "openai", "model": "m", "base_url": ftp})
    assert "s3cret" not in str(err.value)


def test_redact_url_masks_userinfo():
    assert redact_url("https://u:p@host:8/v1") == "https://***@host:8/v1"
    assert redact_url("https://u:p/ss@host/v1") == "https://***@host/v1"  # an unescaped '/' in the password
    assert redact_url("u:p@host/v1") == "***@host/v1"
    assert redact_url("http://127.0.0.1:8000/v1") == "http://127.0.0.1:8000/v1"


def test_synth_json_masks_a_url_built_around_validation(tmp_path):
    from ptlab.synth.config import TeacherConfig
    from ptlab.synth.run import SynthConfig, public_config

    teacher = TeacherConfig.model_construct(**{**TeacherConfig().model_dump(), "base_url": "http://u:pw-Zz9@h/v1"})
    cfg = SynthConfig.model_construct(**{**SynthConfig().__dict__, "teacher": teacher})
    assert public_config(cfg)["teacher"]["base_url"] == "http://***@h/v1"
