"""API keys come from environment variables named in config, and stay out of every output.

Configs, caches, results and logs only ever hold the variable's *name*; `scrub`
removes the key's value from any text that might reach a message (a server
that echoes headers back in an error body, say).

Three ways a secret used to escape, and what stops each:

* a key with a stray newline or a non-ASCII character: httpx refuses such a
  header value with an error that *contains* it, so `read_api_key` validates
  the key before any client sees it and names only the variable;
* a key pasted where its variable's name belongs (`api_key_env: sk-...`):
  `env_name_problem` refuses it at config validation, without echoing it;
* credentials in the URL (`https://user:pass@host/v1`): the base_url is written
  to synth.json, study.json and every error line, so such a URL is *refused*
  (`url_credentials_problem`) rather than redacted on the way out: redacting
  would silently drop the credentials from configs that are re-run from their
  dump (study cells re-validate the teacher config). Send a key through
  `api_key_env` (a Bearer header) instead. `redact_url` masks userinfo for the
  one message that has to show such a URL.
"""

from __future__ import annotations

import os
import re

from ptlab.errors import ConfigError

ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
ENV_NAME_RULE = "must be the NAME of an environment variable (letters, digits, _), not the key itself"


def env_name_problem(name: object) -> str | None:
    """Why `name` cannot be an environment variable's name (None if it can); never repeats `name`.

    Besides the syntax, a long run of mixed-case letters and digits is refused:
    that is what a pasted token looks like (`hf_…`, `gsk_…` are valid
    identifiers), and a real variable's name never has one.
    """
    if not isinstance(name, str) or not ENV_NAME.fullmatch(name) or _looks_like_token(name):
        return ENV_NAME_RULE
    return None


def _looks_like_token(name: str) -> bool:
    longest = max((len(run) for run in re.findall(r"[A-Za-z0-9]+", name)), default=0)
    return longest >= 20 and any(c.islower() for c in name) and any(c.isdigit() for c in name)


def key_problem(value: str) -> str | None:
    """What is wrong with an (already stripped) key, in words that never include it; None if nothing."""
    if "\n" in value or "\r" in value:
        return "contains a line break"
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        return "contains a control character"
    if not value.isascii():
        return "contains a non-ASCII character"
    return None


def read_api_key(env_var: str | None, *, required: bool, where: str) -> str | None:
    """The key from `$env_var`, without surrounding whitespace; a bad or missing required key is a one-line error.

    Errors name the variable, never its value. Whitespace around the key is
    what `export KEY="$(cat key.txt)"` or a copy from a web page leaves behind;
    anything else that cannot go into an HTTP header is refused here, before
    httpx would raise with the value in its message.
    """
    if not env_var:
        return None
    value = (os.environ.get(env_var) or "").strip()
    if not value:
        if required:
            raise ConfigError(f"{where}: environment variable {env_var} is not set (it should hold the API key)")
        return None
    problem = key_problem(value)
    if problem:
        raise ConfigError(f"{where}: the API key in environment variable {env_var} {problem} "
                          f"(a key is one line of printable ASCII)")
    return value


def url_credentials_problem(url: str) -> str | None:
    """Why `url` may not be a base_url because it carries credentials (None if it does not).

    Any '@' counts: `https://user:p/ss@host` parses as a path, but still holds a password.
    """
    if "@" in url:
        return (f"base_url must not contain credentials (got {redact_url(url)}): it is written to results "
                f"and error messages; put the key in an environment variable named by api_key_env")
    return None


def check_base_url(url: str, where: str) -> None:
    """Raise a one-line ConfigError (without the password) if `url` carries credentials."""
    problem = url_credentials_problem(url)
    if problem:
        raise ConfigError(f"{where}: {problem}")


def redact_url(url: str) -> str:
    """`url` with everything between the scheme's '//' and the last '@' (user, password) replaced by '***'."""
    if "@" not in url:
        return url
    head, _, tail = url.rpartition("@")
    scheme = head.split("//", 1)[0] + "//" if "//" in head else ""
    return f"{scheme}***@{tail}"


def scrub(text: str, secret: str | None) -> str:
    """`text` with every occurrence of `secret` replaced by '***'."""
    if secret and len(secret) >= 4:
        return text.replace(secret, "***")
    return text
