"""The warm start: a restarted agent serves the HTTP apps of its checkpoint before it talks to the
apiserver, hands each to the placement that loads the same spec and digest, and stops those no
placement claims. Real guests, the real data plane and its disk cache; no apiserver needed."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import loopback
from shoal_agent.checkpoint import Checkpoint, decode, encode
from shoal_agent.config import AgentConfig
from shoal_agent.metrics import AgentMetrics
from shoal_agent.runtime import AppLimits, AppSpec, EngineSettings, LoadedApp, WasmRuntime, sha256_digest
from shoal_agent.serving import Serving
from shoal_agent.warmstart import WarmStart, start

pytestmark = pytest.mark.integration

LIMITS = AppLimits(timeout_s=1.0, memory_bytes=16 * 1024 * 1024)


def get(port: int, path: str) -> tuple[int, str]:
    return loopback.get(port, path, timeout=10)


def config(tmp_path: Path) -> AgentConfig:
    return AgentConfig(
        node_name="node-a",
        cache_dir=tmp_path / "agent",
        http_host="127.0.0.1",
        http_port=0,
        memory_budget_bytes=64 << 20,
    )


def spec(name: str, **kw: object) -> AppSpec:
    return AppSpec("ns", name, limits=LIMITS, **kw)  # type: ignore[arg-type]


def load_as_placed(
    s: Serving, guests: Path, guest: str, app_spec: AppSpec, *, source: bool = False
) -> LoadedApp:
    """What a placement worker does: load `guest` for `app_spec` (claiming a warm app if it matches)."""
    path = guests / f"{guest}.wasm"
    wasm = path.read_bytes()
    return asyncio.run(s.load(app_spec, wasm, sha256_digest(wasm), source=path if source else None))


def first_life(cfg: AgentConfig, guests: Path) -> None:
    """An agent's life before its crash: it serves two apps, one of them checkpointable."""
    cfg.cache_dir.mkdir(parents=True)
    settings = EngineSettings(memory_budget_bytes=cfg.memory_budget_bytes)
    with WasmRuntime(AgentMetrics("node-a"), cache_dir=cfg.module_cache_dir, settings=settings) as rt:
        s = Serving(rt, checkpoint=Checkpoint(cfg.checkpoint_path))

        async def life() -> None:
            for name, path, source, env in (
                ("hello-c", "/hello", guests / "hello-c.wasm", {"GREETING": "plain"}),
                ("cgi-echo", "/echo", guests / "cgi-echo.wasm", {"TOKEN": "from-a-secret"}),
            ):
                wasm = source.read_bytes()
                # No source: its env came from a Secret, so it must not reach the disk.
                given = source if name == "hello-c" else None
                app = await s.load(spec(name, env=env), wasm, sha256_digest(wasm), source=given)
                s.mount_http(app, path)

        asyncio.run(life())


@pytest.fixture
def restarted(tmp_path: Path, example_guests: Path) -> Iterator[tuple[AgentConfig, WarmStart]]:
    cfg = config(tmp_path)
    first_life(cfg, example_guests)
    warm = start(cfg)
    try:
        yield cfg, warm
    finally:
        warm.serving.stop_listening()
        warm.runtime.close()


def test_checkpoint_holds_no_secret_values_and_no_app_without_a_source(
    restarted: tuple[AgentConfig, WarmStart],
) -> None:
    cfg, _ = restarted
    text = cfg.checkpoint_path.read_text()
    assert "from-a-secret" not in text and "cgi-echo" not in text
    assert [a["name"] for a in json.loads(text)["apps"]] == ["hello-c"]


def test_serves_from_the_checkpoint_before_any_apiserver(
    restarted: tuple[AgentConfig, WarmStart], example_guests: Path
) -> None:
    _, warm = restarted
    assert (warm.served, warm.skipped) == (1, 0)
    port = warm.serving.port
    assert port is not None
    status, body = get(port, "/hello/x")
    assert status == 200 and body.startswith("Hello from C")
    assert get(port, "/echo")[0] == 404  # not checkpointed: it starts the usual way
    # Loaded from the data plane's disk cache, not compiled again.
    loaded = warm.runtime.get("ns", "hello-c")
    assert loaded is not None and loaded.compile_result == "cache_load"


