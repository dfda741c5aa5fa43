"""Docker reference grammar and normalisation (trustcheck.core.reference).

Cases marked "distribution" come from the behaviour of
github.com/distribution/reference v0.6 (ParseNormalizedNamed + TagNameOnly),
which the Docker 28 CLI uses.
"""

from __future__ import annotations

import dataclasses

import pytest

from trustcheck.core.reference import (
    MAX_REFERENCE_LENGTH,
    MAX_REPOSITORY_PATH_LENGTH,
    ImageRef,
    parse_reference,
)
from trustcheck.errors import UsageError

H = "f" * 64
D = "sha256:" + H
H2 = "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"

# input -> (name, tag, digest)
VALID: list[tuple[str, tuple[str, str | None, str | None]]] = [
    # familiar names on Docker Hub
    ("alpine", ("docker.io/library/alpine", "latest", None)),
    ("alpine:3.19", ("docker.io/library/alpine", "3.19", None)),
    ("user/app", ("docker.io/user/app", "latest", None)),
    ("user/app:v1", ("docker.io/user/app", "v1", None)),
    ("docker.io/alpine", ("docker.io/library/alpine", "latest", None)),
    ("docker.io/library/alpine", ("docker.io/library/alpine", "latest", None)),
    ("index.docker.io/debian", ("docker.io/library/debian", "latest", None)),
    ("index.docker.io/docker/docker", ("docker.io/docker/docker", "latest", None)),
    ("library/debian", ("docker.io/library/debian", "latest", None)),
    ("a/b/c/d", ("docker.io/a/b/c/d", "latest", None)),
    # digests: no tag added
    (f"alpine@{D}", ("docker.io/library/alpine", None, D)),
    (f"localhost:5000/x@{D}", ("localhost:5000/x", None, D)),
    (f"example.com/org/app:v1@{D}", ("example.com/org/app", "v1", D)),
    (f"alpine:latest@sha256:{H2}", ("docker.io/library/alpine", "latest", "sha256:" + H2)),
    # domain detection
    ("localhost/debian", ("localhost/debian", "latest", None)),
    ("localhost:5000/debian", ("localhost:5000/debian", "latest", None)),
    ("localhost", ("docker.io/library/localhost", "latest", None)),
    ("localhost:5000", ("docker.io/library/localhost", "5000", None)),
    ("test:5000/repo", ("test:5000/repo", "latest", None)),
    ("test:5000/repo:tag", ("test:5000/repo", "tag", None)),
    ("test.com:5000", ("docker.io/library/test.com", "5000", None)),
    ("test_com", ("docker.io/library/test_com", "latest", None)),
    # Docker takes an upper-case single-label first component as a registry;
    # trustcheck refuses it (see test_identity.py: in lower case it would be a
    # Docker Hub namespace, so no one identity exists for it)
    ("sub-dom1.foo.com/bar/baz/quux:some-long-tag",
     ("sub-dom1.foo.com/bar/baz/quux", "some-long-tag", None)),
    ("b.gcr.io/test.example.com/my-app:test.example.com",
     ("b.gcr.io/test.example.com/my-app", "test.example.com", None)),
    ("xn--n3h.com/myimage:xn--n3h.com", ("xn--n3h.com/myimage", "xn--n3h.com", None)),
    ("foo/foo_bar.com:8080", ("docker.io/foo/foo_bar.com", "8080", None)),
    ("foo_bar.com/x", ("foo_bar.com/x", "latest", None)),
    ("192.168.1.1", ("docker.io/library/192.168.1.1", "latest", None)),
    ("192.168.0.1:80", ("docker.io/library/192.168.0.1", "80", None)),
    ("192.168.1.1:5000/repo:5050", ("192.168.1.1:5000/repo", "5050", None)),
    ("127.0.0.1:5000/library/debian", ("127.0.0.1:5000/library/debian", "latest", None)),
    # IPv6 registries
    ("[2001:db8::1]/repo", ("[2001:db8::1]/repo", "latest", None)),
    ("[2001:db8::1]:5000/repo:tag", ("[2001:db8::1]:5000/repo", "tag", None)),
    (f"[2001:db8::1]:5000/repo:tag@{D}", ("[2001:db8::1]:5000/repo", "tag", D)),
    ("[::1]:5000/repo", ("[::1]:5000/repo", "latest", None)),
    ("[fc00:1:2:3:4:5:6:7]:5000/library/debian",
     ("[fc00:1:2:3:4:5:6:7]:5000/library/debian", "latest", None)),
    # separators in path components
    ("docker-rules/docker", ("docker.io/docker-rules/docker", "latest", None)),
    ("docker---rules/docker", ("docker.io/docker---rules/docker", "latest", None)),
    ("dock__er/docker", ("docker.io/dock__er/docker", "latest", None)),
    ("d/docker", ("docker.io/d/docker", "latest", None)),
    ("a/b.c_d-e", ("docker.io/a/b.c_d-e", "latest", None)),
    # a first component with '.' is taken as a registry; Docker still accepts it
    # as a path component when it is not a valid host name
    ("a.b_c-d/e", ("a.b_c-d/e", "latest", None)),
    # tags
    ("lowercase:Uppercase", ("docker.io/library/lowercase", "Uppercase", None)),
    ("alpine:_x", ("docker.io/library/alpine", "_x", None)),
    ("alpine:" + "t" * 128, ("docker.io/library/alpine", "t" * 128, None)),
    # 64-hex names are fine when they are not the whole input
    ("docker.io/" + "1a3f" * 16, ("docker.io/library/" + "1a3f" * 16, "latest", None)),
    ("thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev",
     ("docker.io/library/thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev",
      "latest", None)),
    # lengths: the path (not the domain) is limited to 255
    ("example.com/" + "a" * 255 + ":tag", ("example.com/" + "a" * 255, "tag", None)),
    ("a/" * 127 + "a:tag", ("docker.io/" + "a/" * 127 + "a", "tag", None)),
]  # fmt: skip

