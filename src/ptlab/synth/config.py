"""Config models for teachers and budgets (YAML sections `teacher:` and `budget:`).

A config never holds an API key, only the name of the environment variable
that does (`api_key_env`), so a config file or a results directory can be
shared without leaking it. Both fields that could carry a secret by mistake
are checked here, with messages that never repeat the value: `api_key_env`
must look like a variable's name (users paste the key itself there), and
`base_url` must not hold `user:password@` (see `ptlab.synth.secrets`).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from ptlab.config import Strict
from ptlab.synth.secrets import env_name_problem, redact_url, url_credentials_problem
from ptlab.synth.teachers.simulator import SimulatorParams


class TeacherConfig(Strict):
    backend: Literal["openai", "hf", "simulated"] = "simulated"
    model: str = Field("default", min_length=1, description="server model name, ptlab model name or task name")
    # openai
    base_url: str = Field("http://127.0.0.1:8000/v1", description="OpenAI-compatible root, ending in /v1")
    api_key_env: str | None = Field("OPENAI_API_KEY", description="environment variable holding the key")
    api_key_required: bool = False
    concurrency: int = Field(16, ge=1, le=4096)
    timeout_s: float = Field(60.0, gt=0)
    max_retries: int = Field(4, ge=0, le=50, description="extra attempts after the first")
    backoff_s: float = Field(0.5, ge=0, description="first retry wait; doubles up to backoff_max_s, with jitter")
    backoff_max_s: float = Field(20.0, ge=0)
    send_seed: bool = Field(False, description="send `seed = sample_index` (servers that support it)")
    # hf
    batch_size: int = Field(8, ge=1)
    device: str | None = None
    # simulated
    simulator: SimulatorParams = Field(default_factory=SimulatorParams,
                                       description="simulated: the teacher's declared assumptions (each described)")
    seed: int = 0
    task_knobs: dict[str, Any] = Field(default_factory=dict, description="simulated: the task's difficulty knobs")
    prompts_dir: str | None = Field(None, description="directory of edited prompt templates (<name>.txt)")
    # cache
    cache: bool = True
    cache_path: str | None = Field(None, description="SQLite file; default <PTLAB_HOME>/teacher/replies.sqlite")

    @model_validator(mode="before")
    @classmethod
    def _renamed(cls, data):
        """The simulated teacher's old knobs, named with their replacements (not just 'unknown field')."""
        if isinstance(data, dict):
            for old, new in (("error_rate", "simulator.answer_error (and simulator.new_question_error, "
                                            "simulator.rephrase_drift, simulator.new_question_invalid, "
                                            "simulator.check_error)"),
                             ("diversity", "simulator.new_question_pool and simulator.new_question_drift")):
                if old in data:
                    raise ValueError(f"{old}: replaced by {new}")
        return data

    @field_validator("api_key_env", mode="before")
    @classmethod
    def _check_env_name(cls, value):
        """A ValueError (a `value_error`), so `validation_error_line` never shows the input: it may be the key."""
        if value is None or value == "":
            return value
        problem = env_name_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("base_url", mode="before")
    @classmethod
    def _check_credentials(cls, value):
        """Refused for every backend: the URL is dumped into synth.json / study.json whichever backend runs."""
        problem = url_credentials_problem(value) if isinstance(value, str) else None
        if problem:
            raise ValueError(problem)
        return value

    @model_validator(mode="after")
    def _check_url(self):
        if self.backend == "openai" and not self.base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https:// (got {redact_url(self.base_url)!r})")
        return self


class BudgetConfig(Strict):
    """Limits on what the teacher may be paid for; None means unlimited (see `ptlab.synth.budget`).

    With a `run_id`, spending is recorded in a durable ledger (`ptlab.synth.ledger`) and a
    restarted run starts from what its earlier attempts spent.
    """

    max_queries: int | None = Field(None, ge=0, description="paid teacher replies (retries are not extra queries)")
    max_tokens: int | None = Field(None, ge=0, description="prompt + completion tokens of paid replies")
    strict: bool = Field(False, description="count every sent attempt a provider may bill (timeouts, 5xx, "
                                            "malformed), not only paid replies; each retry needs budget")
    token_bound: Literal["bytes", "calibrated"] = Field(
        "bytes", description="bytes: UTF-8 bytes + chat-template overhead + max_tokens (never overrun); "
                             "calibrated: scaled by the observed tokens per byte (tighter, an estimate)")
    run_id: str | None = Field(None, min_length=1, max_length=200,
                               description="the ledger's name for this run (ptlab synth derives one)")
    ledger_path: str | None = Field(None, description="SQLite ledger; default <PTLAB_HOME>/teacher/ledger.sqlite")
