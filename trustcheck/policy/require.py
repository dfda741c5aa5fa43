"""``require:``: what a verify rule needs, across signature kinds (docs/policy.md).

A rule's requirement is a small tree: leaves name one signature kind (``dct``,
``notation``, ``cosign``) and what must have signed; ``any_of`` / ``all_of``
combine them (nestable, bounded). Every node may carry a window (``from:`` /
``until:``): outside it the node does not count. This module holds the model,
the parser (called by :mod:`trustcheck.policy.load` with its node walker), and the
pure matching of one :class:`~trustcheck.signatures.evidence.Evidence` against a
leaf. Judging a whole tree is :func:`trustcheck.policy.decide.decide`'s job.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from trustcheck.policy.model import SignerSpec, Trust

if TYPE_CHECKING:
    import yaml

    from trustcheck.policy.load import _Loader
    from trustcheck.policy.model import Rule
    from trustcheck.signatures.evidence import Evidence

__all__ = [
    "MAX_ALTERNATIVES",
    "MAX_DEPTH",
    "MAX_LEAVES",
    "AllOf",
    "AnyOf",
    "CosignIdentity",
    "CosignReq",
    "CosignTrust",
    "DctReq",
    "Leaf",
    "LeafResult",
    "NotationReq",
    "NotationTrust",
    "Requirement",
    "Window",
    "active_kinds",
    "key_identity",
    "leaves",
    "lint",
    "parse_cosign_trust",
    "parse_notation_trust",
    "parse_require",
    "parse_subject",
    "rule_require",
    "trust_material",
]

#: ``any_of``/``all_of`` nest at most this deep (the top ``require:`` is depth 1)
MAX_DEPTH = 4
#: alternatives in one ``any_of``/``all_of`` list
MAX_ALTERNATIVES = 16
#: leaves in one rule's requirement
MAX_LEAVES = 64
#: a SAN regular expression longer than this is refused
MAX_REGEX = 512

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_STAMP = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$")


# ----------------------------------------------------------------------------- model


@dataclass(frozen=True, slots=True)
class Window:
    """When a node counts: ``start <= at < end`` (either side open when None).

    ``from: 2026-01-01`` starts at 2026-01-01T00:00:00Z; ``until: 2027-03-31`` counts
    the whole of that day (ends at 2027-04-01T00:00:00Z); an RFC 3339 time is used
    as written.
    """

    start: datetime | None = None
    end: datetime | None = None
    start_text: str | None = None
    end_text: str | None = None

    def contains(self, at: datetime) -> bool:
        if self.start is not None and at < self.start:
            return False
        return not (self.end is not None and at >= self.end)

    def why_not(self, at: datetime) -> str:
        stamp = at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        if self.start is not None and at < self.start:
            return f"not yet in force at {stamp} (from {self.start_text})"
        return f"no longer in force at {stamp} (until {self.end_text})"

    def text(self) -> str:
        parts = []
        if self.start_text is not None:
            parts.append(f"from {self.start_text}")
        if self.end_text is not None:
            parts.append(f"until {self.end_text}")
        return " ".join(parts)

    def to_json(self) -> dict[str, str | None]:
        return {"from": self.start_text, "until": self.end_text}


@dataclass(frozen=True, slots=True)
class DctReq:
    """Docker Content Trust: the tag (or digest) released in the verified collection;
    with ``signers``, ``threshold`` of them signed it, each with its own key."""

    path: str
    signers: tuple[SignerSpec, ...] = ()
    threshold: int = 0
    window: Window | None = None
    line: int = 0
    kind: Literal["dct"] = "dct"

    def describe(self) -> str:
        if not self.signers:
            return "dct release (targets/releases or targets)"
        names = ", ".join(s.text for s in self.signers)
        return f"dct {self.threshold} of [{names}]"


@dataclass(frozen=True, slots=True)
class NotationReq:
    """A valid Notary Project signature over the digest; with ``trust_policy``, verified
    under that statement of Notation's trust policy; with ``identities``, the signing
    certificate's subject holds every attribute of one of them (Notation's rule)."""

    path: str
    trust_policy: str | None = None
    identities: tuple[str, ...] = ()
    #: each identity parsed: (attribute type, value) pairs
    subjects: tuple[frozenset[tuple[str, str]], ...] = ()
    window: Window | None = None
    line: int = 0
    kind: Literal["notation"] = "notation"

    def describe(self) -> str:
        out = "notation"
        if self.trust_policy is not None:
            out += f" (trust policy {self.trust_policy})"
        if self.identities:
            out += " by " + " or ".join(f"[{i}]" for i in self.identities)
        else:
            out += " by any identity the trust policy trusts"
        return out

    def accepts(self, ev: Evidence) -> bool:
        if self.trust_policy is not None and ev.details.get("policy") != self.trust_policy:
            return False
        if not self.subjects:
            return True
        try:
            have = parse_subject(ev.identity)
        except ValueError:
            return False
        return any(want <= have for want in self.subjects)


@dataclass(frozen=True, slots=True)
class CosignIdentity:
    """A keyless signer: SAN exact (``san``) or an anchored regular expression
    (``san_regex``), and the OIDC issuer, exact."""

    issuer: str
    san: str | None = None
    san_regex: str | None = None

    def matches(self, san: str, issuer: str | None) -> bool:
        if issuer != self.issuer:
            return False
        if self.san is not None:
            return san == self.san
        assert self.san_regex is not None
        return re.fullmatch(self.san_regex, san) is not None

    def text(self) -> str:
        if self.san is not None:
            return f"{self.san} ({self.issuer})"
        return f"/{self.san_regex}/ ({self.issuer})"


@dataclass(frozen=True, slots=True)
class CosignReq:
    """A valid cosign signature over the digest by one of ``keys`` (``sha256:<hex>`` of
    the DER SubjectPublicKeyInfo) or one of the keyless ``identities``."""

    path: str
    keys: tuple[str, ...] = ()
    key_sources: tuple[str, ...] = ()
    identities: tuple[CosignIdentity, ...] = ()
    #: the PEM of each key (the verifier needs the key itself)
    key_pems: tuple[bytes, ...] = ()
    window: Window | None = None
    line: int = 0
    kind: Literal["cosign"] = "cosign"

    def describe(self) -> str:
        who = [f"key {s}" for s in self.key_sources] + [i.text() for i in self.identities]
        return "cosign by " + " or ".join(who)

    def accepts(self, ev: Evidence) -> bool:
        if ev.identity in self.keys and ev.identity.startswith("sha256:"):
            return True
        return any(i.matches(ev.identity, ev.issuer) for i in self.identities)


@dataclass(frozen=True, slots=True)
class AnyOf:
    path: str
    children: tuple[Requirement, ...]
    window: Window | None = None
    line: int = 0
    kind: Literal["any_of"] = "any_of"

    def describe(self) -> str:
        return f"any of {len(self.children)}"


@dataclass(frozen=True, slots=True)
class AllOf:
    path: str
    children: tuple[Requirement, ...]
    window: Window | None = None
    line: int = 0
    kind: Literal["all_of"] = "all_of"

    def describe(self) -> str:
        return f"all of {len(self.children)}"


Leaf = DctReq | NotationReq | CosignReq
Requirement = DctReq | NotationReq | CosignReq | AnyOf | AllOf


def leaves(req: Requirement) -> Iterator[Leaf]:
    if isinstance(req, AnyOf | AllOf):
        for c in req.children:
            yield from leaves(c)
    else:
        yield req


def active_kinds(req: Requirement, at: datetime) -> set[str]:
    """The signature kinds a node in force at ``at`` asks for (what to fetch)."""
    if req.window is not None and not req.window.contains(at):
        return set()
    if isinstance(req, AnyOf | AllOf):
        out: set[str] = set()
        for c in req.children:
            out |= active_kinds(c, at)
        return out
    return {req.kind}


# ----------------------------------------------------------------------------- trust material


@dataclass(frozen=True, slots=True)
class NotationTrust:
    """Where Notation's own files are: a config folder holding ``trustpolicy.json`` and
    ``truststore/``, or the two given one by one (None: Notation's default,
    ``$NOTATION_CONFIG`` or ``$XDG_CONFIG_HOME/notation`` or ``~/.config/notation``)."""

    config_dir: Path | None = None
    trust_policy: Path | None = None
    trust_store: Path | None = None


@dataclass(frozen=True, slots=True)
class CosignTrust:
    """Sigstore trust material: a ``trusted_root.json`` (keyless verification)."""

    trusted_root: Path | None = None


# ----------------------------------------------------------------------------- subjects


_DN_KEYS = {
    "c": "C",
    "st": "ST",
    "s": "ST",
    "l": "L",
    "o": "O",
    "ou": "OU",
    "cn": "CN",
    "emailaddress": "E",
    "e": "E",
    "serialnumber": "SERIALNUMBER",
    "street": "STREET",
    "postalcode": "POSTALCODE",
    "dc": "DC",
}


def parse_subject(text: str) -> frozenset[tuple[str, str]]:
    """An X.509 subject as Notation writes it (``C=US, ST=WA, O=Acme, CN=release``):
    comma-separated ``TYPE=value`` pairs, ``\\,`` escaping a comma. ValueError when
    malformed or when an attribute type repeats."""
    parts: list[str] = []
    cur: list[str] = []
    escaped = False
    for ch in text:
        if escaped:
            cur.append(ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch in ",+":
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    if escaped:
        raise ValueError("ends with a lone backslash")
    parts.append("".join(cur))
    out: set[tuple[str, str]] = set()
    seen: set[str] = set()
    for part in parts:
        key, eq, value = part.partition("=")
        key = key.strip()
        value = value.strip()
        if not eq or not key or not value:
            raise ValueError(f"{part.strip()!r} is not TYPE=value")
        name = _DN_KEYS.get(key.lower(), key.upper())
        if name in seen:
            raise ValueError(f"attribute {name} appears twice")
        seen.add(name)
        out.add((name, value))
    return frozenset(out)


# ----------------------------------------------------------------------------- parsing


def _time(ld: _Loader, node: yaml.Node, where: str, *, end: bool) -> tuple[datetime, str]:
    import yaml

    tags = ("tag:yaml.org,2002:str", "tag:yaml.org,2002:timestamp")
    if not isinstance(node, yaml.ScalarNode) or node.tag not in tags:
        raise ld.fail(
            node, where, f"must be a date (2027-03-31) or an RFC 3339 time, got {ld.describe(node)}"
        )
    text = str(node.value).strip()
    if _DATE.match(text):
        try:
            day = date.fromisoformat(text)
        except ValueError as e:
            raise ld.fail(node, where, f"{text!r} is not a date ({e})") from e
        start = datetime.combine(day, time(0), UTC)
        return (start + timedelta(days=1) if end else start), text
    if _STAMP.match(text):
        try:
            when = datetime.fromisoformat(text.replace("z", "Z").replace("Z", "+00:00"))
        except ValueError as e:
            raise ld.fail(node, where, f"{text!r} is not an RFC 3339 time ({e})") from e
        return when.astimezone(UTC), text
    raise ld.fail(
        node,
        where,
        f"{text[:60]!r} is neither a date (2027-03-31) nor an RFC 3339 time with a zone "
        "(2027-03-31T00:00:00Z)",
    )


_KINDS = ("dct", "notation", "cosign", "any_of", "all_of")


class _Counter:
    def __init__(self) -> None:
        self.leaves = 0


def parse_require(ld: _Loader, node: yaml.Node, where: str) -> Requirement:
    """Parse a rule's ``require:`` node (``policy-invalid`` naming line and field)."""
    req = _node(ld, node, where, 1, _Counter())
    return req


