"""The `openai` backend: any OpenAI-compatible chat-completions server.

vLLM, Ollama, llama.cpp's server, hosted APIs and `ptlab serve` all speak
``POST {base_url}/chat/completions``. Requests go out concurrently (asyncio +
one pooled httpx client, `concurrency` workers); each is retried with
exponential backoff and jitter (tenacity) on timeouts, connection errors, 429,
5xx and malformed 200 replies; 401/403 stop the run with one line naming the
server. The API key is read from the environment variable named in config,
validated before any client sees it (httpx's own error for a bad header value
contains the value), kept only in the client's headers, and scrubbed from
every message. A base_url with credentials in it is refused, so the URL that
every message names never carries a password.

Each failed attempt is marked *billable* unless it surely never reached a
model (connection refused or not made, 429, another 4xx): a strict budget
charges billable attempts and asks for budget before every retry
(`ReplyHooks.retry`), since a provider may finish, and bill, a request whose
reply came too late or malformed.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import ssl
import time
from collections import Counter
from collections.abc import Sequence

import httpx
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential_jitter

from ptlab.synth.errors import AuthError, TeacherError
from ptlab.synth.secrets import check_base_url, read_api_key, scrub
from ptlab.synth.teachers.base import BUDGET_SPENT, ChatReply, ChatRequest, ReplyHooks


class _Retryable(Exception):
    """One failed attempt that may succeed if tried again; `kind` names the Accounting counter;
    `billable`: the provider may have done (and billed) the work."""

    def __init__(self, kind: str, detail: str, retry_after: float | None = None, billable: bool = True):
        super().__init__(detail)
        self.kind = kind
        self.retry_after = retry_after
        self.billable = billable


class _NoBudgetToRetry(Exception):
    """The hooks refused a retry: the budget cannot pay for another attempt."""


class OpenAITeacher:
    backend = "openai"

    def __init__(
        self,
        model: str,
        base_url: str = "http://127.0.0.1:8000/v1",
        api_key_env: str | None = "OPENAI_API_KEY",
        api_key_required: bool = False,
        concurrency: int = 16,
        timeout_s: float = 60.0,
        max_retries: int = 4,
        backoff_s: float = 0.5,
        backoff_max_s: float = 20.0,
        send_seed: bool = False,
    ):
        self.model = model
        check_base_url(base_url, "teacher")  # before the URL appears in any message, repr or result
        self.base_url = base_url.rstrip("/")
        self.api_key_env = api_key_env
        self._api_key = read_api_key(api_key_env, required=api_key_required, where=f"teacher {self.base_url}")
        self.concurrency = concurrency
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.send_seed = send_seed
        self._backoff = wait_exponential_jitter(initial=backoff_s, max=backoff_max_s, jitter=backoff_s)
        self._backoff_max_s = backoff_max_s
        self._successes = 0
        self._ssl: ssl.SSLContext | None = None

    @classmethod
    def from_config(cls, cfg) -> OpenAITeacher:
        return cls(
            cfg.model,
            cfg.base_url,
            cfg.api_key_env,
            cfg.api_key_required,
            cfg.concurrency,
            cfg.timeout_s,
            cfg.max_retries,
            cfg.backoff_s,
            cfg.backoff_max_s,
            cfg.send_seed,
        )

    def __repr__(self) -> str:  # never the key
        return f"OpenAITeacher(model={self.model!r}, base_url={self.base_url!r}, api_key_env={self.api_key_env!r})"

    # ---- public API -------------------------------------------------------------------------
    def generate(self, requests: Sequence[ChatRequest], hooks: ReplyHooks | None = None) -> list[ChatReply]:
        """Blocking wrapper over `agenerate` (runs its own event loop, in a thread if one is running)."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self.agenerate(requests, hooks))
        with concurrent.futures.ThreadPoolExecutor(1) as pool:  # a loop runs here already: use another thread
            return pool.submit(asyncio.run, self.agenerate(requests, hooks)).result()

    async def agenerate(self, requests: Sequence[ChatRequest], hooks: ReplyHooks | None = None) -> list[ChatReply]:
        requests = list(requests)
        results: list[ChatReply | None] = [None] * len(requests)
        pending = iter(range(len(requests)))
        headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}

        async def worker() -> None:
            # One client (one keep-alive connection) per worker: httpcore's shared pool scans every
            # connection for every request, which at 64 connections costs more than the request.
            async with httpx.AsyncClient(
                base_url=self.base_url,
                headers=headers,
                timeout=httpx.Timeout(self.timeout_s),
                limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
                verify=self._ssl_context(),
            ) as client:
                for j in pending:  # a shared iterator: each index is taken by exactly one worker
                    admitted = hooks.admit(j) if hooks is not None else True
                    while admitted is None:  # fits once in-flight requests give their reservations back
                        await asyncio.sleep(0.005)
                        admitted = hooks.admit(j)
                    if not admitted:
                        reply = ChatReply("", error=BUDGET_SPENT, meta={"attempts": 0, "cost": 0})
                    else:
                        reply = await self._one(client, requests[j], j, hooks)
                    results[j] = reply
                    if hooks is not None:
                        hooks.done(j, reply)

        try:
            async with asyncio.TaskGroup() as group:
                for _ in range(min(self.concurrency, len(requests))):
                    group.create_task(worker())
        except* TeacherError as eg:  # a fatal error (bad key, unknown model): the first one, alone
            raise eg.exceptions[0] from None
        return results  # type: ignore[return-value]

    def _ssl_context(self) -> ssl.SSLContext:
        """One CA bundle load per teacher, not per connection (it costs ~40 ms)."""
        if self._ssl is None:
            self._ssl = ssl.create_default_context()
        return self._ssl

    # ---- one request -----------------------------------------------------------------------
    def _payload(self, request: ChatRequest) -> dict:
        payload = {
            "model": self.model,
            "messages": request.message_dicts(),
            "temperature": request.temperature,
            "top_p": request.top_p,
            "max_tokens": request.max_tokens,
            "n": 1,
        }
        if request.stop:
            payload["stop"] = list(request.stop)
        if self.send_seed:
            payload["seed"] = request.sample_index
        return payload

    def _wait(self, state) -> float:
        wait = self._backoff(state)
        exc = state.outcome.exception() if state.outcome else None
        after = getattr(exc, "retry_after", None)
        if after:
            wait = max(wait, min(after, self._backoff_max_s))
        return wait

    async def _one(self, client: httpx.AsyncClient, request: ChatRequest, index: int = 0,
                   hooks: ReplyHooks | None = None) -> ChatReply:
        payload = self._payload(request)
        faults: Counter = Counter()
        attempts = 0
        billable = True
        ask_retry = getattr(hooks, "retry", None)
        started = time.perf_counter()
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.max_retries + 1),
            wait=self._wait,
            retry=retry_if_exception_type(_Retryable),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    if attempts and ask_retry is not None:
                        go = ask_retry(index, billable)
                        while go is None:  # fits once in-flight requests give their reservations back
                            await asyncio.sleep(0.005)
                            go = ask_retry(index, billable)
                        if not go:
                            raise _NoBudgetToRetry
                    attempts += 1
                    try:
                        reply = await self._attempt(client, payload)
                    except _Retryable as e:
                        faults[e.kind] += 1
                        billable = e.billable
                        raise
        except _NoBudgetToRetry:
            meta = {"attempts": attempts, "faults": dict(faults), "latency_s": time.perf_counter() - started,
                    "billable": False}  # the last billable attempt was charged when the retry was asked for
            return ChatReply("", error=BUDGET_SPENT, meta=meta)
        except _Retryable as e:
            if e.kind == "transport_errors" and self._successes == 0:
                raise TeacherError(f"cannot reach teacher server {self.base_url}: {scrub(str(e), self._api_key)}") from None
            meta = {"attempts": attempts, "faults": dict(faults), "latency_s": time.perf_counter() - started,
                    "billable": e.billable}
            return ChatReply("", error=f"{e.kind} after {attempts} attempts: {scrub(str(e), self._api_key)}", meta=meta)
        except _ClientError as e:
            faults["client_errors"] += 1
            meta = {"attempts": attempts, "faults": dict(faults), "latency_s": time.perf_counter() - started,
                    "billable": False}
            return ChatReply("", error=scrub(str(e), self._api_key), meta=meta)
        self._successes += 1
        reply.meta.update(attempts=attempts, faults=dict(faults), latency_s=time.perf_counter() - started)
        return reply

    async def _attempt(self, client: httpx.AsyncClient, payload: dict) -> ChatReply:
        try:
            resp = await client.post("/chat/completions", json=payload)
        except httpx.TimeoutException as e:
            sent = not isinstance(e, (httpx.ConnectTimeout, httpx.PoolTimeout))
            raise _Retryable("timeouts", f"timed out after {self.timeout_s}s ({type(e).__name__})",
                             billable=sent) from None
        except httpx.TransportError as e:
            sent = not isinstance(e, httpx.ConnectError)
            raise _Retryable("transport_errors", f"{type(e).__name__}: {e}", billable=sent) from None
        status = resp.status_code
        if status in (401, 403):
            via = f"the key in ${self.api_key_env}" if self._api_key else f"no API key (${self.api_key_env} is unset)"
            raise AuthError(f"teacher server {self.base_url} rejected {via} (HTTP {status})")
        if status == 404:
            raise TeacherError(
                f"teacher server {self.base_url} answered HTTP 404 to POST /chat/completions "
                f"(wrong base_url, or no model {self.model!r}): {_snippet(resp, self._api_key)}"
            )
        if status == 429:
            raise _Retryable("rate_limited", "HTTP 429", _retry_after(resp), billable=False)
        if status >= 500:
            raise _Retryable("server_errors", f"HTTP {status}: {_snippet(resp, self._api_key)}")
        if status != 200:
            raise _ClientError(f"HTTP {status} from {self.base_url}: {_snippet(resp, self._api_key)}")
        return _parse(resp)


