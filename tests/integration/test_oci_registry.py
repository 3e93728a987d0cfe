"""Push and pull Wasm artifacts against a real docker-registry (Distribution 2.8) on loopback.

Each registry here is started by `localcluster.registry` and stopped by PID when its fixture ends.
"""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from localcluster.processes import free_port, pid_alive
from localcluster.registry import REGISTRY_BINARY, Registry
from shoal_oci import (
    ArtifactNotFound,
    ArtifactPuller,
    ArtifactTooLarge,
    Credentials,
    DigestMismatch,
    NotWasm,
    RegistryUnavailable,
    RetryPolicy,
    Unauthorized,
    UnsupportedSpinApp,
    WasmFormat,
    build,
    push,
    push_wasm,
)
from shoal_oci import mediatypes as mt
from shoal_oci.push import Artifact, Blob, Manifest, spin_locked_app

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        shutil.which(REGISTRY_BINARY) is None, reason="Debian's docker-registry is not installed"
    ),
]

EMPTY_MODULE = b"\0asm\x01\0\0\0"


def _leb128(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def module(tag: str, padding: int = 0) -> bytes:
    """A valid core module with one custom section named `tag`, so each test pushes its own bytes."""
    name = tag.encode()
    payload = _leb128(len(name)) + name + bytes(padding)
    return EMPTY_MODULE + b"\x00" + _leb128(len(payload)) + payload


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    reg = Registry(workdir=tmp_path_factory.mktemp("registry"))
    reg.start()
    try:
        yield reg
    finally:
        pid = reg.pid
        reg.stop()
        assert not pid_alive(pid)


@pytest.fixture(scope="module")
def auth_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    pytest.importorskip("bcrypt")
    reg = Registry(workdir=tmp_path_factory.mktemp("auth-registry"), users={"alice": "wonderland"})
    reg.start()
    try:
        yield reg
    finally:
        reg.stop()


class RecordingSleep:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


@pytest.fixture
def sleeps() -> RecordingSleep:
    return RecordingSleep()


@pytest.fixture
def puller(tmp_path: Path, sleeps: RecordingSleep) -> ArtifactPuller:
    return ArtifactPuller(tmp_path / "cache", retry=RetryPolicy(attempts=3, sleep=sleeps), request_timeout=5)


def blob_gets(reg: Registry, digest: str) -> int:
    """Blob downloads the registry itself saw, from its access log."""
    text = Path(reg.log).read_text(errors="replace")
    return sum(1 for line in text.splitlines() if '"GET /v2/' in line and f"/blobs/{digest} " in line)


FORMATS = [
    pytest.param(WasmFormat.WASM_ARTIFACT, {}, id="cncf-artifact"),
    pytest.param(WasmFormat.SPIN, {}, id="spin"),
    pytest.param(WasmFormat.SPIN, {"spin_locked_app_as_config": True}, id="spin-locked-app-config"),
    pytest.param(WasmFormat.DOCKER_IMAGE, {}, id="docker-wasm-oci"),
    pytest.param(WasmFormat.DOCKER_IMAGE, {"as_index": True}, id="docker-wasm-oci-index"),
    pytest.param(
        WasmFormat.DOCKER_IMAGE, {"as_index": True, "docker_media_types": True}, id="docker-wasm-v2-list"
    ),
]


@pytest.mark.parametrize(("fmt", "options"), FORMATS)
async def test_each_format_round_trips(
    registry: Registry, puller: ArtifactPuller, fmt: WasmFormat, options: dict[str, Any], request: Any
) -> None:
    wasm = module(request.node.callspec.id)
    ref = f"{registry.address}/roundtrip/{request.node.callspec.id}:v1"
    digest = await asyncio.to_thread(push_wasm, ref, wasm, fmt, **options)

    assert await puller.resolve(ref) == digest
    result = await puller.pull(ref)

    assert result.digest == digest
    assert result.format is fmt
    assert result.result == "miss"
    assert result.module_path.read_bytes() == wasm
    assert result.module_path == puller.cache_root / "blobs" / "sha256" / result.module_digest.split(":")[1]


async def test_cached_digest_is_served_without_network(registry: Registry, puller: ArtifactPuller) -> None:
    wasm = module("cache")
    digest = await asyncio.to_thread(push_wasm, f"{registry.address}/cache/app:v1", wasm)
    by_digest = f"{registry.address}/cache/app@{digest}"
    first = await puller.pull(by_digest)
    before = (puller.stats.resolves, puller.stats.manifest_fetches, puller.stats.blob_fetches)

    second = await puller.pull(by_digest)

    assert (first.result, second.result) == ("miss", "hit")
    assert (puller.stats.resolves, puller.stats.manifest_fetches, puller.stats.blob_fetches) == before
    assert second.module_path == first.module_path
    # A fresh puller on the same cache (an agent restart) also hits, even with the registry unreachable.
    offline = ArtifactPuller(puller.cache_root, retry=RetryPolicy(attempts=1))
    assert (await offline.pull(f"127.0.0.1:{free_port()}/cache/app@{digest}")).result == "hit"


async def test_concurrent_pulls_of_one_digest_download_once(
    registry: Registry, puller: ArtifactPuller
) -> None:
    wasm = module("concurrent", padding=256 * 1024)
    ref = f"{registry.address}/concurrent/app:v1"
    digest = await asyncio.to_thread(push_wasm, ref, wasm)
    layer = build(wasm, WasmFormat.WASM_ARTIFACT).blobs[1].digest

    results = await asyncio.gather(
        *(puller.pull(f"{registry.address}/concurrent/app@{digest}") for _ in range(6))
    )

    assert {r.module_path.read_bytes() == wasm for r in results} == {True}
    assert puller.stats.manifest_fetches == 1
    assert puller.stats.blob_fetches == 2  # config + module layer, once each
    assert blob_gets(registry, layer) == 1


async def test_corrupted_blob_is_a_digest_mismatch_and_not_cached(
    registry: Registry, puller: ArtifactPuller, sleeps: RecordingSleep
) -> None:
    wasm = module("corrupt-blob")
    artifact = build(wasm, WasmFormat.WASM_ARTIFACT)
    digest = await asyncio.to_thread(push, f"{registry.address}/corrupt/blob:v1", artifact)
    layer = artifact.blobs[1].digest
    on_disk = registry.blob_data_path(layer)
    on_disk.write_bytes(wasm[:-1] + b"X")  # same size, different bytes

    with pytest.raises(DigestMismatch):
        await puller.pull(f"{registry.address}/corrupt/blob@{digest}")

    assert sleeps.delays == []  # a mismatch is not retried
    assert not puller.store.has(layer)
    assert puller.cached(digest) is None


async def test_corrupted_manifest_is_a_digest_mismatch(registry: Registry, puller: ArtifactPuller) -> None:
    artifact = build(module("corrupt-manifest"), WasmFormat.WASM_ARTIFACT, annotations={"note": "aaaa"})
    digest = await asyncio.to_thread(push, f"{registry.address}/corrupt/manifest:v1", artifact)
    on_disk = registry.blob_data_path(digest)
    on_disk.write_bytes(on_disk.read_bytes().replace(b'"note":"aaaa"', b'"note":"bbbb"'))

    with pytest.raises(DigestMismatch):
        await puller.pull(f"{registry.address}/corrupt/manifest@{digest}")


async def test_registry_down_is_unavailable_after_bounded_retries(
    puller: ArtifactPuller, sleeps: RecordingSleep
) -> None:
    with pytest.raises(RegistryUnavailable, match="gave up after 3 attempts"):
        await puller.pull(f"127.0.0.1:{free_port()}/nobody/home:v1")
    assert len(sleeps.delays) == 2
    assert all(0 <= d <= 8.0 for d in sleeps.delays)


async def test_missing_tag_is_not_found_without_retries(
    registry: Registry, puller: ArtifactPuller, sleeps: RecordingSleep
) -> None:
    await asyncio.to_thread(push_wasm, f"{registry.address}/missing/app:exists", module("missing"))
    with pytest.raises(ArtifactNotFound):
        await puller.pull(f"{registry.address}/missing/app:nope")
    with pytest.raises(ArtifactNotFound):
        await puller.pull(f"{registry.address}/never/pushed:v1")
    assert sleeps.delays == []


async def test_too_large_is_refused_before_downloading_the_module(registry: Registry, tmp_path: Path) -> None:
    wasm = module("too-large-declared")
    artifact = build(wasm, WasmFormat.WASM_ARTIFACT)
    digest = await asyncio.to_thread(push, f"{registry.address}/large/declared:v1", artifact)
    small = ArtifactPuller(tmp_path / "cache", max_artifact_bytes=len(wasm) - 1)

    with pytest.raises(ArtifactTooLarge):
        await small.pull(f"{registry.address}/large/declared@{digest}")

    assert blob_gets(registry, artifact.blobs[1].digest) == 0


async def test_too_large_is_caught_while_streaming_when_the_manifest_understates(
    registry: Registry, tmp_path: Path
) -> None:
    big = module("big", padding=200)
    layer = Blob(mt.WASM_LAYER, big)
    config = Blob(mt.WASM_CONFIG, b'{"architecture":"wasm","os":"wasip1","layerDigests":[]}')
    lying = {**layer.descriptor(), "size": 8}
    body = json.dumps(
        {"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST, "config": config.descriptor(), "layers": [lying]}
    ).encode()
    digest = await asyncio.to_thread(
        push,
        f"{registry.address}/large/lying:v1",
        Artifact((config, layer), (Manifest(mt.OCI_MANIFEST, body),)),
    )
    small = ArtifactPuller(tmp_path / "cache", max_artifact_bytes=64)

    with pytest.raises(ArtifactTooLarge):
        await small.pull(f"{registry.address}/large/lying@{digest}")
    # Within the bound, bytes beyond the declared size are a lie about the content.
    roomy = ArtifactPuller(tmp_path / "cache2")
    with pytest.raises(DigestMismatch):
        await roomy.pull(f"{registry.address}/large/lying@{digest}")


async def test_non_wasm_content_is_refused(registry: Registry, puller: ArtifactPuller) -> None:
    text = Blob(mt.WASM_LAYER, b"#!/bin/sh\necho not wasm\n")
    config = Blob(mt.WASM_CONFIG, b'{"architecture":"wasm","os":"wasip1"}')
    body = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": mt.OCI_MANIFEST,
            "config": config.descriptor(),
            "layers": [text.descriptor()],
        }
    ).encode()
    bad_bytes = await asyncio.to_thread(
        push,
        f"{registry.address}/notwasm/bytes:v1",
        Artifact((config, text), (Manifest(mt.OCI_MANIFEST, body),)),
    )
    plain = Blob("text/plain", b"hello")
    generic = Blob("application/vnd.oci.image.config.v1+json", b"{}")
    body = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": mt.OCI_MANIFEST,
            "config": generic.descriptor(),
            "layers": [plain.descriptor()],
        }
    ).encode()
    bad_type = await asyncio.to_thread(
        push,
        f"{registry.address}/notwasm/type:v1",
        Artifact((generic, plain), (Manifest(mt.OCI_MANIFEST, body),)),
    )

    with pytest.raises(NotWasm):
        await puller.pull(f"{registry.address}/notwasm/bytes@{bad_bytes}")
    with pytest.raises(NotWasm):
        await puller.pull(f"{registry.address}/notwasm/type@{bad_type}")
    assert puller.cached(bad_bytes) is None