def test_the_same_spec_and_digest_is_claimed_not_loaded_again(
    restarted: tuple[AgentConfig, WarmStart], example_guests: Path
) -> None:
    s = restarted[1].serving
    warm_app = s.runtime.get("ns", "hello-c")
    claimed = load_as_placed(
        s, example_guests, "hello-c", spec("hello-c", env={"GREETING": "plain"}), source=True
    )
    assert claimed is warm_app
    assert s.release_unclaimed() == []
    assert s.port is not None and get(s.port, "/hello/x")[0] == 200


def test_a_changed_spec_loads_anew_and_unclaimed_apps_stop_once_settled(
    restarted: tuple[AgentConfig, WarmStart], example_guests: Path
) -> None:
    cfg, warm = restarted
    s = warm.serving
    warm_app = s.runtime.get("ns", "hello-c")
    fresh = load_as_placed(s, example_guests, "hello-c", spec("hello-c", env={"GREETING": "changed"}))
    assert fresh is not warm_app
    assert s.port is not None and get(s.port, "/hello/x")[0] == 200  # the warm version serves meanwhile
    s.runtime.unload("ns", "hello-c")  # the placement's worker went away before mounting it
    assert warm_app is not None
    s.runtime._apps[("ns", "hello-c")] = warm_app
    assert s.release_unclaimed() == [("ns", "hello-c")]
    assert get(s.port, "/hello/x")[0] == 404
    assert json.loads(cfg.checkpoint_path.read_text())["apps"] == []


def test_a_module_gone_from_disk_starts_cold(tmp_path: Path, example_guests: Path) -> None:
    cfg = config(tmp_path)
    first_life(cfg, example_guests)
    doc = json.loads(cfg.checkpoint_path.read_text())
    doc["apps"][0]["source"] = str(tmp_path / "gone.wasm")
    cfg.checkpoint_path.write_text(json.dumps(doc))
    warm = start(cfg)
    try:
        assert (warm.served, warm.skipped) == (0, 1)
        assert warm.serving.port is not None and get(warm.serving.port, "/hello/x")[0] == 404
    finally:
        warm.serving.stop_listening()
        warm.runtime.close()


def test_decode_skips_what_it_cannot_read() -> None:
    good = spec("a", env={"K": "V"}, args=("x",))
    from shoal_agent.checkpoint import Entry

    text = encode({good.key: Entry(good, "sha256:" + "0" * 64, "/m.wasm", "/a")})
    entries, problems = decode(text)
    assert [e.spec for e in entries] == [good] and problems == []
    doc = json.loads(text)
    doc["apps"].append({"name": "no namespace"})
    entries, problems = decode(json.dumps(doc))
    assert len(entries) == 1 and len(problems) == 1 and "KeyError" in problems[0]
    entries, problems = decode("{not json")
    assert entries == [] and problems[0].startswith("not JSON")
    assert decode(json.dumps({"format": 99, "apps": []}))[1] == ["not a format-1 checkpoint"]


def test_an_app_the_apiserver_places_takes_a_path_a_warm_app_held(
    restarted: tuple[AgentConfig, WarmStart], example_guests: Path
) -> None:
    """hello-c was deleted while the agent was down and another app now has its path here."""
    s = restarted[1].serving
    other = load_as_placed(s, example_guests, "cgi-echo", spec("other"))
    assert s.mount_http(other, "/hello").taken_by == ()
    assert s.port is not None
    status, body = get(s.port, "/hello/x")
    assert status == 200 and not body.startswith("Hello from C")  # cgi-echo answers now
    assert s.warm == {} and s.runtime.get("ns", "hello-c") is None