def _node(ld: _Loader, node: yaml.Node, where: str, depth: int, count: _Counter) -> Requirement:
    keys = ld.mapping(node, where, (*_KINDS, "from", "until"))
    kinds = [k for k in _KINDS if k in keys]
    if len(kinds) != 1:
        found = ", ".join(kinds) if kinds else "none"
        raise ld.fail(
            node,
            where,
            f"needs exactly one of {', '.join(_KINDS)} (found: {found}); combine several "
            "with any_of or all_of",
        )
    window = None
    if "from" in keys or "until" in keys:
        start = end = None
        start_text = end_text = None
        if "from" in keys:
            start, start_text = _time(ld, keys["from"][1], f"{where}.from", end=False)
        if "until" in keys:
            end, end_text = _time(ld, keys["until"][1], f"{where}.until", end=True)
        if start is not None and end is not None and start >= end:
            raise ld.fail(
                keys["until"][1],
                f"{where}.until",
                f"{end_text} is not after from {start_text}: the alternative would never count",
            )
        window = Window(start, end, start_text, end_text)
    kind = kinds[0]
    knode = keys[kind][1]
    sub = f"{where}.{kind}"
    line = node.start_mark.line + 1
    if kind in ("any_of", "all_of"):
        if depth >= MAX_DEPTH:
            raise ld.fail(
                knode, sub, f"nests any_of/all_of deeper than {MAX_DEPTH} levels; flatten it"
            )
        items = ld.sequence(knode, sub)
        if not items:
            raise ld.fail(knode, sub, "is empty; list at least one alternative")
        if len(items) > MAX_ALTERNATIVES:
            raise ld.fail(knode, sub, f"has {len(items)} alternatives; at most {MAX_ALTERNATIVES}")
        children = tuple(
            _node(ld, item, f"{sub}[{i}]", depth + 1, count) for i, item in enumerate(items)
        )
        if kind == "any_of":
            return AnyOf(where, children, window, line)
        return AllOf(where, children, window, line)
    count.leaves += 1
    if count.leaves > MAX_LEAVES:
        raise ld.fail(knode, sub, f"the requirement has more than {MAX_LEAVES} leaves")
    if kind == "dct":
        return _dct(ld, knode, sub, where, window, line)
    if kind == "notation":
        return _notation(ld, knode, sub, where, window, line)
    return _cosign(ld, knode, sub, where, window, line)


