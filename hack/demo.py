"""`make demo`: a local cluster with Shoal installed by its chart, example apps, traffic, and a cold-start
table read back from Prometheus. It exits leaving everything running; `make down` stops it all.

Steps: `make up`'s control plane + registry (+ test network), `helm install charts/shoal`, the operator
and one agent per kwok Node as local processes with the chart's ServiceAccount tokens, Prometheus
scraping them, the hello modules (C, Go, WAT in three OCI formats), a job and a schedule from examples/*.yaml,
a few hundred requests, then Finicky Whiskers (examples/finicky-whiskers.yaml: tally, scoreboard,
leaderboard on real Redis and MariaDB served at their pods' IPs by `python -m localcluster.depservers`),
clicks through tally's EndpointSlice, the component apps (examples/components.yaml: a C wasi:cli
component and a Spin app on tally's Redis) with what they answer, and what every cold-start phase
per app took (count and mean; p50/p99 bucket estimates where there were enough samples). Every process
it starts is recorded in the cluster's state file, which `make down` reads.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from localcluster import coldstarts, depservers, examples
from localcluster.__main__ import shell_env, up
from localcluster.chart import Release
from localcluster.controlplane import ControlPlane
from localcluster.processes import Proc, stop
from localcluster.prometheus import Prometheus
from localcluster.shoalprocs import LocalShoal
from localcluster.testnet import TestNet
from localcluster.tools import cache_dir
from localcluster.whiskers import APPS, DB_POD, REDIS_POD, Whiskers, WhiskersError, http_get, poll, progress

CLUSTER = "default"
NS = "shoal-demo"
REQUESTS_PER_TARGET = 40
CLICKS = 200
Address = tuple[str, int]
PHASES = (
    ("pull", "shoal_artifact_pull_seconds"),
    ("compile/load", "shoal_module_compile_seconds"),
    ("instantiate", "shoal_instance_start_seconds"),
    ("first byte", "shoal_invocation_first_byte_seconds"),
    ("placement", "shoal_placement_cold_start_seconds"),
)


def step(message: str) -> None:
    print(f"==> {message}", flush=True)


def state_path() -> Path:
    return cache_dir() / "clusters" / CLUSTER / "state.json"


def forget_previous_demo(state: dict[str, Any]) -> None:
    """A second `make demo` replaces the first one's processes (the cluster stays)."""
    previous = {p["pid"] for p in state.get("demo", {}).get("procs", [])}
    for p in state.get("procs", []):
        if p["pid"] in previous:
            stop(Proc.from_dict(p))
    state["procs"] = [p for p in state.get("procs", []) if p["pid"] not in previous]


def agent_hosts(state: dict[str, Any], nodes: list[str]) -> dict[str, str]:
    """Test-network addresses for the agents (reused on a rerun), or loopback without one."""
    if not isinstance(state.get("testnet"), dict):
        return {}
    known: dict[str, str] = state.get("demo", {}).get("agent_hosts", {})
    net = TestNet.from_description(state["testnet"])
    net.host_addresses = list(known.values())
    return {n: known.get(n) or net.host_address() for n in nodes}


def cold_start_table(prom: Prometheus) -> str:
    return coldstarts.table(
        [name for name, _ in PHASES], {name: coldstarts.observed(prom, metric, NS) for name, metric in PHASES}
    )


