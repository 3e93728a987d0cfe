"""The demo's cold-start table shows what was observed: count and mean always, quantiles only with
enough samples and labelled as bucket estimates."""

from __future__ import annotations

import math

import pytest

from localcluster.__main__ import shell_env
from localcluster.coldstarts import MIN_QUANTILE_SAMPLES, Observed, summarize, table

pytestmark = pytest.mark.unit


def test_one_sample_shows_its_own_value_and_no_quantiles() -> None:
    # One 62 ms pull: histogram_quantile would say 75 ms / 99.5 ms (its 50-100 ms bucket).
    got = summarize({"hello-c": 1}, {"hello-c": 0.062}, {0.5: {"hello-c": 0.075}, 0.99: {"hello-c": 0.0995}})
    assert got == {"hello-c": Observed(count=1, mean=0.062)}
    text = table(["pull"], {"pull": got})
    assert "62.0 ms (1)" in text
    assert "75.0 ms" not in text and "99.5 ms" not in text
    assert f"no phase of any app has {MIN_QUANTILE_SAMPLES}+ samples" in text


def test_quantiles_appear_with_enough_samples_labelled_as_estimates() -> None:
    n = MIN_QUANTILE_SAMPLES
    got = summarize(
        {"web": n, "job": 0}, {"web": n * 0.0001, "job": 0.0}, {0.5: {"web": 0.00008}, 0.99: {"web": 0.0004}}
    )
    assert set(got) == {"web"}, "an app with no samples has no row"
    assert got["web"].count == n and math.isclose(got["web"].mean, 0.0001)
    assert (got["web"].p50, got["web"].p99) == (0.00008, 0.0004)
    text = table(["instantiate", "first byte"], {"instantiate": got, "first byte": {}})
    assert "estimated from histogram buckets" in text
    assert f"{'web':<12}{'instantiate':<14}{n:>8}{'80 µs':>12}{'400 µs':>12}" in text
    assert "100 µs (20)" in text and text.splitlines()[3].rstrip().endswith("-")


def test_shell_env_is_pasteable() -> None:
    lines = shell_env("/tmp/k/kubeconfig").splitlines()
    assert lines[0] == "export KUBECONFIG=/tmp/k/kubeconfig"
    assert lines[1].startswith('export PATH="') and lines[1].endswith(':$PATH"')
    assert "/bin/current:" in lines[1]
