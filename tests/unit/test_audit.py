"""The signer-key audit (trustcheck/audit/, trustcheck/audit/render/, ``trustcheck audit``).

On the committed trust data written by the real notary client
(fixtures/generated, validated at its VALIDATION_TIME), on copies of it that
are altered, and on collections whose verified model is edited to reach the
branches genuine data cannot (skipped delegations, roles absent from the
snapshot).  The helpers at the top (schema, Markdown and HTML checks) are
also used by tests/integration/test_audit_notary.py.
"""

from __future__ import annotations

import copy
import csv
import dataclasses
import html.parser
import io
import json
import re
import shutil
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from trustcheck.audit.collect import audit, audit_collection
from trustcheck.audit.index import build_report
from trustcheck.audit.keys import _key_findings
from trustcheck.audit.model import (
    FINDINGS,
    AuditReport,
    Finding,
    KeyEntry,
    normalise_key_query,
    parse_horizon,
)
from trustcheck.audit.render import render
from trustcheck.audit.render.csv import (
    FINDINGS_CSV_COLUMNS,
    TARGETS_CSV_COLUMNS,
    render_targets_csv,
)
from trustcheck.audit.render.schema import JSON_SCHEMA
from trustcheck.errors import NotTrusted, UsageError

if TYPE_CHECKING:
    from conftest import CliRun

    from trustcheck.core.verify import Collection

    Cli = Callable[..., CliRun]

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "fixtures" / "generated"
DOC = ROOT / "docs" / "audit.md"
AT = datetime.fromisoformat(
    (FIXTURES / "VALIDATION_TIME").read_text().strip().replace("Z", "+00:00")
)
AT_TEXT = (FIXTURES / "VALIDATION_TIME").read_text().strip()


# --------------------------------------------------------------------------- shared checks


def schema_errors(value: Any, schema: dict[str, Any], where: str = "$") -> list[str]:
    """A JSON Schema check for the keywords JSON_SCHEMA uses (when jsonschema is absent)."""
    errors: list[str] = []
    if "anyOf" in schema:
        if all(schema_errors(value, s, where) for s in schema["anyOf"]):
            errors.append(f"{where}: matches none of anyOf")
        return errors
    if "const" in schema and value != schema["const"]:
        errors.append(f"{where}: {value!r} != const {schema['const']!r}")
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{where}: {value!r} not in {schema['enum']}")
    kinds = schema.get("type")
    if kinds is not None:
        names = [kinds] if isinstance(kinds, str) else kinds
        checks = {
            "object": lambda v: isinstance(v, dict),
            "array": lambda v: isinstance(v, list),
            "string": lambda v: isinstance(v, str),
            "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
            "boolean": lambda v: isinstance(v, bool),
            "null": lambda v: v is None,
        }
        if not any(checks[n](value) for n in names):
            return [f"{where}: {type(value).__name__} is not {names}"]
    if isinstance(value, str) and "pattern" in schema and not re.search(schema["pattern"], value):
        errors.append(f"{where}: {value!r} does not match {schema['pattern']}")
    if isinstance(value, int) and "minimum" in schema and value < schema["minimum"]:
        errors.append(f"{where}: {value} < {schema['minimum']}")
    if isinstance(value, dict):
        props = schema.get("properties", {})
        errors += [f"{where}: missing {k!r}" for k in schema.get("required", []) if k not in value]
        if schema.get("additionalProperties") is False:
            errors += [f"{where}: unexpected {k!r}" for k in value if k not in props]
        for k, v in value.items():
            if k in props:
                errors += schema_errors(v, props[k], f"{where}.{k}")
    if isinstance(value, list) and "items" in schema:
        for i, v in enumerate(value):
            errors += schema_errors(v, schema["items"], f"{where}[{i}]")
    return errors


def assert_valid_report(doc: dict[str, Any]) -> None:
    """``doc`` follows JSON_SCHEMA: with jsonschema when installed, always with the check above."""
    try:
        import jsonschema  # type: ignore[import-untyped]
    except ImportError:
        pass
    else:
        jsonschema.validate(doc, JSON_SCHEMA)
    errors = schema_errors(doc, JSON_SCHEMA)
    assert errors == [], errors[:10]


