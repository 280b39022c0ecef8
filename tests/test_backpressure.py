"""Sampling backpressure: the shared backoff window and the dispatch budget."""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from types import TracebackType

import pykka
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinkex_actors.clients.backpressure import (
    THROTTLED_BYTES_FACTOR,
    THROTTLED_MAX_CONCURRENT,
    DispatchBudget,
    rate_limiter_for,
    registry_keys,
)
from tinkex_actors.clients.rate_limiter import (
    LARGE_PROMPT_BYTES,
    SAMPLING_BACKPRESSURE_HEADER,
    THROTTLE_AFTER_BACKOFF_S,
    SampleRateLimiter,
    backoff_delay_s,
    estimate_prompt_bytes,
)
from tinkex_actors.config import ClientFlags, Config, PoolKind
from tinkex_actors.errors import RateLimitError
from tinkex_actors.futures.byte_budget import DispatchToken
from tinkex_actors.local import LocalServer
from tinkex_actors.transport.messages import HttpRequest, HttpResponse
from tinkex_actors.transport.transport import Transport
from tinkex_actors.types import EncodedTextChunk, ImageChunk, ModelInput, to_builtins

WAIT_S = 5.0


class FakeClock:
    """A monotonic clock that moves only when told."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def limiter(clock: FakeClock) -> SampleRateLimiter:
    return SampleRateLimiter(clock=clock)


class TestPromptEstimate:
    def test_text_tokens_count_ten_bytes_each(self) -> None:
        """A token prompt is estimated at 10 bytes per token, as officially."""
        assert estimate_prompt_bytes(ModelInput.from_ints(list(range(200)))) == 2000

    def test_images_count_their_data(self) -> None:
        """An image chunk counts its encoded bytes, added to the text chunks."""
        prompt = ModelInput(
            chunks=[
                EncodedTextChunk(tokens=[1, 2, 3]),
                ImageChunk(data=b"x" * 500, format="png"),
            ]
        )
        assert estimate_prompt_bytes(prompt) == 530


class TestBackoffDelay:
    def test_small_prompts_back_off_one_second(self) -> None:
        """Up to 128 KiB the official delay is 1 s."""
        assert backoff_delay_s(0) == 1.0
        assert backoff_delay_s(LARGE_PROMPT_BYTES) == 1.0

    def test_large_prompts_back_off_five_seconds(self) -> None:
        """Above 128 KiB the official delay is 5 s."""
        assert backoff_delay_s(LARGE_PROMPT_BYTES + 1) == 5.0


class TestBackoffWindow:
    def test_a_429_opens_a_window_that_ends_with_time(
        self, limiter: SampleRateLimiter, clock: FakeClock
    ) -> None:
        """After a 429 the limiter asks for the size-based wait, then lets dispatch go."""
        assert limiter.on_rate_limited(2000) == 1.0
        assert limiter.backoff_remaining_s() == pytest.approx(1.0)
        clock.advance(0.6)
        assert limiter.backoff_remaining_s() == pytest.approx(0.4)
        clock.advance(0.4)
        assert limiter.backoff_remaining_s() == 0.0

    def test_a_success_dispatched_after_the_window_opened_clears_it(
        self, limiter: SampleRateLimiter, clock: FakeClock
    ) -> None:
        """The next success closes the window before its time."""
        limiter.on_rate_limited(LARGE_PROMPT_BYTES * 2)
        clock.advance(1.0)
        limiter.on_success(dispatched_at=limiter.now())
        assert limiter.backoff_remaining_s() == 0.0
        assert limiter.stats().clears == 1

    def test_a_success_dispatched_before_the_window_leaves_it_open(
        self, limiter: SampleRateLimiter, clock: FakeClock
    ) -> None:
        """A request sent before the 429 says nothing about the server since: no clear."""
        sent_at = limiter.now()
        clock.advance(0.1)
        limiter.on_rate_limited(10)
        limiter.on_success(dispatched_at=sent_at)
        assert limiter.backoff_remaining_s() == pytest.approx(1.0)

    def test_a_longer_retry_after_is_honoured_up_to_a_minute(
        self, limiter: SampleRateLimiter
    ) -> None:
        """Retry-After above the size-based delay wins, capped at 60 s; a shorter one does not."""
        assert limiter.on_rate_limited(10, retry_after_s=0.2) == 1.0
        assert limiter.on_rate_limited(10, retry_after_s=7.0) == 7.0
        assert limiter.on_rate_limited(10, retry_after_s=600.0) == 60.0

    def test_a_shorter_429_never_shortens_an_open_window(
        self, limiter: SampleRateLimiter, clock: FakeClock
    ) -> None:
        """Windows only extend."""
        limiter.on_rate_limited(LARGE_PROMPT_BYTES + 1)
        clock.advance(1.0)
        limiter.on_rate_limited(10)
        assert limiter.backoff_remaining_s() == pytest.approx(4.0)

    def test_dispatch_stays_throttled_for_a_while_after_the_window(
        self, limiter: SampleRateLimiter, clock: FakeClock
    ) -> None:
        """Throttled during the window and 10 s after it, as the official dispatch."""
        assert not limiter.is_throttled()
        limiter.on_rate_limited(10)
        assert limiter.is_throttled()
        clock.advance(1.0 + THROTTLE_AFTER_BACKOFF_S - 0.01)
        assert limiter.is_throttled()
        clock.advance(0.02)
        assert not limiter.is_throttled()

    def test_stats_count_backoffs_and_their_total(self, limiter: SampleRateLimiter) -> None:
        """Telemetry sees how many 429s opened the window and for how long in total."""
        limiter.on_rate_limited(10)
        limiter.on_rate_limited(LARGE_PROMPT_BYTES + 1)
        stats = limiter.stats()
        assert (stats.backoffs, stats.total_backoff_s, stats.backing_off) == (2, 6.0, True)

    def test_a_waiting_thread_wakes_when_a_success_clears_the_window(
        self, limiter: SampleRateLimiter
    ) -> None:
        """wait_clear blocks a plain thread until the window closes."""
        limiter.on_rate_limited(10, retry_after_s=60.0)
        started = threading.Event()
        outcome: list[bool] = []

        def wait() -> None:
            started.set()
            outcome.append(limiter.wait_clear(WAIT_S))

        thread = threading.Thread(target=wait)
        thread.start()
        assert started.wait(WAIT_S)
        limiter.on_success(dispatched_at=limiter.now())
        thread.join(WAIT_S)
        assert outcome == [True]

    def test_wait_clear_gives_up_at_its_timeout(self, limiter: SampleRateLimiter) -> None:
        """A window longer than the timeout makes wait_clear return False."""
        limiter.on_rate_limited(10)
        assert limiter.wait_clear(0.01) is False

    def test_size_bytes_must_be_a_non_negative_int(self, limiter: SampleRateLimiter) -> None:
        """Bad input names the field."""
        with pytest.raises(ValueError, match="size_bytes"):
            limiter.on_rate_limited(-1)


class TestSharedRegistry:
    def test_samplers_with_the_same_url_and_key_share_one_window(self) -> None:
        """Every sampler of a (base URL, key) sees the same backoff; other keys do not."""
        first = rate_limiter_for("http://127.0.0.1:1/", "tml-shared-key")
        second = rate_limiter_for("http://127.0.0.1:1", "tml-shared-key")
        other = rate_limiter_for("http://127.0.0.1:1", "tml-other-key")
        assert first is second
        first.on_rate_limited(10)
        assert second.backoff_remaining_s() > 0
        assert other.backoff_remaining_s() == 0.0
        first.on_success(dispatched_at=first.now())

    def test_the_registry_never_holds_the_api_key(self) -> None:
        """Keys are stored as digests, never in clear."""
        limiter = rate_limiter_for("http://127.0.0.1:2", "tml-very-secret")
        assert all("tml-very-secret" not in str(key) for key in registry_keys())
        assert limiter is rate_limiter_for("http://127.0.0.1:2", "tml-very-secret")

    def test_an_empty_base_url_is_refused(self) -> None:
        """The error names the field."""
        with pytest.raises(ValueError, match="base_url"):
            rate_limiter_for("", "k")


class TestBudgetCaps:
    def test_requests_beyond_the_concurrency_cap_are_refused(self) -> None:
        """try_acquire returns None once max_concurrent are in flight."""
        budget = DispatchBudget(2, 1000)
        assert budget.try_acquire("a", 1) is not None
        assert budget.try_acquire("b", 1) is not None
        assert budget.try_acquire("c", 1) is None
        assert budget.stats().waiting == 0

    def test_bytes_beyond_the_budget_are_refused(self) -> None:
        """A prompt that would overflow the byte budget waits."""
        budget = DispatchBudget(10, 100)
        assert budget.try_acquire("a", 60) is not None
        assert budget.try_acquire("b", 50) is None
        assert budget.try_acquire("b", 40) is not None
        assert budget.stats().in_flight_bytes == 100

    def test_a_prompt_larger_than_the_budget_goes_alone_charged_the_whole_budget(self) -> None:
        """An oversize prompt is never stuck, and the balance never goes below zero."""
        budget = DispatchBudget(10, 100)
        token = budget.try_acquire("big", 500)
        assert token is not None
        assert token.charged_bytes == 100
        assert budget.try_acquire("small", 1) is None
        budget.release("big")
        assert budget.stats().in_flight_bytes == 0

    def test_caps_come_from_the_server_flags(self) -> None:
        """from_flags reads sample_max_concurrent_requests and the bytes semaphore size."""
        flags = ClientFlags(
            sample_max_concurrent_requests=7, sample_dispatch_bytes_semaphore_size=99
        )
        stats = DispatchBudget.from_flags(flags).stats()
        assert (stats.max_concurrent, stats.max_bytes) == (7, 99)

    @pytest.mark.parametrize(
        ("args", "field"),
        [((0, 10), "max_concurrent"), ((1, 0), "max_bytes"), ((True, 10), "max_concurrent")],
    )
    def test_bad_caps_name_the_field(self, args: tuple[int, int], field: str) -> None:
        """A cap below 1 (or not an int) is refused with its name."""
        with pytest.raises(ValueError, match=field):
            DispatchBudget(*args)

    def test_a_duplicate_request_id_is_refused(self) -> None:
        """One id, one grant: the error names the id and the fix."""
        budget = DispatchBudget(5, 100)
        budget.try_acquire("a", 1)
        with pytest.raises(ValueError, match="'a' already holds"):
            budget.try_acquire("a", 1)


class TestBudgetRelease:
    def test_release_is_idempotent(self) -> None:
        """Only the first release of an id counts, whichever exit path calls it."""
        budget = DispatchBudget(1, 100)
        budget.try_acquire("a", 10)
        assert budget.release("a") is True
        assert budget.release("a") is False
        stats = budget.stats()
        assert (stats.in_flight, stats.in_flight_bytes, stats.released) == (0, 0, 1)

    def test_a_released_slot_is_granted_to_the_first_waiter(self) -> None:
        """Waiters are granted in FIFO order through their callback."""
        budget = DispatchBudget(1, 100)
        budget.try_acquire("a", 10)
        granted: list[DispatchToken] = []
        assert budget.try_acquire("b", 10, on_granted=granted.append) is None
        assert budget.try_acquire("c", 10, on_granted=granted.append) is None
        budget.release("a")
        assert [t.request_id for t in granted] == ["b"]
        budget.release("b")
        assert [t.request_id for t in granted] == ["b", "c"]
        assert budget.stats().waits == 2

    def test_a_large_waiter_is_not_overtaken_by_small_ones(self) -> None:
        """FIFO: a newcomer does not jump a queued request even if it would fit."""
        budget = DispatchBudget(10, 100)
        budget.try_acquire("a", 80)
        big: list[DispatchToken] = []
        assert budget.try_acquire("big", 50, on_granted=big.append) is None
        assert budget.try_acquire("small", 5) is None
        budget.release("a")
        assert [t.request_id for t in big] == ["big"]

    def test_releasing_a_waiting_request_leaves_the_queue(self) -> None:
        """A cancelled request that was still waiting is never granted."""
        budget = DispatchBudget(1, 100)
        budget.try_acquire("a", 1)
        granted: list[DispatchToken] = []
        budget.try_acquire("b", 1, on_granted=granted.append)
        assert budget.release("b") is True
        budget.release("a")
        assert granted == []
        assert budget.stats().waiting == 0

    def test_a_killed_owner_releases_everything_it_held_or_awaited(self) -> None:
        """release_owner, called from a terminate hook, frees grants and waits of one owner."""
        budget = DispatchBudget(2, 100)
        budget.try_acquire(1, 30, owner="sampler-a")
        budget.try_acquire(2, 30, owner="sampler-b")
        granted: list[DispatchToken] = []
        budget.try_acquire(3, 30, owner="sampler-a", on_granted=granted.append)
        budget.try_acquire(4, 30, owner="sampler-a", on_granted=granted.append)
        assert budget.held_by("sampler-a") == [1]
        assert budget.release_owner("sampler-a") == 3
        assert granted == []
        stats = budget.stats()
        assert (stats.in_flight, stats.in_flight_bytes, stats.waiting) == (1, 30, 0)

    def test_a_raising_grant_callback_gives_the_grant_back(self) -> None:
        """A grant nobody received is released, so the budget does not leak."""
        budget = DispatchBudget(1, 100)
        budget.try_acquire("a", 10)

        def broken(_token: DispatchToken) -> None:
            raise RuntimeError("receiver died")

        budget.try_acquire("b", 10, on_granted=broken)
        budget.release("a")
        stats = budget.stats()
        assert (stats.in_flight, stats.in_flight_bytes, stats.granted) == (0, 0, 2)


class SignallingBudget(DispatchBudget):
    """Sets `queued` when a request joins the wait queue (to order a test without sleeps)."""

    def __init__(self, max_concurrent: int, max_bytes: int) -> None:
        super().__init__(max_concurrent, max_bytes)
        self.queued = threading.Event()

    def try_acquire(
        self,
        request_id: Hashable,
        size_bytes: int,
        *,
        owner: Hashable = None,
        on_granted: Callable[[DispatchToken], object] | None = None,
    ) -> DispatchToken | None:
        token = super().try_acquire(request_id, size_bytes, owner=owner, on_granted=on_granted)
        if token is None and on_granted is not None:
            self.queued.set()
        return token


class TestBlockingAcquire:
    def test_a_blocked_thread_is_admitted_when_capacity_frees(self) -> None:
        """acquire() waits in its thread until another thread releases."""
        budget = SignallingBudget(1, 100)
        budget.try_acquire("a", 10)
        tokens: list[DispatchToken] = []
        thread = threading.Thread(target=lambda: tokens.append(budget.acquire("b", 10, WAIT_S)))
        thread.start()
        assert budget.queued.wait(WAIT_S)
        budget.release("a")
        thread.join(WAIT_S)
        assert [t.request_id for t in tokens] == ["b"]

    def test_a_timed_out_acquire_holds_nothing(self) -> None:
        """TimeoutError names the request; the queue is left clean."""
        budget = DispatchBudget(1, 100)
        budget.try_acquire("a", 10)
        with pytest.raises(TimeoutError, match="'b' waited"):
            budget.acquire("b", 10, 0.01)
        budget.release("a")
        assert budget.stats().in_flight == 0


class TestThrottledDispatch:
    def test_after_a_backoff_fewer_requests_and_bytes_are_admitted(
        self, limiter: SampleRateLimiter, clock: FakeClock
    ) -> None:
        """While throttled: at most 10 in flight, each prompt charged 20 times its size."""
        budget = DispatchBudget(100, 10_000, rate_limiter=limiter)
        limiter.on_rate_limited(10)
        clock.advance(1.0)
        tokens = [budget.try_acquire(i, 10) for i in range(THROTTLED_MAX_CONCURRENT + 1)]
        assert all(t is not None for t in tokens[:-1])
        assert tokens[-1] is None
        first = tokens[0]
        assert first is not None
        assert first.charged_bytes == 10 * THROTTLED_BYTES_FACTOR
        assert budget.stats().throttled_grants == THROTTLED_MAX_CONCURRENT

    def test_when_the_throttle_ends_queued_requests_can_be_admitted(
        self, limiter: SampleRateLimiter, clock: FakeClock
    ) -> None:
        """retry_waiters admits what now fits without waiting for a release."""
        budget = DispatchBudget(100, 10_000, rate_limiter=limiter)
        limiter.on_rate_limited(10)
        for i in range(THROTTLED_MAX_CONCURRENT):
            budget.try_acquire(i, 1)
        granted: list[DispatchToken] = []
        budget.try_acquire("late", 1, on_granted=granted.append)
        clock.advance(1.0 + THROTTLE_AFTER_BACKOFF_S)
        assert budget.retry_waiters() == 1
        assert granted[0].charged_bytes == 1


class TestBudgetInvariants:
    @settings(max_examples=60, deadline=None)
    @given(
        st.lists(
            st.tuples(st.booleans(), st.integers(0, 15), st.integers(0, 400)),
            max_size=80,
        )
    )
    def test_the_balance_stays_within_bounds_and_drains_to_zero(
        self, ops: list[tuple[bool, int, int]]
    ) -> None:
        """Any mix of acquires, waits and releases keeps 0 <= bytes <= max and ends empty."""
        budget = DispatchBudget(4, 300)
        live: set[Hashable] = set()
        for acquire, rid, size in ops:
            if acquire and rid not in live:
                budget.try_acquire(rid, size, on_granted=lambda _t: None)
                live.add(rid)
            else:
                budget.release(rid)
                live.discard(rid)
            stats = budget.stats()
            assert 0 <= stats.in_flight_bytes <= 300
            assert 0 <= stats.in_flight <= 4
        budget.release_many(live)
        stats = budget.stats()
        assert (stats.in_flight, stats.in_flight_bytes, stats.waiting) == (0, 0, 0)

    def test_many_threads_never_exceed_the_caps(self) -> None:
        """8 threads x 200 acquire/release cycles: peaks within caps, all released."""
        budget = DispatchBudget(3, 100)
        errors: list[BaseException] = []

        def work(worker: int) -> None:
            try:
                for i in range(200):
                    rid = (worker, i)
                    budget.acquire(rid, 30, WAIT_S)
                    budget.release(rid)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(w,)) for w in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert errors == []
        stats = budget.stats()
        assert stats.peak_in_flight <= 3
        assert stats.peak_bytes <= 90
        assert (stats.in_flight, stats.in_flight_bytes, stats.granted) == (0, 0, 1600)


class SamplerLike(pykka.ThreadingActor):
    """A stand-in sampler actor: takes grants by message, releases them in its hooks."""

    def __init__(self, budget: DispatchBudget, name: str) -> None:
        super().__init__()
        self.budget = budget
        self.name = name
        self.granted: list[Hashable] = []

    def dispatch(self, request_id: Hashable, size_bytes: int) -> bool:
        # Non-blocking: a refused request is granted later by a message to this actor.
        token = self.budget.try_acquire(
            request_id, size_bytes, owner=self.name, on_granted=self._granted_later
        )
        if token is not None:
            self.granted.append(request_id)
        return token is not None

    def _granted_later(self, token: DispatchToken) -> None:
        self.actor_ref.tell(("granted", token.request_id))

    def on_receive(self, message: object) -> None:
        if message == "crash":
            # A told message that raises kills the actor (an ask would only fail the caller).
            raise RuntimeError("sampler crashed")
        if isinstance(message, tuple) and message[0] == "granted":
            self.granted.append(message[1])

    def on_failure(
        self,
        exception_type: type[BaseException] | None,
        exception_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.budget.release_owner(self.name)

    def on_stop(self) -> None:
        self.budget.release_owner(self.name)


class TestActorOwners:
    def test_a_crashed_actor_releases_all_it_held_and_awaited(self) -> None:
        """The failure hook frees every grant and queued wait; the budget drains to zero."""
        budget = DispatchBudget(3, 1000)
        ref = SamplerLike.start(budget, "sampler-1")
        try:
            proxy = ref.proxy()
            results = [proxy.dispatch(i, 100).get(timeout=WAIT_S) for i in range(5)]
            assert results == [True, True, True, False, False]
            assert budget.stats().waiting == 2
            ref.tell("crash")
            assert ref.actor_stopped.wait(WAIT_S)
        finally:
            ref.stop(block=False)
        stats = budget.stats()
        assert (stats.in_flight, stats.in_flight_bytes, stats.waiting) == (0, 0, 0)

    def test_a_stopped_actor_hands_its_capacity_to_another_owner(self) -> None:
        """Capacity freed by one actor's stop is granted to another actor by message."""
        budget = DispatchBudget(1, 1000)
        first = SamplerLike.start(budget, "a")
        second = SamplerLike.start(budget, "b")
        try:
            assert first.proxy().dispatch("a-1", 10).get(timeout=WAIT_S) is True
            assert second.proxy().dispatch("b-1", 10).get(timeout=WAIT_S) is False
            first.stop(timeout=WAIT_S)
            # on_stop released synchronously, so the grant message is queued before this ask.
            assert second.proxy().granted.get(timeout=WAIT_S) == ["b-1"]
        finally:
            second.stop(timeout=WAIT_S)
            first.stop(block=False)
        assert budget.stats().in_flight == 0


