"""The public Future: threads, asyncio, callbacks, cancel, and combining chunked results."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
import structlog

from tinkex_actors.clients.chunked_results import combine_forward_backward_outputs, reduce_metrics
from tinkex_actors.errors import TinkerError
from tinkex_actors.futures.future import (
    CancelledError,
    Future,
    FutureTimeoutError,
    combine,
)
from tinkex_actors.types import ForwardBackwardOutput, TensorData


def settle_later(future: Future[Any], value: Any) -> threading.Thread:
    thread = threading.Thread(target=future.set_result, args=(value,))
    thread.start()
    return thread


class TestFutureFromThreads:
    def test_result_returns_the_value_set_by_another_thread(self) -> None:
        """result() waits for a value set from another thread."""
        future: Future[int] = Future("r-1", "OptimStep")
        thread = settle_later(future, 7)
        assert future.result(timeout=5) == 7
        thread.join(5)
        assert future.done() and not future.cancelled()

    def test_a_result_timeout_raises_a_typed_timeout_and_leaves_the_future_running(self) -> None:
        """result(timeout) raises FutureTimeoutError (a TimeoutError); the future goes on."""
        future: Future[int] = Future("r-2", "Sample")
        with pytest.raises(FutureTimeoutError, match="r-2") as caught:
            future.result(timeout=0.01)
        assert isinstance(caught.value, TimeoutError) and isinstance(caught.value, TinkerError)
        assert not future.done()
        future.set_result(3)
        assert future.result(timeout=0) == 3

    def test_exception_returns_the_failure_and_result_raises_it(self) -> None:
        """A failed future reports its error from exception() and raises it from result()."""
        error = ValueError("boom")
        future: Future[int] = Future.failed(error)
        assert future.exception(timeout=1) is error
        with pytest.raises(ValueError, match="boom"):
            future.result()

    def test_a_negative_timeout_is_refused_with_the_field_named(self) -> None:
        """A bad timeout raises ValueError naming timeout."""
        with pytest.raises(ValueError, match="timeout=-1"):
            Future.completed(1).result(timeout=-1)

    def test_settling_twice_keeps_the_first_outcome(self) -> None:
        """set_result after settling returns False and changes nothing."""
        future = Future.completed(1)
        assert future.set_result(2) is False
        assert future.set_exception(ValueError()) is False
        assert future.result() == 1


class TestCallbacks:
    def test_a_callback_runs_once_the_future_settles(self) -> None:
        """add_done_callback is called with the future once it settles."""
        future: Future[int] = Future("r-3")
        seen: list[Future[int]] = []
        future.add_done_callback(seen.append)
        assert seen == []
        future.set_result(1)
        assert seen == [future]

    def test_a_callback_on_a_settled_future_runs_at_once(self) -> None:
        """add_done_callback on a done future calls it in the caller's thread."""
        seen: list[int] = []
        Future.completed(5).add_done_callback(lambda f: seen.append(f.result()))
        assert seen == [5]

    def test_a_raising_callback_is_logged_and_the_others_still_run(self) -> None:
        """A callback that raises is logged; later callbacks still run."""
        future: Future[int] = Future("r-4")
        seen: list[int] = []

        def bad(_f: Future[int]) -> None:
            raise RuntimeError("callback bug")

        future.add_done_callback(bad)
        future.add_done_callback(lambda f: seen.append(f.result()))
        with structlog.testing.capture_logs() as logs:
            future.set_result(9)
        assert seen == [9]
        assert [e["event"] for e in logs] == ["future_callback_failed"]


class TestCancel:
    def test_cancel_calls_the_canceller_once_and_result_raises_cancelled(self) -> None:
        """cancel() stops polling (the canceller) and result() raises CancelledError."""
        calls: list[int] = []
        future: Future[int] = Future("r-5", canceller=lambda: calls.append(1))
        assert future.cancel() is True
        assert future.cancel() is False
        assert calls == [1]
        assert future.cancelled() and future.done()
        with pytest.raises(CancelledError):
            future.result(timeout=1)

    def test_cancel_after_settling_does_nothing(self) -> None:
        """A settled future cannot be cancelled and its canceller is not called."""
        calls: list[int] = []
        future: Future[int] = Future("r-6", canceller=lambda: calls.append(1))
        future.set_result(1)
        assert future.cancel() is False
        assert calls == []


class TestAsyncio:
    def test_a_future_is_awaitable(self) -> None:
        """`await future` returns the value set by another thread."""
        future: Future[str] = Future("r-7")

        async def main() -> str:
            asyncio.get_running_loop().call_later(0.01, future.set_result, "ok")
            return await future

        assert asyncio.run(main()) == "ok"

    def test_result_async_timeout_raises_a_typed_timeout_without_cancelling(self) -> None:
        """result_async(timeout) raises FutureTimeoutError and the future stays pending."""
        future: Future[str] = Future("r-8")

        async def main() -> None:
            with pytest.raises(FutureTimeoutError):
                await future.result_async(timeout=0.01)

        asyncio.run(main())
        assert not future.done() and not future.cancelled()

    def test_an_awaited_failure_raises_the_error(self) -> None:
        """Awaiting a failed future raises its error."""

        async def main() -> None:
            with pytest.raises(KeyError):
                await Future.failed(KeyError("x"))

        asyncio.run(main())