def _cells(line: str) -> int:
    """Cells of a Markdown table row: unescaped pipes minus one."""
    return len(re.findall(r"(?<!\\)\|", line)) - 1


def assert_markdown_tables(md: str) -> int:
    """Every table row has as many cells as its header; returns the number of tables."""
    tables = 0
    width = None
    for line in md.splitlines():
        if line.startswith("|"):
            if width is None:
                width = _cells(line)
                tables += 1
            assert _cells(line) == width, line
        else:
            width = None
    assert tables > 0
    return tables


class HtmlCheck(html.parser.HTMLParser):
    """Balanced elements, nothing loaded from elsewhere, no script."""

    VOID = frozenset({"meta", "br", "hr", "img", "input", "link", "rect", "line", "col", "wbr"})
    FORBIDDEN = frozenset({"script", "link", "iframe", "img", "object", "embed", "frame"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.problems: list[str] = []
        self.tags: Counter[str] = Counter()
        self.svg_rows = 0
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags[tag] += 1
        if tag in self.FORBIDDEN:
            self.problems.append(f"<{tag}>")
        for name, value in attrs:
            v = (value or "").strip().lower()
            if name in ("src", "href", "xlink:href", "action") and not v.startswith("#"):
                self.problems.append(f"{tag} {name}={value}")
            if v.startswith(("http:", "https:", "//", "javascript:")) or "url(" in v:
                self.problems.append(f"{tag} {name}={value}")
            if name.startswith("on"):
                self.problems.append(f"{tag} {name}")
        if tag == "g" and "svg" in self.stack:
            self.svg_rows += 1
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags[tag] += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in self.VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.problems.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
            return
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        if self.stack and self.stack[-1] == "style" and ("url(" in data or "@import" in data):
            self.problems.append("style loads something")
        self.text.append(data)


def assert_self_contained_html(page: str) -> HtmlCheck:
    assert page.startswith("<!DOCTYPE html>")
    check = HtmlCheck()
    check.feed(page)
    check.close()
    assert check.problems == [], check.problems[:10]
    assert check.stack == [], check.stack
    assert check.tags["svg"] == 1 and check.tags["table"] >= 1
    return check


# --------------------------------------------------------------------------- data


def _collections(trust: Path = FIXTURES / "trust") -> dict[str, Collection | Any]:
    from trustcheck.api import collections_for
    from trustcheck.local.trustdir import TrustDir

    td = TrustDir(trust)
    return collections_for(td.list_guns(), td, AT)


@pytest.fixture(scope="module")
def cols() -> dict[str, Any]:
    return _collections()


@pytest.fixture(scope="module")
def report(cols: dict[str, Any]) -> AuditReport:
    return audit(cols, AT)


def _codes(report: AuditReport) -> Counter[str]:
    return Counter(f.code for f in report.findings)


# --------------------------------------------------------------------------- docs


def test_every_finding_code_is_documented_with_its_severity() -> None:
    text = DOC.read_text()
    documented = dict(re.findall(r"^\| `([a-z0-9-]+)` \| (error|warning) \|", text, re.M))
    assert documented == {code: sev for code, (sev, _) in FINDINGS.items()}
    for code in FINDINGS:
        assert f"### `{code}`" in text, f"docs/audit.md explains no {code}"


def test_the_schema_printed_in_the_docs_is_the_one_the_code_uses() -> None:
    text = DOC.read_text()
    block = text.split("<!-- json-schema -->", 1)[1].split("```json\n", 1)[1].split("```", 1)[0]
    assert json.loads(block) == JSON_SCHEMA


def test_undocumented_finding_codes_are_refused() -> None:
    with pytest.raises(ValueError):
        Finding("no-such-finding", "x")
    assert Finding("weak-key", "x").severity == "error"


# --------------------------------------------------------------------------- genuine data


def test_committed_fixtures_are_audited_as_they_are(report: AuditReport) -> None:
    summary = report.summary()
    assert (summary["collections"], summary["verified"], summary["unverifiable"]) == (9, 9, 0)
    assert _codes(report) == {
        "root-single-key": 9,  # notary's default root: one key, threshold 1
        "unpinned": 9,
        "unreleased-tag": 9,  # nested: 8, signers: alice-unreleased
        "shared-key": 4,  # two root keys across collections, a releaser, nested a/c
        "short-rsa-key": 1,  # localhost/rsa's 2048-bit releaser certificate
    }
    (short,) = [f for f in report.findings if f.code == "short-rsa-key"]
    assert (short.gun, short.role) == ("localhost/rsa", "targets/releases")
    assert report.counts() == {"error": 0, "warning": 32}
    assert report.reaches("warning") and not report.reaches("error") and not report.reaches(None)


def test_released_and_unreleased_tags_agree_with_the_verifier(
    cols: dict[str, Any], report: AuditReport
) -> None:
    from trustcheck.core.lookup import resolve
    from trustcheck.core.reference import parse_reference

    checked = 0
    for c in report.collections:
        col = cols[c.gun]
        for t in c.released:
            if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}", t.tag):
                continue  # not a Docker tag: no reference can name it
            res = resolve(col, parse_reference(f"{c.gun}:{t.tag}"))
            assert (res.digest, res.role, res.signers) == (t.digest, t.role, t.signers)
            checked += 1
        for u in c.unreleased:
            if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}", u.tag):
                continue
            with pytest.raises(NotTrusted) as e:
                resolve(col, parse_reference(f"{c.gun}:{u.tag}"))
            assert (e.value.code, e.value.role) == ("tag-not-released", u.role)
            checked += 1
    assert checked > 2000  # localhost/bulk alone has 2,050


