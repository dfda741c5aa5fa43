"""``trustcheck serve``: the Kubernetes admission webhook (docs/webhook.md).

uvicorn serves :mod:`trustcheck.webhook.app` over TLS only. The work is
imported inside the command: ``trustcheck --help`` does not load Starlette.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from trustcheck.cli.options import fail_usage
from trustcheck.errors import ErrorCode

if TYPE_CHECKING:
    from trustcheck.webhook.config import ServerConfig


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)


def serve(
    policy: Annotated[
        Path,
        typer.Option("--policy", help="Policy file (YAML, docs/policy.md).", show_default=False),
    ],
    tls_cert: Annotated[
        Path,
        typer.Option(
            "--tls-cert",
            help="The webhook's serving certificate (PEM, with its chain). The API server "
            "must trust its CA (caBundle of the webhook configurations).",
            show_default=False,
        ),
    ],
    tls_key: Annotated[
        Path,
        typer.Option("--tls-key", help="The key of --tls-cert (PEM).", show_default=False),
    ],
    port: Annotated[int, typer.Option("--port", help="TCP port.", min=1, max=65535)] = 8443,
    host: Annotated[
        str, typer.Option("--host", help="Address to listen on (0.0.0.0: all).")
    ] = "0.0.0.0",
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            help="Server config (YAML): deadline, mutation, exemptions, cache, Notary "
            "server settings, ACR receiver, connection limits (docs/webhook.md).",
            show_default=False,
        ),
    ] = None,
    cache: Annotated[
        str | None,
        typer.Option(
            "--cache",
            help="Shared cache URL (redis://HOST:PORT/DB or rediss://...), overriding "
            "cache.url; needs cache.secret_file or $TRUSTCHECK_CACHE_SECRET.",
            show_default=False,
        ),
    ] = None,
    trust_dir: Annotated[
        Path | None,
        typer.Option(
            "--trust-dir",
            help="Where fetched trust data is cached (overrides trust.trust_dir; default "
            "$TRUSTCHECK_TRUST_DIR, else ~/.cache/trustcheck/trust).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Serve the Kubernetes admission webhook (validating and mutating) over TLS.

    POST /validate, POST /mutate, GET /healthz, GET /readyz, GET /metrics,
    POST /acr/quarantine. Runs until SIGTERM or SIGINT.
    """
    import os
    import ssl
    from dataclasses import replace

    try:  # the web stack is the `webhook` extra (pyproject.toml): the CLI does not need it
        import uvicorn

        from trustcheck.webhook.app import TlsReloader, build_server
        from trustcheck.webhook.config import config_summary, load_config, secret_from_env
        from trustcheck.webhook.logs import configure_logging
    except ImportError as e:
        from trustcheck.errors import UsageError

        raise UsageError(
            ErrorCode.EXTRA_MISSING,
            f"trustcheck serve needs the webhook extra (no module {e.name or '?'!r}): "
            "pip install 'trustcheck[webhook]'",
        ) from None
    from trustcheck.errors import UsageError
    from trustcheck.policy.load import load_policy

    for label, path in (("--tls-cert", tls_cert), ("--tls-key", tls_key)):
        if not path.is_file():
            fail_usage(f"{label} {path}: no such file (the webhook serves TLS only)")
    from trustcheck.webhook.reload import PolicyReloader, watch

    watched = watch(policy, config)  # before reading: a change from now on is seen
    cfg = load_config(config)
    if cache is not None:
        if not cache.startswith(("redis://", "rediss://", "unix://")):
            fail_usage(f"--cache must be a redis://, rediss:// or unix:// URL, not {cache[:40]!r}")
        cfg.cache_url = cache
    if cfg.cache_secret is None:
        try:
            # the same whitespace handling as cache.secret_file
            cfg.cache_secret = secret_from_env("TRUSTCHECK_CACHE_SECRET", os.environ)
        except UsageError as e:
            fail_usage(e.message)
    if trust_dir is not None:
        cfg = replace(cfg, trust_dir=trust_dir)
    pol = load_policy(policy)
    server = build_server(pol, cfg)

    def read_config() -> ServerConfig:  # a reload: the same overrides as at start
        new = load_config(config)
        if cache is not None:
            new.cache_url = cache
        if new.cache_secret is None:
            new.cache_secret = secret_from_env("TRUSTCHECK_CACHE_SECRET", os.environ)
        return replace(new, trust_dir=trust_dir) if trust_dir is not None else new

    # --policy and --config are watched (webhook/reload.py, docs/webhook.md)
    server.reloader = PolicyReloader(server, policy, config, read_config, watched=watched)
    try:
        TlsReloader.load(tls_cert, tls_key)
    except (OSError, ssl.SSLError) as e:
        server.cache.close()
        fail_usage(f"cannot load --tls-cert/--tls-key: {e}")

    configure_logging(cfg.log_level)
    from trustcheck.webhook.limits import (
        ConnectionMetrics,
        ConnectionTable,
        FetchMetrics,
        LimitedServer,
        limit_requests,
        uvicorn_settings,
    )

    # docs/webhook.md#connection-limits: every connection and request is bounded
    limits = cfg.limits
    table = ConnectionTable(limits)
    server.metrics.registry.register(ConnectionMetrics(table))
    server.metrics.registry.register(FetchMetrics(lambda: server.cache.fetch_load()))
    uv = uvicorn.Config(
        limit_requests(server.app, limits.max_concurrent_requests, table),
        **uvicorn_settings(limits),
        host=host,
        port=port,
        ssl_certfile=str(tls_cert),
        ssl_keyfile=str(tls_key),
        log_config=None,
        access_log=False,
        server_header=False,
        lifespan="on",
        interface="asgi3",
        timeout_graceful_shutdown=10,
    )
    uv.load()
    assert uv.ssl is not None
    uv.ssl.minimum_version = ssl.TLSVersion.TLSv1_2
    # uvicorn's context stays the listening one; new pairs go into new contexts,
    # picked per connection by its SNI callback, and only once they load
    server.tls_reloader = TlsReloader(tls_cert, tls_key, uv.ssl)
    import logging

    logging.getLogger("trustcheck.webhook.review").info(
        "starting",
        extra={"fields": {"host": host, "port": port, "config": config_summary(cfg)}},
    )
    LimitedServer(uv, table).run()