def _dct(
    ld: _Loader, node: yaml.Node, sub: str, where: str, window: Window | None, line: int
) -> DctReq:
    keys = ld.mapping(node, sub, ("signers", "threshold"))
    signers: list[SignerSpec] = []
    if "signers" in keys:
        snode = keys["signers"][1]
        entries = ld.sequence(snode, f"{sub}.signers")
        if not entries:
            raise ld.fail(snode, f"{sub}.signers", "is empty; leave it out to require no signer")
        for j, entry in enumerate(entries):
            spec = ld.signer(entry, f"{sub}.signers[{j}]")
            if spec in signers:
                raise ld.fail(entry, f"{sub}.signers[{j}]", f"{spec.text!r} is listed twice")
            signers.append(spec)
    threshold = len(signers)
    if "threshold" in keys:
        tnode = keys["threshold"][1]
        if not signers:
            raise ld.fail(tnode, f"{sub}.threshold", "needs a signers list")
        threshold = ld.integer(tnode, f"{sub}.threshold")
        if not 1 <= threshold <= len(signers):
            raise ld.fail(
                tnode,
                f"{sub}.threshold",
                f"must be between 1 and the number of signers ({len(signers)}), got {threshold}",
            )
    return DctReq(where, tuple(signers), threshold, window, line)


