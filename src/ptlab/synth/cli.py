"""`ptlab serve MODEL` (an OpenAI-compatible server) and `ptlab synth CONFIG` (a strategy under a budget)."""

from __future__ import annotations

import sys

import typer

from ptlab.errors import ConfigError
from ptlab.synth.errors import RunFailed


def register(app: typer.Typer) -> None:
    @app.command("synth")
    def synth(
        config: str = typer.Argument(None, help="YAML with sections teacher, budget, strategy, seeds, output"),
        overrides: list[str] = typer.Argument(None, help="key=value overrides, e.g. strategy.queries=200"),
    ) -> None:
        """Generate a dataset with one strategy under a teacher-query budget; print the accounting."""
        import json

        from ptlab.config import load_config
        from ptlab.synth.run import SynthConfig, run_synth

        args = list(overrides or [])
        if config and "=" in config and not config.endswith((".yaml", ".yml")):
            config, args = None, [config, *args]  # only overrides, no file
        cfg = load_config(SynthConfig, config, args)
        try:
            out, result = run_synth(cfg)
        except RunFailed as e:  # the run failed (exit 1); bad input stays exit 2
            print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
            raise typer.Exit(e.exit_code) from None
        stats = {k: v for k, v in result.stats.items() if k != "teacher"}
        acc = result.stats.get("teacher", {})
        print(f"wrote {len(result.rows)} rows to {out}/data.jsonl")
        print(json.dumps({**stats, "paid": acc.get("paid"), "cached": acc.get("cached"), "failed": acc.get("failed"),
                          "retried": acc.get("retried")}))

    @app.command("serve")
    def serve(
        model: str = typer.Argument(..., help="ptlab model name (tiny-test, smollm2-135m, ...), a model directory, or any name with --echo/--canned"),
        host: str = typer.Option("127.0.0.1", help="address to bind"),
        port: int = typer.Option(8000, help="port (0 picks a free one; the URL is printed)"),
        echo: bool = typer.Option(False, "--echo", help="no model: reply 'echo: <last user message>' (tests, benchmarks)"),
        canned: str = typer.Option(None, help="no model: reply this text to everything"),
        batch_size: int = typer.Option(8, help="model: requests generated together"),
        device: str = typer.Option(None, help="model: torch device (default cpu)"),
        api_key_env: str = typer.Option(None, help="require 'Bearer $VAR' from clients (the variable's name)"),
        fault_rate: float = typer.Option(0.0, help="share of requests answered with an injected fault"),
        fault_kinds: str = typer.Option("500,timeout,malformed", help="comma list from 500,429,timeout,malformed,late"),
        fault_delay: float = typer.Option(2.0, help="seconds a 'timeout' fault stalls before dropping the connection"),
        fault_seed: int = typer.Option(0, help="seed of the fault draws"),
        latency: float = typer.Option(0.0, help="seconds every reply waits (a slow server)"),
        max_body_bytes: int = typer.Option(1 << 20, help="largest request body accepted (413 above it)"),
        idle_timeout: float = typer.Option(30.0, help="seconds a connection may sit idle before it is closed"),
        max_connections: int = typer.Option(256, help="open connections served at once (503 beyond them)"),
        max_tokens_cap: int = typer.Option(4096, help="largest max_tokens a request may ask for"),
        verbose: bool = typer.Option(False, help="log every request"),
    ) -> None:
        """Serve MODEL over an OpenAI-compatible API: /v1/chat/completions, /v1/completions and /v1/models."""
        from ptlab.synth.secrets import read_api_key
        from ptlab.synth.serve import CannedResponder, EchoResponder, FaultInjector, ModelResponder, OpenAIServer
        from ptlab.synth.serve.auth import exposure_warning

        try:
            faults = FaultInjector(fault_rate, tuple(k.strip() for k in fault_kinds.split(",") if k.strip()),
                                   fault_delay, fault_seed)
        except ValueError as e:
            raise ConfigError(f"--fault-rate/--fault-kinds: {e}") from None
        limits = {"--max-body-bytes": max_body_bytes, "--idle-timeout": idle_timeout,
                  "--max-connections": max_connections, "--max-tokens-cap": max_tokens_cap}
        for name, value in limits.items():
            if not value > 0:
                raise ConfigError(f"{name} must be positive (got {value})")
        api_key = read_api_key(api_key_env, required=True, where="ptlab serve --api-key-env") if api_key_env else None
        warning = exposure_warning(host, api_key)
        if warning:
            print(warning, file=sys.stderr, flush=True)
        if echo:
            responder = EchoResponder()
        elif canned is not None:
            responder = CannedResponder(canned)
        else:
            from ptlab.synth.teachers.hf import HFTeacher

            teacher = HFTeacher(model, batch_size=batch_size, device=device)
            teacher.load()
            responder = ModelResponder(teacher, max_batch=batch_size)
        try:
            server = OpenAIServer(responder, model, host, port, faults, api_key, verbose, latency,
                                  max_body_bytes=max_body_bytes, idle_timeout_s=idle_timeout,
                                  max_connections=max_connections, max_tokens_cap=max_tokens_cap)
        except OSError as e:
            raise ConfigError(f"ptlab serve: cannot listen on {host}:{port} ({e.strerror})") from None
        # Many connection threads + the GIL: a short switch interval keeps a woken thread from
        # waiting the default 5 ms behind a busy one (about 2x the requests/s at 64 clients).
        sys.setswitchinterval(0.0005)
        print(f"ptlab serve: {model} at {server.url}", flush=True)
        try:
            server.serve_forever(poll_interval=0.2)
        except KeyboardInterrupt:
            print("ptlab serve: stopped", file=sys.stderr)
        finally:
            server.server_close()
