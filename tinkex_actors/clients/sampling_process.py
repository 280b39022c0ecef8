"""Out-of-process sampling: the sampling actors in a supervised child process.

User code that keeps the GIL busy (graders, environments) starves every thread of its process,
the client's I/O and polling included. With `ServiceClient.create_sampling_client(...,
out_of_process=True)` the sampler runs in a child process (started with `spawn`, never `fork`),
where a SamplingClient made from the sampler's handle does the HTTP, the polling and the
decoding; the parent only sends small call messages and receives finished results.

`SamplingProcessHost` is the supervised actor that owns the child: it starts it in `init`,
reads its answers on one reader thread, and crashes when the child dies, so its supervisor
starts a new child; the calls still pending (kept in a `HostState` outside the actor) are sent
again to the new child. Stopping the host closes the child within its shutdown timeout and
fails whatever was still pending.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import multiprocessing
import pickle
import threading
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from pykka import ActorRef

from supervisors import Process, SupervisedRef
from supervisors.library_logging import get_logger
from tinkex_actors import types
from tinkex_actors.clients.actor_support import current_ref, tell_quietly
from tinkex_actors.errors import TinkerError
from tinkex_actors.futures.future import Future

log = get_logger("tinkex_actors.clients.sampling_process")

CHILD_START_TIMEOUT_S = 60.0
CHILD_STOP_TIMEOUT_S = 10.0

__all__ = ["HostState", "OutOfProcessSamplingClient", "SamplingProcessError", "SamplingProcessHost"]


class SamplingProcessError(TinkerError):
    """The sampling child process failed a call or went away before answering."""


@dataclass
class _Call:
    call_id: int
    message: tuple[Any, ...]
    future: Future[Any]


@dataclass
class HostState:
    """The host's pending calls and connection settings; outlives any one host actor."""

    api_key: str | None
    lock: threading.Lock = field(default_factory=threading.Lock)
    ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    pending: dict[int, _Call] = field(default_factory=dict)
    children_started: int = 0
    child_pid: int | None = None


@dataclass(frozen=True)
class Submit:
    """Tell: send the pending call `call_id` to the child."""

    call_id: int


@dataclass(frozen=True)
class _ChildDied:
    reason: str


# -- the child process --------------------------------------------------------------------------


def _child_main(conn: Connection, api_key: str | None) -> None:
    """The child: one SamplingClient per sampler handle, answers sent back as they settle."""
    from tinkex_actors.clients.sampling import SamplerRuntime, SamplingClient

    send_lock = threading.Lock()
    clients: dict[str, SamplingClient] = {}
    runtimes: dict[str, SamplerRuntime] = {}  # one per base URL, shared by every sampler

    def send(message: tuple[Any, ...]) -> None:
        # If the parent is gone, the loop below ends on the closed pipe.
        with send_lock, contextlib.suppress(OSError, ValueError):
            conn.send(message)

    def answer(call_id: int, future: Future[Any]) -> None:
        error = future.exception()
        if error is None:
            send(("ok", call_id, future.result()))
            return
        try:
            pickle.dumps(error)
            send(("err", call_id, error))
        except Exception:
            send(("err", call_id, SamplingProcessError(f"{type(error).__name__}: {error}")))

    conn.send(("ready", None, None))
    try:
        while True:
            try:
                message = conn.recv()
            except (EOFError, OSError):
                return
            kind = message[0]
            if kind == "close":
                return
            call_id, handle = message[1], message[2]
            try:
                client = clients.get(handle)
                if client is None:
                    base_url = _handle_base_url(handle)
                    runtime = runtimes.get(base_url)
                    if runtime is None:
                        runtime = runtimes[base_url] = SamplerRuntime(base_url, api_key)
                    client = clients[handle] = runtime.clone(handle)
                future: Future[Any] = (
                    client.sample(*message[3:])
                    if kind == "sample"
                    else client.compute_logprobs(message[3])
                )
            except Exception as exc:
                send(("err", call_id, SamplingProcessError(f"{type(exc).__name__}: {exc}")))
                continue
            future.add_done_callback(functools.partial(answer, call_id))
    finally:
        for runtime in runtimes.values():
            runtime.close()
        conn.close()


def _handle_base_url(handle: str) -> str:
    from tinkex_actors.clients.sampler_handle import parse_handle

    return str(parse_handle(handle)["base_url"])


# -- the supervised host in the parent ----------------------------------------------------------