def start_processes(
    state: dict[str, Any], release: Release, nodes: list[str], workdir: Path
) -> tuple[LocalShoal, Prometheus, Proc | None]:
    """Dependency servers, operator, agents and Prometheus; recorded in the state file for `make down`."""
    hosts = agent_hosts(state, nodes)
    shoal = LocalShoal(release, workdir, nodes, agent_hosts=hosts)
    prom: Prometheus | None = None
    controller: Proc | None = None
    try:
        if isinstance(state.get("testnet"), dict):
            step("dependency servers: real Redis/MariaDB at dependency pods' IPs (a process of its own)")
            controller = depservers.spawn_controller(state_path(), workdir / "depservers")
            print(f"    python -m localcluster.depservers (pid {controller.pid}), log {controller.log}")
        step(f"operator + {len(nodes)} agents as local processes with the chart's ServiceAccount tokens")
        shoal.start()
        step("Prometheus scraping the operator and agents")
        prom = Prometheus(
            workdir=workdir / "prometheus", targets=shoal.scrape_targets(), scrape_interval="2s"
        )
        prom.start()
        prom.wait_for_scrapes()
    except BaseException:
        shoal.stop()
        for proc in (prom.proc if prom else None, controller):
            if proc is not None:
                stop(proc)
        raise
    procs = [p.to_dict() for p in (*shoal.procs, prom.proc, controller) if p is not None]
    state["procs"] = state.get("procs", []) + procs
    state["demo"] = {"procs": procs, "agent_hosts": hosts, "prometheus": prom.url, **shoal.describe()}
    state_path().write_text(json.dumps(state, indent=2))  # from here on, `make down` stops them
    return shoal, prom, controller


def hellos(plane: ControlPlane, registry: str, wasm: Path, shoal: LocalShoal) -> None:
    """Push the hellos and the job, apply hello.yaml, job.yaml and schedule.yaml, send requests to
    every placement."""
    step(f"pushing the hellos and the job to {registry} (CNCF Wasm artifact, Spin, Docker image)")
    pushed = examples.push(registry, wasm, [*examples.HELLOS, examples.JOB])
    for name, digest in pushed.items():
        print(f"    {registry}/examples/{name}:v1  {digest[:19]}…")

    step("kubectl apply -f examples/hello.yaml -f examples/job.yaml -f examples/schedule.yaml")
    names = [g.name for g in examples.HELLOS if g.name in pushed]
    docs = examples.manifests(examples.EXAMPLES_DIR / "hello.yaml", registry, only=names)
    docs += examples.manifests(examples.EXAMPLES_DIR / "job.yaml", registry)
    docs += examples.manifests(examples.EXAMPLES_DIR / "schedule.yaml", registry)
    examples.apply(plane, docs)
    examples.wait_ready(plane, NS, [*names, "countdown", "heartbeat"], timeout=180)
    print(plane.kubectl("get", "wasmapps,wasmplacements", "-n", NS), end="")

    urls: list[tuple[str, str | None]] = []
    for app in names:
        for placement in examples.placements(plane, NS, app):
            agent = shoal.agents[placement["spec"]["nodeName"]]
            urls.append((f"{agent.url}/{app}/demo", None))
    step(f"sending {len(urls) * REQUESTS_PER_TARGET} requests")
    codes = examples.send(urls, times=REQUESTS_PER_TARGET)
    print(f"    status codes: {codes}")


def deploy_whiskers(w: Whiskers, registry: str, wasm: Path, workdir: Path) -> tuple[Address, Address, str]:
    """Push, apply, wait for real servers, the DBA step, apps Ready; (redis, db, password)."""
    step("Finicky Whiskers: pushing tally, scoreboard (Go), leaderboard")
    pushed = examples.push(registry, wasm, examples.WHISKERS)
    if missing := [g.name for g in examples.WHISKERS if g.name not in pushed]:
        raise WhiskersError(f"not built: {missing} (scoreboard needs Go >= 1.21; see hack/examples/build.sh)")

    step("kubectl apply -f examples/finicky-whiskers.yaml, with hostPath PVs for its 2 claims (as an admin)")
    w.deploy(registry, workdir / "volumes")
    redis_at = w.wait_serving(REDIS_POD)
    progress(f"Redis   {REDIS_POD:<16} serving at {redis_at[0]}:{redis_at[1]} (its pod IP)")
    db_at = w.wait_serving(DB_POD)
    progress(f"MariaDB {DB_POD:<16} serving at {db_at[0]}:{db_at[1]} (its pod IP)")
    password = w.password()
    sql = w.create_reader(db_at, password)
    progress(f"as the database owner would (kubectl exec {DB_POD} -- mariadb -uroot ...): {sql}")

    step("waiting for tally, scoreboard, leaderboard Ready and scoreboard subscribed to `clicks`")
    examples.wait_ready(w.plane, NS, APPS, timeout=180)
    poll(lambda: w.subscribed(redis_at), what="scoreboard subscribed to clicks", timeout=60)
    print(w.plane.kubectl("get", "statefulsets,pods", "-n", NS, "-o", "wide"), end="")
    return redis_at, db_at, password


