"""The coordinator and the backpressure seam, in one process with a fake clock."""

from __future__ import annotations

import threading

import pytest

from tinkex_actors.clients import backpressure
from tinkex_actors.clients.backpressure import (
    THROTTLED_MAX_CONCURRENT,
    DispatchBudget,
    install_provider,
    rate_limiter_for,
)
from tinkex_actors.clients.rate_limiter import SampleRateLimiter
from tinkex_actors.config import ClientFlags
from tinkex_actors.fleet import FleetCoordinator, fleet_key

KEY = fleet_key("http://127.0.0.1:1", "tml-coordinator")
CAPS = (100, 1000)


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class TestLeases:
    def test_leases_never_exceed_the_byte_cap(self):
        """A lease that would pass the cap waits; a give-back lets it through."""
        coord = FleetCoordinator(max_bytes=1000)
        assert coord.lease(0, KEY, CAPS, 1, 600, 0.0)[1] >= 600
        held = coord.stats()["pools"]
        leased = next(iter(held.values()))["leased_bytes"]
        assert leased <= 1000
        assert coord.lease(1, KEY, CAPS, 1, 600, 0.0) == (0, 0)
        coord.give_back(0, KEY, 100, leased)
        granted = coord.lease(1, KEY, CAPS, 1, 600, 0.0)
        assert granted[1] >= 600
        assert next(iter(coord.stats()["pools"].values()))["peak_bytes"] <= 1000

    def test_a_waiting_lease_is_granted_when_capacity_comes_back(self):
        """An ask blocks until another worker gives back, then gets its share."""
        coord = FleetCoordinator(max_bytes=1000)
        coord.lease(0, KEY, CAPS, 1, 1000, 0.0)
        got: list[tuple[int, int]] = []
        waiter = threading.Thread(target=lambda: got.append(coord.lease(1, KEY, CAPS, 1, 500, 10)))
        waiter.start()
        epoch, state = coord.watch(-1, 0.0)
        while state[KEY][2] == 0:  # the ask shows as waiting in the watch
            epoch, state = coord.watch(epoch, 10.0)
        coord.give_back(0, KEY, 1, 1000)
        waiter.join(10)
        assert got and got[0][1] >= 500

    def test_a_dead_workers_leases_return_at_its_restart(self):
        """hello() from a restarted worker frees what its predecessor held, counts a restart."""
        clock = FakeClock()
        coord = FleetCoordinator(max_bytes=1000, clock=clock)
        assert coord.hello(3) == 0
        coord.lease(3, KEY, CAPS, 1, 1000, 0.0)
        assert coord.hello(3) == 1
        assert coord.lease(4, KEY, CAPS, 1, 1000, 0.0)[1] == 1000
        assert coord.restarts_within(5.0) == 1
        clock.now += 10
        assert coord.restarts_within(5.0) == 0

    def test_a_prompt_larger_than_the_budget_is_leased_alone(self):
        """With nothing leased, an ask above the cap gets the whole budget, not a deadlock."""
        coord = FleetCoordinator(max_bytes=1000)
        assert coord.lease(0, KEY, CAPS, 1, 5000, 0.0) == (1 + 100 // 16, 1000)


class TestWindows:
    def test_a_429_opens_one_window_for_every_watcher(self):
        """report_429 wakes watchers with the remaining window and the throttle after it."""
        clock = FakeClock()
        coord = FleetCoordinator(clock=clock)
        epoch, _ = coord.watch(-1, 0.0)
        assert coord.report_429(KEY, 10, None) == 1.0
        epoch2, state = coord.watch(epoch, 5.0)
        assert epoch2 != epoch
        remaining, throttle, _waiting = state[KEY]
        assert remaining == pytest.approx(1.0)
        assert throttle == pytest.approx(11.0)

    def test_while_throttled_the_fleet_gets_at_most_10_requests(self):
        """After a 429, new leases keep the fleet to THROTTLED_MAX_CONCURRENT requests."""
        clock = FakeClock()
        coord = FleetCoordinator(clock=clock)
        coord.report_429(KEY, 10, None)
        granted = sum(coord.lease(w, KEY, CAPS, 1, 1, 0.0)[0] for w in range(20))
        assert granted == THROTTLED_MAX_CONCURRENT

    def test_one_pause_warning_for_many_workers(self):
        """The same pause reported by 4 workers is warned once within the interval."""
        coord = FleetCoordinator()
        logged = [coord.queue_state("sampling", "s-1", "paused_capacity", None, f"r{w}", w)
                  for w in range(4)]
        assert logged == [True, False, False, False]
        assert coord.stats()["queue_state_from"] == [0, 1, 2, 3]


class TestSeam:
    def test_without_a_provider_nothing_changes(self):
        """The default: the process-wide limiter and a plain budget from the flags."""
        assert backpressure._provider is None
        limiter = rate_limiter_for("http://127.0.0.1:2", "tml-seam")
        assert type(limiter) is SampleRateLimiter
        assert type(DispatchBudget.from_flags(ClientFlags(), rate_limiter=limiter)) is (
            DispatchBudget
        )

    def test_a_provider_supplies_limiters_and_budgets(self):
        """An installed provider's limiter and budget are used; uninstalling restores."""
        mine = SampleRateLimiter()
        budget = DispatchBudget(1, 1)

        class Provider:
            def rate_limiter_for(self, base_url, api_key):
                return mine

            def budget_for(self, flags, rate_limiter):
                return budget if rate_limiter is mine else None

        previous = install_provider(Provider())
        try:
            assert rate_limiter_for("http://127.0.0.1:3", None) is mine
            assert DispatchBudget.from_flags(ClientFlags(), rate_limiter=mine) is budget
        finally:
            assert install_provider(previous) is not None
        assert rate_limiter_for("http://127.0.0.1:3", None) is not mine

    def test_adopt_window_waits_without_counting_a_backoff(self):
        """A window adopted from the coordinator delays dispatch and throttles; no backoff."""
        clock = FakeClock()
        limiter = SampleRateLimiter(clock=clock)
        limiter.adopt_window(0.5, 3.0)
        assert limiter.backoff_remaining_s() == pytest.approx(0.5)
        clock.now += 1.0
        stats = limiter.stats()
        assert stats.throttled and not stats.backing_off and stats.backoffs == 0
