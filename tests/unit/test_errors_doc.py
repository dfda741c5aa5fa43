"""docs/errors.md lists exactly the codes trustcheck can raise, with the right exit code."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from trustcheck.errors import CODES, ErrorCode, NotTrusted, TrustcheckError, UsageError, error_for

DOC = Path(__file__).resolve().parents[2] / "docs" / "errors.md"
PKG = Path(__file__).resolve().parents[2] / "trustcheck"


def _documented() -> dict[str, int]:
    text = DOC.read_text()
    usage, _, rest = text.partition("## Not trusted")
    codes = {c: 2 for c in re.findall(r"^\| `([a-z0-9-]+)` \|", usage, re.M)}
    codes.update({c: 1 for c in re.findall(r"^\| `([a-z0-9-]+)` \|", rest, re.M)})
    return codes


def test_every_code_is_documented_with_its_exit_code() -> None:
    assert _documented() == {c.value: v[0] for c, v in CODES.items()}
    assert set(CODES) == set(ErrorCode), "every ErrorCode member has an exit code and summary"


def test_every_code_used_in_the_package_is_registered() -> None:
    used: set[str] = set()
    members: set[str] = set()
    for src in PKG.rglob("*.py"):  # every sub-package
        text = src.read_text()
        used.update(re.findall(r'(?:NotTrusted|UsageError|error_for)\(\s*"([a-z0-9-]+)"', text))
        members.update(re.findall(r"\bErrorCode\.([A-Z0-9_]+)\b", text))
    assert members, "the scan found no ErrorCode member: the pattern is wrong"
    assert used <= set(CODES), used - set(CODES)
    assert members <= set(ErrorCode.__members__), members - set(ErrorCode.__members__)


def test_a_misspelt_code_fails_where_it_is_raised() -> None:
    """TrustcheckError checks its code against ErrorCode, whatever the spelling at the site."""
    for bad in ("hash_mismatch", "Hash-Mismatch", "hash-mismatch ", "", "no-such-code"):
        with pytest.raises(ValueError, match="undocumented error code"):
            TrustcheckError(bad, "x")
        with pytest.raises(ValueError):
            error_for(bad, "x")
    e = TrustcheckError("hash-mismatch", "x")
    assert e.code is ErrorCode.HASH_MISMATCH and e.code == "hash-mismatch"
    assert f"[{e.code}]" == "[hash-mismatch]" and e.to_json()["code"] == "hash-mismatch"
    assert type(e.to_json()["code"]) is str


def test_classes_refuse_codes_of_the_other_kind() -> None:
    with pytest.raises(ValueError):
        NotTrusted("invalid-reference", "x")
    with pytest.raises(ValueError):
        UsageError("tag-not-signed", "x")
    with pytest.raises(ValueError):
        NotTrusted("no-such-code", "x")
    assert error_for("unsafe-path", "x").exit_code == 2
    assert error_for("hash-mismatch", "x").exit_code == 1
