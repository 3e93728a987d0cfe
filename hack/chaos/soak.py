"""The soak: mixed traffic (HTTP, pub/sub, jobs) and deploy/update/delete churn for minutes, and
whether the operator and the agents stay flat (memory, fds, threads, metric series)."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

from chaos import dependencies
from chaos.cluster import APPS, Cluster
from chaos.figures import Goal, Result, causes, failed, parse_proc_status, series_count, slope_per_minute
from chaos.scenarios import Profile, hello_spec, loaded_app

JOB_EVERY = 4
"""Every 4th churn step also starts a job (job-c: exits 0 with its args in status.output)."""
JOB_CHECK_AFTER_STEPS = 3
"""A job is checked (and deleted) this many steps (of 3 s) after it was created."""


def proc_sample(pid: int) -> tuple[int, int, int] | None:
    """(RSS KiB, open fds, threads) of `pid`, None if it is gone."""
    try:
        rss, threads = parse_proc_status(Path(f"/proc/{pid}/status").read_text())
        return rss, len(os.listdir(f"/proc/{pid}/fd")), threads
    except (OSError, KeyError, ValueError):
        return None


def job_spec(image: str, i: int) -> dict[str, object]:
    return {
        "module": {"image": image},
        "trigger": {"job": {"args": ["0", f"soak-{i}"], "backoffLimit": 1}},
        "resources": {"memory": "16Mi", "timeout": "5s"},
    }


def job_succeeded(placements: list[dict[str, Any]], app: str) -> bool:
    for p in placements:
        status = p.get("status") or {}
        if p["spec"]["app"] == app and status.get("exitCode") == 0:
            return True
    return False


def soak(c: Cluster, profile: Profile) -> Result:
    """For `soak_seconds`: steady HTTP load on a 3-replica app; Finicky Whiskers clicks (HTTP into
    Redis, pub/sub to the scoreboard, rows in MariaDB); and churn every 3 s (an app created, the
    previous one updated, the oldest deleted; every 4th step a job). soak_failed: failed requests of
    the steady app + failed clicks + jobs that did not succeed (goal 0). Clicks accepted vs stored
    are reported too (pub/sub delivery is at most once). Slopes (per minute, least squares over
    samples every few seconds after a warm-up) of the RSS, open fds and threads of the operator and
    of the agents (the largest slope of the three), and the number of metric series before and after."""
    duration = profile.soak_seconds
    result = Result("soak", goals=[Goal("soak_failed", 0)])
    ns = c.namespace("chaos-soak")
    image = c.push("hello-c", "v1", repository="soak")
    job_image = c.push("job-c", "v1", repository="soak-job")
    ws = dependencies.deploy(c)
    churn_errors: list[str] = []
    stop = threading.Event()
    created: list[str] = []
    jobs: dict[str, bool] = {}

    def churn() -> None:
        alive: list[str] = []
        pending_jobs: list[tuple[int, str]] = []
        for i in range(int(duration / 3) + 1):
            if stop.wait(3.0):
                return
            try:
                name = f"churn-{i}"
                c.apply_app(ns, name, hello_spec(image, 1 + i % 2))
                alive.append(name)
                created.append(name)
                if len(alive) > 1:  # an update of the previous one: a new template to roll
                    c.apply_app(ns, alive[-2], hello_spec(image, 1, env=[{"name": "I", "value": str(i)}]))
                if len(alive) > 3:
                    c.kube.delete(f"{APPS}/namespaces/{ns}/wasmapps/{alive.pop(0)}")
                if i % JOB_EVERY == 0:
                    job = f"job-{i}"
                    c.apply_app(ns, job, job_spec(job_image, i))
                    pending_jobs.append((i, job))
                while pending_jobs and pending_jobs[0][0] <= i - JOB_CHECK_AFTER_STEPS:
                    _, job = pending_jobs.pop(0)
                    jobs[job] = job_succeeded(c.placements(ns), job)
                    c.kube.delete(f"{APPS}/namespaces/{ns}/wasmapps/{job}")
            except Exception as e:  # counted, and the soak goes on
                churn_errors.append(str(e))

    steady = hello_spec(image, 3)
    with loaded_app(c, ns, "steady", steady, interval=0.05, max_seconds=duration + 60) as load:
        clicks0, rows0 = ws.counter(), ws.rows()
        click_routes, clicks = dependencies.click_load(c, workers=1, interval=0.2, max_seconds=duration + 60)
        series_before = series_total(c)
        apps_before = {a["metadata"]["name"] for a in c.apps(ns)}
        churner = threading.Thread(target=churn, name="churn")
        churner.start()
        began = time.monotonic()
        samples: dict[str, list[tuple[float, tuple[int, int, int]]]] = {}
        warmup = min(20.0, duration / 4)
        try:
            while time.monotonic() - began < duration:
                time.sleep(min(5.0, duration / 20))
                if time.monotonic() - began < warmup:
                    continue
                for name, pid in c.pids().items():
                    got = proc_sample(pid)
                    if got is not None:
                        samples.setdefault(name, []).append((time.monotonic() - began, got))
        finally:
            stop.set()
            churner.join(timeout=30)
            click_outcomes = clicks.stop()
            click_routes.stop()
        outcomes = load.stop()
        series_after = series_total(c)
        # Up to 4 churn apps and 2 jobs still exist here, each with its own series on its agents.
        # Once they are gone too (and while the steady app still runs), only what was there before
        # the churn should be left: series that grow with the number of apps ever created (instead
        # of the number present) are a leak.
        series_gone = series_once_churn_gone(c, ns, keep=apps_before)
    f = result.figures
    f["soak_seconds"] = duration
    f["soak_requests"] = len(outcomes)
    http_failed = failed(outcomes)
    f["soak_http_failed"] = http_failed
    if why := causes(outcomes):
        result.notes.append(f"steady failures: {why}")
    f["soak_clicks_sent"] = len(click_outcomes)
    clicks_failed = failed(click_outcomes)
    f["soak_clicks_failed"] = clicks_failed
    if why := causes(click_outcomes):
        result.notes.append(f"click failures: {why}")
    accepted = sum(o.ok for o in click_outcomes)
    f["soak_clicks_counted"] = ws.counter() - clicks0
    stored = ws.settled_rows() - rows0
    f["soak_clicks_stored"] = stored
    f["soak_clicks_lost"] = accepted - stored
    jobs_failed = sum(not ok for ok in jobs.values())
    f["soak_jobs"] = len(jobs)
    f["soak_jobs_failed"] = jobs_failed
    f["soak_failed"] = http_failed + clicks_failed + jobs_failed
    f["soak_churn_errors"] = len(churn_errors)
    for index, what, unit in ((0, "rss", "kib"), (1, "fds", "count"), (2, "threads", "count")):
        for who in ("operator", "agent"):
            slopes = [
                slope_per_minute([(t, float(v[index])) for t, v in points])
                for name, points in samples.items()
                if name.startswith(who)
            ]
            worst = max(slopes, key=abs) if slopes else None
            f[f"soak_{who}_{what}_slope_{unit}_per_min"] = worst
    # The slopes above are the leader's only if the sampled operator led: a standby idles.
    f["soak_operator_sampled_leads"] = int(c.leading().get("operator", False))
    f["soak_apps_created"] = len(created) + len(jobs)
    f["soak_metric_series_before"] = series_before
    f["soak_metric_series_after"] = series_after
    f["soak_metric_series_after_churn_gone"] = series_gone
    f["soak_metric_series_per_app_created"] = (series_gone - series_before) / max(1, len(created) + len(jobs))
    for name in [a["metadata"]["name"] for a in c.apps(ns)]:
        c.kube.delete(f"{APPS}/namespaces/{ns}/wasmapps/{name}")
    return result


def series_once_churn_gone(c: Cluster, ns: str, *, keep: set[str], timeout: float = 60.0) -> int:
    """Delete every app of `ns` not in `keep`, wait until their placements are gone from the API and the
    agents have had a moment to forget them, and count the metric series then."""
    for name in [a["metadata"]["name"] for a in c.apps(ns)]:
        if name not in keep:
            c.kube.delete(f"{APPS}/namespaces/{ns}/wasmapps/{name}")
    deadline = time.monotonic() + timeout
    while any(p["spec"]["app"] not in keep for p in c.placements(ns)) and time.monotonic() < deadline:
        time.sleep(0.5)
    time.sleep(3.0)  # an agent forgets an app's series as it tears the placement down
    return series_total(c)


def series_total(c: Cluster) -> int:
    """Metric series of the operator and every agent, as scraped now."""
    return sum(series_count(t) for t in c.scrape().values())