class SamplingProcessHost(Process):
    """Owns the sampling child process (see the module docstring)."""

    start_timeout_s = CHILD_START_TIMEOUT_S

    def __init__(self, state: HostState) -> None:
        super().__init__()
        self.state = state
        self.child: Any = None
        self.conn: Connection | None = None
        self.reader: threading.Thread | None = None

    def init(self) -> None:
        """Start the child, wait for it to be ready, and send it every pending call."""
        context = multiprocessing.get_context("spawn")
        parent_end, child_end = context.Pipe()
        self.child = context.Process(
            target=_child_main,
            args=(child_end, self.state.api_key),
            name="tinkex-sampling-child",
            daemon=True,
        )
        self.child.start()
        child_end.close()
        if not parent_end.poll(CHILD_START_TIMEOUT_S):
            self.child.kill()
            raise SamplingProcessError("the sampling child process did not start in time")
        parent_end.recv()
        self.conn = parent_end
        self.state.children_started += 1
        self.state.child_pid = self.child.pid
        self.reader = threading.Thread(
            target=self._read, args=(parent_end,), name="tinkex-sampling-reader", daemon=True
        )
        self.reader.start()
        with self.state.lock:
            pending = sorted(self.state.pending)
        for call_id in pending:
            self._send(call_id)

    def _read(self, conn: Connection) -> None:
        me = self.actor_ref
        while True:
            try:
                kind, call_id, payload = conn.recv()
            except (EOFError, OSError):
                tell_quietly(me, _ChildDied("the sampling child process closed its pipe"))
                return
            with self.state.lock:
                call = self.state.pending.pop(call_id, None)
            if call is None:
                continue
            if kind == "ok":
                call.future.set_result(payload)
            else:
                call.future.set_exception(payload)

    def on_receive(self, message: Any) -> Any:
        """Handle one message."""
        if isinstance(message, Submit):
            self._send(message.call_id)
        elif isinstance(message, _ChildDied):
            if self.conn is None:
                return None  # we closed it ourselves (terminate)
            # The pipe closing is the child's death (the process may not be reaped yet):
            # crash, so that the supervisor starts a new child with the pending calls.
            raise SamplingProcessError(message.reason)
        else:
            raise TypeError(f"SamplingProcessHost got an unknown message: {message!r}")
        return None

    def _send(self, call_id: int) -> None:
        with self.state.lock:
            call = self.state.pending.get(call_id)
        if call is None or self.conn is None:
            return
        try:
            self.conn.send(call.message)
        except (OSError, ValueError) as exc:
            raise SamplingProcessError(f"the sampling child process is gone: {exc}") from exc

    def terminate(self, reason: Any) -> None:
        """Close the child (kill it past the timeout); pending calls wait for a successor."""
        conn, child = self.conn, self.child
        self.conn = None
        if conn is not None:
            with contextlib.suppress(OSError, ValueError):
                conn.send(("close",))
        if child is not None:
            child.join(CHILD_STOP_TIMEOUT_S)
            if child.is_alive():
                child.kill()
                child.join(CHILD_STOP_TIMEOUT_S)
        if conn is not None:
            conn.close()
        if self.reader is not None:
            self.reader.join(CHILD_STOP_TIMEOUT_S)

    @staticmethod
    def fail_pending(state: HostState, why: str) -> None:
        """Fail every call still pending (the host is stopped for good)."""
        with state.lock:
            calls = list(state.pending.values())
            state.pending.clear()
        for call in calls:
            call.future.set_exception(SamplingProcessError(why))


class OutOfProcessSamplingClient:
    """A SamplingClient whose work runs in the ServiceClient's sampling child process."""

    def __init__(
        self,
        handle: str,
        state: HostState,
        host: SupervisedRef | ActorRef[Any],
        sampling_session_id: str,
        model_path: str | None,
        base_model: str | None,
    ) -> None:
        self._handle = handle
        self._state = state
        self._host = host
        self.sampling_session_id = sampling_session_id
        self.model_path = model_path
        self.base_model = base_model

    def __repr__(self) -> str:
        return f"OutOfProcessSamplingClient(sampling_session_id={self.sampling_session_id!r})"

    def _call(self, kind: str, *args: Any) -> Future[Any]:
        future: Future[Any] = Future(request_type="Sample")
        with self._state.lock:
            call_id = next(self._state.ids)
            self._state.pending[call_id] = _Call(
                call_id, (kind, call_id, self._handle, *args), future
            )
        ref = current_ref(self._host, CHILD_START_TIMEOUT_S)
        tell_quietly(ref, Submit(call_id))  # if it is restarting, its successor sends it
        return future

    def sample(
        self,
        prompt: types.ModelInput,
        num_samples: int,
        sampling_params: types.SamplingParams,
        include_prompt_logprobs: bool = False,
        topk_prompt_logprobs: int = 0,
    ) -> Future[types.SampleResponse]:
        """Generate `num_samples` continuations of `prompt` in the sampling process."""
        from tinkex_actors.clients.sampling_checks import check_sample_args

        check_sample_args(prompt, num_samples, sampling_params)
        return self._call(
            "sample",
            prompt,
            num_samples,
            sampling_params,
            include_prompt_logprobs,
            topk_prompt_logprobs,
        )

    def compute_logprobs(self, prompt: types.ModelInput) -> Future[list[float | None]]:
        """The logprob of each prompt token given those before it (None for the first)."""
        return self._call("logprobs", prompt)

    def get_sampler_handle(self) -> str:
        """The sampler's handle (usable from any process)."""
        return self._handle