def _dockerconfig(host: str, user: str, password: str, *, inline: bool = True) -> dict[str, Any]:
    if inline:
        return {"auths": {host: {"auth": base64.b64encode(f"{user}:{password}".encode()).decode()}}}
    return {"auths": {host: {"username": user, "password": password}}}


async def test_htpasswd_registry_needs_the_pull_secret(
    auth_registry: Registry, puller: ArtifactPuller, sleeps: RecordingSleep
) -> None:
    wasm = module("auth")
    host = auth_registry.address
    ref = f"{host}/private/app:v1"
    with pytest.raises(Unauthorized):
        await asyncio.to_thread(push_wasm, ref, wasm)
    digest = await asyncio.to_thread(push_wasm, ref, wasm, credentials=Credentials("alice", "wonderland"))

    with pytest.raises(Unauthorized):
        await puller.pull(ref)
    with pytest.raises(Unauthorized):
        await puller.pull(ref, [_dockerconfig(host, "alice", "wrong")])
    with pytest.raises(Unauthorized):  # a secret for another registry does not apply
        await puller.pull(ref, [_dockerconfig("other.example:5000", "alice", "wonderland")])
    assert sleeps.delays == []

    result = await puller.pull(
        ref, [_dockerconfig("other.example:5000", "x", "y"), _dockerconfig(host, "alice", "wonderland")]
    )
    assert (result.digest, result.module_path.read_bytes()) == (digest, wasm)
    localhost_alias = host.replace("127.0.0.1", "localhost")
    assert (
        await puller.resolve(ref, [_dockerconfig(localhost_alias, "alice", "wonderland", inline=False)])
        == digest
    )


