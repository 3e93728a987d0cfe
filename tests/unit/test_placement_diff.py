"""Placement diff: create/update/delete actions and the rolling-update availability budget."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shoal_operator.scheduling import ActualPlacement, diff_placements

pytestmark = pytest.mark.unit

NEW, OLD = "new", "old"


def p(node: str, template: str = NEW, *, ready: bool = True, terminating: bool = False) -> ActualPlacement:
    return ActualPlacement(
        name=f"app.{node}", node=node, template_hash=template, ready=ready, terminating=terminating
    )


def test_creates_missing() -> None:
    actions = diff_placements(
        desired_nodes=["b", "a"], template_hash=NEW, actual=[], replicas=2, max_unavailable=1
    )
    assert (
        actions.create == ("a", "b") and not actions.update and not actions.delete and actions.held_back == 0
    )


def test_up_to_date_is_empty() -> None:
    actions = diff_placements(
        desired_nodes=["a", "b"], template_hash=NEW, actual=[p("a"), p("b")], replicas=2, max_unavailable=1
    )
    assert actions.empty and actions.held_back == 0


def test_rolling_update_one_at_a_time() -> None:
    actual = [p("a", OLD), p("b", OLD), p("c", OLD)]
    actions = diff_placements(
        desired_nodes=["a", "b", "c"], template_hash=NEW, actual=actual, replicas=3, max_unavailable=1
    )
    assert [x.node for x in actions.update] == ["a"] and actions.held_back == 2
    # next reconcile: a is updated but not ready yet -> nothing else may go
    actual = [p("a", NEW, ready=False), p("b", OLD), p("c", OLD)]
    actions = diff_placements(
        desired_nodes=["a", "b", "c"], template_hash=NEW, actual=actual, replicas=3, max_unavailable=1
    )
    assert actions.empty and actions.held_back == 2
    # a became ready -> b goes
    actual = [p("a", NEW), p("b", OLD), p("c", OLD)]
    actions = diff_placements(
        desired_nodes=["a", "b", "c"], template_hash=NEW, actual=actual, replicas=3, max_unavailable=1
    )
    assert [x.node for x in actions.update] == ["b"]


def test_not_ready_ones_are_updated_first_and_for_free() -> None:
    actual = [p("a", OLD), p("b", OLD, ready=False), p("c", OLD, ready=False), p("d", OLD)]
    actions = diff_placements(
        desired_nodes=["a", "b", "c", "d"], template_hash=NEW, actual=actual, replicas=4, max_unavailable=1
    )
    # ready=2, must keep 3 -> no ready one may be touched, but the broken ones are fixed
    assert [x.node for x in actions.update] == ["b", "c"] and actions.held_back == 2


def test_max_unavailable_two() -> None:
    actual = [p(n, OLD) for n in "abcd"]
    actions = diff_placements(
        desired_nodes="abcd", template_hash=NEW, actual=actual, replicas=4, max_unavailable=2
    )
    assert [x.node for x in actions.update] == ["a", "b"] and actions.held_back == 2


def test_scale_down_deletes_surplus() -> None:
    actual = [p(n) for n in "abcde"]
    actions = diff_placements(
        desired_nodes="abc", template_hash=NEW, actual=actual, replicas=3, max_unavailable=1
    )
    assert [x.node for x in actions.delete] == ["d", "e"] and actions.held_back == 0


def test_move_keeps_availability() -> None:
    # the scheduler moved c -> d (c got cordoned); 3 ready, keep >= 2
    actual = [p("a"), p("b"), p("c")]
    actions = diff_placements(
        desired_nodes="abd", template_hash=NEW, actual=actual, replicas=3, max_unavailable=1
    )
    assert actions.create == ("d",) and [x.node for x in actions.delete] == ["c"]
    # while a is already down, c must wait for d
    actual = [p("a", ready=False), p("b"), p("c")]
    actions = diff_placements(
        desired_nodes="abd", template_hash=NEW, actual=actual, replicas=3, max_unavailable=1
    )
    assert actions.create == ("d",) and actions.delete == () and actions.held_back == 1


def test_not_ready_unwanted_are_deleted_immediately() -> None:
    actual = [p("a"), p("x", ready=False)]
    actions = diff_placements(
        desired_nodes="ab", template_hash=NEW, actual=actual, replicas=2, max_unavailable=1
    )
    assert actions.create == ("b",) and [x.node for x in actions.delete] == ["x"]


def test_terminating_placements_are_waited_for() -> None:
    actual = [p("a", terminating=True), p("b")]
    actions = diff_placements(
        desired_nodes="ab", template_hash=NEW, actual=actual, replicas=2, max_unavailable=1
    )
    assert actions.create == () and actions.waiting_for_termination == ("a",) and actions.delete == ()


def test_duplicates_on_one_node_keep_the_best() -> None:
    good = ActualPlacement(name="app.a", node="a", template_hash=NEW, ready=True)
    dup = ActualPlacement(name="app.a-dup", node="a", template_hash=OLD, ready=False)
    actions = diff_placements(
        desired_nodes="a", template_hash=NEW, actual=[dup, good], replicas=1, max_unavailable=1
    )
    assert actions.delete == (dup,) and actions.update == ()


def test_actions_are_sorted_and_deterministic() -> None:
    actual = [p(n, OLD, ready=False) for n in "dcba"]
    actions = diff_placements(
        desired_nodes="abcd", template_hash=NEW, actual=actual, replicas=4, max_unavailable=1
    )
    assert [x.node for x in actions.update] == ["a", "b", "c", "d"]


NODES = list("abcdef")


@settings(max_examples=200, deadline=None)
@given(
    desired=st.sets(st.sampled_from(NODES)),
    actual=st.lists(
        st.tuples(st.sampled_from(NODES), st.sampled_from([NEW, OLD]), st.booleans(), st.booleans()),
        unique_by=lambda t: t[0],
    ),
    max_unavailable=st.integers(1, 3),
)
def test_rolling_update_never_drops_below_budget(
    desired: set[str], actual: list[tuple[str, str, bool, bool]], max_unavailable: int
) -> None:
    placements = [p(n, h, ready=r, terminating=t) for n, h, r, t in actual]
    replicas = len(desired)
    actions = diff_placements(
        desired_nodes=desired,
        template_hash=NEW,
        actual=placements,
        replicas=replicas,
        max_unavailable=max_unavailable,
    )
    touched = {x.name for x in (*actions.update, *actions.delete)}
    ready_before = sum(x.ready and not x.terminating for x in placements)
    ready_after = sum(x.ready and not x.terminating and x.name not in touched for x in placements)
    assert ready_after >= min(ready_before, replicas - max_unavailable)
    # every action targets the right things
    assert set(actions.create) <= desired
    assert all(x.node in desired and x.template_hash != NEW for x in actions.update)
    assert all(x.node not in desired for x in actions.delete)
    assert not any(x.terminating for x in (*actions.update, *actions.delete))
    # a converged state yields no actions
    live = {x.node for x in placements if not x.terminating}
    if not actions.create and not actions.held_back and not actions.update and not actions.delete:
        assert desired <= live | set(actions.waiting_for_termination)
