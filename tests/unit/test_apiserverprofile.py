"""The bench's reading of kube-apiserver CPU profiles: `go tool pprof -raw` text into shares by kind
of work (a stack counts once, for the first kind it matches)."""

from __future__ import annotations

import pytest

from bench.apiserverprofile import CATEGORIES, kind_of, parse_raw, shares

RAW = """PeriodType: cpu nanoseconds
Period: 10000000
Duration: 10.0
Samples:
samples/count cpu/nanoseconds
          3   30000000: 1 2 3
          1   10000000: 4 3
          2   20000000: 5 6
          4   40000000: 7
Locations
     1: 0x1 M=1 runtime.mallocgc runtime/malloc.go:1:0 s=1
     2: 0x2 M=1 k8s.io/apiextensions-apiserver/pkg/registry/customresource.(*StatusREST).Update x.go:1:0 s=1
             k8s.io/apiserver/pkg/registry/generic/registry.(*Store).Update y.go:2:0 s=2
     3: 0x3 M=1 net/http.(*conn).serve net/http/server.go:1:0 s=1
     4: 0x4 M=1 k8s.io/apiserver/pkg/authentication/request/x509.(*Authenticator).Authenticate a:1:0 s=1
     5: 0x5 M=1 runtime.scanobject runtime/mgc.go:1:0 s=1
     6: 0x6 M=1 runtime.gcBgMarkWorker runtime/mgc.go:2:0 s=2
     7: 0x7 M=1 main.somethingElse main.go:1:0 s=1
Mappings
1: 0x400000/0x3052000/0x0 /bin/kube-apiserver abc [FN]
"""


def test_raw_text_becomes_stacks_with_inlined_frames_and_seconds() -> None:
    stacks = parse_raw(RAW)
    assert [seconds for seconds, _ in stacks] == [0.03, 0.01, 0.02, 0.04]
    assert stacks[0][1] == [
        "runtime.mallocgc",
        "k8s.io/apiextensions-apiserver/pkg/registry/customresource.(*StatusREST).Update",
        "k8s.io/apiserver/pkg/registry/generic/registry.(*Store).Update",
        "net/http.(*conn).serve",
    ]


def test_a_stack_counts_for_the_first_kind_it_matches() -> None:
    # The status update's allocations are the status update's, not the HTTP server's it runs under.
    status = "k8s.io/apiextensions-apiserver/pkg/registry/customresource.(*StatusREST).Update"
    assert kind_of(["runtime.mallocgc", status, "net/http.(*conn).serve"]) == "status_update"
    assert kind_of(["runtime.mallocgc", "net/http.(*conn).serve"]) == "http"
    total, pct = shares(parse_raw(RAW))
    assert total == pytest.approx(0.10)
    assert pct["status_update"] == pytest.approx(30.0)
    assert pct["client_cert_auth"] == pytest.approx(10.0)
    assert pct["gc"] == pytest.approx(20.0)
    assert pct["other"] == pytest.approx(40.0)
    assert set(pct) == {name for name, _ in CATEGORIES} | {"other"}
    assert sum(pct.values()) == pytest.approx(100.0)


def test_an_empty_profile_has_no_shares() -> None:
    assert shares([]) == (0, dict.fromkeys([name for name, _ in CATEGORIES] + ["other"], 0.0))
