"""Node drain under load: the node is cordoned and tainted NoExecute, as `kubectl drain` and a node
problem would do it, while an app with replicas on other nodes serves traffic."""

from __future__ import annotations

import time
from typing import Any

from chaos.cluster import Cluster
from chaos.figures import Goal, Result, causes, failed
from chaos.scenarios import HELLO_PATH, Profile, hello_spec, loaded_app, placement_ready, wait_for

TAINT = {"key": "shoal.dev/chaos-drain", "value": "true", "effect": "NoExecute"}


def live(placements: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [p for p in placements if not p["metadata"].get("deletionTimestamp")]


def node_drain(c: Cluster, profile: Profile) -> Result:
    """Two replicas on three nodes under load; one replica's node is cordoned and gets a NoExecute
    taint (the agent, a node agent, tolerates it: the chart's default). drain_dropped: load requests
    that failed from then until 2 s after the placement runs on another node (goal 0: the other
    replica serves meanwhile, and the moving one leaves the slices before it stops serving).
    drain_moved_s: until the app is back to 2 ready placements, none on the drained node."""
    result = Result("node_drain", goals=[Goal("drain_dropped", 0), Goal("drain_moved_s", 30.0)])
    ns = c.namespace("chaos-drain")
    spec = hello_spec(c.push("hello-c", "v1", repository="drain"), 2)
    with loaded_app(c, ns, "hello", spec, max_seconds=300) as load:
        time.sleep(2.0)
        # Preferably no operator pod's node: the taint evicts that pod, its Deployment replaces it,
        # and the local operator processes (named after the pods) would change identity meanwhile.
        operator_nodes = {p.node for p in c.release.pods("operator")}
        nodes = sorted(p["spec"]["nodeName"] for p in live(c.placements(ns)))
        victim = next((n for n in nodes if n not in operator_nodes), nodes[0])
        address = c.agent_address(victim)
        node_path = f"/api/v1/nodes/{victim}"
        before = c.kube.get(node_path)["spec"]
        began = time.monotonic()
        c.kube.merge_patch(
            node_path, {"spec": {"unschedulable": True, "taints": [*(before.get("taints") or []), TAINT]}}
        )
        try:

            def moved() -> bool:
                placements = live(c.placements(ns))
                return (
                    len(placements) == 2
                    and all(p["spec"]["nodeName"] != victim and placement_ready(p) for p in placements)
                    and address not in load.routes.current()
                )

            wait_for(moved, within=60, what="the placement off the drained node", interval=0.1)
            result.figures["drain_moved_s"] = time.monotonic() - began
            time.sleep(2.0)
            outcomes = load.stop()
        finally:
            c.kube.merge_patch(
                node_path,
                {"spec": {"unschedulable": before.get("unschedulable"), "taints": before.get("taints")}},
            )
    result.figures["drain_requests"] = len([o for o in outcomes if o.started >= began])
    result.figures["drain_dropped"] = failed(outcomes, start=began)
    result.figures["drain_no_route"] = load.no_route
    if why := causes(outcomes, start=began):
        result.notes.append(f"failures: {why}")
    result.notes.append(f"drained {victim}; requests went to {HELLO_PATH}/chaos")
    return result