def test_signers_roles_and_keys_of_a_docker_style_collection(report: AuditReport) -> None:
    (c,) = [c for c in report.collections if c.gun == "localhost/signers"]
    roles = {r.name: r for r in c.roles}
    assert list(roles) == [
        "root",
        "targets",
        "snapshot",
        "timestamp",
        "targets/releases",
        "targets/alice",
        "targets/bob",
    ]
    assert (roles["targets/releases"].threshold, len(roles["targets/releases"].keyids)) == (1, 2)
    assert roles["targets/alice"].paths == [""] and roles["targets/alice"].parent == "targets"
    signers = {s.name: s for s in c.signers}
    assert [t.tag for t in signers["alice"].tags] == [
        "alice-only",
        "alice-unreleased",
        "split",
        "v1",
        "v2",
    ]
    assert {t.tag for t in signers["bob"].tags} == {"bob-only", "v2"}
    (v2,) = [t for t in c.released if t.tag == "v2"]
    assert sorted(v2.signers) == ["alice", "bob", "releases"]
    bob = [k for k in c.keys if k.role == "targets/bob"]
    assert [(k.key_type, k.curve, k.subject_cn) for k in bob] == [("ecdsa-x509", "P-256", "bob")]
    root = [k for k in c.keys if k.role == "root"]
    assert root[0].cert_sha256 is not None and root[0].issuer == "CN=localhost/signers"


def test_docker_signer_pairs_are_not_shared_keys_but_real_sharing_is(report: AuditReport) -> None:
    shared = [f for f in report.findings if f.code == "shared-key"]
    where = sorted(sorted(f.locations) for f in shared)
    # alice and bob each sit in targets/releases and their own role: Docker's layout
    assert not any("localhost/signers targets/alice" in loc for f in shared for loc in f.locations)
    assert ["localhost/nested targets/a", "localhost/nested targets/c"] in where
    (nested,) = [f for f in shared if f.gun == "localhost/nested"]
    assert nested.locations == ["localhost/nested targets/a", "localhost/nested targets/c"]
    roots = [f for f in shared if f.gun is None and all(x.endswith(" root") for x in f.locations)]
    assert sorted(len(f.locations) for f in roots) == [3, 6]