class _ClientError(Exception):
    """A 4xx other than 401/403/404/429: this request is wrong, retrying will not help."""


def _parse(resp: httpx.Response) -> ChatReply:
    try:
        data = json.loads(resp.content)
        choice = data["choices"][0]
        text = choice["message"]["content"]
        if not isinstance(text, str):
            raise TypeError(f"content is {type(text).__name__}")
        usage = data.get("usage") or {}
        prompt_tokens = int(usage.get("prompt_tokens") or 0)
        completion_tokens = int(usage.get("completion_tokens") or 0)
    except (ValueError, KeyError, IndexError, TypeError, AttributeError) as e:
        raise _Retryable("malformed", f"malformed chat completion ({type(e).__name__}: {str(e)[:80]})") from None
    meta = {"finish_reason": choice.get("finish_reason")} if isinstance(choice, dict) else {}
    if prompt_tokens + completion_tokens == 0:
        meta["usage_unreported"] = True  # a token budget then charges the call's bound, not zero
    return ChatReply(text, prompt_tokens, completion_tokens, meta=meta)


def _retry_after(resp: httpx.Response) -> float | None:
    try:
        return float(resp.headers.get("retry-after", ""))
    except ValueError:
        return None


def _snippet(resp: httpx.Response, secret: str | None) -> str:
    return scrub(resp.text[:200].replace("\n", " "), secret)
