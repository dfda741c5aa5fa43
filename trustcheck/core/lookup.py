"""Target lookup over a verified collection, with notary's and Docker's semantics.

* :func:`walk` is notary's ``Repo.WalkTargets`` (notary-v1-spec.md §5.4): a
  breadth-first walk from ``targets`` in delegation array order; ancestors of
  the requested role are expanded without being visited; a role is visited
  only when the target name is inside its (restricted) paths and it is not
  skipped; children are expanded only after a visit.
* :func:`get_target_by_name`, :func:`list_targets` and
  :func:`all_target_metadata` are notary's client reads on top of it.
* :func:`resolve` is Docker's trusted-pull rule: search the
  ``targets/releases`` subtree, then ``targets``; trust the answer only when it
  came from exactly one of those two roles.
* :func:`inspect` builds ``docker trust inspect``'s JSON object.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator

from trustcheck.core.model import FileMeta, TargetsMeta, hash_size_problem
from trustcheck.core.record import FrozenRecord
from trustcheck.core.reference import ImageRef
from trustcheck.core.roles import signer_name
from trustcheck.core.verify import Collection
from trustcheck.errors import ErrorCode, NotTrusted

__all__ = [
    "RELEASED_ROLES",
    "Resolution",
    "TargetHit",
    "all_target_metadata",
    "get_target_by_name",
    "inspect",
    "list_targets",
    "resolve",
]

RELEASES = "targets/releases"
RELEASED_ROLES = (RELEASES, "targets")
REPO_ADMIN = "Repo Admin"


class TargetHit(FrozenRecord):
    __slots__ = ("meta", "name", "role")
    name: str
    role: str
    meta: FileMeta

    def __init__(self, name: str, role: str, meta: FileMeta) -> None:
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "role", role)
        object.__setattr__(self, "meta", meta)

    @property
    def sha256(self) -> str | None:
        return self.meta.sha256_hex()


def walk(
    col: Collection, target: str, role_path: str = "", skip: tuple[str, ...] = ()
) -> Iterator[tuple[str, TargetsMeta]]:
    """Yield the roles notary's WalkTargets visits, in order.

    The consumer stops the walk by breaking out of the loop (notary's StopWalk).
    """
    queue: deque[str] = deque(["targets"])
    while queue:
        name = queue.popleft()
        tm = col.targets.get(name)
        if tm is None:
            continue  # not loaded (absent from the snapshot, skipped, ...): subtree gone
        kids = [d.name for d in col.children.get(name, ())]
        if role_path.startswith(name + "/"):
            queue.extend(kids)
            continue
        in_subtree = not role_path or name == role_path or name.startswith(role_path + "/")
        if (not target or col.in_paths(name, target)) and in_subtree and name not in skip:
            yield name, tm
            queue.extend(kids)


def _visible(col: Collection, role: str, name: str) -> bool:
    return col.in_paths(role, name)


def get_target_by_name(
    col: Collection, name: str, roles: tuple[str, ...] = ("targets",)
) -> TargetHit | None:
    """notary's GetTargetByName: first match, role priority, BFS inside each role."""
    for role in roles:
        skip = tuple(r for r in roles if r != role)
        for rname, tm in walk(col, name, role, skip):
            meta = tm.target(name)
            if meta is not None:
                return TargetHit(name, rname, meta)
    return None


def list_targets(col: Collection, roles: tuple[str, ...] = ("targets",)) -> dict[str, TargetHit]:
    """notary's ListTargets: higher-priority roles shadow lower ones."""
    out: dict[str, TargetHit] = {}
    for role in roles:
        skip = tuple(r for r in roles if r != role)
        for rname, tm in walk(col, "", role, skip):
            for tname, meta in tm.items():
                if tname not in out and col.in_paths(rname, tname):
                    out[tname] = TargetHit(tname, rname, meta)
    return out


def all_target_metadata(col: Collection, name: str) -> list[TargetHit]:
    """notary's GetAllTargetMetadataByName: every role holding ``name`` ("" = all)."""
    hits: list[TargetHit] = []
    for rname, tm in walk(col, name):
        if name:
            meta = tm.target(name)
            if meta is not None:
                hits.append(TargetHit(name, rname, meta))
        else:
            hits.extend(
                TargetHit(t, rname, m) for t, m in tm.items() if col.in_paths(rname, t)
            )
    return hits


class Resolution(FrozenRecord):
    """A trusted answer for one image reference."""

    __slots__ = ("digest", "length", "role", "signers", "tag")
    tag: str | None
    digest: str  # "sha256:<hex>"
    length: int
    role: str
    signers: list[str]

    def __init__(
        self, tag: str | None, digest: str, length: int, role: str, signers: list[str]
    ) -> None:
        object.__setattr__(self, "tag", tag)
        object.__setattr__(self, "digest", digest)
        object.__setattr__(self, "length", length)
        object.__setattr__(self, "role", role)
        object.__setattr__(self, "signers", signers)


def _signers(col: Collection, tag: str, sha: str) -> list[str]:
    return [signer_name(h.role) for h in all_target_metadata(col, tag) if h.sha256 == sha]


def resolve(col: Collection, ref: ImageRef) -> Resolution:
    """Docker's trusted-pull semantics for ``ref`` (tag, digest or both)."""
    if ref.tag is None:
        return _resolve_digest(col, ref)
    tag = ref.tag
    hit = get_target_by_name(col, tag, RELEASED_ROLES)
    if hit is None:
        raise NotTrusted(
            ErrorCode.TAG_NOT_SIGNED,
            f"{ref.gun}:{tag} is not signed: no valid targets/releases or targets role holds "
            f"the tag (sign it with `docker trust sign {ref.gun}:{tag}`)",
        )
    if hit.role not in RELEASED_ROLES:
        raise NotTrusted(
            ErrorCode.TAG_NOT_RELEASED,
            f"{ref.gun}:{tag} is signed only by {hit.role}, which Docker does not pull from; "
            "the signer must also sign into targets/releases (add them with "
            "`docker trust signer add`)",
            role=hit.role,
        )
    sha = hit.sha256
    if sha is None:
        raise NotTrusted(
            ErrorCode.TARGET_MISSING_SHA256,
            f"{ref.gun}:{tag} in {hit.role} has no sha256 hash, so no image digest can be trusted",
            role=hit.role,
        )
    _check_digest_sizes(ref.gun, hit)
    if ref.digest is not None and ref.digest != "sha256:" + sha:
        raise NotTrusted(
            ErrorCode.DIGEST_MISMATCH,
            f"{ref.gun}:{tag} is signed with digest sha256:{sha}, not {ref.digest}; "
            "use the signed digest or re-sign the tag",
            role=hit.role,
        )
    return Resolution(tag, "sha256:" + sha, hit.meta.length, hit.role, _signers(col, tag, sha))


def _check_digest_sizes(gun: str, hit: TargetHit) -> None:
    """A sha256 must be 32 bytes and a sha512 64 (Docker refuses a short digest)."""
    problem = hash_size_problem(hit.meta)
    if problem is not None:
        raise NotTrusted(
            ErrorCode.TARGET_DIGEST_INVALID,
            f"{gun}:{hit.name[:80]} in {hit.role} is signed with a malformed digest ({problem}); "
            "no image can have it. The signer must re-sign the tag",
            role=hit.role,
        )


def _resolve_digest(col: Collection, ref: ImageRef) -> Resolution:
    assert ref.digest is not None
    want = ref.digest.removeprefix("sha256:")
    for hit in list_targets(col, RELEASED_ROLES).values():
        if hit.role in RELEASED_ROLES and hit.sha256 == want:
            _check_digest_sizes(ref.gun, hit)
            return Resolution(
                None, ref.digest, hit.meta.length, hit.role, _signers(col, hit.name, want)
            )
    raise NotTrusted(
        ErrorCode.DIGEST_NOT_SIGNED,
        f"{ref.gun}@{ref.digest} is not the digest of any tag released in targets/releases "
        "or targets; pull a signed tag instead",
    )


def inspect(col: Collection, name: str, tag: str | None) -> dict[str, object]:
    """``docker trust inspect`` JSON object for one argument (``name`` as typed)."""
    hits = all_target_metadata(col, tag or "")
    released: dict[tuple[str, str], list[str]] = {}
    for h in hits:
        if h.role in RELEASED_ROLES:
            released.setdefault((h.name, h.sha256 or ""), [])
    for h in hits:
        key = (h.name, h.sha256 or "")
        if key in released and h.role not in RELEASED_ROLES:
            released[key].append(signer_name(h.role))
    rows = sorted(released.items(), key=lambda kv: kv[0][0].encode())
    signed_tags = [
        {"SignedTag": t, "Digest": d, "Signers": signers or [REPO_ADMIN]}
        for (t, d), signers in rows
    ]

    from trustcheck.core.crypto import canonical_key_id

    signers: dict[str, list[str]] = {}
    for parent in col.targets.values():
        for d in parent.delegations:
            if d.name == RELEASES:
                continue
            ids: list[str] = []
            for keyid in d.keyids:
                dkey = parent.delegation_keys.get(keyid)
                ids.append(canonical_key_id(dkey) if dkey is not None else keyid)
            signers[signer_name(d.name)] = ids
    signer_list = [
        {"Name": n, "Keys": [{"ID": k} for k in ids]}
        for n, ids in sorted(signers.items(), key=lambda kv: kv[0].encode(), reverse=True)
    ]
    admin = [
        {"Name": "Root", "Keys": [{"ID": k} for k in col.root.roles["root"].keyids]},
        {"Name": "Repository", "Keys": [{"ID": k} for k in col.root.roles["targets"].keyids]},
    ]
    return {
        "Name": name,
        "SignedTags": signed_tags,
        "Signers": signer_list,
        "AdministrativeKeys": admin,
    }
