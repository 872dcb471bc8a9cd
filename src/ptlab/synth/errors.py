"""User-facing errors of the synth area, each a one-line `PtlabError`.

Messages name the server, model or budget field at fault and never contain an
API key (see `ptlab.synth.secrets.scrub`).
"""

from ptlab.errors import PtlabError


class TeacherError(PtlabError):
    """A teacher cannot be used at all (unreachable server, unknown model, bad reply format)."""


class AuthError(TeacherError):
    """The server rejected the API key (HTTP 401 / 403)."""


class BudgetError(PtlabError):
    """The query or token budget cannot cover even one teacher call."""


class RunFailed(TeacherError):
    """A run whose teacher calls failed past `strategy.max_failed_share`: no dataset is written.

    `ptlab synth` exits 1 on it (the run failed; its input was fine), not 2 (bad input).
    """

    exit_code = 1