# input -> a fragment the error message must contain
INVALID: list[tuple[str, str]] = [
    ("", "empty"),
    (":justtag", "empty component"),
    (f"@{D}", "empty component"),
    ("Uppercase:tag", "must be lowercase"),
    ("docker/Docker", "must be lowercase"),
    ("docker.io/docker/Docker", "must be lowercase"),
    ("test:5000/Uppercase/lowercase:tag", "must be lowercase"),
    ("domain/" + "a" * 256 + ":tag", "more than 255"),
    ("example.com/" + "a" * 256, "more than 255"),
    ("aa/asdf$$^/aa", "path component"),
    ("-docker", "path component"),
    ("-docker/docker", "path component"),
    ("docker-/docker", "path component"),
    ("____/____", "path component"),
    ("_docker/_docker", "path component"),
    ("dock..er/docker", "registry"),
    ("dock_.er/docker", "registry"),
    ("dock-.er/docker", "registry"),
    ("x/dock..er", "path component"),
    ("x/dock_.er", "path component"),
    ("x/dock-.er", "path component"),
    ("docker///docker", "empty component"),
    ("docker/", "empty component"),
    ("/alpine", "empty component"),
    ("-docker.io/docker/docker", "registry"),
    ("fc00::1:5000/debian", "registry"),
    ("[fe80::1%eth0]:5000/debian", "registry"),
    ("[2001:db8:3:4::192.0.2.33]:5000/debian", "registry"),
    ("[fc00::1]", "':'"),
    ("[2001:db8::1]:5000", "':'"),
    ("https://github.com/docker/docker", "URL"),
    ("1a3f" * 16, "image ID"),
    # tags
    ("alpine:", "tag after ':' is empty"),
    ("alpine:.bad", "tag"),
    ("alpine:-bad", "tag"),
    ("alpine:" + "t" * 129, "tag"),
    ("alpine:a+b", "tag"),
    # digests
    ("repo@sha256:" + "f" * 34, "64 hex digits"),
    ("repo@sha256:" + "f" * 65, "64 hex digits"),
    ("repo@sha256:" + "F" * 64, "lowercase"),
    ("repo@SHA256:" + H, "must be lowercase"),
    ("repo:v1@SHA256:" + H, "lowercase ('sha256')"),
    ("validname@sha512:" + "f" * 128, "sha256 digests only"),
    ("validname@sha384:" + "f" * 96, "sha256 digests only"),
    ("validname@invaliddigest:" + H, "unsupported digest algorithm"),
    ("repo@sha256:abc", "ALGORITHM:HEX"),
    ("repo@" + H, "ALGORITHM:HEX"),
    ("repo@", "digest after '@' is empty"),
    (f"repo@{D}@{D}", "more than one '@'"),
    # path traversal and hostile bytes
    ("a/../b", "'..' component"),
    ("../alpine", "'..' component"),
    ("example.com/../etc", "'..' component"),
    ("example.com/./x", "'.' component"),
    ("alpine\x00", "NUL"),
    ("al pine", "whitespace"),
    ("alpine\n", "whitespace"),
    ("alpine\t:1", "whitespace"),
    ("alp\x1bine", "control character"),
    ("a\\b", "backslash"),
    ("example.com\\x/y", "backslash"),
    ("alpïne", "non-ASCII"),
    ("a" * (MAX_REFERENCE_LENGTH + 1), "longer than"),
]


