"""One answer per client to "is the server there?": outages are waited out behind one probe,
and past `connection_lost_after_s` every pending and later operation fails at once."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator

import numpy as np
import pytest

import tinkex_actors as tx
from supervisors.testing import FakeClock
from tests.futures._support import FakeTimers, make_futures
from tests.lifecycle.conftest import KEY, ServerProcess
from tinkex_actors import types
from tinkex_actors.config import Config
from tinkex_actors.errors import ConnectionLostError, InternalServerError
from tinkex_actors.futures.poll_ledger import PollSpec
from tinkex_actors.futures.poller_pool import PollerPool
from tinkex_actors.local import LocalServer
from tinkex_actors.transport.messages import HttpRequest, HttpResponse
from tinkex_actors.transport.retry import ProgressTimeoutError, ProgressTracker
from tinkex_actors.transport.transport import Transport

WAIT_S = 30.0
CAPABILITIES = "/api/v1/get_server_capabilities"
HEALTHZ = "/api/v1/healthz"
RETRIEVE = "/api/v1/retrieve_future"


def closed_port() -> int:
    """A loopback port nothing listens on (connections are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def fake_sleep(clock: FakeClock) -> Callable[[float], Awaitable[None]]:
    """Backoff that moves the fake clock instead of waiting."""

    async def sleep(delay_s: float) -> None:
        clock.advance(delay_s)
        await asyncio.sleep(0)

    return sleep


@pytest.fixture
def clock() -> FakeClock:
    """The fake monotonic clock of the transport, its gate and its progress tracker."""
    return FakeClock(1000.0)


@pytest.fixture
def make_transport(clock: FakeClock) -> Iterator[Callable[..., Transport]]:
    """Transports on fake time, closed at the end of the test."""
    made: list[Transport] = []

    def make(base_url: str, lost_after_s: float = 900.0) -> Transport:
        config = Config(api_key=KEY, base_url=base_url, connection_lost_after_s=lost_after_s)
        transport = Transport(
            config, sleep=fake_sleep(clock), clock=clock.monotonic, random=lambda: 0.0
        )
        made.append(transport)
        return transport

    yield make
    for transport in made:
        transport.close()


def get(path: str, **options: object) -> HttpRequest:
    """A GET of one of the server's cheap endpoints."""
    return HttpRequest("GET", path.removeprefix("/api/v1/"), **options)  # type: ignore[arg-type]


def on_first_failure(transport: Transport) -> threading.Event:
    """An event set once the transport's server health records a failed attempt (install it
    before submitting): the moment a request becomes the outage's probe."""
    seen = threading.Event()
    record = transport.health.failed

    def failed(what: str, token: object | None = None) -> None:
        record(what, token)
        seen.set()

    transport.health.failed = failed  # type: ignore[method-assign]
    return seen


def wait_for_failure(seen: threading.Event) -> None:
    """Wait (up to WAIT_S) until the event of `on_first_failure` is set."""
    assert seen.wait(WAIT_S), "no failed attempt recorded in time"


class TestOutagesAreWaitedOut:
    def test_a_submit_with_progress_outlives_thirty_5xx_answers(
        self, server: LocalServer, make_transport: Callable[..., Transport], clock: FakeClock
    ) -> None:
        """30 answers of 503 (> 10 counted retries, ~4 min of backoff): the submit goes through."""
        transport = make_transport(server.url)
        server.faults.inject_status(CAPABILITIES, 503, times=30)
        started = clock.monotonic()
        answer = transport.submit(
            get(CAPABILITIES), progress=ProgressTracker(clock=clock.monotonic)
        ).result(WAIT_S)
        assert answer.status == 200 and answer.retries_taken == 30
        assert clock.monotonic() - started > 200.0  # the official budget is ~56 s
        assert transport.health.lost is None and transport.health.failing_for_s is None

    def test_without_progress_the_counted_retries_still_apply(
        self, server: LocalServer, make_transport: Callable[..., Transport]
    ) -> None:
        """A plain request keeps its max_retries: 2 retries, then the 503 is raised."""
        transport = make_transport(server.url)
        server.faults.inject_status(CAPABILITIES, 503, times=5)
        with pytest.raises(InternalServerError):
            transport.submit(get(CAPABILITIES, max_retries=2)).result(WAIT_S)
        assert server.app.path_counts[CAPABILITIES] == 3

    def test_past_the_progress_timeout_the_submit_gives_up(
        self, server: LocalServer, make_transport: Callable[..., Transport], clock: FakeClock
    ) -> None:
        """503 forever, progress timeout 120 s: ProgressTimeoutError after 120 s, not before."""
        transport = make_transport(server.url, lost_after_s=10_000.0)
        server.faults.inject_status(CAPABILITIES, 503, times=1_000_000)
        started = clock.monotonic()
        progress = ProgressTracker(120.0, clock=clock.monotonic)
        with pytest.raises(ProgressTimeoutError, match="No progress made in 120 s"):
            transport.submit(get(CAPABILITIES), progress=progress).result(WAIT_S)
        assert 120.0 < clock.monotonic() - started <= 130.0

    def test_queued_requests_wait_behind_the_probe_instead_of_spending_retries(
        self, server: LocalServer, make_transport: Callable[..., Transport]
    ) -> None:
        """Every path answers 503 eight times: the head meets all eight; 5 single-shot requests
        queued meanwhile wait at the gate and then each succeed at their one attempt."""
        transport = make_transport(server.url)
        server.faults.inject_status("*", 503, times=8)
        failed = on_first_failure(transport)
        head = transport.submit(
            get(CAPABILITIES), progress=ProgressTracker(clock=lambda: 0.0)
        )
        wait_for_failure(failed)
        queued = [transport.submit(get(HEALTHZ, max_retries=0)) for _ in range(5)]
        answers: list[HttpResponse] = [f.result(WAIT_S) for f in (head, *queued)]
        assert answers[0].retries_taken == 8
        assert [a.status for a in answers[1:]] == [200] * 5
        assert server.app.path_counts[HEALTHZ] == 5  # none of them was sent into the outage


class TestPollsDuringAnOutage:
    def test_polls_queued_behind_the_probe_send_nothing_until_the_server_answers(
        self, server: LocalServer, clock: FakeClock
    ) -> None:
        """The head meets 6 answers of 503 while 20 tracked futures wait at the gate: each polls
        once, after the outage; none is spent on it (well under 5 polls/s per future)."""
        request_ids = make_futures(server, 20)
        server.faults.inject_status("*", 503, times=6)
        gate_full = asyncio.Event()  # set on the transport's loop once all 20 polls wait

        async def outage_backoff(delay_s: float) -> None:
            # The head's backoff ends only once all 20 polls wait at the gate.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(gate_full.wait(), WAIT_S)
            clock.advance(delay_s)

        config = Config(api_key=KEY, base_url=server.url)
        transport = Transport(config, sleep=outage_backoff, clock=clock.monotonic)
        try:
            at_gate: set[object] = set()  # the head and each poll, once they reached the gate
            admit = transport.health.admit

            async def admit_counted(token: object) -> None:
                at_gate.add(token)
                if len(at_gate) > 20:  # no await until admit waits: the 21st is there too
                    gate_full.set()
                await admit(token)

            transport.health.admit = admit_counted  # type: ignore[method-assign]
            failed = on_first_failure(transport)
            head = transport.submit(get(CAPABILITIES), progress=ProgressTracker(clock=lambda: 0))
            wait_for_failure(failed)
            timers = FakeTimers(clock)  # a fake timer service
            with PollerPool(transport, size=2, timers=timers, clock=clock.monotonic) as pool:
                futures = [pool.track(PollSpec(rid, "OptimStep")) for rid in request_ids]
                assert head.result(WAIT_S).retries_taken == 6
                assert all(f.result(WAIT_S) == {"metrics": {}} for f in futures)
        finally:
            transport.close()
        assert server.app.path_counts[RETRIEVE] == 20


class TestConnectionLost:
    def test_past_connection_lost_after_everything_fails_at_once_saying_since_when(
        self, make_transport: Callable[..., Transport], clock: FakeClock
    ) -> None:
        """Refused for 300 s of fake time: the head and the queued fail, later ones at once."""
        transport = make_transport(f"http://127.0.0.1:{closed_port()}", lost_after_s=300.0)
        started = clock.monotonic()
        failed = on_first_failure(transport)
        head = transport.submit(get(CAPABILITIES), progress=ProgressTracker(clock=clock.monotonic))
        wait_for_failure(failed)
        queued = transport.submit(get(HEALTHZ))
        for future in (head, queued):
            error = future.exception(WAIT_S)
            assert isinstance(error, ConnectionLostError), repr(error)
        assert error is not None and isinstance(error, ConnectionLostError)
        assert "connection_lost_after_s=300" in str(error) and "since" in str(error)
        assert "UTC" in str(error) and error.last_error
        assert 300.0 <= error.failing_for_s <= 310.0
        assert 300.0 <= clock.monotonic() - started <= 310.0
        later = transport.submit(get(HEALTHZ))
        assert later.done() and later.exception() is error

    def test_heartbeats_alone_failing_past_connection_lost_after_give_the_session_up(
        self, make_transport: Callable[..., Transport], clock: FakeClock
    ) -> None:
        """An idle client: heartbeats (probes, never held at the gate) every 10 s to a dead
        port; the one after 30 s declares the loss, and the listener hears it once."""
        transport = make_transport(f"http://127.0.0.1:{closed_port()}", lost_after_s=30.0)
        heard: concurrent.futures.Future[BaseException] = concurrent.futures.Future()
        transport.health.on_lost(heard.set_result)
        beat = HttpRequest("POST", "session_heartbeat", b"{}", max_retries=0)
        outcomes = []
        for _ in range(5):
            outcomes.append(transport.submit(beat, probe=True).exception(WAIT_S))
            clock.advance(10.0)
        # The beat at 30 s fails and declares the loss; the next is refused at once.
        names = [type(e).__name__ for e in outcomes]
        assert names == ["APIConnectionError"] * 4 + ["ConnectionLostError"]
        assert isinstance(heard.result(WAIT_S), ConnectionLostError)
        assert transport.health.lost is heard.result(0)

    def test_a_server_that_never_comes_back_fails_every_pending_future_at_once(
        self, server_process: ServerProcess
    ) -> None:
        """SIGKILL of the server, connection_lost_after_s=1: all pending steps fail with
        ConnectionLostError within seconds, and a later call raises it at once."""
        datum = types.Datum(
            model_input=types.ModelInput.from_ints([1, 2, 3, 4]),
            loss_fn_inputs={"target_tokens": types.TensorData.from_numpy(np.array([2, 3, 4, 5]))},
        )
        with tx.ServiceClient(
            base_url=server_process.url, api_key=KEY, connection_lost_after_s=1.0
        ) as service:
            trainer = service.create_lora_training_client("tiny-byte-lm", rank=4).result(WAIT_S)
            trainer.forward_backward([datum], "cross_entropy").result(WAIT_S)
            server_process.kill()
            killed = time.monotonic()
            pending = [trainer.forward_backward([datum], "cross_entropy") for _ in range(5)]
            pending.append(trainer.optim_step(types.AdamParams(learning_rate=1e-3)))
            errors = [f.exception(WAIT_S) for f in pending]
            took = time.monotonic() - killed
            assert all(isinstance(e, ConnectionLostError) for e in errors), errors
            assert took < 1.0 + 10.0  # the deadline plus at most one outage backoff step
            started = time.monotonic()
            with pytest.raises(ConnectionLostError, match="since"):
                trainer.forward_backward([datum], "cross_entropy")
            assert time.monotonic() - started < 0.5
