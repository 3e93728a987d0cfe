"""The operator's work queue and its requeue table: keys queued once, per-key backoff, named wake-ups
that replace each other, and what each watch event puts back in the queue."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from shoal_api.backoff import Backoff, KeyedBackoff
from shoal_operator.cache import ClusterCache
from shoal_operator.memo import Memos
from shoal_operator.requeue import NOTHING, Requeue, on_app, on_pod
from shoal_operator.workqueue import WorkQueue

pytestmark = pytest.mark.unit


async def test_a_key_is_queued_once_and_a_batch_takes_all() -> None:
    queue = WorkQueue()
    for key in ("ns/b", "ns/a", "ns/b"):
        queue.add(key)
    await queue.wait(at_most=1.0)
    assert queue.take() == ["ns/a", "ns/b"]
    assert not queue and queue.take() == []


async def test_retries_back_off_per_key_and_a_success_resets() -> None:
    queue = WorkQueue(backoff=KeyedBackoff(Backoff(first=0.01, cap=1.0)))
    queue.retry("ns/a")
    assert not queue, "not at once"
    await asyncio.sleep(0.05)
    assert queue.take() == ["ns/a"]
    queue.retry("ns/a")
    assert queue.backoff.failures("ns/a") == 2
    queue.succeeded("ns/a")
    assert queue.backoff.failures("ns/a") == 0


async def test_a_named_wake_up_replaces_the_last_and_forget_cancels_it() -> None:
    queue = WorkQueue()
    queue.wake_at("ns/a", "expiry", 0.01)
    queue.wake_at("ns/a", "expiry", 10.0)  # the earlier one no longer applies
    await asyncio.sleep(0.05)
    assert not queue
    queue.wake_at("ns/a", "expiry", 0.01)
    queue.wake_at("ns/a", "expiry", None)
    queue.wake_at("ns/b", "expiry", 0.01)
    queue.forget("ns/b")
    await asyncio.sleep(0.05)
    assert not queue


def test_forgetting_an_app_drops_its_whole_memo() -> None:
    memos = Memos()
    memos["ns/a"].problem_message = "Secret ns/s does not exist"
    memos["ns/a"].published = {"Service/a": "{}"}
    memos.forget("ns/a")
    assert "ns/a" not in memos and memos["ns/a"].problem_message is None and memos["ns/a"].published == {}


def test_our_own_status_write_requeues_nothing_a_new_generation_its_app() -> None:
    cache = ClusterCache()
    body: dict[str, Any] = {
        "apiVersion": "shoal.dev/v1alpha1",
        "kind": "WasmApp",
        "metadata": {"name": "a", "namespace": "ns", "uid": "u", "generation": 1, "resourceVersion": "1"},
        "spec": {"module": {"image": "r/m:v1"}, "trigger": {"http": {"path": "/a"}}},
    }
    assert on_app(cache, "ADDED", body) == Requeue(apps=frozenset({"ns/a"}), generation=("ns/a", 1))
    cache.apps["ns/a"].metadata.resource_version = "2"  # as after our status write
    echo = {**body, "metadata": {**body["metadata"], "resourceVersion": "2"}}
    assert on_app(cache, "MODIFIED", echo) is NOTHING
    assert on_app(cache, "DELETED", body) == Requeue(apps=frozenset({"ns/a"}))


def test_a_dependency_pod_requeues_its_app_and_its_node() -> None:
    pod = {
        "metadata": {
            "uid": "p1",
            "namespace": "ns",
            "labels": {"shoal.dev/app": "a", "shoal.dev/dependency": "db"},
        },
        "spec": {"nodeName": "n1", "containers": [{"resources": {"requests": {"cpu": "100m"}}}]},
        "status": {"phase": "Running"},
    }
    what = on_pod(ClusterCache(), "ADDED", pod)
    assert what.apps == {"ns/a"}
    assert what.topology and what.nodes == frozenset({"n1"}), "its requests now count on n1"