def test_horizon_turns_distant_expiry_into_findings(cols: dict[str, Any]) -> None:
    far = audit(cols, AT, horizon=parse_horizon("4y"))
    expiring = [f for f in far.findings if f.code == "role-expiring"]
    assert expiring and all(f.role not in ("timestamp", "root") for f in expiring)
    assert {f.role for f in expiring} >= {"targets", "snapshot", "targets/releases"}
    assert not [f for f in far.findings if f.code == "cert-expiring"]  # certificates: 10 years
    farther = audit(cols, AT, horizon=parse_horizon("11y"))
    certs = [f for f in farther.findings if f.code == "cert-expiring"]
    distinct = {(k.gun, k.cert_sha256) for k in farther.timeline if k.kind == "certificate"}
    assert len(certs) == len(distinct) > 9
    assert all(t.status == "expiring" for t in farther.timeline)


def test_key_filter_answers_what_a_root_key_can_sign(cols: dict[str, Any]) -> None:
    filtered = audit(cols, AT, key_filter=normalise_key_query("4C:64:D1:6D:CE:64:AD:82"))
    (entry,) = filtered.keys
    assert entry.canonical_key_id.startswith("4c64d16dce64")
    assert len(entry.uses) == 6 and {u.role for u in entry.uses} == {"root"}
    assert all(u.can_sign.startswith("everything in") for u in entry.uses)
    assert {c.gun for c in filtered.collections} == {u.gun for u in entry.uses}
    assert all(set(f.guns()) <= {u.gun for u in entry.uses} for f in filtered.findings)
    # localhost/basic's root certificate names that same key: its holder signs for all six
    by_cert = audit(cols, AT, key_filter=normalise_key_query("cert-sha256:1cf2a096a8e4e7ed"))
    assert [e.canonical_key_id for e in by_cert.keys] == [entry.canonical_key_id]
    assert audit(cols, AT, key_filter="ffffffffffff").keys == []


# --------------------------------------------------------------------------- edited models


def replace(obj: Any, **changes: Any) -> Any:
    """dataclasses.replace, also for the core's records (plain __slots__ classes since
    issue 18): a shallow copy with ``changes`` set."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.replace(obj, **changes)
    new = copy.copy(obj)
    for name, value in changes.items():
        object.__setattr__(new, name, value)
    return new


def _signers(cols: dict[str, Any]) -> Collection:
    """A copy of localhost/signers' verified model whose containers are safe to edit."""
    col: Collection = cols["localhost/signers"]
    return replace(
        col,
        targets=dict(col.targets),
        snapshot=replace(col.snapshot, meta=dict(col.snapshot.meta)),
        skipped=dict(col.skipped),
        warnings=list(col.warnings),
    )


def test_skipped_delegations_are_reported(cols: dict[str, Any]) -> None:
    col = _signers(cols)
    del col.targets["targets/bob"]
    col.skipped["targets/bob"] = NotTrusted("threshold-not-met", "bob: 0 of 1", role="targets/bob")
    got = audit_collection(col.gun, col, AT, pinned=True)
    bob = next(r for r in got.roles if r.name == "targets/bob")
    assert bob.status == "skipped" and bob.reason is not None
    assert [(f.code, f.role, f.error_code) for f in got.findings] == [
        ("unreleased-tag", "targets/alice", None),
        ("delegation-skipped", "targets/bob", "threshold-not-met"),
        ("root-single-key", "root", None),
    ]
    col.skipped["targets/bob"] = NotTrusted("metadata-expired", "bob expired", role="targets/bob")
    got = audit_collection(col.gun, col, AT, pinned=True)
    assert ("role-expired", "targets/bob") in [(f.code, f.role) for f in got.findings]


