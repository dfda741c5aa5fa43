"""The webhook server's configuration (``serve --config``, docs/webhook.md): one YAML file
read with a size cap, every key checked (unknown keys, types, ranges), secrets from files or
the environment."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from trustcheck.errors import ErrorCode, TrustcheckError, UsageError
from trustcheck.webhook.admitted import DEFAULT_MAX_ENTRIES, DEFAULT_WINDOW, Revocations
from trustcheck.webhook.cache import CacheSettings
from trustcheck.webhook.logs import LOG_LEVELS, LogLevel
from trustcheck.webhook.review import (
    MUTATION_MODES,
    UPDATE_MODES,
    ObjectExemption,
    WebhookConfig,
)
from trustcheck.webhook.shared import DEFAULT_MAX_ENTRY_BYTES, key_fingerprint

if TYPE_CHECKING:
    from trustcheck.remote.config import RemoteConfig

_C = TypeVar("_C", bound=str)
#: ``logs.reviews``: which reviews get a log line
LogReviews = Literal["all", "denied", "none"]
LOG_REVIEWS: tuple[LogReviews, ...] = ("all", "denied", "none")

#: an AdmissionReview carries the object and the old object (etcd caps each at 1.5 MiB)
DEFAULT_MAX_BODY = 7 << 19  # 3.5 MiB
_CONFIG_MAX = 1 << 20


@dataclass(frozen=True, slots=True)
class ServerLimits:
    """The ``server:`` section: what one connection and one request may hold
    (docs/webhook.md#connection-limits). The defaults keep a replica well under
    the Deployment's 512Mi limit whatever its clients do."""

    #: connections open at once, TLS handshakes included; more are closed at once
    max_connections: int = 256
    #: requests being served at once; more are answered 503 unread
    max_concurrent_requests: int = 32
    #: a kept-alive connection with no request for this long is closed
    idle_timeout: float = 30.0
    #: a request's head and body must arrive within this (from the connection
    #: being ready, or from the first byte of a later request)
    request_timeout: float = 10.0
    #: the TLS handshake must finish within this
    tls_handshake_timeout: float = 5.0
    #: the largest request head (request line and headers)
    max_header_bytes: int = 32 << 10


@dataclass(slots=True)
class AcrSettings:
    """``POST /acr/quarantine``: off unless a secret is configured."""

    secret: bytes | None = None
    header: str = "X-Trustcheck-Secret"
    mark_failed: bool = False
    #: registry API base URL (default https://<login server> of the image)
    registry: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls_ca: Path | None = None


@dataclass(slots=True)
class ServerConfig:
    """Everything ``trustcheck serve --config FILE`` reads (docs/webhook.md)."""

    webhook: WebhookConfig = field(default_factory=WebhookConfig)
    cache: CacheSettings = field(default_factory=CacheSettings)
    cache_url: str | None = None
    cache_secret: bytes | None = field(default=None, repr=False)
    cache_prefix: str = "trustcheck"
    #: the largest shared-cache entry read or written (a larger value is never read)
    cache_max_entry_bytes: int = DEFAULT_MAX_ENTRY_BYTES
    #: how often the serving certificate and key files are checked for changes
    tls_reload_seconds: float = 30.0
    #: how often --policy and --config are checked for changes (0: never; webhook/reload.py)
    reload_seconds: float = 5.0
    trust_dir: Path | None = None
    state_dir: Path | None = None
    pins: Path | None = None
    no_tofu: bool = False
    delegation_cert_expiry: str = "warn"
    remote: RemoteConfig | None = None
    acr: AcrSettings = field(default_factory=AcrSettings)
    max_body_bytes: int = DEFAULT_MAX_BODY
    limits: ServerLimits = field(default_factory=ServerLimits)
    #: which reviews get a log line: all, denied (and errors), none (errors only)
    log_reviews: LogReviews = "all"
    log_level: LogLevel = "info"
    #: how many verified releases the continuity memory keeps (webhook/admitted.py)
    continuity_max_entries: int = DEFAULT_MAX_ENTRIES


def _bad(source: str, where: str, message: str) -> UsageError:
    return UsageError(ErrorCode.WEBHOOK_CONFIG_INVALID, f"{source}: {where}: {message}")


class _Reader:
    """Typed access to a YAML mapping with path-qualified errors."""

    def __init__(self, doc: Mapping[str, Any], where: str, source: str, base: Path) -> None:
        self.doc = doc
        self.where = where
        self.source = source
        self.base = base

    def _path(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def fail(self, key: str, message: str) -> UsageError:
        return _bad(self.source, self._path(key), message)

    def check_keys(self, allowed: Sequence[str]) -> None:
        for key in self.doc:
            if not isinstance(key, str) or key not in allowed:
                raise _bad(
                    self.source,
                    self._path(str(key)),
                    f"unknown key; the keys here are {', '.join(allowed)}",
                )

    def section(self, key: str, allowed: Sequence[str]) -> _Reader:
        value = self.doc.get(key)
        if value is None:
            value = {}
        if not isinstance(value, dict):
            raise self.fail(key, "must be a mapping")
        sub = _Reader(value, self._path(key), self.source, self.base)
        sub.check_keys(allowed)
        return sub

    def string(self, key: str, default: str | None = None) -> str | None:
        value = self.doc.get(key)
        if value is None:
            return default
        if not isinstance(value, str) or not value:
            raise self.fail(key, "must be a non-empty string")
        return value

    def choice(self, key: str, choices: Sequence[_C], default: _C) -> _C:
        """The value as one of ``choices`` (a Literal's values)."""
        value = self.string(key, default)
        for c in choices:
            if value == c:
                return c
        raise self.fail(key, f"must be one of {', '.join(choices)}, got {value!r}")

    def boolean(self, key: str, default: bool) -> bool:
        value = self.doc.get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise self.fail(key, "must be true or false")
        return value

    def number(self, key: str, default: float, low: float, high: float) -> float:
        value = self.doc.get(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(key, "must be a number")
        if not low <= value <= high:
            raise self.fail(key, f"must be between {low:g} and {high:g}, got {value:g}")
        return float(value)

    def integer(self, key: str, default: int, low: int, high: int) -> int:
        value = self.doc.get(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(key, "must be an integer")
        if not low <= value <= high:
            raise self.fail(key, f"must be between {low} and {high}, got {value}")
        return value

    def path(self, key: str) -> Path | None:
        value = self.string(key)
        if value is None:
            return None
        p = Path(value)
        return p if p.is_absolute() else self.base / p

    def secret_file(self, key: str) -> bytes | None:
        p = self.path(key)
        if p is None:
            return None
        try:
            data = clean_secret(p.read_bytes()[:4096])
        except OSError as e:
            raise self.fail(key, f"cannot read {p}: {e.strerror or e}") from e
        if not data:
            raise self.fail(key, f"{p} is empty or only whitespace")
        return data

    def strings(self, key: str) -> list[str]:
        value = self.doc.get(key)
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise self.fail(key, "must be a list of non-empty strings")
        return list(value)


def clean_secret(data: bytes) -> bytes:
    """A secret as read from a file or an environment variable: surrounding
    whitespace (a trailing newline from ``echo`` or an editor) removed, the same
    way for both; empty when it was only whitespace."""
    return data.strip()


def secret_from_env(name: str, environ: Mapping[str, str]) -> bytes | None:
    """``$name`` as a secret (None when unset or empty); only whitespace is an error."""
    value = environ.get(name)
    if not value:
        return None
    data = clean_secret(value.encode())
    if not data:
        raise UsageError(
            ErrorCode.WEBHOOK_CONFIG_INVALID, f"${name} is only whitespace; it must hold the secret"
        )
    return data


_TOP = (
    "version",
    "deadline_seconds",
    "mutation",
    "updates",
    "annotation",
    "max_body_bytes",
    "max_warnings",
    "exempt",
    "cache",
    "trust",
    "upstream",
    "acr",
    "logging",
    "tls_reload_seconds",
    "reload_seconds",
    "continuity",
    "server",
)


def parse_config(doc: object, source: str = "<config>", base: Path | None = None) -> ServerConfig:
    """Validate a server config document (``webhook-config-invalid`` on any problem)."""
    from trustcheck.remote.config import RemoteConfig

    base = base if base is not None else Path.cwd()
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise _bad(source, "top level", "must be a mapping")
    top = _Reader(doc, "", source, base)
    top.check_keys(_TOP)
    if top.integer("version", 1, 1, 1) != 1:  # pragma: no cover - range-checked
        raise top.fail("version", "must be 1")
    exempt = top.section("exempt", ("namespaces", "objects"))
    objects: list[ObjectExemption] = []
    raw_objects = exempt.doc.get("objects") or []
    if not isinstance(raw_objects, list):
        raise exempt.fail("objects", "must be a list of {namespace, kind, name}")
    for i, item in enumerate(raw_objects):
        if not isinstance(item, dict):
            raise exempt.fail(f"objects[{i}]", "must be a mapping with namespace, kind, name")
        r = _Reader(item, f"exempt.objects[{i}]", source, base)
        r.check_keys(("namespace", "kind", "name"))
        ex = ObjectExemption(r.string("namespace"), r.string("kind"), r.string("name"))
        if ex.namespace is None and ex.kind is None and ex.name is None:
            raise exempt.fail(f"objects[{i}]", "is empty: it would exempt every object")
        if ex.namespace is None and ex.name is None:
            raise exempt.fail(
                f"objects[{i}]",
                "names only a kind: that exempts every object of the kind in every "
                "namespace; add namespace or name",
            )
        objects.append(ex)
    namespaces = exempt.strings("namespaces")
    if any(n.strip("*?") == "" for n in namespaces):
        raise exempt.fail("namespaces", "a pattern of only wildcards exempts every namespace")
    deadline = top.number("deadline_seconds", 8.0, 0.1, 29.0)
    cont = top.section("continuity", ("window_seconds", "max_entries", "revoked"))
    try:
        revoked = Revocations.parse(cont.strings("revoked"))
    except ValueError as e:
        raise cont.fail("revoked", str(e)) from e
    webhook = WebhookConfig(
        deadline=deadline,
        mutation=top.choice("mutation", MUTATION_MODES, "tag-digest"),
        updates=top.choice("updates", UPDATE_MODES, "all"),
        annotation=top.string("annotation", "trustcheck.io/original-images") or "",
        exempt_namespaces=tuple(namespaces),
        exempt_objects=tuple(objects),
        max_warnings=top.integer("max_warnings", 20, 0, 100),
        continuity_window=cont.number("window_seconds", DEFAULT_WINDOW, 0.0, 366 * 86400.0),
        revoked=revoked,
    )
    cache = top.section(
        "cache",
        (
            "ttl_seconds",
            "negative_ttl_seconds",
            "max_entries",
            "workers",
            "per_review",
            "per_server",
            "local_workers",
            "url",
            "secret_file",
            "prefix",
            "max_entry_bytes",
        ),
    )
    settings = CacheSettings(
        ttl=cache.number("ttl_seconds", 60.0, 0.0, 86400.0),
        negative_ttl=cache.number("negative_ttl_seconds", 10.0, 0.0, 3600.0),
        max_entries=cache.integer("max_entries", 1000, 1, 1_000_000),
        workers=cache.integer("workers", 8, 1, 64),
        per_review=cache.integer("per_review", 4, 1, 64),
        per_server=cache.integer("per_server", 6, 1, 64),
        local_workers=cache.integer("local_workers", 2, 1, 16),
    )
    trust = top.section(
        "trust", ("trust_dir", "state_dir", "pins", "no_tofu", "delegation_cert_expiry")
    )
    up = top.section(
        "upstream",
        (
            "server",
            "tls_ca",
            "client_cert",
            "client_key",
            "username",
            "password_file",
            "docker_config",
            "timeout_seconds",
            "total_timeout_seconds",
            "retries",
            "unsafe_http",
            "offline",
        ),
    )
    password = up.secret_file("password_file")
    remote = RemoteConfig(
        server=up.string("server"),
        unsafe_http=up.boolean("unsafe_http", False),
        tls_ca=up.path("tls_ca"),
        client_cert=up.path("client_cert"),
        client_key=up.path("client_key"),
        username=up.string("username"),
        password=password.decode() if password is not None else None,
        docker_config=up.path("docker_config"),
        timeout=up.number("timeout_seconds", min(3.0, deadline), 0.1, 120.0),
        total_timeout=up.number("total_timeout_seconds", 20.0, 0.1, 600.0),
        retries=up.integer("retries", 1, 0, 10),
        concurrency=settings.workers,
        offline=up.boolean("offline", False),
    )
    if (remote.username is None) != (password is None):
        raise up.fail("username", "username and password_file go together")
    try:
        remote.validate()
        if remote.server is not None:
            from trustcheck.remote.http import select_server

            select_server("example.com/x", replace(remote, offline=False), {})
    except TrustcheckError as e:
        raise _bad(source, "upstream", e.message) from e
    acr = top.section(
        "acr",
        ("secret_file", "header", "mark_failed", "registry", "username", "password_file", "tls_ca"),
    )
    acr_password = acr.secret_file("password_file")
    acr_settings = AcrSettings(
        secret=acr.secret_file("secret_file"),
        header=acr.string("header", "X-Trustcheck-Secret") or "",
        mark_failed=acr.boolean("mark_failed", False),
        registry=acr.string("registry"),
        username=acr.string("username"),
        password=acr_password.decode() if acr_password is not None else None,
        tls_ca=acr.path("tls_ca"),
    )
    if acr_settings.secret is not None and len(acr_settings.secret) < 16:
        raise acr.fail("secret_file", "the shared secret must be at least 16 characters")
    if acr_settings.secret is not None and acr_settings.registry is None:
        raise acr.fail(
            "registry",
            "the ACR receiver needs the registry it may call (e.g. https://myreg.azurecr.io): "
            "its credentials go to that registry only, never to the host an event names",
        )
    if acr_settings.registry is not None:
        from trustcheck.remote.http import registry_base_url

        try:
            registry_base_url("x", replace(remote, registry=acr_settings.registry))
        except TrustcheckError as e:
            raise acr.fail("registry", e.message) from e
    logs = top.section("logging", ("reviews", "level"))
    server = top.section(
        "server",
        (
            "max_connections",
            "max_concurrent_requests",
            "idle_timeout_seconds",
            "request_timeout_seconds",
            "tls_handshake_timeout_seconds",
            "max_header_bytes",
            "max_body_bytes",
        ),
    )
    if "max_body_bytes" in top.doc and "max_body_bytes" in server.doc:
        raise server.fail(
            "max_body_bytes", "is also set at the top level: keep one (server.max_body_bytes)"
        )
    body_cap = (server if "max_body_bytes" in server.doc else top).integer(
        "max_body_bytes", DEFAULT_MAX_BODY, 1024, 64 << 20
    )
    limits = ServerLimits(
        max_connections=server.integer("max_connections", 256, 1, 100_000),
        max_concurrent_requests=server.integer("max_concurrent_requests", 32, 1, 10_000),
        idle_timeout=server.number("idle_timeout_seconds", 30.0, 1.0, 3600.0),
        request_timeout=server.number("request_timeout_seconds", 10.0, 0.1, 300.0),
        tls_handshake_timeout=server.number("tls_handshake_timeout_seconds", 5.0, 0.1, 120.0),
        max_header_bytes=server.integer("max_header_bytes", 32 << 10, 1024, 1 << 20),
    )
    return ServerConfig(
        webhook=webhook,
        cache=settings,
        cache_url=cache.string("url"),
        cache_secret=cache.secret_file("secret_file"),
        cache_prefix=cache.string("prefix", "trustcheck") or "trustcheck",
        cache_max_entry_bytes=cache.integer(
            "max_entry_bytes", DEFAULT_MAX_ENTRY_BYTES, 64 << 10, 64 << 20
        ),
        tls_reload_seconds=top.number("tls_reload_seconds", 30.0, 0.1, 86400.0),
        reload_seconds=top.number("reload_seconds", 5.0, 0.0, 86400.0),
        trust_dir=trust.path("trust_dir"),
        state_dir=trust.path("state_dir"),
        pins=trust.path("pins"),
        no_tofu=trust.boolean("no_tofu", False),
        delegation_cert_expiry=trust.choice(
            "delegation_cert_expiry", ("ignore", "warn", "reject"), "warn"
        ),
        remote=remote,
        acr=acr_settings,
        max_body_bytes=body_cap,
        limits=limits,
        log_reviews=logs.choice("reviews", LOG_REVIEWS, "all"),
        log_level=logs.choice("level", LOG_LEVELS, "info"),
        continuity_max_entries=cont.integer("max_entries", DEFAULT_MAX_ENTRIES, 1, 1_000_000),
    )


def load_config(path: Path | None) -> ServerConfig:
    """Read ``--config FILE`` (YAML); None: every default."""
    if path is None:
        return parse_config({})
    from trustcheck import yamlfile

    try:
        with path.open("rb") as f:
            data = f.read(_CONFIG_MAX + 1)
    except OSError as e:
        raise _bad(str(path), "file", f"cannot read it: {e.strerror or e}") from e
    if len(data) > _CONFIG_MAX:
        raise _bad(str(path), "file", f"larger than {_CONFIG_MAX} bytes")

    try:  # no anchors, aliases, merge keys or duplicate keys (trustcheck.yamlfile)
        doc = yamlfile.load(data)
    except yamlfile.YamlProblem as e:
        where = f"line {e.line}" if e.line is not None else "file"
        if e.key is not None:
            raise _bad(str(path), where, f"{e.key!r} appears twice ({e.path})") from e
        raise _bad(str(path), where, f"{e.path}: {e.message}" if e.path else e.message) from e
    return parse_config(doc, str(path), path.parent)


def config_summary(config: ServerConfig) -> dict[str, object]:
    """What the start-up log line shows of the config (no secrets)."""
    w = config.webhook
    return dict(
        {
            "deadline_seconds": w.deadline,
            "mutation": w.mutation,
            "updates": w.updates,
            "exempt_namespaces": list(w.exempt_namespaces),
            "exempt_objects": [str(o) for o in w.exempt_objects],
            "cache_ttl_seconds": config.cache.ttl,
            "shared_cache": config.cache_url is not None,
            "cache_key_fingerprint": (
                key_fingerprint(config.cache_secret)
                if config.cache_url is not None and config.cache_secret is not None
                else None
            ),
            "acr_receiver": config.acr.secret is not None,
            "continuity_window_seconds": w.continuity_window,
            "revoked": list(w.revoked.texts),
            "max_connections": config.limits.max_connections,
            "max_concurrent_requests": config.limits.max_concurrent_requests,
            "max_body_bytes": config.max_body_bytes,
        }
    )