@pytest.mark.parametrize(("text", "expected"), VALID, ids=[v[0][:60] for v in VALID])
def test_valid_references_normalise_like_docker(
    text: str, expected: tuple[str, str | None, str | None]
) -> None:
    ref = parse_reference(text)
    assert (ref.name, ref.tag, ref.digest) == expected
    assert ref.gun == ref.name


@pytest.mark.parametrize(("text", "fragment"), INVALID, ids=[repr(v[0][:60]) for v in INVALID])
def test_invalid_references_are_refused_with_a_reason(text: str, fragment: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_reference(text)
    err = info.value
    assert err.code == "invalid-reference"
    assert err.exit_code == 2
    assert fragment in err.message
    # one line, naming the expected form
    assert "\n" not in err.message
    assert "NAME[:TAG][@sha256:DIGEST]" in err.message


def test_error_message_does_not_echo_raw_control_characters() -> None:
    with pytest.raises(UsageError) as info:
        parse_reference("evil\x1b[31m/name")
    assert "\x1b" not in info.value.message
    assert "\\x1b" in info.value.message


def test_error_message_shortens_very_long_input() -> None:
    with pytest.raises(UsageError) as info:
        parse_reference("a" * 5000)
    assert len(info.value.message) < 400


@pytest.mark.parametrize(
    ("text", "domain", "path"),
    [
        ("alpine", "docker.io", "library/alpine"),
        ("user/app", "docker.io", "user/app"),
        ("localhost:5000/a/b:1", "localhost:5000", "a/b"),
        ("[::1]:5000/repo", "[::1]:5000", "repo"),
        ("example.com/org/app@" + D, "example.com", "org/app"),
    ],
)
def test_domain_and_path(text: str, domain: str, path: str) -> None:
    ref = parse_reference(text)
    assert ref.domain == domain
    assert ref.path == path
    assert ref.name == f"{domain}/{path}"


@pytest.mark.parametrize(
    ("text", "string"),
    [
        ("alpine", "docker.io/library/alpine:latest"),
        ("user/app:v2", "docker.io/user/app:v2"),
        (f"localhost:5000/x@{D}", f"localhost:5000/x@{D}"),
        (f"example.com/org/app:v1@{D}", f"example.com/org/app:v1@{D}"),
    ],
)
def test_str_is_name_tag_digest(text: str, string: str) -> None:
    assert str(parse_reference(text)) == string


def test_str_round_trips() -> None:
    for text, _ in VALID:
        ref = parse_reference(text)
        assert parse_reference(str(ref)) == ref


def test_imageref_is_frozen_and_slotted() -> None:
    ref = parse_reference("alpine")
    with pytest.raises(dataclasses.FrozenInstanceError):
        ref.tag = "x"  # type: ignore[misc]
    assert not hasattr(ref, "__dict__")
    assert ref == ImageRef("docker.io/library/alpine", "latest", None)


def test_path_length_boundary() -> None:
    ok = "example.com/" + "a" * MAX_REPOSITORY_PATH_LENGTH
    assert parse_reference(ok).path == "a" * MAX_REPOSITORY_PATH_LENGTH
    with pytest.raises(UsageError):
        parse_reference(ok + "a")
    # on Docker Hub the "library/" prefix counts towards the path
    hub = "a" * (MAX_REPOSITORY_PATH_LENGTH - len("library/"))
    assert parse_reference(hub).path == "library/" + hub
    with pytest.raises(UsageError):
        parse_reference(hub + "a")


def test_pathological_input_is_fast() -> None:
    import time

    start = time.perf_counter()
    for text in ("a" * 1000 + "!", "a-" * 500 + "!", "a." * 500 + "/", "a" * 1000 + ":" + "b" * 23):
        with pytest.raises(UsageError):
            parse_reference(text)
    assert time.perf_counter() - start < 1.0