def test_a_delegation_absent_from_the_snapshot(cols: dict[str, Any]) -> None:
    col = _signers(cols)
    del col.targets["targets/bob"]
    del col.snapshot.meta["targets/bob"]
    never = audit_collection(col.gun, col, AT, pinned=True)
    assert next(r for r in never.roles if r.name == "targets/bob").status == "not-in-snapshot"
    assert ("signer-signed-nothing", "targets/bob") in [(f.code, f.role) for f in never.findings]
    cached = audit_collection(col.gun, col, AT, pinned=True, cached_roles={"targets/bob"})
    codes = [(f.code, f.role) for f in cached.findings]
    assert ("delegation-not-in-snapshot", "targets/bob") in codes
    assert ("signer-signed-nothing", "targets/bob") not in codes


def test_a_published_signer_without_tags_signed_nothing(cols: dict[str, Any]) -> None:
    col = _signers(cols)
    col.targets["targets/bob"] = replace(col.targets["targets/bob"], targets={})
    got = audit_collection(col.gun, col, AT, pinned=True)
    assert ("signer-signed-nothing", "targets/bob") in [(f.code, f.role) for f in got.findings]
    assert next(s for s in got.signers if s.role == "targets/bob").tags == []


def test_cache_only_needs_a_fetched_run(cols: dict[str, Any]) -> None:
    col = _signers(cols)
    col.cache_fallback = (
        "the notary server https://x cannot be reached (refused); using the cached trust data"
    )
    fetched = audit_collection(col.gun, col, AT, pinned=True, fetched=True)
    (finding,) = [f for f in fetched.findings if f.code == "cache-only"]
    assert finding.date is not None and "cannot be reached" in finding.message
    offline = audit_collection(col.gun, col, AT, pinned=True, fetched=False)
    assert "cache-only" not in [f.code for f in offline.findings]


def _key(role: str = "targets/x", **kw: Any) -> KeyEntry:
    base: dict[str, Any] = {
        "role": role,
        "key_type": "rsa-x509",
        "algorithm": "RSA 4096",
        "key_id": "a" * 64,
        "canonical_key_id": "b" * 64,
        "bits": 4096,
        "cert_sha256": "c" * 64,
        "subject_cn": "x",
        "not_before": "2020-01-01T00:00:00Z",
        "not_after": "2036-01-01T00:00:00Z",
        "signature_algorithm": "sha256WithRSAEncryption",
    }
    base.update(kw)
    return KeyEntry(**base)


@pytest.mark.parametrize(
    ("changes", "codes"),
    [
        ({}, []),
        ({"algorithm": "RSA 1024", "bits": 1024}, ["weak-key"]),
        ({"algorithm": "RSA 2047", "bits": 2047}, ["weak-key"]),
        ({"algorithm": "RSA 2048", "bits": 2048}, ["short-rsa-key"]),
        ({"algorithm": "RSA 3071", "bits": 3071}, ["short-rsa-key"]),
        ({"algorithm": "RSA 3072", "bits": 3072}, []),
        ({"signature_algorithm": "sha1WithRSAEncryption"}, ["sha1-certificate"]),
        ({"signature_algorithm": "ecdsa-with-SHA1"}, ["sha1-certificate"]),
        ({"not_after": "2026-11-27T00:11:35Z"}, ["cert-expired"]),
        ({"not_after": "2026-11-27T00:11:37Z"}, ["cert-expiring"]),
        ({"not_after": "2027-02-25T00:11:35Z"}, ["cert-expiring"]),  # 89.99 days
        ({"not_after": "2027-02-25T00:11:37Z"}, []),
        ({"not_before": "2026-11-27T00:11:37Z"}, ["cert-not-yet-valid"]),
    ],
)
def test_key_and_certificate_rules(changes: dict[str, Any], codes: list[str]) -> None:
    found = _key_findings("g", [_key(**changes)], AT, timedelta(days=90))
    assert [f.code for f in found] == codes


def test_one_finding_per_key_and_per_certificate() -> None:
    keys = [
        _key("targets/releases", algorithm="RSA 1024", bits=1024, not_after="2026-12-01T00:00:00Z"),
        _key("targets/alice", algorithm="RSA 1024", bits=1024, not_after="2026-12-01T00:00:00Z"),
    ]
    found = _key_findings("g", keys, AT, timedelta(days=90))
    assert sorted(f.code for f in found) == ["cert-expiring", "weak-key"]
    assert "targets/releases, targets/alice" in found[0].message


