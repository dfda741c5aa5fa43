"""The admission webhook's HTTP server: a Starlette app around :mod:`trustcheck.webhook.review`.

Endpoints (docs/webhook.md):

* ``POST /validate`` and ``POST /mutate``: AdmissionReview in, AdmissionReview
  out. The body is capped (``max_body_bytes``, 413 above it); a body that is
  not JSON or not an AdmissionReview is a 400; everything else is answered
  with ``allowed`` true or false, never a 500: any exception becomes a deny
  with a short message and a full log line.
* ``GET /healthz`` (the process answers), ``GET /readyz`` (the policy is
  loaded and the server is not shutting down), ``GET /metrics`` (Prometheus).
* ``POST /acr/quarantine``: Azure Container Registry's ``quarantine`` webhook;
  the image is released (``quarantineState: Passed``) only when the policy
  allows its digest. Authenticated by a shared secret header.

The review's deadline: collections missing from the cache are awaited at most
until ``deadline`` seconds after the request arrived; whatever is not verified
by then denies its image (``admission-deadline``), while the fetch goes on
into the cache. Logs are JSON lines on stderr, one per review.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hmac
import logging
import os
import ssl
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    generate_latest,
)
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from trustcheck.errors import ErrorCode, TrustcheckError, UsageError
from trustcheck.webhook.admitted import ReleasedStore
from trustcheck.webhook.cache import TrustCache
from trustcheck.webhook.config import ServerConfig
from trustcheck.webhook.logs import ReviewLog
from trustcheck.webhook.metrics import Metrics
from trustcheck.webhook.review import (
    Memo,
    Outcome,
    ReviewError,
    deadline_error,
    deny_response,
    parse_review,
    plan_review,
    respond,
)

if TYPE_CHECKING:
    from trustcheck.api import Options
    from trustcheck.core.verify import Collection
    from trustcheck.policy.gather import ImageEvidence
    from trustcheck.policy.model import Decision, Policy
    from trustcheck.webhook.reload import PolicyReloader
    from trustcheck.webhook.shared import SharedCache

__all__ = ["TlsReloader", "WebhookServer", "build_server"]

#: :func:`trustcheck.policy.gather.review_evidence`
_Gather = Callable[..., Awaitable[tuple["ImageEvidence", datetime]]]

log = logging.getLogger("trustcheck.webhook.review")

# ----------------------------------------------------------------------------- the server


def _bridge(
    future: concurrent.futures.Future[Any], loop: asyncio.AbstractEventLoop
) -> asyncio.Future[None]:
    """An asyncio future completed (never with the result) when ``future`` is done.
    Unlike ``asyncio.wrap_future`` it never cancels the shared fetch."""
    waiter: asyncio.Future[None] = loop.create_future()

    def done(_: concurrent.futures.Future[Any]) -> None:
        def finish() -> None:
            if not waiter.done():
                waiter.set_result(None)

        loop.call_soon_threadsafe(finish)

    future.add_done_callback(done)
    return waiter


_REVIEW_PATHS = frozenset({"/validate", "/mutate"})


async def _send(
    send: Any, status: int, body: bytes, extra: Sequence[tuple[bytes, bytes]] = ()
) -> None:
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *extra,
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _too_big(limit: int) -> bytes:
    return orjson.dumps({"error": f"the body is larger than {limit} bytes"})


_EVIDENCE: list[_Gather] = []


def _review_evidence() -> _Gather:
    """:func:`trustcheck.policy.gather.review_evidence` (require:, helper G), imported
    at the first review rather than once per review."""
    if not _EVIDENCE:
        from trustcheck.policy.gather import review_evidence

        _EVIDENCE.append(review_evidence)
    return _EVIDENCE[0]


def _status(d: Decision) -> str:
    if d.verdict == "allow":
        return "allow"
    return "warn" if d.allowed else "deny"


class WebhookServer:
    """The policy, the cache, the metrics and the Starlette app serving them."""

    def __init__(
        self,
        policy: Policy,
        config: ServerConfig,
        cache: TrustCache,
        *,
        options: Options,
        metrics: Metrics | None = None,
        review_log: ReviewLog | None = None,
        released: ReleasedStore | None = None,
    ) -> None:
        self.policy = policy
        self.config = config
        self.cache = cache
        self.options = options
        self.metrics = metrics if metrics is not None else Metrics()
        self.metrics.entries.set_function(lambda: float(len(self.cache)))
        self.memo = Memo()
        #: the releases verified before (continuity, webhook/admitted.py)
        self.released = (
            released
            if released is not None
            else ReleasedStore(config.webhook.continuity_window)
        )
        self.review_log = review_log if review_log is not None else ReviewLog()
        self.ready = False
        self.tls_reloader: Callable[[], object] | None = None
        #: live reload of --policy and --config (webhook/reload.py), set by ``serve``
        self.reloader: PolicyReloader | None = None
        #: a trust cache for another policy (a reload), set by :func:`build_server`
        self.make_cache: Callable[[Policy], TrustCache] | None = None
        self._starlette = Starlette(
            routes=[
                Route("/healthz", self.healthz, methods=["GET"]),
                Route("/readyz", self.readyz, methods=["GET"]),
                Route("/metrics", self.metrics_endpoint, methods=["GET"]),
                Route("/acr/quarantine", self.acr_quarantine, methods=["POST"]),
            ],
            lifespan=self.lifespan,
        )
        #: the ASGI application uvicorn serves
        self.app: Callable[..., Any] = self._asgi

    @asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        """Ready while it runs; closes the cache at the end (the app's lifespan)."""
        import gc

        # the policy, the modules and the verified collections live as long as the
        # process: keep them out of the collector's full passes (shorter pauses)
        gc.collect()
        gc.freeze()
        self.ready = True
        reload_task = None
        if self.tls_reloader is not None:
            reload_task = asyncio.create_task(self._reload_tls_loop(self.tls_reloader))
        flush_task = asyncio.create_task(self._flush_loop())
        watch_task = None
        if self.reloader is not None and self.config.reload_seconds > 0:
            watch_task = asyncio.create_task(
                self.reloader.run(lambda: self.config.reload_seconds)
            )
        log.info("ready", extra={"fields": {"policy": self.policy.source}})
        try:
            yield
        finally:
            self.ready = False
            if reload_task is not None:
                reload_task.cancel()
            if watch_task is not None:
                watch_task.cancel()
            if self.reloader is not None:
                self.reloader.close()
            flush_task.cancel()
            self.review_log.flush()
            self._save_released(force=True)
            self.cache.close()
            log.info("stopped")

    async def _flush_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.review_log.interval)
            self.review_log.flush()
            await loop.run_in_executor(None, self._save_released)

    def _save_released(self, force: bool = False) -> None:
        """The continuity memory to its file and the shared store (worker thread)."""
        try:
            self.released.flush(force=force)
            self.released.publish()
        except Exception:
            log.exception("saving the released-digest memory failed")

    async def _reload_tls_loop(self, reload: Callable[[], object]) -> None:
        while True:
            await asyncio.sleep(self.config.tls_reload_seconds)
            try:
                reload()
            except Exception:
                log.exception("reloading the TLS certificate failed; keeping the old one")

    # --- helpers ---------------------------------------------------------------------

    async def _body(self, request: Request) -> bytes | Response:
        limit = self.config.max_body_bytes
        declared = request.headers.get("content-length")
        if declared is not None:
            try:
                if int(declared) > limit:
                    return self._reject(413, f"the body is larger than {limit} bytes")
            except ValueError:
                return self._reject(400, "invalid Content-Length")
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                return self._reject(413, f"the body is larger than {limit} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    def _reject(self, status: int, message: str) -> Response:
        return JSONResponse({"error": message}, status_code=status)

    # --- admission -------------------------------------------------------------------

    async def _asgi(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """The ASGI entry point: the two review endpoints directly (they are the hot
        path), everything else through Starlette."""
        if scope["type"] == "http" and scope["path"] in _REVIEW_PATHS:
            await self._review_asgi(scope, receive, send)
        else:
            await self._starlette(scope, receive, send)

    async def _review_asgi(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        started = time.monotonic()  # the deadline counts from here
        mutate = scope["path"] == "/mutate"
        if scope["method"] != "POST":
            await _send(send, 405, b'{"error":"use POST"}', ((b"allow", b"POST"),))
            return
        limit = self.config.max_body_bytes
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await self._refuse(send, mutate, 400, b'{"error":"invalid Content-Length"}')
                    return
                if declared > limit:
                    await self._refuse(send, mutate, 413, _too_big(limit))
                    return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await self._refuse(send, mutate, 413, _too_big(limit))
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        status, payload = await self.review(b"".join(chunks), mutate=mutate, started=started)
        await _send(send, status, payload)

    async def _refuse(self, send: Any, mutate: bool, status: int, payload: bytes) -> None:
        endpoint = "mutate" if mutate else "validate"
        self.metrics.reviews.inc(endpoint, "invalid")
        log.warning("review refused", extra={"fields": {"endpoint": endpoint, "status": status}})
        await _send(send, status, payload)

    async def _collections(
        self,
        needs: Sequence[tuple[int, str]],
        started: float,
        deadline: float,
        cache: TrustCache | None = None,
    ) -> tuple[dict[tuple[int, str], Collection | TrustcheckError], bool]:
        """The collections ``needs`` names, waiting for misses until the deadline
        (from ``cache``: the one of the policy the review started with)."""
        found, waiting = (cache if cache is not None else self.cache).lookup(needs)
        got: dict[tuple[int, str], Collection | TrustcheckError] = dict(found)
        late = False
        if waiting:
            loop = asyncio.get_running_loop()
            remaining = deadline - (time.monotonic() - started)
            if remaining > 0:
                await asyncio.wait(
                    [_bridge(f, loop) for f in waiting.values()], timeout=remaining
                )
            for key, future in waiting.items():
                if future.done():
                    got[key] = future.result()  # an unexpected exception: internal error
                else:
                    got[key] = deadline_error(deadline)
                    late = True
        return got, late

    async def review(
        self, body: bytes, *, mutate: bool, started: float | None = None
    ) -> tuple[int, bytes]:
        """One review: the HTTP status and the JSON answer (400 when the body is not an
        AdmissionReview; otherwise 200, with allowed true or false). ``started``: when
        the request arrived (``time.monotonic()``), the start of the deadline."""
        if started is None:
            started = time.monotonic()
        endpoint = "mutate" if mutate else "validate"
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError as e:
            self.metrics.reviews.inc(endpoint, "invalid")
            log.warning("review refused: not JSON", extra={"fields": {"endpoint": endpoint}})
            return 400, orjson.dumps({"error": f"the body is not JSON: {str(e)[:120]}"})
        try:
            review = parse_review(doc)
        except ReviewError as e:
            self.metrics.reviews.inc(endpoint, "invalid")
            log.warning(
                "review refused: not an AdmissionReview",
                extra={"fields": {"endpoint": endpoint, "reason": str(e)}},
            )
            return 400, orjson.dumps({"error": f"not an AdmissionReview: {e}"})
        cfg = self.config.webhook
        # the review's policy and its cache, taken together (a reload swaps both in one
        # step on this loop): the review finishes with them whatever happens meanwhile
        policy, cache = self.policy, self.cache
        outcome: Outcome | None = None
        late = False
        try:
            plan = plan_review(review, policy, cfg, self.memo)
            got: dict[tuple[int, str], Collection | TrustcheckError] = {}
            if plan.needs:
                got, late = await self._collections(plan.needs, started, cfg.deadline, cache)
            known = self.released
            if known.window != cfg.continuity_window:  # a reloaded config
                known.window = cfg.continuity_window
            left = cfg.deadline - (time.monotonic() - started)
            signed, at = await _review_evidence()(
                plan, policy, got, self.config.remote, self.options, left
            )
            outcome = respond(
                plan, policy, cfg, got, mutate=mutate, memo=self.memo, known=known,
                evidence=signed, at=at,
            )  # fmt: skip
            if outcome.misses and known.shared is not None and not outcome.allowed:
                # another replica may have verified the release: ask the shared store
                loop = asyncio.get_running_loop()
                if await loop.run_in_executor(None, known.fetch_shared, outcome.misses[:32]):
                    outcome = respond(
                        plan, policy, cfg, got, mutate=mutate, memo=self.memo, known=known,
                        evidence=signed, at=at,
                    )  # fmt: skip
            if outcome.allowed and not review.dry_run:
                for rule_fp, name, digest, tag in outcome.releases:
                    known.record(rule_fp, name, digest, tag)
            answer = outcome.response
            result = "allowed" if outcome.allowed else "denied"
            if plan.immediate is not None and outcome.allowed:
                result = "skipped"
        except Exception:
            ref = uuid.uuid4().hex[:12]
            log.exception(
                "internal error; the review is denied",
                extra={"fields": {"endpoint": endpoint, "uid": review.uid, "error_id": ref}},
            )
            answer = deny_response(
                doc,
                f"trustcheck: [internal-error] the webhook failed (error id {ref}, see its "
                "log); denied (fail closed)",
            )
            result = "error"
        elapsed = time.monotonic() - started
        self.metrics.reviews.inc(endpoint, result)
        self.metrics.latency.observe(endpoint, elapsed)
        if late:
            self.metrics.deadlines.inc()
        if outcome is not None:
            for _site, d in outcome.decisions:
                rule = d.rule.name if d.rule is not None else "none"
                self.metrics.decisions.inc(_status(d), rule)
            for how in outcome.continued.values():
                self.metrics.continuity.inc(
                    "released_now" if how.startswith("released now") else "remembered"
                )
            for _site, d in outcome.decisions:
                if d.reasons and d.reasons[0].code == ErrorCode.ADMISSION_REVOKED:
                    self.metrics.continuity.inc("revoked")
        self._log_review(review, endpoint, result, outcome, elapsed, late)
        return 200, orjson.dumps(answer)

    def _log_review(
        self,
        review: Any,
        endpoint: str,
        result: str,
        outcome: Outcome | None,
        elapsed: float,
        late: bool,
    ) -> None:
        mode = self.config.log_reviews
        if result == "error" or mode == "none" or (mode == "denied" and result != "denied"):
            return
        fields: dict[str, Any] = {
            "endpoint": endpoint,
            "uid": review.uid,
            "operation": review.operation,
            "kind": review.kind,
            "namespace": review.namespace,
            "name": review.display_name,
            "user": review.user,
            "dry_run": review.dry_run,
            "result": result,
            "duration_ms": round(elapsed * 1000, 2),
        }
        if late:
            fields["deadline_exceeded"] = True
        if outcome is not None:
            if outcome.note:
                fields["note"] = outcome.note
            images = []
            for site, d in outcome.decisions:
                first = d.reasons[0] if d.reasons else None
                images.append(
                    {
                        "container": site.label,
                        "image": site.image,
                        "decision": _status(d),
                        "rule": d.rule.name if d.rule is not None else None,
                        "digest": d.digest,
                        "code": first.code if first is not None else None,
                        "reason": first.message if first is not None else None,
                    }
                )
                how = outcome.continued.get(site.image)
                if how is not None:
                    images[-1]["continuity"] = how
            if images:
                fields["images"] = images
            if outcome.patch:
                fields["patched"] = sum(1 for op in outcome.patch if op["op"] == "replace")
        self.review_log.write(fields, urgent=result != "allowed")

    # --- probes and metrics ----------------------------------------------------------

    async def healthz(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(self, request: Request) -> Response:
        if not self.ready:
            return JSONResponse({"status": "not ready"}, status_code=503)
        doc: dict[str, Any] = {"status": "ready", "policy": self.policy.source}
        if self.reloader is not None:
            doc["reload"] = self.reloader.status()
        shared = self.cache.shared
        if shared is not None:
            ok = await asyncio.get_running_loop().run_in_executor(None, shared.store.ping)
            doc["shared_cache"] = "ok" if ok else "unavailable (fetching directly)"
        return JSONResponse(doc)

    async def metrics_endpoint(self, request: Request) -> Response:
        return Response(generate_latest(self.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    # --- ACR quarantine --------------------------------------------------------------

    async def acr_quarantine(self, request: Request) -> Response:
        acr = self.config.acr
        if acr.secret is None:
            return self._reject(404, "the ACR quarantine receiver is not configured")
        given = request.headers.get(acr.header, "").encode()
        if not hmac.compare_digest(given, acr.secret):
            self.metrics.quarantine.labels("unauthorized").inc()
            log.warning(
                "quarantine webhook refused: wrong or missing secret header",
                extra={"fields": {"header": acr.header, "client": _client(request)}},
            )
            return self._reject(401, f"missing or wrong {acr.header} header")
        body = await self._body(request)
        if isinstance(body, Response):
            return body
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError:
            return self._reject(400, "the body is not JSON")
        if not isinstance(doc, dict):
            return self._reject(400, "the body is not an ACR webhook event")
        action = doc.get("action")
        if action == "ping":
            return JSONResponse({"status": "pong"})
        if action != "quarantine":
            self.metrics.quarantine.labels("ignored").inc()
            return JSONResponse({"status": "ignored", "action": str(action)[:40]}, 202)
        target, req = doc.get("target"), doc.get("request")
        if not isinstance(target, dict) or not isinstance(req, dict):
            return self._reject(400, "a quarantine event needs target and request")
        repo, digest, host = target.get("repository"), target.get("digest"), req.get("host")
        if not all(isinstance(v, str) and v for v in (repo, digest, host)):
            return self._reject(
                400, "a quarantine event needs target.repository, target.digest and request.host"
            )
        assert isinstance(host, str)
        registry = self.config.acr.registry
        if registry is None or not _same_host(host, registry):
            # the credentials go to the configured registry only: an event for
            # another host is refused before anything is sent anywhere
            self.metrics.quarantine.labels("refused").inc()
            log.warning(
                "quarantine event refused: it names another registry",
                extra={"fields": {"host": host[:200], "registry": registry}},
            )
            return JSONResponse(
                {
                    "error": f"the event is for {host[:200]!r}, but this receiver releases "
                    f"images of {registry} only (acr.registry)",
                },
                status_code=403,
            )
        try:
            return await self._release(f"{host}/{repo}@{digest}")
        except TrustcheckError as e:
            self.metrics.quarantine.labels("error").inc()
            log.warning(
                "quarantine release failed",
                extra={"fields": {"image": f"{host}/{repo}@{digest}", "code": e.code,
                                  "reason": e.message}},
            )
            status = 400 if e.exit_code == 2 else 502
            return JSONResponse({"error": e.message, "code": e.code}, status_code=status)
        except Exception:
            ref = uuid.uuid4().hex[:12]
            self.metrics.quarantine.labels("error").inc()
            log.exception(
                "quarantine release: internal error", extra={"fields": {"error_id": ref}}
            )
            return JSONResponse({"error": f"internal error (id {ref})"}, status_code=500)

    async def _release(self, image: str) -> Response:
        from trustcheck.core.reference import parse_reference
        from trustcheck.policy.decide import decide
        from trustcheck.remote.acr import AcrClient, QuarantineState, quarantine_details
        from trustcheck.remote.http import registry_base_url

        ref = parse_reference(image)
        if ref.digest is None:
            raise UsageError("invalid-reference", f"{image}: the quarantine event has no digest")
        policy, cache = self.policy, self.cache  # as a review: one policy throughout
        rule = policy.match(ref)
        got: Collection | TrustcheckError | None = None
        if rule is not None and rule.action == "verify":
            key = (rule.index, ref.gun)
            limit = self.config.remote.total_timeout if self.config.remote else 20.0
            found, _late = await self._collections([key], time.monotonic(), limit, cache)
            got = found[key]
        from trustcheck.policy.gather import gather_images, signature_kinds  # require: (G)

        at = datetime.now(UTC)
        signed: tuple[dict[str, Any], str | None] = ({}, None)
        if rule is not None and signature_kinds(rule, at):
            found_ev = await asyncio.get_running_loop().run_in_executor(
                None, gather_images, [(image, ref, rule, got)], self.config.remote, at,
                self.options,
            )  # fmt: skip
            signed = found_ev[image]
        d = decide(ref, policy, got, image=image, evidence=signed[0], at=at, digest=signed[1])
        self.metrics.decisions.inc(_status(d), d.rule.name if d.rule is not None else "none")
        acr = self.config.acr
        from trustcheck.remote.config import RemoteConfig

        base_remote = self.config.remote if self.config.remote is not None else RemoteConfig()
        remote = replace(
            base_remote,
            registry=acr.registry,
            username=acr.username,
            password=acr.password,
            tls_ca=acr.tls_ca if acr.tls_ca is not None else base_remote.tls_ca,
            offline=False,
        )
        state_doc: dict[str, object] | None = None
        digest = str(ref.digest)
        if d.exit_code == 2 or not (d.allowed or acr.mark_failed):
            # nothing to write: report the manifest's actual state
            base = registry_base_url(ref.domain, remote)

            def read() -> dict[str, object]:
                with AcrClient(base, ref.domain, remote) as client:
                    return client.get_manifest(ref.path, digest).to_json()

            try:
                state_doc = await asyncio.get_running_loop().run_in_executor(None, read)
                current = state_doc.get("quarantineState")
            except TrustcheckError as e:
                log.warning(
                    "quarantine: cannot read the manifest's state",
                    extra={"fields": {"image": image, "code": e.code, "reason": e.message}},
                )
                current = None
            action = {
                "Quarantined": "left in quarantine",
                "Passed": "already passed",
                "Failed": "already failed",
            }.get(str(current), "not changed")
        else:
            state: QuarantineState = "Passed" if d.allowed else "Failed"
            when = datetime.now(UTC).replace(microsecond=0)
            details = quarantine_details(d, policy.source, when, state, ref.digest)
            base = registry_base_url(ref.domain, remote)

            def call() -> dict[str, object]:
                with AcrClient(base, ref.domain, remote) as client:
                    return client.set_quarantine(ref.path, digest, state, details).to_json()

            state_doc = await asyncio.get_running_loop().run_in_executor(None, call)
            action = "released" if state == "Passed" else "marked failed"
        self.metrics.quarantine.labels(action.replace(" ", "_")).inc()
        first = d.reasons[0] if d.reasons else None
        log.info(
            "quarantine",
            extra={
                "fields": {
                    "image": image,
                    "action": action,
                    "decision": _status(d),
                    "rule": d.rule.name if d.rule is not None else None,
                    "code": first.code if first is not None else None,
                    "reason": first.message if first is not None else None,
                }
            },
        )
        return JSONResponse(
            {"image": image, "action": action, "decision": d.to_json(), "state": state_doc}
        )


class TlsReloader:
    """The serving certificate, reloaded when its files change, without ever
    breaking handshakes: a changed pair is loaded into a NEW context and used
    only when it loads (certificate and key match); until then the old one
    keeps serving. The listening context's SNI callback (called for every
    ClientHello, with or without SNI) points each new connection at the current
    context."""

    def __init__(self, cert: Path, key: Path, base: ssl.SSLContext) -> None:
        self.cert = cert
        self.key = key
        self.current = base
        self._stamps = self._mtimes()
        self._failed: object = None
        base.sni_callback = self._sni

    def _sni(self, conn: ssl.SSLObject | ssl.SSLSocket, name: str | None,
             ctx: ssl.SSLContext) -> None:
        current = self.current
        if current is not ctx:
            conn.context = current

    def _mtimes(self) -> tuple[tuple[int, int, int], ...]:
        out = []
        for p in (self.cert, self.key):
            st = p.stat()
            out.append((st.st_mtime_ns, st.st_size, st.st_ino))
        return tuple(out)

    @staticmethod
    def load(cert: Path, key: Path) -> ssl.SSLContext:
        """A server context for the pair (raises OSError or ssl.SSLError)."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(str(cert), str(key))
        return ctx

    def __call__(self) -> bool:
        """Check the files; True when a new pair is now served."""
        try:
            stamps = self._mtimes()
            if stamps == self._stamps:
                return False
            new = self.load(self.cert, self.key)
        except (OSError, ssl.SSLError) as e:
            if self._failed != str(e):
                self._failed = str(e)
                log.warning(
                    "the TLS certificate/key files changed but do not load; still serving the "
                    "previous certificate",
                    extra={"fields": {"cert": str(self.cert), "key": str(self.key),
                                      "error": str(e)[:300]}},
                )
            return False
        self.current = new
        self._stamps = stamps
        self._failed = None
        log.info("reloaded the TLS certificate", extra={"fields": {"cert": str(self.cert)}})
        return True


def _same_host(host: str, registry: str) -> bool:
    """Whether an event's ``request.host`` names the registry at URL ``registry``."""
    from urllib.parse import urlsplit

    if not host or any(c in host for c in "/@?#\\ \t\r\n"):
        return False  # a host[:port], nothing else
    try:
        reg = urlsplit(registry if "://" in registry else f"https://{registry}")
        ev = urlsplit(f"//{host}")
        default = {"https": 443, "http": 80}.get(reg.scheme)
        reg_port = reg.port if reg.port is not None else default
        ev_port = ev.port if ev.port is not None else default
    except ValueError:
        return False
    return bool(reg.hostname) and (reg.hostname, reg_port) == (ev.hostname, ev_port)


def _client(request: Request) -> str:
    return request.client.host if request.client is not None else "?"


def build_server(
    policy: Policy,
    config: ServerConfig,
    *,
    env: Mapping[str, str] | None = None,
    shared: SharedCache | None = None,
) -> WebhookServer:
    """The server for ``policy`` and ``config``: options, trust dir, cache (shared
    when ``config.cache_url`` is set), metrics."""
    from trustcheck.api import Options
    from trustcheck.local.pinfile import load_pins
    from trustcheck.local.state import StateStore
    from trustcheck.local.trustdir import TrustDir
    from trustcheck.remote.config import RemoteConfig

    environ = os.environ if env is None else env
    options = Options(
        pins=load_pins(config.pins) if config.pins is not None else None,
        state=StateStore(config.state_dir) if config.state_dir is not None else None,
        no_tofu=config.no_tofu,
        delegation_cert_expiry=config.delegation_cert_expiry,
    )
    trust_dir = config.trust_dir
    if trust_dir is None:
        base = environ.get("TRUSTCHECK_TRUST_DIR")
        trust_dir = Path(base) if base else Path.home() / ".cache" / "trustcheck" / "trust"
    try:
        trust_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(
            ErrorCode.WEBHOOK_CONFIG_INVALID,
            f"cannot create the trust dir {trust_dir}: {e.strerror or e}; set trust.trust_dir "
            "or --trust-dir to a writable folder",
        ) from e
    remote = config.remote if config.remote is not None else RemoteConfig()
    if shared is None and config.cache_url is not None:
        from trustcheck.webhook.shared import RedisStore, SharedCache

        if config.cache_secret is None:
            raise UsageError(
                ErrorCode.WEBHOOK_CONFIG_INVALID,
                "a shared cache needs cache.secret_file (or $TRUSTCHECK_CACHE_SECRET): "
                "entries are authenticated with it, so that a writer to the cache cannot "
                "replay old trust data",
            )
        shared = SharedCache(
            RedisStore(config.cache_url),
            config.cache_secret,
            config.cache.ttl,
            prefix=config.cache_prefix,
            max_bytes=config.cache_max_entry_bytes,
        )
    from trustcheck.webhook.admitted import SharedReleased

    folder = config.state_dir if config.state_dir is not None else trust_dir
    released = ReleasedStore(
        config.webhook.continuity_window,
        max_entries=config.continuity_max_entries,
        path=folder / "webhook-released.json",
        shared=(
            SharedReleased(shared.store, shared.secret, prefix=shared.prefix)
            if shared is not None
            else None
        ),
    )
    kept = released.load()
    if kept:
        log.info(
            "continuity: verified releases read back",
            extra={"fields": {"released": kept, "file": str(released.path)}},
        )
    metrics = Metrics()

    def make_cache(for_policy: Policy) -> TrustCache:
        return TrustCache(
            for_policy,
            TrustDir(trust_dir),
            options,
            remote,
            config.cache,
            shared=shared,
            events=metrics.event,
            # waiting for another replica's entry costs at most an eighth of the deadline
            shared_wait=min(1.0, config.webhook.deadline / 8),
            lock_ttl=min(60.0, remote.total_timeout + 1.0),
        )

    server = WebhookServer(
        policy, config, make_cache(policy), options=options, metrics=metrics, released=released
    )
    server.make_cache = make_cache  # a reload's new policy gets a cache of its own
    return server
