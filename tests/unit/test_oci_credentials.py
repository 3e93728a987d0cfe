"""imagePullSecrets (dockerconfigjson) to per-registry credentials; image reference parsing."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from shoal_oci import (
    ArtifactPuller,
    Credentials,
    InvalidReference,
    Unauthorized,
    credentials_for,
    parse_docker_config,
)
from shoal_oci.reference import Reference

pytestmark = pytest.mark.unit


def _b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


def test_inline_auth_and_username_password_forms() -> None:
    parsed = parse_docker_config(
        {
            "auths": {
                "127.0.0.1:5000": {"auth": _b64("alice:pa:ss")},
                "ghcr.io": {"username": "bob", "password": "tok"},
            }
        }
    )
    assert parsed == {"127.0.0.1:5000": Credentials("alice", "pa:ss"), "ghcr.io": Credentials("bob", "tok")}


def test_legacy_dockercfg_and_docker_hub_keys() -> None:
    parsed = parse_docker_config({"https://index.docker.io/v1/": {"auth": _b64("u:p")}})
    assert parsed == {"registry-1.docker.io": Credentials("u", "p")}
    assert credentials_for("docker.io", [{"auths": {"docker.io": {"auth": _b64("u:p")}}}]) == Credentials(
        "u", "p"
    )


def test_first_matching_secret_wins_and_loopback_names_are_aliases() -> None:
    secrets = [
        {"auths": {"other:1": {"auth": _b64("x:y")}}},
        {"auths": {"localhost:5000": {"auth": _b64("a:b")}}},
        {"auths": {"127.0.0.1:5000": {"auth": _b64("c:d")}}},
    ]
    assert credentials_for("127.0.0.1:5000", secrets) == Credentials("a", "b")
    assert credentials_for("127.0.0.1:5001", secrets) is None
    assert credentials_for("127.0.0.1:5000", []) is None


@pytest.mark.parametrize(
    "entry",
    [{"auth": "not base64!"}, {"auth": _b64("no-colon")}, {}, {"username": "only-user"}, "string"],
)
def test_malformed_entries_are_refused(entry: object) -> None:
    with pytest.raises(Unauthorized):
        parse_docker_config({"auths": {"h:1": entry}})


def test_password_is_not_in_repr() -> None:
    assert "secret" not in repr(Credentials("u", "secret"))
    assert Credentials("u", "p").basic_token() == _b64("u:p")


@pytest.mark.parametrize(
    ("ref", "host", "repo", "tag", "digest"),
    [
        ("127.0.0.1:5000/a/b:v1", "127.0.0.1:5000", "a/b", "v1", None),
        ("127.0.0.1:5000/a", "127.0.0.1:5000", "a", "latest", None),
        ("ghcr.io/o/r@sha256:" + "a" * 64, "ghcr.io", "o/r", None, "sha256:" + "a" * 64),
        ("ghcr.io/o/r:t@sha256:" + "b" * 64, "ghcr.io", "o/r", "t", "sha256:" + "b" * 64),
        ("nginx", "registry-1.docker.io", "library/nginx", "latest", None),
        ("docker.io/me/app:1", "registry-1.docker.io", "me/app", "1", None),
    ],
)
def test_references(ref: str, host: str, repo: str, tag: str | None, digest: str | None) -> None:
    parsed = Reference.parse(ref)
    assert (parsed.host, parsed.repository, parsed.tag, parsed.digest) == (host, repo, tag, digest)


def test_loopback_detection_and_bad_digests() -> None:
    assert Reference.parse("localhost:5000/x:1").is_loopback
    assert not Reference.parse("ghcr.io/x:1").is_loopback
    with pytest.raises(InvalidReference):
        Reference.parse("ghcr.io/x@sha256:short")
    with pytest.raises(InvalidReference):
        Reference.parse("ghcr.io/x@md5:" + "a" * 32)


async def test_a_digest_reference_resolves_without_the_network(tmp_path: Path) -> None:
    digest = "sha256:" + "c" * 64
    puller = ArtifactPuller(tmp_path)
    assert await puller.resolve(f"127.0.0.1:1/x:tag@{digest}") == digest
    assert puller.cached(digest) is None and puller.stats.resolves == 0