# --------------------------------------------------------------------------- inputs


@pytest.mark.parametrize(
    ("text", "days"), [("90d", 90), ("12w", 84), ("1y", 365), ("30", 30), (" 0d ", 0)]
)
def test_horizon_values(text: str, days: int) -> None:
    assert parse_horizon(text) == timedelta(days=days)


@pytest.mark.parametrize("text", ["", "90 days", "-1d", "1.5y", "3m", "d"])
def test_bad_horizons_are_usage_errors(text: str) -> None:
    with pytest.raises(UsageError) as e:
        parse_horizon(text)
    assert e.value.code == "invalid-argument"


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("4C:64:D1:6D", "4c64d16d"),
        ("canonical:4c64d16dce64", "4c64d16dce64"),
        ("cert-sha256:" + "AB" * 32, "ab" * 32),
        ("sha256:deadbeef", "deadbeef"),
    ],
)
def test_key_queries(text: str, want: str) -> None:
    assert normalise_key_query(text) == want


@pytest.mark.parametrize("text", ["4c64d1", "xyz12345", "a" * 65, "keyid:"])
def test_bad_key_queries_are_usage_errors(text: str) -> None:
    with pytest.raises(UsageError):
        normalise_key_query(text)


# --------------------------------------------------------------------------- formats


def test_json_follows_its_schema_and_the_check_is_not_vacuous(report: AuditReport) -> None:
    doc = json.loads(render(report, "json"))
    assert_valid_report(doc)
    assert doc["summary"] == report.summary()
    broken = json.loads(render(report, "json"))
    del broken["collections"][0]["roles"][0]["threshold"]
    broken["findings"][0]["severity"] = "fatal"
    broken["keys"][0]["uses"][0]["extra"] = 1
    errors = schema_errors(broken, JSON_SCHEMA)
    assert len(errors) == 3, errors


def test_csv_has_one_row_per_finding(report: AuditReport) -> None:
    rows = list(csv.DictReader(io.StringIO(render(report, "csv"))))
    assert tuple(rows[0]) == FINDINGS_CSV_COLUMNS
    assert [(r["code"], r["gun"], r["role"]) for r in rows] == [
        (f.code, f.gun or "", f.role or "") for f in report.findings
    ]


def test_targets_csv_is_every_signed_tag(report: AuditReport) -> None:
    rows = list(csv.DictReader(io.StringIO(render_targets_csv(report))))
    assert tuple(rows[0]) == TARGETS_CSV_COLUMNS
    assert len(rows) == report.summary()["signed_tags"] == 2092
    names = [r for r in rows if r["gun"] == "localhost/names"]
    assert "x\u2028y" in {r["tag"] for r in names}  # values stay exact in CSV
    released = [r for r in rows if r["released"] == "true"]
    assert len(released) == 2083
    assert all(r["image"] == f"{r['gun']}@{r['digest']}" for r in rows)


def test_markdown_tables_are_well_formed(report: AuditReport) -> None:
    md = render(report, "markdown")
    assert assert_markdown_tables(md) > 9 * 4
    # rendered as x\u2028y (the backslash itself escaped for Markdown)
    assert "a&lt;b&gt;&amp;c" in md and "x\\\\u2028y" in md and "\u2028" not in md


def test_html_is_self_contained_and_escapes_trust_data(report: AuditReport) -> None:
    page = render(report, "html")
    check = assert_self_contained_html(page)
    assert check.svg_rows == len(report.timeline) == 53
    text = "".join(check.text)
    assert "a<b>&c" in text  # shown as text, so escaped in the markup
    assert "<b>&c" not in page and "\u2028" not in page


def test_table_names_everything_and_hides_control_characters(report: AuditReport) -> None:
    table = render(report, "table")
    for c in report.collections:
        assert f"\n{c.gun}  verified" in table
    assert "\u2028" not in table and "x\\u2028y" in table
    assert "KEY INDEX (36 keys)" in table