def click_whiskers(w: Whiskers, redis_at: Address, db_at: Address, password: str) -> tuple[Address, Address]:
    """CLICKS clicks through tally's EndpointSlice, check Redis, MySQL and the leaderboard."""
    tally = poll(lambda: w.slice_addresses("tally"), what="tally's EndpointSlice addresses", timeout=30)
    count0, rows0 = w.counter(redis_at), w.rows(db_at, password)
    step(f"{CLICKS} clicks: GET /tally at {', '.join(f'{h}:{p}' for h, p in tally)} (EndpointSlice)")
    results = w.click(tally, CLICKS)
    if bad := [(status, body.strip()) for status, body in results if status != 200]:
        raise WhiskersError(f"{len(bad)} of {CLICKS} clicks failed, e.g. {bad[0]}")
    counter = w.counter(redis_at)
    if counter != count0 + CLICKS:
        raise WhiskersError(f"the Redis counter is {counter}, expected {count0} + {CLICKS}")
    rows = poll(
        lambda: (n := w.rows(db_at, password)) >= rows0 + CLICKS and n,
        what=f"scoreboard to store {CLICKS} rows in MariaDB",
        timeout=120,
    )
    leader = poll(lambda: w.slice_addresses("leaderboard"), what="leaderboard's addresses", timeout=30)
    board = w.leaderboard(leader[0])
    if len(board) != min(rows, 1000):
        raise WhiskersError(f"the leaderboard returned {len(board)} rows, MariaDB has {rows}")
    top = ", ".join(f"#{r['id']} count={r['count']}" for r in board[:3])
    earlier = f" (+{CLICKS}: earlier demo runs counted too)" if count0 else ""
    print(f"    clicks sent={CLICKS} counter={counter} rows={rows}{earlier} leaderboard top: {top}")
    return tally[0], leader[0]


def component_apps(plane: ControlPlane, registry: str, wasm: Path, shoal: LocalShoal) -> None:
    """examples/components.yaml: the C wasi:cli component and the Spin app (on tally's Redis, so after
    Finicky Whiskers): build, push, apply, and what they answer."""
    step("building the component apps (hack/examples/build-components.sh: wasm-tools, componentize-py)")
    started = time.monotonic()
    examples.build(wasm, components=examples.COMPONENTS)
    print(f"    built or found fresh in {time.monotonic() - started:.1f}s")
    for name, digest in examples.push(registry, wasm, examples.COMPONENTS).items():
        print(f"    {registry}/examples/{name}:v1  {digest[:19]}…")
    step("kubectl apply -f examples/components.yaml (a wasi:cli component, a Spin app in Spin's packaging)")
    examples.apply(plane, examples.manifests(examples.EXAMPLES_DIR / "components.yaml", registry))
    requests = {
        "hello-c-component": ["/hello-c-component/demo?from=component"],
        "spin-counter": ["/spin-counter"] * 3,
    }
    examples.wait_ready(plane, NS, requests, timeout=180)
    for app, paths in requests.items():
        node = examples.placements(plane, NS, app)[0]["spec"]["nodeName"]
        agent = shoal.agents[node]
        for path in paths:
            status, body = http_get((agent.http_host, agent.http_port), path)
            answer = " | ".join(line for line in body.strip().splitlines()[:3])
            print(f"    curl {agent.url}{path}  -> {status} {answer}")
            if status != 200:
                raise RuntimeError(f"{app} answered {status}: {body.strip()}")