class TestOverHttp:
    def test_an_injected_429_on_asample_opens_the_window_and_a_success_clears_it(
        self, clock: FakeClock
    ) -> None:
        """The dispatch recipe against the embedded server: 429 -> wait -> success -> clear."""
        limiter = SampleRateLimiter(clock=clock)
        budget = DispatchBudget.from_flags(ClientFlags(), rate_limiter=limiter)
        prompt = ModelInput.from_ints(list(range(1, 40)))
        size = estimate_prompt_bytes(prompt)
        with LocalServer() as server, Transport(
            Config(base_url=server.url, api_key=server.api_key)
        ) as transport:

            def post(path: str, payload: dict[str, object]) -> HttpResponse:
                request = HttpRequest.json(
                    "POST",
                    path,
                    payload,
                    pool=PoolKind.SAMPLE,
                    max_retries=0,
                    headers={SAMPLING_BACKPRESSURE_HEADER: "1"},
                )
                return transport.submit(request).result(WAIT_S)

            session = post(
                "create_session",
                {"tags": [], "user_metadata": None, "sdk_version": "t", "type": "create_session"},
            ).json()["session_id"]
            sampler = post(
                "create_sampling_session",
                {"session_id": session, "sampling_session_seq_id": 0, "base_model": "tiny-byte-lm"},
            ).json()["sampling_session_id"]
            server.faults.inject_status("/api/v1/asample", 429)

            def sample(seq_id: int) -> HttpResponse:
                assert limiter.backoff_remaining_s() == 0.0
                token = budget.try_acquire(seq_id, size)
                assert token is not None
                try:
                    return post(
                        "asample",
                        {
                            "sampling_session_id": sampler,
                            "seq_id": seq_id,
                            "num_samples": 1,
                            "prompt": to_builtins(prompt),
                            "sampling_params": {"max_tokens": 2, "seed": 1},
                        },
                    )
                finally:
                    budget.release(seq_id)

            with pytest.raises(RateLimitError):
                sample(1)
            limiter.on_rate_limited(size)
            assert limiter.backoff_remaining_s() == 1.0
            clock.advance(1.0)
            dispatched_at = limiter.now()
            assert sample(2).status == 200
            limiter.on_success(dispatched_at)
        stats = budget.stats()
        assert (stats.in_flight, stats.in_flight_bytes, stats.granted) == (0, 0, 2)
        assert stats.throttled_grants == 1
        assert limiter.stats().backoffs == 1
