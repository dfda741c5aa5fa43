"""Azure Container Registry quarantine: read and set a manifest's quarantine state.

ACR's quarantine preview (docs/preview/quarantine in Azure/acr) keeps pushed
images unavailable until a trusted party releases them:

* ``GET   https://<login server>/acr/v1/<repo>/_manifests/<digest>`` returns the
  manifest's attributes (``manifest.changeableAttributes.quarantineState`` and
  ``quarantineDetails``; older answers carry them directly under ``manifest``);
* ``PATCH`` of the same URL with ``{"quarantineState": "Passed"|"Failed",
  "quarantineDetails": "<a JSON string>"}`` sets them.

Authentication is the registry's token flow (Azure/acr docs/AAD-OAuth.md):
the API answers ``401`` with ``WWW-Authenticate: Bearer realm=".../oauth2/token",
service="<login server>"[, scope=...]``; a token for the scope (the challenge's,
else ``repository:<repo>:pull`` to read and ``repository:<repo>:pull,push`` to
write) comes from

* ``GET <realm>?service=...&scope=...`` with HTTP Basic ``user:password`` (admin
  user, service principal, repository-scoped token), or
* ``POST <realm>`` with ``grant_type=refresh_token``, ``service``, ``scope`` and
  ``refresh_token`` for an ACR refresh token: Docker's ``identitytoken``, or the
  user name ``00000000-0000-0000-0000-000000000000`` with the refresh token as
  password (what ``az acr login`` hands to ``docker login``).

The realm must be on the login server itself (ACR's token service is
``/oauth2/token`` there): credentials are never sent to another host. Every
failure is a :class:`~trustcheck.errors.TrustcheckError`. Every request goes
through :class:`trustcheck.remote.http.HttpSession` (the one HTTP stack: TLS with
Docker's per-host folder and client certificates, redirects, decoded-size caps,
one deadline per call, retries honouring ``Retry-After``); setting a quarantine
state is idempotent, so the ``PATCH`` is retried like a ``GET``.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Literal
from urllib.parse import quote, urlencode, urlsplit

from trustcheck.errors import ErrorCode, NotTrusted
from trustcheck.remote.auth import (
    Challenge,
    Credentials,
    credentials_key,
    parse_challenges,
    parse_token_response,
    resolve_credentials,
)
from trustcheck.remote.http import Answer, Deadline, HttpSession
from trustcheck.text import redact_url, visible

if TYPE_CHECKING:
    from trustcheck.policy.model import Decision
    from trustcheck.remote.config import RemoteConfig
    from trustcheck.remote.http import Transport

__all__ = [
    "NULL_GUID",
    "AcrClient",
    "ManifestState",
    "QuarantineState",
    "quarantine_details",
]

#: ACR's user name for "the password is an ACR refresh token"
NULL_GUID = "00000000-0000-0000-0000-000000000000"
_CAP = 1 << 20

QuarantineState = Literal["Passed", "Failed"]


@dataclass(slots=True)
class ManifestState:
    """A manifest's quarantine state as the registry reports it."""

    repository: str
    digest: str
    state: str | None
    details: str | None
    tags: list[str] = field(default_factory=list)
    raw: dict[str, object] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        return {
            "repository": self.repository,
            "digest": self.digest,
            "quarantineState": self.state,
            "quarantineDetails": self.details,
            "tags": self.tags,
        }


def quarantine_details(
    decision: Decision, policy_source: str, when: datetime, state: QuarantineState, digest: str
) -> str:
    """The ``quarantineDetails`` string for manifest ``digest``: who signed, which rule
    decided, when, why."""
    rule = decision.rule
    doc: dict[str, object] = {
        "tool": "trustcheck",
        "state": state,
        "image": decision.image,
        "digest": digest,
        "time": when.isoformat().replace("+00:00", "Z"),
        "policy": policy_source,
        "rule": (
            {"name": rule.name, "pattern": rule.pattern, "action": rule.action, "mode": rule.mode}
            if rule is not None
            else None
        ),
        "verdict": decision.verdict,
        "signers": decision.signers,
        "role": decision.role,
        "required_signers": (
            {
                "threshold": decision.threshold,
                "satisfied": [s.signer for s in decision.required if s.satisfied],
                "missing": [s.signer for s in decision.required if not s.satisfied],
            }
            if decision.required
            else None
        ),
        "reasons": [r.to_json() for r in decision.reasons],
        "warnings": decision.warnings,
    }
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False)


def _acr_detail(body: bytes) -> str:
    """``: CODE message`` from ACR's ``{"errors": [{"code", "message"}]}`` body."""
    try:
        doc = json.loads(body)
        err = doc["errors"][0]
        text = f"{err.get('code', '')} {err.get('message', '')}".strip()
    except (ValueError, KeyError, IndexError, TypeError, AttributeError, RecursionError):
        return ""
    text = visible(text)[:200]  # the server's words, escaped
    return f": {text}" if text else ""