def cold_starts(prom: Prometheus) -> None:
    time.sleep(5)  # two more scrapes
    step("cold starts per phase, from Prometheus (the agents' histograms: _count, _sum, and buckets)")
    print(cold_start_table(prom))


def print_next_steps(
    plane: ControlPlane, shoal: LocalShoal, prom: Prometheus, whiskers: tuple[Address, Address], took: float
) -> None:
    nodes = list(shoal.agents)
    first = shoal.agents[nodes[0]]
    go_node = next((p["spec"]["nodeName"] for p in examples.placements(plane, NS, "hello-go")), nodes[0])
    go_agent = shoal.agents[go_node]
    (th, tp), (lh, lp) = whiskers
    workdir = shoal.workdir
    env = "".join(f"    {line}\n" for line in shell_env(str(plane.kubeconfig)).splitlines())
    print(
        f"""
Shoal is running (demo took {took:.0f}s). Paste these two lines (or run: eval "$(make env)"):
{env}
then try:
    kubectl get wasmapps,wasmplacements -n {NS}
    kubectl get wasmnodes
    kubectl describe wasmapp hello-c -n {NS}
    kubectl describe wasmapp heartbeat -n {NS}     (a schedule: its last runs)
    curl {first.url}/hello-c/you
    curl -H 'Host: hello-go.{NS}' {go_agent.url}/
    curl http://{th}:{tp}/tally                    (a click; tally's EndpointSlice address)
    curl 'http://{lh}:{lp}/leaderboard?limit=5'
    curl -s {first.metrics_url} | grep shoal_instance_start
    open {prom.url}   (Prometheus; e.g. rate(shoal_invocations_total[1m]))
Logs: {workdir / "logs"}, dependency servers: {workdir / "depservers"}
Stop everything: make down"""
    )


def main() -> int:
    if os.environ.get("REAL_NODES", "0") not in ("", "0"):
        import demo_realnode

        return demo_realnode.main()
    started = time.monotonic()
    step("local control plane and registry (make up)")
    if up(CLUSTER, 3) != 0:
        return 1
    state: dict[str, Any] = json.loads(state_path().read_text())
    forget_previous_demo(state)
    plane, registry = ControlPlane.from_description(state), str(state["registry"])
    nodes = plane.node_names()
    workdir = plane.workdir / "demo"

    step("helm install charts/shoal (namespace shoal-system)")
    release = Release(plane)
    release.install()
    shoal, prom, controller = start_processes(state, release, nodes, workdir)

    step("building the example modules (hack/examples/build.sh)")
    wasm = examples.build()
    hellos(plane, registry, wasm, shoal)
    try:
        if controller is None:
            raise WhiskersError("this cluster has no test network: `make down`, then `make demo` again")
        w = Whiskers(plane, NS, controller)
        redis_at, db_at, password = deploy_whiskers(w, registry, wasm, workdir)
        whiskers = click_whiskers(w, redis_at, db_at, password)
    except (WhiskersError, TimeoutError, RuntimeError) as e:
        print(f"\nFinicky Whiskers failed: {e}", file=sys.stderr)
        print(
            f"Logs: {workdir / 'logs'}, {workdir / 'depservers'}; `make down` stops it all", file=sys.stderr
        )
        return 1
    try:
        component_apps(plane, registry, wasm, shoal)
    except (TimeoutError, RuntimeError) as e:
        print(f"\nThe component apps failed: {e}", file=sys.stderr)
        print(f"Logs: {workdir / 'logs'}; `make down` stops it all", file=sys.stderr)
        return 1
    cold_starts(prom)
    print_next_steps(plane, shoal, prom, whiskers, time.monotonic() - started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