# --------------------------------------------------------------------------- CLI


def test_cli_audits_a_trust_dir_with_an_unverifiable_collection(
    trustcheck_cli: Cli, tmp_path: Path
) -> None:
    trust = tmp_path / "trust"
    shutil.copytree(FIXTURES / "trust", trust)
    snap = trust / "tuf" / "localhost" / "basic" / "metadata" / "snapshot.json"
    raw = snap.read_bytes()  # same length, other bytes: the timestamp's hash no longer matches
    snap.write_bytes(raw.replace(b'"expires":"2', b'"expires":"3', 1))
    common = ["audit", "--trust-dir", str(trust), "--at", AT_TEXT, "--format", "json"]
    run = trustcheck_cli(*common, "localhost/basic", "localhost/rsa:v1")
    assert run.code == 0, run.stderr
    doc = json.loads(run.stdout)
    assert_valid_report(doc)
    basic, rsa = doc["collections"]
    assert (basic["gun"], basic["status"], basic["error"]["code"]) == (
        "localhost/basic",
        "unverifiable",
        "hash-mismatch",
    )
    assert {k["role"] for k in basic["keys"]} == {"root", "targets", "snapshot", "timestamp"}
    assert rsa["status"] == "verified"
    assert trustcheck_cli(*common, "--fail-on", "error", "localhost/basic").code == 1
    assert trustcheck_cli(*common, "--fail-on", "error", "localhost/rsa").code == 0
    assert trustcheck_cli(*common, "--fail-on", "warning", "localhost/rsa").code == 1


def test_cli_progress_goes_to_stderr_and_missing_collections_are_reported(
    trustcheck_cli: Cli, tmp_path: Path
) -> None:
    guns = [f"localhost/{n}" for n in ("basic", "bulk", "names", "nested", "releases")]
    guns += [f"localhost/missing-{i}" for i in range(5)]
    out = tmp_path / "report.json"
    run = trustcheck_cli(
        "audit", "--trust-dir", str(FIXTURES / "trust"), "--at", AT_TEXT, "--format", "json",
        "--output", str(out), *guns,
    )  # fmt: skip
    assert run.code == 0 and run.stdout == ""
    assert "audited 10/10 collections" in run.stderr and f"to {out}" in run.stderr
    doc = json.loads(out.read_text())
    missing = [c for c in doc["collections"] if c["gun"].startswith("localhost/missing")]
    assert [c["error"]["code"] for c in missing] == ["no-trust-data"] * 5
    assert all(c["keys"] == [] and c["roles"] == [] for c in missing)


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        ([], "invalid-argument", "--all"),
        (["--all", "localhost/basic"], "invalid-argument", "not both"),
        (["--all", "--format", "xml"], "invalid-argument", "--format"),
        (["--all", "--fail-on", "info"], "invalid-argument", "--fail-on"),
        (["--all", "--key", "abc"], "invalid-argument", "--key"),
        (["--all", "--horizon", "soon"], "invalid-argument", "--horizon"),
        (["--all", "--output", "/nonexistent/dir/report.txt"], "output-unwritable", "--output"),
        (["Not/Valid"], "invalid-reference", ""),
    ],
)
def test_cli_usage_errors(trustcheck_cli: Cli, args: list[str], code: str, needle: str) -> None:
    run = trustcheck_cli("audit", "--trust-dir", str(FIXTURES / "trust"), "--at", AT_TEXT, *args)
    assert run.code == 2, run
    assert f"[{code}]" in run.stderr and needle in run.stderr
    assert "Traceback" not in run.stderr and run.stdout == ""


def test_cli_key_filter_without_a_match_warns(trustcheck_cli: Cli) -> None:
    run = trustcheck_cli(
        "audit", "--all", "--trust-dir", str(FIXTURES / "trust"), "--at", AT_TEXT,
        "--key", "0123456789abcdef",
    )  # fmt: skip
    assert run.code == 0
    assert "matches no key" in run.stderr
    assert "0 collections" in run.stdout


