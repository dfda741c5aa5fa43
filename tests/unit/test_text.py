"""trustcheck.text: the one width, table, visible-text and redaction helper module."""

from __future__ import annotations

import pytest

from trustcheck.text import display_width, redact_url, table, visible


@pytest.mark.parametrize(
    ("text", "width"),
    [
        ("", 0),
        ("alpine", 6),
        ("v1\t", 2),  # control characters take no column
        ("日本", 4),  # East Asian wide
        ("\uff56\uff11", 4),  # full-width forms
        ("e\u0301", 1),  # a combining accent
        ("a\u200bb", 2),  # zero-width space (Cf)
        ("a\u20ddb", 2),  # enclosing mark (Me)
        ("a\u2028b", 2),  # line separator
        ("ü", 1),
    ],
)
def test_display_width(text: str, width: int) -> None:
    assert display_width(text) == width


def test_docker_table_layout() -> None:
    """Docker's tabwriter: minimum width 10, padding 3, the last column unpadded."""
    lines = table(
        ["SIGNED TAG", "DIGEST", "SIGNERS"],
        [["v1", "abc", "alice"]],
        padding=3,
        min_width=10,
        strip=False,
    )
    assert lines == [
        "SIGNED TAG   DIGEST    SIGNERS",
        "v1           abc       alice",
    ]


def test_table_aligns_wide_characters_by_display_width() -> None:
    lines = table(["NAME", "X"], [["日本", "1"], ["ab", "2"]], indent="  ")
    assert lines == ["  NAME  X", "  日本  1", "  ab    2"]


def test_table_strips_trailing_blanks_unless_asked_not_to() -> None:
    assert table(["A", "B"], [["x", ""]]) == ["A  B", "x"]
    assert table(["A", "B"], [["x", ""]], strip=False) == ["A  B", "x  "]


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("plain", "plain"),
        ("tag\x1b[2Jx", "tag\\u001b[2Jx"),  # an escape sequence cannot clear the screen
        ("a\u202eb", "a\\u202eb"),  # right-to-left override
        ("a\u2028b", "a\\u2028b"),
        ("a\U000e0001b", "a\\U000e0001b"),  # language tag (Cf, outside the BMP)
        ("日本 ü", "日本 ü"),
    ],
)
def test_visible(text: str, shown: str) -> None:
    assert visible(text) == shown


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        # passwords in the user information (the Redis cache URL, a registry URL)
        ("redis://:s3cret@redis.svc:6379/0", "redis://:***@redis.svc:6379/0"),
        ("https://bot:s3cret@registry.example.com/v2/", "https://bot:***@registry.example.com/v2/"),
        # a lone user name may be a token
        ("https://ghp_T0KEN@registry.example.com/", "https://***@registry.example.com/"),
        # query strings carry tokens and account names
        ("https://auth.example.com/token?account=bob&scope=x", "https://auth.example.com/token"),
        ("https://h.example/cb#access_token=T0KEN", "https://h.example/cb"),
        # nothing to hide
        ("https://[::1]:5000/v2/", "https://[::1]:5000/v2/"),
        # not a URL: still nothing after '?' and nothing before '@'
        ("user:s3cret@host?x=1", "***@host"),
        ("://?token=T0KEN", "://"),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown
    for secret in ("s3cret", "T0KEN", "bob"):
        assert secret not in redact_url(url)
