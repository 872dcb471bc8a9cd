"""Outputs that prove they are whole: a record of what was written, checked when it is read back.

A study trusts what it finds on disk — a finished evaluation is never recomputed — so
a file torn by a kill, cut by a full disk or edited by hand must be caught when it is
loaded, not averaged into a report. Writers record the row count and SHA-256 of what
they wrote; readers recompute both and raise `CorruptOutput` (one line: which file,
what is wrong) or, through a `verify`-style function, say why so the caller can
recompute instead.
"""

from __future__ import annotations

import hashlib

from ptlab.errors import PtlabError


class CorruptOutput(PtlabError):
    """A ptlab output on disk is missing, torn or altered; the message names the file and what is wrong."""


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
