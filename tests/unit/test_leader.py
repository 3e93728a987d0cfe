"""The pure part of leader election: when a Lease may be taken, and what is written to take it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shoal_operator.leader import LeaderElector, LeaseRecord, LeaseState, lease_state, next_record, takeable

pytestmark = pytest.mark.unit

T0 = datetime(2025, 1, 2, 3, 4, 5, 0, tzinfo=UTC)


def held_by(holder: str, *, duration: int = 15) -> LeaseRecord:
    return LeaseRecord(holder=holder, lease_duration_seconds=duration, acquire_time=T0, renew_time=T0)


@pytest.mark.parametrize(
    ("record", "now", "state"),
    [
        (held_by(""), 100.0, LeaseState.FREE),
        (held_by("me"), 100.0, LeaseState.MINE),
        (held_by("me"), 10_000.0, LeaseState.MINE),
        (held_by("other"), 100.0, LeaseState.HELD),
        (held_by("other"), 114.9, LeaseState.HELD),
        (held_by("other"), 115.0, LeaseState.EXPIRED),
        (held_by("other", duration=1), 101.0, LeaseState.EXPIRED),
    ],
)
def test_lease_state(record: LeaseRecord, now: float, state: LeaseState) -> None:
    assert lease_state(record, identity="me", observed_at=100.0, now=now) is state
    assert takeable(state) is (state is not LeaseState.HELD)


def test_expiry_counts_from_our_observation_not_the_written_renew_time() -> None:
    # A renewTime far in the past (or a skewed clock) does not make the lease expired: only our own
    # clock since we first saw this record does.
    stale = LeaseRecord(holder="other", lease_duration_seconds=15, renew_time=T0 - timedelta(days=1))
    assert lease_state(stale, identity="me", observed_at=500.0, now=501.0) is LeaseState.HELD


def test_renewing_keeps_acquire_time_and_transitions() -> None:
    current = LeaseRecord(
        holder="me", lease_duration_seconds=15, acquire_time=T0, renew_time=T0, transitions=4
    )
    later = T0 + timedelta(seconds=2)
    renewed = next_record(current, identity="me", lease_duration_seconds=15, wall=later)
    assert renewed == LeaseRecord(
        holder="me", lease_duration_seconds=15, acquire_time=T0, renew_time=later, transitions=4
    )


def test_taking_over_counts_a_transition() -> None:
    later = T0 + timedelta(seconds=30)
    taken = next_record(held_by("other"), identity="me", lease_duration_seconds=10, wall=later)
    assert taken == LeaseRecord(
        holder="me", lease_duration_seconds=10, acquire_time=later, renew_time=later, transitions=1
    )
    first = next_record(None, identity="me", lease_duration_seconds=10, wall=T0)
    assert first.transitions == 0
    assert first.holder == "me"


def test_spec_uses_micro_time_with_six_digits_and_omits_an_empty_holder() -> None:
    spec = LeaseRecord(holder="", lease_duration_seconds=1, renew_time=T0, transitions=2).to_spec()
    assert spec == {
        "leaseDurationSeconds": 1,
        "leaseTransitions": 2,
        "renewTime": "2025-01-02T03:04:05.000000Z",
    }
    spec = held_by("me").to_spec()
    assert spec["holderIdentity"] == "me"
    assert spec["acquireTime"] == "2025-01-02T03:04:05.000000Z"


def test_timings_are_validated() -> None:
    with pytest.raises(ValueError, match="lease_duration"):
        LeaderElector(object(), namespace="ns", name="l", identity="me", lease_duration=5, renew_deadline=5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="identity"):
        LeaderElector(object(), namespace="ns", name="l", identity="")  # type: ignore[arg-type]
