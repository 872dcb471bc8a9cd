"""The strategies' prompt templates: shipped as editable text files, overridable per run.

Templates live in `ptlab/synth/prompts/<name>.txt` and use `str.format`
fields (``{question}``). A `prompts_dir` replaces any of them by file name.
`match` inverts a template (text -> fields): the simulated teacher uses it to
recognise what it is asked, so edited templates keep working with it.
"""

from __future__ import annotations

import re
import string
from functools import lru_cache
from pathlib import Path

from ptlab.errors import ConfigError

NAMES = ("answer", "rephrase", "new_question", "check_question")
PACKAGED = Path(__file__).with_name("prompts")


class Templates:
    def __init__(self, prompts_dir: str | Path | None = None):
        self.texts: dict[str, str] = {}
        override = Path(prompts_dir) if prompts_dir else None
        if override is not None and not override.is_dir():
            raise ConfigError(f"prompts_dir: {override} is not a directory")
        for name in NAMES:
            path = override / f"{name}.txt" if override and (override / f"{name}.txt").is_file() else PACKAGED / f"{name}.txt"
            text = path.read_text().strip("\n")
            fields = {f for _, f, _, _ in string.Formatter().parse(text) if f}
            if fields != {"question"}:
                raise ConfigError(f"prompt template {path}: expected exactly the field {{question}}, got {sorted(fields)}")
            self.texts[name] = text

    def render(self, name: str, **fields) -> str:
        return self.texts[name].format(**fields)

    def match(self, text: str) -> tuple[str, dict] | None:
        """(template name, fields) of the most specific template that produced `text`, or None.

        `answer` is tried last: it is usually the bare `{question}`, which matches anything.
        """
        for name in sorted(NAMES, key=lambda n: n == "answer"):
            m = _pattern(self.texts[name]).fullmatch(text.strip("\n"))
            if m:
                return name, m.groupdict()
        return None


@lru_cache(maxsize=64)
def _pattern(template: str) -> re.Pattern:
    parts = []
    for literal, field, _, _ in string.Formatter().parse(template):
        parts.append(re.escape(literal))
        if field:
            parts.append(f"(?P<{field}>.+)")
    return re.compile("".join(parts), re.DOTALL)
