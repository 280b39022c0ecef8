"""Stress: 1,000 children crash at random; the tree ends in the right state, no thread leaks."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from supervisors import (
    ChildSpec,
    DynamicSupervisor,
    Supervisor,
    _watch,
    start_child,
    stop,
    which_children,
)
from supervisors.testing import wait_for_down

from ._actors import WAIT_S, Starts, worker_spec

POOLS = 4
PER_POOL = 250
RESTARTS = ("permanent", "transient", "temporary")


def _tree(starts: Starts, rng: random.Random, pooled: bool = False):
    pools = [
        ChildSpec(
            id=f"pool-{p}",
            type="supervisor",
            start=lambda p=p: DynamicSupervisor.start(max_restarts=100_000, name=None),
        )
        for p in range(POOLS)
    ]
    top = Supervisor.start(pools, max_restarts=0)
    pool_refs = [info.ref for info in which_children(top)]
    kinds: dict[tuple[int, int], str] = {}
    refs: dict[tuple[int, int], object] = {}
    for p, pool in enumerate(pool_refs):
        for i in range(PER_POOL):
            kind = rng.choice(RESTARTS)
            kinds[(p, i)] = kind
            spec = worker_spec((p, i), starts, restart=kind, pooled=pooled)
            refs[(p, i)] = start_child(pool, spec)
    for _ in range(POOLS * PER_POOL):
        starts.next()
    return top, pool_refs, kinds, refs


def _round(starts, rng, pool_refs, kinds, refs, fraction: float) -> None:
    """Make a random share of live children exit (mostly abnormally) and check the result."""
    victims = rng.sample(sorted(refs), int(len(refs) * fraction))
    how = {key: rng.choice(["die", "die", "die", "normal", "shutdown"]) for key in victims}
    expected_restarts = 0
    for key in victims:
        kind, exit_how = kinds[key], how[key]
        if kind == "permanent" or (kind == "transient" and exit_how == "die"):
            expected_restarts += 1
    for key in victims:
        refs[key].tell(how[key])
    for key in victims:
        wait_for_down(refs[key], WAIT_S)
    restarted = Counter(starts.next()[0] for _ in range(expected_restarts))
    live = {}
    for pool in pool_refs:
        for info in which_children(pool):
            live[info.id] = info.ref
    for key in victims:
        kind = kinds[key]
        if restarted[key]:
            assert key in live and live[key] is not refs[key]
        else:  # temporary, or transient after a normal exit: a dynamic supervisor forgets it
            assert kind != "permanent" and key not in live
    refs.clear()
    refs.update({key: ref for key, ref in live.items() if ref is not None})
    for key in list(kinds):
        if key not in live:
            del kinds[key]
    for ref in refs.values():
        assert ref.ask("ping", timeout=WAIT_S) == "pong"
    assert starts.nothing_more()


class TestStress:
    """A thousand supervised children under random crashes."""

    @pytest.mark.parametrize("pooled", [False, True], ids=["threads", "pooled"])
    def test_a_thousand_children_crash_at_random_and_the_tree_is_right(self, pooled: bool):
        """After random exits of 30% of 1,000 children, exactly the right ones came back
        (children with a thread each, and pooled children on shared workers)."""
        rng, starts = random.Random(2024), Starts()
        top, pool_refs, kinds, refs = _tree(starts, rng, pooled)
        _round(starts, rng, pool_refs, kinds, refs, 0.3)
        assert stop(top, timeout_s=30.0)
        assert not any(ref.is_alive() for ref in refs.values())
        assert _watch.live_watch_count() == 0  # every death watch fired and was dropped

    @pytest.mark.slow
    @pytest.mark.parametrize("pooled", [False, True], ids=["threads", "pooled"])
    def test_soak_twenty_rounds_of_random_exits(self, pooled: bool):
        """Twenty rounds of random exits keep the tree consistent (long profile)."""
        rng, starts = random.Random(99), Starts()
        top, pool_refs, kinds, refs = _tree(starts, rng, pooled)
        fresh = PER_POOL
        for _ in range(20):
            _round(starts, rng, pool_refs, kinds, refs, 0.5)
            for p, pool in enumerate(pool_refs):
                for _ in range(PER_POOL // 10):
                    fresh += 1
                    key = (p, fresh)
                    kinds[key] = "permanent"
                    refs[key] = start_child(pool, worker_spec(key, starts, pooled=pooled))
                    starts.next()
        assert stop(top, timeout_s=60.0)