def _notation(
    ld: _Loader, node: yaml.Node, sub: str, where: str, window: Window | None, line: int
) -> NotationReq:
    keys = ld.mapping(node, sub, ("trust_policy", "identities"))
    tp = None
    if "trust_policy" in keys:
        tp = ld.string(keys["trust_policy"][1], f"{sub}.trust_policy").strip()
        if not tp:
            raise ld.fail(keys["trust_policy"][1], f"{sub}.trust_policy", "must not be empty")
    idents: list[str] = []
    subjects: list[frozenset[tuple[str, str]]] = []
    if "identities" in keys:
        inode = keys["identities"][1]
        items = ld.sequence(inode, f"{sub}.identities")
        if not items:
            raise ld.fail(
                inode,
                f"{sub}.identities",
                "is empty; leave it out to accept what the trust policy trusts",
            )
        for j, item in enumerate(items):
            text = ld.string(item, f"{sub}.identities[{j}]").strip()
            prefix, colon, dn = text.partition(":")
            if not colon or prefix.strip() != "x509.subject":
                raise ld.fail(
                    item,
                    f"{sub}.identities[{j}]",
                    f"{text[:80]!r} must be 'x509.subject: <subject>' as in Notation's trust "
                    "policy (e.g. 'x509.subject: C=US, ST=WA, O=Acme, CN=release')",
                )
            try:
                subject = parse_subject(dn.strip())
            except ValueError as e:
                raise ld.fail(item, f"{sub}.identities[{j}]", f"{dn.strip()[:80]!r}: {e}") from e
            idents.append(f"x509.subject: {dn.strip()}")
            subjects.append(subject)
    return NotationReq(where, tp, tuple(idents), tuple(subjects), window, line)


def key_identity(pem: bytes) -> str:
    """``sha256:<hex>`` of the DER SubjectPublicKeyInfo of a PEM public key (the
    identity cosign key-based evidence reports); ValueError when it is not one."""
    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        PublicFormat,
        load_pem_public_key,
    )

    der = load_pem_public_key(pem).public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return "sha256:" + hashlib.sha256(der).hexdigest()


