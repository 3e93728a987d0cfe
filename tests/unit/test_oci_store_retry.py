"""The content-addressed store's atomic, verified writes; backoff that retries only transient errors."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from shoal_oci import (
    ArtifactNotFound,
    ArtifactTooLarge,
    DigestMismatch,
    RegistryUnavailable,
    RetryPolicy,
)
from shoal_oci.digests import of_bytes
from shoal_oci.store import BlobStore

pytestmark = pytest.mark.unit


def test_put_is_content_addressed(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    digest = store.put(b"hello", of_bytes(b"hello"))
    assert store.blob_path(digest) == tmp_path / "blobs" / "sha256" / digest.split(":")[1]
    assert store.read(digest) == b"hello" and store.has(digest, 5) and not store.has(digest, 6)


def test_failed_writes_leave_nothing_behind(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    wrong = of_bytes(b"something else")
    with pytest.raises(DigestMismatch):
        store.put(b"hello", wrong)
    with pytest.raises(DigestMismatch), store.writer(None, expected_size=3, limit=10, what="x") as w:
        w.write(b"four")
    with pytest.raises(ArtifactTooLarge), store.writer(None, limit=3, what="x") as w:
        w.write(b"four")
    with (
        pytest.raises(DigestMismatch, match="descriptor says"),
        store.writer(None, expected_size=9, limit=10, what="x") as w,
    ):
        w.write(b"short")
    assert not store.has(wrong)
    assert list((tmp_path / "tmp").iterdir()) == []
    assert not (tmp_path / "blobs").exists()


def test_records_round_trip(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    digest = of_bytes(b"m")
    assert store.load_record(digest) is None
    store.save_record(digest, {"a": 1})
    assert store.load_record(digest) == {"a": 1}


class Clock:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def sleep(self, delay: float) -> None:
        self.delays.append(delay)


def _failing(errors: list[Exception]) -> tuple[Callable[[], Awaitable[str]], list[int]]:
    calls = [0]

    async def op() -> str:
        calls[0] += 1
        if errors:
            raise errors.pop(0)
        return "ok"

    return op, calls


async def test_transient_errors_are_retried_with_growing_capped_delays() -> None:
    clock = Clock()
    policy = RetryPolicy(attempts=5, base_delay=1.0, max_delay=3.0, sleep=clock.sleep, jitter=lambda: 1.0)
    op, calls = _failing([RegistryUnavailable("503")] * 4)
    assert await policy.run(op, "x") == "ok"
    assert calls[0] == 5
    assert clock.delays == [1.0, 2.0, 3.0, 3.0]


async def test_gives_up_after_the_last_attempt() -> None:
    clock = Clock()
    policy = RetryPolicy(attempts=3, sleep=clock.sleep)
    op, calls = _failing([RegistryUnavailable("down")] * 10)
    with pytest.raises(RegistryUnavailable, match="gave up after 3 attempts"):
        await policy.run(op, "x")
    assert calls[0] == 3 and len(clock.delays) == 2


@pytest.mark.parametrize("error", [ArtifactNotFound("404"), DigestMismatch("bad"), ValueError("bug")])
async def test_permanent_errors_are_not_retried(error: Exception) -> None:
    clock = Clock()
    op, calls = _failing([error])
    with pytest.raises(type(error)):
        await RetryPolicy(sleep=clock.sleep).run(op, "x")
    assert calls[0] == 1 and clock.delays == []


def test_jitter_keeps_delays_in_range() -> None:
    policy = RetryPolicy(base_delay=0.5, max_delay=4.0, jitter=lambda: 0.5)
    assert [policy.delay(i) for i in range(6)] == [0.25, 0.5, 1.0, 2.0, 2.0, 2.0]
    with pytest.raises(ValueError):
        RetryPolicy(attempts=0)