def test_registry_describes_itself_and_stops_by_pid(tmp_path: Path) -> None:
    reg = Registry(workdir=tmp_path / "r")
    reg.start()
    info = reg.describe()
    try:
        assert info["address"] == reg.address and info["pid"] == reg.pid
        assert Path(info["log"]).exists() and info["workdir"] == str(tmp_path / "r")
        assert json.loads(json.dumps(info)) == info
    finally:
        Registry.stop_described(info)
    assert not pid_alive(info["pid"])


async def test_a_spin_app_of_two_components_is_refused_naming_them(
    registry: Registry, puller: ArtifactPuller
) -> None:
    """Newer Spin's layout (the locked app in a layer of its own) with two components: the pull
    fetches the locked app and refuses before downloading any Wasm layer."""
    web, api = Blob(mt.SPIN_WASM_LAYER, module("web")), Blob(mt.SPIN_WASM_LAYER, module("api"))
    doc = spin_locked_app("shop", web.digest)
    doc["components"].append(
        {"id": "api", "source": {"content_type": "application/wasm", "digest": api.digest}}
    )
    locked = Blob(mt.SPIN_CONFIG, json.dumps(doc).encode())
    config = Blob(mt.OCI_IMAGE_CONFIG, b'{"architecture":"wasm","os":"wasip1"}')
    manifest = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_MANIFEST,
        "config": config.descriptor(),
        "layers": [web.descriptor(), api.descriptor(), locked.descriptor()],
    }
    image = Manifest(mt.OCI_MANIFEST, json.dumps(manifest).encode())
    ref = f"{registry.address}/spin/shop:v1"
    await asyncio.to_thread(push, ref, Artifact((config, web, api, locked), (image,)))
    with pytest.raises(UnsupportedSpinApp, match=r"Spin app 'shop' has 2 components \(shop, api\)"):
        await puller.pull(ref)
    assert blob_gets(registry, web.digest) == blob_gets(registry, api.digest) == 0