def _cosign(
    ld: _Loader, node: yaml.Node, sub: str, where: str, window: Window | None, line: int
) -> CosignReq:
    keys = ld.mapping(node, sub, ("keys", "identities"))
    ids: list[str] = []
    sources: list[str] = []
    pems: list[bytes] = []
    if "keys" in keys:
        knode = keys["keys"][1]
        items = ld.sequence(knode, f"{sub}.keys")
        if not items:
            raise ld.fail(knode, f"{sub}.keys", "is empty; leave it out or name a key")
        for j, item in enumerate(items):
            text = ld.string(item, f"{sub}.keys[{j}]").strip()
            at = f"{sub}.keys[{j}]"
            if text.startswith("-----BEGIN"):
                data, source = text.encode(), f"inline PEM ({ld.at(item)})"
            else:
                path = ld.base_dir / text
                try:
                    with path.open("rb") as f:
                        data = f.read(64 * 1024 + 1)
                except OSError as e:
                    raise ld.fail(
                        item, at, f"cannot read the public key {str(path)!r}: {e.strerror or e}"
                    ) from e
                if len(data) > 64 * 1024:
                    raise ld.fail(item, at, f"{str(path)!r} is too large to be a public key")
                source = text
            if b"PRIVATE KEY" in data:
                raise ld.fail(
                    item,
                    at,
                    f"{source[:80]!r} holds a private key; give the public key (cosign.pub)",
                )
            try:
                ident = key_identity(data)
            except (ValueError, TypeError) as e:
                raise ld.fail(
                    item,
                    at,
                    f"{source[:80]!r} is not a PEM public key (cosign.pub, a KMS-exported PEM)",
                ) from e
            if ident not in ids:
                ids.append(ident)
                sources.append(source)
                pems.append(data)
    idents: list[CosignIdentity] = []
    if "identities" in keys:
        inode = keys["identities"][1]
        items = ld.sequence(inode, f"{sub}.identities")
        if not items:
            raise ld.fail(inode, f"{sub}.identities", "is empty; leave it out or name a signer")
        for j, item in enumerate(items):
            idents.append(_cosign_identity(ld, item, f"{sub}.identities[{j}]"))
    if not ids and not idents:
        raise ld.fail(
            node,
            sub,
            "needs keys or identities: a cosign requirement naming nobody would accept "
            "any signature the trusted root certifies",
        )
    return CosignReq(where, tuple(ids), tuple(sources), tuple(idents), tuple(pems), window, line)


def _cosign_identity(ld: _Loader, node: yaml.Node, where: str) -> CosignIdentity:
    keys = ld.mapping(node, where, ("san", "san_regex", "issuer"))
    if ("san" in keys) == ("san_regex" in keys):
        raise ld.fail(node, where, "needs exactly one of san (exact) or san_regex (anchored)")
    if "issuer" not in keys:
        raise ld.fail(
            node,
            where,
            "needs issuer: the OIDC issuer, exact (e.g. https://token.actions."
            "githubusercontent.com); a SAN alone can be claimed through any issuer",
        )
    issuer = ld.string(keys["issuer"][1], f"{where}.issuer").strip()
    if not issuer:
        raise ld.fail(keys["issuer"][1], f"{where}.issuer", "must not be empty")
    if "san" in keys:
        san = ld.string(keys["san"][1], f"{where}.san").strip()
        if not san:
            raise ld.fail(keys["san"][1], f"{where}.san", "must not be empty")
        return CosignIdentity(issuer, san=san)
    rnode = keys["san_regex"][1]
    regex = ld.string(rnode, f"{where}.san_regex")
    if len(regex) > MAX_REGEX:
        raise ld.fail(rnode, f"{where}.san_regex", f"longer than {MAX_REGEX} characters")
    if not regex.startswith("^") or not regex.endswith("$") or _escaped_end(regex):
        raise ld.fail(
            rnode,
            f"{where}.san_regex",
            f"{regex[:80]!r} is not anchored: start it with ^ and end it with $ (an "
            "unanchored expression also matches a SAN that merely contains it)",
        )
    try:
        re.compile(regex)
    except re.error as e:
        raise ld.fail(
            rnode, f"{where}.san_regex", f"{regex[:80]!r} is not a regular expression ({e})"
        ) from e
    return CosignIdentity(issuer, san_regex=regex)


def _escaped_end(regex: str) -> bool:
    """``...\\$``: the final $ is a literal (an odd number of backslashes before it)."""
    n = 0
    i = len(regex) - 2
    while i >= 0 and regex[i] == "\\":
        n += 1
        i -= 1
    return n % 2 == 1


