"""One exception type for every user-facing error.

The CLI turns a `PtlabError` into a single line on stderr and exit code 2, so a
message must name the field, file or row at fault and what was expected.
"""


class PtlabError(Exception):
    """A user-facing error: bad config, bad data, bad request."""


class ConfigError(PtlabError):
    """An invalid configuration value."""


class DataError(PtlabError):
    """Invalid input data (missing columns, empty dataset, rows too long)."""