class AcrClient:
    """The quarantine endpoints of one ACR login server. Close it when done."""

    def __init__(
        self,
        base_url: str,
        domain: str,
        remote: RemoteConfig,
        env: Mapping[str, str] | None = None,
        *,
        transport: Transport | None = None,
    ) -> None:
        """``base_url`` is ``https://<login server>`` (see
        :func:`trustcheck.remote.http.registry_base_url`); ``domain`` is the image's
        registry, whose credentials are used."""
        self.base = base_url.rstrip("/")
        self.domain = domain
        self.remote = remote
        self.env: Mapping[str, str] = os.environ if env is None else env
        self._transport = transport
        self._session: HttpSession | None = None
        self._tokens: dict[str, str] = {}
        self._creds: Credentials | None = None
        self._creds_loaded = False
        parts = urlsplit(self.base)
        self.host = (parts.hostname or "").lower()
        self.netloc = parts.netloc.lower()

    def __enter__(self) -> AcrClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None

    # --- the API ---------------------------------------------------------------------

    def get_manifest(self, repository: str, digest: str) -> ManifestState:
        """``GET /acr/v1/<repo>/_manifests/<digest>``."""
        ans = self._call("GET", repository, digest, "pull")
        return self._state(repository, digest, ans)

    def set_quarantine(
        self, repository: str, digest: str, state: QuarantineState, details: str
    ) -> ManifestState:
        """``PATCH /acr/v1/<repo>/_manifests/<digest>``; returns the state afterwards."""
        body = json.dumps({"quarantineState": state, "quarantineDetails": details}).encode()
        ans = self._call("PATCH", repository, digest, "pull,push", body)
        if ans.body.strip():
            try:
                return self._state(repository, digest, ans)
            except NotTrusted:
                pass
        return self.get_manifest(repository, digest)

    # --- plumbing --------------------------------------------------------------------

    def _path(self, repository: str, digest: str) -> str:
        return f"/acr/v1/{quote(repository, safe='/')}/_manifests/{quote(digest, safe=':')}"

    def _what(self, method: str, repository: str, digest: str) -> str:
        return f"{method} {self.base}/acr/v1/{repository}/_manifests/{digest}"

    def _state(self, repository: str, digest: str, ans: Answer) -> ManifestState:
        try:
            doc = json.loads(ans.body)
        except (ValueError, UnicodeDecodeError, RecursionError):
            doc = None
        manifest = doc.get("manifest") if isinstance(doc, dict) else None
        if not isinstance(doc, dict) or not isinstance(manifest, dict):
            raise NotTrusted(
                ErrorCode.SERVER_ERROR,
                f"{self._what('GET', repository, digest)}: the answer is not ACR's manifest "
                "attributes (a JSON object with 'manifest')",
            )
        attrs = manifest.get("changeableAttributes")
        attrs = attrs if isinstance(attrs, dict) else {}

        def pick(key: str) -> str | None:
            for where in (attrs, manifest):
                value = where.get(key)
                if isinstance(value, str):
                    return value
            return None

        tags = manifest.get("tags")
        return ManifestState(
            repository=repository,
            digest=str(manifest.get("digest", digest)),
            state=pick("quarantineState"),
            details=pick("quarantineDetails"),
            tags=[t for t in tags if isinstance(t, str)] if isinstance(tags, list) else [],
            raw=doc,
        )

    def _http(self) -> HttpSession:
        if self._session is None:
            self._session = HttpSession(self.remote, self.env, transport=self._transport)
        return self._session

    def _send(
        self,
        method: str,
        url: str,
        what: str,
        headers: Mapping[str, str],
        deadline: Deadline,
        content: bytes | None = None,
    ) -> Answer:
        """One exchange through the shared HTTP stack (retried after network errors,
        timeouts, 5xx and 429, ``Retry-After`` honoured, within ``deadline``)."""
        try:
            return self._http().request(
                method,
                url,
                deadline=deadline,
                what=what,
                cap=_CAP,
                tls_hosts=(self.netloc,),
                headers=headers,
                content=content,
                idempotent=True,  # reading, or setting a state: the same on a repeat
            )
        except NotTrusted as e:
            if e.code == "file-too-large":  # an ACR answer is small: a hostile server
                raise NotTrusted(ErrorCode.MALICIOUS_SERVER, e.message) from None
            raise

    def _credentials(self) -> Credentials | None:
        if not self._creds_loaded:
            self._creds = resolve_credentials(
                credentials_key(self.domain),
                username=self.remote.username,
                password=self.remote.password,
                config_dir=self.remote.docker_config,
                env=self.env,
            )
            self._creds_loaded = True
        return self._creds

    def _no_creds(self) -> NotTrusted:
        return NotTrusted(
            ErrorCode.AUTH_FAILED,
            f"the registry {self.base} asks for credentials and there are none for "
            f"{self.domain}: `docker login {self.domain}` (or `az acr login`), or --username "
            f"with the password on stdin (a refresh token: --username {NULL_GUID})",
        )

    def _basic(self, creds: Credentials) -> str:
        raw = f"{creds.username}:{creds.password}".encode()
        return "Basic " + base64.b64encode(raw).decode()

    def _token(self, challenge: Challenge, scope: str, deadline: Deadline) -> str:
        cached = self._tokens.get(scope)
        if cached is not None:
            return cached
        realm = challenge.realm or ""
        try:
            parts = urlsplit(realm)
            port = parts.port
        except ValueError:
            parts, port = urlsplit(""), None
        own = urlsplit(self.base)
        what = f"the token service {redact_url(realm)} of {self.base}"
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise NotTrusted(
                ErrorCode.AUTH_FAILED, f"{self.base} names an unusable token realm {realm[:100]!r}"
            )
        if (parts.hostname or "").lower() != self.host or (port or None) != (own.port or None):
            raise NotTrusted(
                ErrorCode.AUTH_FAILED,
                f"{self.base} sends clients to the token service {parts.netloc}, which is not "
                "the login server; ACR's token service is <login server>/oauth2/token, so "
                "credentials are not sent there",
            )
        creds = self._credentials()
        if creds is None:
            raise self._no_creds()
        service = challenge.service or self.netloc
        refresh = creds.identity_token or (creds.password if creds.username == NULL_GUID else None)
        if refresh is not None:
            form = {
                "grant_type": "refresh_token",
                "service": service,
                "scope": scope,
                "refresh_token": refresh,
            }
            ans = self._send(
                "POST",
                realm,
                what,
                {"Content-Type": "application/x-www-form-urlencoded"},
                deadline,
                urlencode(form).encode(),
            )
            who = f"the refresh token from {creds.source or 'the docker config'}"
        else:
            sep = "&" if parts.query else "?"
            url = realm + sep + urlencode({"service": service, "scope": scope}, quote_via=quote)
            ans = self._send("GET", url, what, {"Authorization": self._basic(creds)}, deadline)
            who = creds.describe()
        if ans.status in (401, 403):
            raise NotTrusted(
                ErrorCode.AUTH_FAILED,
                f"{what} refused {who} for scope {scope} (HTTP {ans.status})"
                + _acr_detail(ans.body),
            )
        if ans.status != 200:
            raise NotTrusted(
                ErrorCode.SERVER_ERROR if ans.status >= 500 else "auth-failed",
                f"{what} answered HTTP {ans.status} for scope {scope}" + _acr_detail(ans.body),
            )
        token, _lifetime = parse_token_response(ans.body, redact_url(realm))
        self._tokens[scope] = token
        return token

    def _call(
        self, method: str, repository: str, digest: str, actions: str, body: bytes | None = None
    ) -> Answer:
        url = self.base + self._path(repository, digest)
        what = self._what(method, repository, digest)
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        default_scope = f"repository:{repository}:{actions}"
        # one deadline over the call: the API request, token requests, retries
        deadline = Deadline(self.remote.total_timeout)
        authorization: str | None = None
        renewed = False
        while True:
            sent = dict(headers)
            if authorization is not None:
                sent["Authorization"] = authorization
            ans = self._send(method, url, what, sent, deadline, body)
            if ans.status not in (401, 403) or renewed:
                break
            renewed = True
            challenges = parse_challenges(ans.headers.get_list("www-authenticate"))
            bearer = next((c for c in challenges if c.scheme == "bearer" and c.realm), None)
            basic = next((c for c in challenges if c.scheme == "basic"), None)
            if bearer is not None:
                scope = bearer.params.get("scope") or default_scope
                self._tokens.pop(scope, None)
                authorization = "Bearer " + self._token(bearer, scope, deadline)
            elif basic is not None:
                creds = self._credentials()
                if creds is None or not creds.username:
                    raise self._no_creds()
                authorization = self._basic(creds)
            else:
                break
        if ans.status in (401, 403):
            role = "AcrQuarantineWriter" if method == "PATCH" else "AcrQuarantineReader"
            who = self._credentials()
            raise NotTrusted(
                ErrorCode.AUTH_FAILED,
                f"{what}: the registry refused access (HTTP {ans.status})"
                + _acr_detail(ans.body)
                + (f" for {who.describe()}" if who is not None else " without credentials")
                + f"; the account needs scope {default_scope} (ACR role {role})",
            )
        if ans.status == 404:
            raise NotTrusted(
                ErrorCode.MANIFEST_NOT_FOUND,
                f"{what}: the registry has no manifest {digest} in {repository} (HTTP 404)"
                + _acr_detail(ans.body),
            )
        if ans.status not in (200, 204):
            raise NotTrusted(
                ErrorCode.SERVER_ERROR,
                f"{what}: HTTP {ans.status}" + _acr_detail(ans.body),
            )
        return ans