def parse_notation_trust(ld: _Loader, node: yaml.Node, where: str) -> NotationTrust:
    """``trust.notation``: a config folder path, or ``{config, trust_policy, trust_store}``."""
    import yaml

    if isinstance(node, yaml.ScalarNode):
        text = ld.string(node, where).strip()
        if not text:
            raise ld.fail(node, where, "must be a folder (Notation's config folder)")
        return NotationTrust(config_dir=(ld.base_dir / text).resolve())
    keys = ld.mapping(node, where, ("config", "trust_policy", "trust_store"))
    if not keys:
        raise ld.fail(node, where, "is empty; leave it out to use Notation's default folder")
    paths: dict[str, Path] = {}
    for name, (_k, vnode) in keys.items():
        text = ld.string(vnode, f"{where}.{name}").strip()
        if not text:
            raise ld.fail(vnode, f"{where}.{name}", "must be a path")
        paths[name] = (ld.base_dir / text).resolve()
    return NotationTrust(
        config_dir=paths.get("config"),
        trust_policy=paths.get("trust_policy"),
        trust_store=paths.get("trust_store"),
    )


def parse_cosign_trust(ld: _Loader, node: yaml.Node, where: str) -> CosignTrust:
    """``trust.cosign: {trusted_root: FILE}``."""
    keys = ld.mapping(node, where, ("trusted_root",))
    if not keys:
        raise ld.fail(node, where, "is empty; leave it out to use the default trusted root")
    vnode = keys["trusted_root"][1]
    text = ld.string(vnode, f"{where}.trusted_root").strip()
    if not text:
        raise ld.fail(vnode, f"{where}.trusted_root", "must be a path to trusted_root.json")
    return CosignTrust(trusted_root=(ld.base_dir / text).resolve())


@dataclass(slots=True)
class LeafResult:
    """How one leaf fared for one image (``policy explain``, decision JSON)."""

    path: str
    kind: str
    describe: str
    active: bool
    satisfied: bool
    why: str
    window: Window | None = None
    code: str | None = None
    #: the valid signatures that satisfied it (DCT: one per satisfied signer)
    by: list[dict[str, object]] = field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        return {
            "alternative": self.path,
            "kind": self.kind,
            "requires": self.describe,
            "window": self.window.to_json() if self.window is not None else None,
            "in_force": self.active,
            "satisfied": self.satisfied,
            "code": self.code,
            "why": self.why,
            "signatures": self.by,
        }


# ----------------------------------------------------------------------------- load.py hooks


def rule_require(
    ld: _Loader,
    node: yaml.Node,
    keys: Mapping[str, tuple[yaml.Node, yaml.Node]],
    where: str,
    action: str,
    has_signers: bool,
) -> Requirement | None:
    """A rule's ``require:`` (None when absent): verify rules only, and not together
    with the classic ``signers``/``threshold`` (write ``dct: {signers: ...}`` inside)."""
    if "require" not in keys:
        return None
    rnode = keys["require"][1]
    if action != "verify":
        raise ld.fail(rnode, f"{where}.require", f"applies to action verify, not {action}")
    if has_signers or "threshold" in keys:
        raise ld.fail(
            rnode,
            f"{where}.require",
            "and signers/threshold are alternatives; move them inside: "
            "require: {dct: {signers: [...], threshold: N}}",
        )
    del node
    return parse_require(ld, rnode, f"{where}.require")


def trust_material(
    ld: _Loader,
    keys: Mapping[str, tuple[yaml.Node, yaml.Node]],
    where: str,
    out: Trust,
) -> None:
    """``trust.notation`` and ``trust.cosign`` (in a rule or in ``defaults``)."""
    if "notation" in keys:
        out.notation = parse_notation_trust(ld, keys["notation"][1], f"{where}.notation")
    if "cosign" in keys:
        out.cosign = parse_cosign_trust(ld, keys["cosign"][1], f"{where}.cosign")


def lint(rule: Rule, where: str) -> list[str]:
    """``policy check`` warnings for a rule's ``require:`` (valid, probably not meant)."""
    if rule.require is None:
        return []
    out: list[str] = []
    found = list(leaves(rule.require))
    keyless = [x for x in found if isinstance(x, CosignReq) and x.identities]
    if keyless and (rule.trust.cosign is None or rule.trust.cosign.trusted_root is None):
        out.append(
            f"{where}: {keyless[0].path} names keyless cosign identities but no "
            "trust.cosign.trusted_root: keyless signatures cannot be verified, so they never count"
        )
    if rule.trust.offline and any(not isinstance(x, DctReq) for x in found):
        out.append(
            f"{where} is offline: Notation and cosign signatures are in the registry, which "
            "is never asked, so those alternatives never count"
        )
    return out