def test_every_format_from_the_cli(trustcheck_cli: Cli, tmp_path: Path) -> None:
    base = ["audit", "--all", "--trust-dir", str(FIXTURES / "trust"), "--at", AT_TEXT]
    outputs = {}
    for fmt in ("table", "json", "csv", "markdown", "html"):
        run = trustcheck_cli(*base, "--format", fmt)
        assert run.code == 0, run.stderr
        outputs[fmt] = run.stdout
    assert_valid_report(json.loads(outputs["json"]))
    assert len(list(csv.DictReader(io.StringIO(outputs["csv"])))) == 32
    assert_markdown_tables(outputs["markdown"])
    assert_self_contained_html(outputs["html"])
    assert outputs["table"].startswith(f"trustcheck audit at {AT_TEXT}, horizon 90 days\n")


def test_build_report_is_independent_of_input_order(cols: dict[str, Any]) -> None:
    audits = [audit_collection(g, c, AT) for g, c in cols.items()]
    a = build_report(audits, AT).to_json()
    b = build_report(list(reversed(audits)), AT).to_json()
    assert a == b
    assert datetime.fromisoformat(a["at"].replace("Z", "+00:00")) == AT.astimezone(UTC)


# --------------------------------------------------------------------------- docs samples

_SAMPLE = re.compile(
    r"<!-- (sample|sample-targets-csv): (?P<args>[^\n]*?) -->\n+```[a-z]*\n(?P<body>.*?)```",
    re.S,
)


def sample_output(kind: str, args: list[str], tmp: Path) -> str:
    """What the documented command prints (or writes to --targets-csv) today."""
    from conftest import run_trustcheck

    base = ["audit", "--trust-dir", str(FIXTURES / "trust"), "--at", AT_TEXT]
    if kind == "sample-targets-csv":
        out = tmp / "targets.csv"
        run = run_trustcheck(*base, *args, "--format", "csv", "--targets-csv", str(out))
        assert run.code == 0, run.stderr
        return out.read_text()
    run = run_trustcheck(*base, *args)
    assert run.code == 0, run.stderr
    text: str = run.stdout
    return text


def test_docs_samples_are_real_output(tmp_path: Path) -> None:
    text = DOC.read_text()
    samples = list(_SAMPLE.finditer(text))
    kinds = {m.group(1) for m in samples}
    formats = {
        a.split()[a.split().index("--format") + 1]
        for m in samples
        if "--format" in (a := m.group("args"))
    }
    assert kinds == {"sample", "sample-targets-csv"}
    assert formats >= {"json", "csv", "markdown", "html"}
    for m in samples:
        want = sample_output(m.group(1), m.group("args").split(), tmp_path)
        assert m.group("body") == want, f"docs/audit.md sample `{m.group('args')}` is out of date"


def test_worker_processes_give_the_same_report(trustcheck_cli: Cli) -> None:
    base = ["audit", "--all", "--trust-dir", str(FIXTURES / "trust"), "--at", AT_TEXT]
    one = trustcheck_cli(*base, "--format", "json", "--jobs", "1")
    two = trustcheck_cli(*base, "--format", "json", "--jobs", "2")
    assert one.code == two.code == 0, two.stderr
    assert json.loads(one.stdout)["summary"]["collections"] == 9
    assert one.stdout == two.stdout


def update_docs_samples() -> None:
    """Rewrite the samples in docs/audit.md with what the commands print now:
    ``.venv/bin/python tests/unit/test_audit.py``."""
    import tempfile

    text = DOC.read_text()
    with tempfile.TemporaryDirectory() as tmp:

        def fresh(m: re.Match[str]) -> str:
            body = sample_output(m.group(1), m.group("args").split(), Path(tmp))
            return m.group(0).replace(m.group("body"), body, 1)

        DOC.write_text(_SAMPLE.sub(fresh, text))


if __name__ == "__main__":
    import sys

    sys.path[:0] = [str(ROOT / "tests"), str(ROOT)]  # conftest, fixtures
    update_docs_samples()
