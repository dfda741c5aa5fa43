"""Safe reading of a Docker / notary trust dir (trustcheck.local.trustdir).

All tests use real files and real symlinks under tmp_path.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from trustcheck.core.roles import MAX_DOWNLOAD_SIZE, MAX_TIMESTAMP_SIZE, validate_role_name
from trustcheck.errors import NotTrusted, UsageError
from trustcheck.local.trustdir import MAX_GUN_LENGTH, TrustDir, default_trust_dir, validate_gun

REPO_ROOT = Path(__file__).resolve().parents[2]
REALWORLD = REPO_ROOT / "fixtures" / "realworld" / "notary0.1"
REALWORLD_GUN = "docker.com/notary0.1/samplerepo"

GUN = "example.com/org/app"


def make_role(root: Path, gun: str, role: str, data: bytes) -> Path:
    path = root / "tuf" / gun / "metadata" / f"{role}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


# --- default_trust_dir --------------------------------------------------------


def test_default_trust_dir_uses_docker_config(tmp_path: Path) -> None:
    env = {"DOCKER_CONFIG": str(tmp_path / "cfg")}
    assert default_trust_dir(env, home=tmp_path / "home") == tmp_path / "cfg" / "trust"


def test_default_trust_dir_falls_back_to_home(tmp_path: Path) -> None:
    assert default_trust_dir({}, home=tmp_path) == tmp_path / ".docker" / "trust"


def test_default_trust_dir_ignores_empty_docker_config(tmp_path: Path) -> None:
    assert default_trust_dir({"DOCKER_CONFIG": ""}, home=tmp_path) == tmp_path / ".docker" / "trust"


def test_default_trust_dir_reads_process_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "x"))
    assert default_trust_dir() == tmp_path / "x" / "trust"
    monkeypatch.delenv("DOCKER_CONFIG")
    monkeypatch.setenv("HOME", str(tmp_path / "h"))
    assert default_trust_dir() == tmp_path / "h" / ".docker" / "trust"


# --- validate_gun -------------------------------------------------------------


@pytest.mark.parametrize(
    "gun",
    [
        "docker.io/library/alpine",
        "localhost:5000/x",
        "[::1]:5000/repo",
        "docker.com/notary0.1/samplerepo",
        "a",
        "a/" * 100 + "b",
    ],
)
def test_validate_gun_accepts_ordinary_guns(gun: str) -> None:
    validate_gun(gun)  # does not raise
    assert TrustDir(Path("/t")).metadata_dir(gun) == Path("/t/tuf") / gun / "metadata"


@pytest.mark.parametrize(
    ("gun", "reason"),
    [
        ("", "empty"),
        ("../x", "'..'"),
        ("a/../../b", "'..'"),
        ("a/..", "'..'"),
        ("..", "'..'"),
        ("./a", "'.'"),
        ("a/./b", "'.'"),
        ("/abs", "absolute"),
        ("/etc/passwd", "absolute"),
        ("a//b", "empty component"),
        ("a/", "empty component"),
        ("a\x00b", "NUL"),
        ("a\\..\\b", "backslash"),
        ("a\nb", "control"),
        ("a\x7fb", "control"),
        ("a\x85b", "control"),
        ("a\udc80b", "Unicode"),
        ("a" * 256, "longer than 255"),
        ("a/" * 600 + "b", f"more than {MAX_GUN_LENGTH}"),
    ],
)
def test_validate_gun_refuses_unsafe_guns(gun: str, reason: str, tmp_path: Path) -> None:
    with pytest.raises(UsageError) as info:
        validate_gun(gun)
    assert info.value.code == "unsafe-path"
    assert reason in info.value.message
    assert "\n" not in info.value.message
    # every entry point that takes a GUN refuses it before touching the disk
    td = TrustDir(tmp_path)
    for call in (
        lambda: td.metadata_dir(gun),
        lambda: td.has_trust_data(gun),
        lambda: td.read_role(gun, "root", MAX_DOWNLOAD_SIZE),
    ):
        with pytest.raises(UsageError) as again:
            call()
        assert again.value.code == "unsafe-path"


def test_traversal_gun_never_reads_outside(tmp_path: Path) -> None:
    root = tmp_path / "trust"
    (root / "tuf").mkdir(parents=True)
    secret = tmp_path / "metadata" / "root.json"
    secret.parent.mkdir()
    secret.write_bytes(b"secret")
    td = TrustDir(root)
    # tuf/../../metadata/root.json would be the secret file
    with pytest.raises(UsageError) as info:
        td.read_role("../..", "root", MAX_DOWNLOAD_SIZE)
    assert info.value.code == "unsafe-path"


# --- validate_role_name -------------------------------------------------------


@pytest.mark.parametrize(
    "role",
    [
        "root",
        "targets",
        "snapshot",
        "timestamp",
        "targets/releases",
        "targets/a/b/c",
        "targets/a-b_c9",
        "targets/" + "a" * 247,  # 255 bytes
    ],
)
def test_valid_role_names(role: str) -> None:
    assert validate_role_name(role) is True


@pytest.mark.parametrize(
    "role",
    [
        "",
        "Root",
        "targets/",
        "targets//a",
        "targets/a/",
        "targets/../root",
        "targets/a/../b",
        "targets/./a",
        "targets/.",
        "targets/Releases",
        "targets/a.b",
        "targets/a b",
        "targets/a\x00",
        "targets\\a",
        "/targets/a",
        "releases",
        "target/a",
        "../targets",
        "targets/" + "a" * 248,  # 256 bytes
        "targets/é",
        "root.1",
        "snapshot/x",
    ],
)
def test_invalid_role_names(role: str, tmp_path: Path) -> None:
    assert validate_role_name(role) is False
    make_role(tmp_path, GUN, "root", b"{}")
    with pytest.raises(UsageError) as info:
        TrustDir(tmp_path).read_role(GUN, role, MAX_DOWNLOAD_SIZE)
    assert info.value.code == "unsafe-path"


def test_hostile_role_name_does_not_reach_sibling_file(tmp_path: Path) -> None:
    # targets/../root would open root.json if the name were not validated
    make_role(tmp_path, GUN, "root", b"root-bytes")
    (tmp_path / "tuf" / GUN / "metadata" / "targets").mkdir()
    with pytest.raises(UsageError):
        TrustDir(tmp_path).read_role(GUN, "targets/../root", MAX_DOWNLOAD_SIZE)


# --- read_role ----------------------------------------------------------------


def test_read_role_returns_exact_bytes(tmp_path: Path) -> None:
    data = b'{"signed":{"_type":"Root"},"signatures":[]}\n'
    make_role(tmp_path, GUN, "root", data)
    td = TrustDir(tmp_path)
    assert td.read_role(GUN, "root", MAX_DOWNLOAD_SIZE) == data
    assert td.has_trust_data(GUN) is True


def test_missing_role_is_none(tmp_path: Path) -> None:
    make_role(tmp_path, GUN, "root", b"{}")
    td = TrustDir(tmp_path)
    assert td.read_role(GUN, "snapshot", MAX_DOWNLOAD_SIZE) is None
    assert td.read_role(GUN, "targets/releases", MAX_DOWNLOAD_SIZE) is None


def test_missing_gun_and_missing_trust_dir(tmp_path: Path) -> None:
    td = TrustDir(tmp_path / "does-not-exist")
    assert td.has_trust_data(GUN) is False
    assert td.read_role(GUN, "root", MAX_DOWNLOAD_SIZE) is None
    assert td.list_guns() == []


def test_nested_delegation_path(tmp_path: Path) -> None:
    make_role(tmp_path, GUN, "targets/a/b", b"nested")
    make_role(tmp_path, GUN, "targets/a", b"parent")
    td = TrustDir(tmp_path)
    assert td.read_role(GUN, "targets/a/b", MAX_DOWNLOAD_SIZE) == b"nested"
    assert td.read_role(GUN, "targets/a", MAX_DOWNLOAD_SIZE) == b"parent"
    assert (tmp_path / "tuf" / GUN / "metadata" / "targets" / "a" / "b.json").is_file()


def test_size_cap_exactly_at_cap_is_read(tmp_path: Path) -> None:
    make_role(tmp_path, GUN, "timestamp", b"x" * 100)
    assert TrustDir(tmp_path).read_role(GUN, "timestamp", 100) == b"x" * 100


def test_size_cap_one_byte_over_is_refused(tmp_path: Path) -> None:
    make_role(tmp_path, GUN, "timestamp", b"x" * 101)
    with pytest.raises(NotTrusted) as info:
        TrustDir(tmp_path).read_role(GUN, "timestamp", 100)
    err = info.value
    assert err.code == "file-too-large"
    assert err.exit_code == 1
    assert err.role == "timestamp"
    assert "101 bytes" in err.message
    assert "cap 100" in err.message


def test_timestamp_cap_constant(tmp_path: Path) -> None:
    assert MAX_TIMESTAMP_SIZE == 1024 * 1024
    assert MAX_DOWNLOAD_SIZE == 100 * 1024 * 1024
    make_role(tmp_path, GUN, "timestamp", b" " * (MAX_TIMESTAMP_SIZE + 1))
    with pytest.raises(NotTrusted) as info:
        TrustDir(tmp_path).read_role(GUN, "timestamp", MAX_TIMESTAMP_SIZE)
    assert info.value.code == "file-too-large"
    make_role(tmp_path, GUN, "timestamp", b" " * MAX_TIMESTAMP_SIZE)
    data = TrustDir(tmp_path).read_role(GUN, "timestamp", MAX_TIMESTAMP_SIZE)
    assert data is not None
    assert len(data) == MAX_TIMESTAMP_SIZE


def test_zero_cap_and_empty_file(tmp_path: Path) -> None:
    make_role(tmp_path, GUN, "snapshot", b"")
    assert TrustDir(tmp_path).read_role(GUN, "snapshot", 0) == b""
    make_role(tmp_path, GUN, "snapshot", b"1")
    with pytest.raises(NotTrusted):
        TrustDir(tmp_path).read_role(GUN, "snapshot", 0)


def test_negative_cap_is_an_argument_error(tmp_path: Path) -> None:
    make_role(tmp_path, GUN, "root", b"{}")
    with pytest.raises(UsageError) as info:
        TrustDir(tmp_path).read_role(GUN, "root", -1)
    assert info.value.code == "invalid-argument"


def test_growing_file_is_capped_after_fstat(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Simulate a file that grows between fstat and read: fstat reports a small
    # size, but the read returns more than the cap.
    make_role(tmp_path, GUN, "targets", b"y" * 50)
    real_fstat = os.fstat

    class SmallStat:
        def __init__(self, st: os.stat_result) -> None:
            self.st_mode = st.st_mode
            self.st_size = 5

    monkeypatch.setattr(os, "fstat", lambda fd: SmallStat(real_fstat(fd)))
    with pytest.raises(NotTrusted) as info:
        TrustDir(tmp_path).read_role(GUN, "targets", 10)
    assert info.value.code == "file-too-large"
    assert info.value.role == "targets"


# --- symlinks -----------------------------------------------------------------


def test_symlinked_role_escaping_trust_dir_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "trust"
    outside = tmp_path / "outside.json"
    outside.write_bytes(b"outside")
    meta = root / "tuf" / GUN / "metadata"
    meta.mkdir(parents=True)
    (meta / "root.json").symlink_to(outside)
    td = TrustDir(root)
    with pytest.raises(UsageError) as info:
        td.read_role(GUN, "root", MAX_DOWNLOAD_SIZE)
    assert info.value.code == "unsafe-path"
    assert "outside the trust dir" in info.value.message
    with pytest.raises(UsageError):
        td.has_trust_data(GUN)


def test_dangling_symlink_escaping_trust_dir_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "trust"
    meta = root / "tuf" / GUN / "metadata"
    meta.mkdir(parents=True)
    (meta / "snapshot.json").symlink_to(tmp_path / "nowhere.json")
    with pytest.raises(UsageError) as info:
        TrustDir(root).read_role(GUN, "snapshot", MAX_DOWNLOAD_SIZE)
    assert info.value.code == "unsafe-path"


def test_symlinked_directory_escaping_trust_dir_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "trust"
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "metadata").mkdir(parents=True)
    (elsewhere / "metadata" / "root.json").write_bytes(b"{}")
    (root / "tuf" / "example.com" / "org").mkdir(parents=True)
    (root / "tuf" / "example.com" / "org" / "app").symlink_to(elsewhere)
    td = TrustDir(root)
    with pytest.raises(UsageError) as info:
        td.read_role(GUN, "root", MAX_DOWNLOAD_SIZE)
    assert info.value.code == "unsafe-path"
    assert td.list_guns() == []


def test_symlink_inside_trust_dir_is_followed(tmp_path: Path) -> None:
    root = tmp_path / "trust"
    make_role(root, GUN, "root", b"{}")
    meta = root / "tuf" / GUN / "metadata"
    store = root / "store"
    store.mkdir()
    (store / "targets-v7.json").write_bytes(b"targets-bytes")
    (meta / "targets.json").symlink_to(store / "targets-v7.json")
    (meta / "snapshot.json").symlink_to("targets.json")  # relative, chained
    td = TrustDir(root)
    assert td.read_role(GUN, "targets", MAX_DOWNLOAD_SIZE) == b"targets-bytes"
    assert td.read_role(GUN, "snapshot", MAX_DOWNLOAD_SIZE) == b"targets-bytes"


def test_trust_dir_itself_behind_a_symlink(tmp_path: Path) -> None:
    real = tmp_path / "real-trust"
    make_role(real, GUN, "root", b"root")
    link = tmp_path / "link-trust"
    link.symlink_to(real)
    td = TrustDir(link)
    assert td.read_role(GUN, "root", MAX_DOWNLOAD_SIZE) == b"root"
    assert td.list_guns() == [GUN]


def test_symlink_loop_is_unreadable_not_a_crash(tmp_path: Path) -> None:
    meta = tmp_path / "tuf" / GUN / "metadata"
    meta.mkdir(parents=True)
    (meta / "root.json").symlink_to("root.json")
    with pytest.raises(UsageError) as info:
        TrustDir(tmp_path).read_role(GUN, "root", MAX_DOWNLOAD_SIZE)
    assert info.value.code in ("trust-dir-unreadable", "unsafe-path")


# --- unreadable ---------------------------------------------------------------


def test_directory_where_file_expected_is_unreadable(tmp_path: Path) -> None:
    meta = tmp_path / "tuf" / GUN / "metadata"
    (meta / "targets.json").mkdir(parents=True)
    with pytest.raises(UsageError) as info:
        TrustDir(tmp_path).read_role(GUN, "targets", MAX_DOWNLOAD_SIZE)
    assert info.value.code == "trust-dir-unreadable"
    assert "targets.json" in info.value.message
    assert "directory" in info.value.message


def test_permission_denied_is_unreadable(tmp_path: Path) -> None:
    path = make_role(tmp_path, GUN, "root", b"{}")
    path.chmod(0)
    try:
        try:
            with open(path, "rb"):
                can_read_anyway = True  # running as root: chmod does not deny reads
        except PermissionError:
            can_read_anyway = False
        if can_read_anyway:
            path.chmod(0o644)
            path.unlink()
            path.mkdir()  # a directory where a file is expected: EISDIR-like
        with pytest.raises(UsageError) as info:
            TrustDir(tmp_path).read_role(GUN, "root", MAX_DOWNLOAD_SIZE)
        assert info.value.code == "trust-dir-unreadable"
        assert str(path) in info.value.message
        assert "\n" not in info.value.message
    finally:
        if path.is_file():
            path.chmod(0o644)


def test_fifo_is_not_opened_blocking(tmp_path: Path) -> None:
    meta = tmp_path / "tuf" / GUN / "metadata"
    meta.mkdir(parents=True)
    os.mkfifo(meta / "timestamp.json")
    with pytest.raises(UsageError) as info:
        TrustDir(tmp_path).read_role(GUN, "timestamp", MAX_TIMESTAMP_SIZE)
    assert info.value.code == "trust-dir-unreadable"
    assert "regular file" in info.value.message


def test_file_in_place_of_directory_is_unreadable(tmp_path: Path) -> None:
    make_role(tmp_path, GUN, "root", b"{}")
    (tmp_path / "tuf" / GUN / "metadata" / "targets").write_bytes(b"not a dir")
    with pytest.raises(UsageError) as info:
        TrustDir(tmp_path).read_role(GUN, "targets/releases", MAX_DOWNLOAD_SIZE)
    assert info.value.code == "trust-dir-unreadable"


# --- list_guns ----------------------------------------------------------------


def test_list_guns_nested(tmp_path: Path) -> None:
    guns = [
        "docker.io/library/alpine",
        "docker.io/user/app",
        "localhost:5000/a/b/c",
        "example.com/x",
        "example.com/x/y",  # a GUN nested inside another GUN's folder
    ]
    for gun in guns:
        make_role(tmp_path, gun, "root", b"{}")
    # folders without root.json are not GUNs
    (tmp_path / "tuf" / "docker.io" / "library" / "empty" / "metadata").mkdir(parents=True)
    make_role(tmp_path, "example.com/no-root", "targets", b"{}")
    # a GUN's changelist is not searched, nor is its metadata dir, even if a
    # delegation file happens to be called .../metadata/root.json
    make_role(tmp_path, "example.com/x", "targets/metadata/root", b"{}")
    (tmp_path / "tuf" / "example.com" / "x" / "changelist" / "metadata").mkdir(parents=True)
    (tmp_path / "tuf" / "example.com" / "x" / "changelist" / "metadata" / "root.json").write_text(
        "{}"
    )
    assert TrustDir(tmp_path).list_guns() == sorted(guns)


def test_list_guns_symlinks(tmp_path: Path) -> None:
    root = tmp_path / "trust"
    make_role(root, "example.com/real", "root", b"{}")
    outside = tmp_path / "outside"
    (outside / "metadata").mkdir(parents=True)
    (outside / "metadata" / "root.json").write_text("{}")
    (root / "tuf" / "example.com" / "escape").symlink_to(outside)
    (root / "tuf" / "example.com" / "alias").symlink_to(root / "tuf" / "example.com" / "real")
    (root / "tuf" / "example.com" / "loop").symlink_to(root / "tuf")
    # a path that leaves the trust dir and comes back is not followed either
    make_role(root / "store", "g", "root", b"{}")
    (outside / "back").symlink_to(root / "store" / "tuf" / "g")
    guns = TrustDir(root).list_guns()
    assert "example.com/escape" not in guns
    assert "example.com/escape/back" not in guns
    # the aliased folder is listed once, under its direct name; the loop ends
    assert guns == ["example.com/real"]


def test_list_guns_skips_unsafe_names(tmp_path: Path) -> None:
    make_role(tmp_path, "example.com/ok", "root", b"{}")
    bad = tmp_path / "tuf" / "example.com" / "bad\\name" / "metadata"
    bad.mkdir(parents=True)
    (bad / "root.json").write_text("{}")
    assert TrustDir(tmp_path).list_guns() == ["example.com/ok"]


def test_list_guns_when_tuf_is_missing_or_a_file(tmp_path: Path) -> None:
    assert TrustDir(tmp_path).list_guns() == []
    (tmp_path / "tuf").write_text("x")
    assert TrustDir(tmp_path).list_guns() == []


# --- real-world data ----------------------------------------------------------


def test_realworld_notary01_trust_dir() -> None:
    td = TrustDir(REALWORLD)
    assert td.list_guns() == [REALWORLD_GUN]
    assert td.has_trust_data(REALWORLD_GUN)
    meta = REALWORLD / "tuf" / REALWORLD_GUN / "metadata"
    for role, cap in (
        ("root", MAX_DOWNLOAD_SIZE),
        ("timestamp", MAX_TIMESTAMP_SIZE),
        ("snapshot", MAX_DOWNLOAD_SIZE),
        ("targets", MAX_DOWNLOAD_SIZE),
    ):
        data = td.read_role(REALWORLD_GUN, role, cap)
        assert data is not None
        assert data == (meta / f"{role}.json").read_bytes()
        assert json.loads(data)["signed"]["_type"].lower() == role
    assert td.read_role(REALWORLD_GUN, "targets/releases", MAX_DOWNLOAD_SIZE) is None
    # the snapshot's length from timestamp.json is an exact cap here
    timestamp = td.read_role(REALWORLD_GUN, "timestamp", MAX_TIMESTAMP_SIZE)
    assert timestamp is not None
    length = json.loads(timestamp)["signed"]["meta"]["snapshot"]["length"]
    assert td.read_role(REALWORLD_GUN, "snapshot", length) is not None
    with pytest.raises(NotTrusted):
        td.read_role(REALWORLD_GUN, "snapshot", length - 1)