class TestCombine:
    def test_the_transform_sees_results_in_input_order(self) -> None:
        """combine settles with transform([results]) in the order of the inputs."""
        parts: list[Future[int]] = [Future(f"r{i}") for i in range(3)]
        combined = combine(parts, lambda values: values)
        parts[2].set_result(2)
        parts[0].set_result(0)
        assert not combined.done()
        parts[1].set_result(1)
        assert combined.result(timeout=1) == [0, 1, 2]

    def test_the_first_failure_fails_the_combination_at_once(self) -> None:
        """One failed input fails the combined future without waiting for the rest."""
        parts: list[Future[int]] = [Future("a"), Future("b")]
        combined = combine(parts, sum)
        parts[1].set_exception(RuntimeError("chunk 2 failed"))
        with pytest.raises(RuntimeError, match="chunk 2"):
            combined.result(timeout=1)

    def test_cancelling_the_combination_cancels_its_inputs(self) -> None:
        """cancel() on the combination cancels every input still running."""
        parts: list[Future[int]] = [Future("a"), Future.completed(1)]
        combined = combine(parts, sum)
        assert combined.cancel()
        assert parts[0].cancelled()

    def test_no_inputs_settles_at_once(self) -> None:
        """combine([]) settles with transform([])."""
        assert combine([], len).result(timeout=0) == 0


def output(n: int, metrics: dict[str, float], tag: int = 0) -> ForwardBackwardOutput:
    outs = [{"loss": TensorData(data=[float(tag + i)], dtype="float32", shape=[1])}
            for i in range(n)]
    return ForwardBackwardOutput(loss_fn_output_type="cross_entropy", loss_fn_outputs=outs,
                                 metrics=metrics)


class TestChunkedResults:
    def test_outputs_are_concatenated_in_chunk_order(self) -> None:
        """loss_fn_outputs of chunks are joined in order."""
        combined = combine_forward_backward_outputs([output(2, {}, 0), output(1, {}, 10)])
        values = [o["loss"].data[0] for o in combined.loss_fn_outputs]
        assert values == [0.0, 1.0, 10.0]
        assert combined.loss_fn_output_type == "cross_entropy"

    def test_metrics_reduce_by_their_suffix_with_means_weighted_by_outputs(self) -> None:
        """:sum adds, :mean weights by outputs, :min/:max pick, :slack is max minus mean."""
        a = output(3, {"loss:sum": 3.0, "loss:mean": 1.0, "t:min": 2.0, "t:max": 2.0,
                       "s:slack": 1.0})
        b = output(1, {"loss:sum": 5.0, "loss:mean": 5.0, "t:min": 1.0, "t:max": 9.0,
                       "s:slack": 5.0})
        metrics = combine_forward_backward_outputs([a, b]).metrics
        assert metrics["loss:sum"] == 8.0
        assert metrics["loss:mean"] == pytest.approx((3 * 1.0 + 1 * 5.0) / 4)
        assert metrics["t:min"] == 1.0 and metrics["t:max"] == 9.0
        assert metrics["s:slack"] == pytest.approx(5.0 - 2.0)

    def test_unique_keeps_every_value_under_numbered_names(self) -> None:
        """:unique keeps the first value and adds the others as name_1, name_2."""
        metrics = reduce_metrics([{"id:unique": 1.0}, {"id:unique": 2.0}, {"id:unique": 3.0}],
                                 [1, 1, 1])
        assert metrics == {"id:unique": 1.0, "id:unique_1": 2.0, "id:unique_2": 3.0}

    def test_unknown_reductions_and_partial_metrics_are_dropped(self) -> None:
        """A metric with an unknown suffix, no suffix, or missing in a chunk is left out."""
        metrics = reduce_metrics([{"a:median": 1.0, "b": 1.0, "c:sum": 1.0},
                                  {"a:median": 2.0, "b": 2.0}], [1, 1])
        assert metrics == {}

    def test_a_mean_over_chunks_without_outputs_is_the_plain_mean(self) -> None:
        """Zero weights fall back to an unweighted mean (no division by zero)."""
        assert reduce_metrics([{"m:mean": 1.0}, {"m:mean": 3.0}], [0, 0]) == {"m:mean": 2.0}

    def test_no_chunks_give_an_empty_output(self) -> None:
        """Combining nothing gives an empty output."""
        empty = combine_forward_backward_outputs([])
        assert empty.loss_fn_outputs == [] and empty.metrics == {}
