"""The ServiceClient's sampling factories: a SamplingClient in this process or in its child.

`SamplingFactories` is a base of `ServiceClient` (`service_client.py`): it opens sampling
sessions (`create_sampling_session`), starts a SamplingClientActor per sampler under the tree's
`sampling_clients` supervisor, or hands the sampler to the out-of-process sampling child, and
answers the official factories (`create_sampling_client[_async]`, `SamplingClient.create`).
`_start_client_actor`, `_background` and `_persistent_wait_s` serve the training factories too.
"""

from __future__ import annotations

import functools
import threading
import uuid
from collections.abc import Callable, Hashable, Iterator
from typing import Any, TypeVar

from pykka import ActorRef

from supervisors import ChildSpec, Registry, SupervisedRef, start_child
from tinkex_actors import types
from tinkex_actors.clients.backpressure import DispatchBudget
from tinkex_actors.clients.client_actor import start_client_actor
from tinkex_actors.clients.extras import check_retry_config
from tinkex_actors.clients.rate_limiter import SampleRateLimiter
from tinkex_actors.clients.sampler_handle import sampler_handle
from tinkex_actors.clients.sampling import SamplingClient
from tinkex_actors.clients.sampling_actor import CLONE_STRIDE, SamplerState, SamplingClientActor
from tinkex_actors.clients.sampling_process import (
    HostState,
    OutOfProcessSamplingClient,
    SamplingProcessHost,
)
from tinkex_actors.config import PoolKind
from tinkex_actors.futures.client_future import ClientFuture, in_background
from tinkex_actors.futures.poller_pool import PollerPool
from tinkex_actors.recovery.session_recovery import SessionRecovery
from tinkex_actors.service.model_creation import ModelMaker
from tinkex_actors.service.session_calls import SessionCalls
from tinkex_actors.transport.blocking_call import CALL_TIMEOUT_S, call_json
from tinkex_actors.transport.messages import HttpRequest
from tinkex_actors.transport.retry import ProgressTracker, RetryPolicy

__all__ = ["SamplingFactories"]

T = TypeVar("T")


class SamplingFactories(SessionCalls):
    """How a ServiceClient makes its samplers (see the module docstring)."""

    supervisor: ActorRef[Any]
    registry: Registry
    progress: ProgressTracker
    _budget: DispatchBudget
    _limiter: SampleRateLimiter
    _lock: threading.Lock
    _sampler_states: list[SamplerState]
    _recovery: SessionRecovery | None
    _host_state: HostState | None
    _sampler_seq: Iterator[int]
    _models: ModelMaker
    pollers: PollerPool

    def _background(self, fn: Callable[[], T]) -> ClientFuture[T]:
        return in_background(fn)

    def _persistent_wait_s(self) -> float:
        """How long a caller waits for a request retried until the progress timeout."""
        return self._models.persistent_wait_s()

    def _start_client_actor(
        self, supervisor: str, name: Hashable, start: Callable[..., ActorRef[Any]], state: Any
    ) -> SupervisedRef:
        """Start a client actor under one of the tree's dynamic supervisors; its stable ref."""
        sup = self.registry.whereis(supervisor)
        if sup is None:
            raise RuntimeError(f"the {supervisor} supervisor is not running; make a new client")
        return start_client_actor(
            sup, self.registry, name, start, state, self.transport, self.pollers,
            timeout_s=CALL_TIMEOUT_S,
        )

    def _sampling_now(
        self,
        model_path: str | None = None,
        base_model: str | None = None,
        *,
        sampling_session_id: str | None = None,
        retry_config: RetryPolicy | None = None,
        record_stability_info: bool = False,
        join: bool = False,
        known_base_model: str | None = None,
    ) -> SamplingClient:
        if sampling_session_id is None:
            sid, base = self._open_sampling_session(model_path, base_model)
        else:
            sid, base = sampling_session_id, base_model
        base = base or known_base_model
        if base is None:  # as officially: the server names the base model of saved weights
            base = self._sampler_base_model(sid)
        state = SamplerState(
            sampling_session_id=sid,
            base_model=base,
            model_path=model_path,
            budget=self._budget,
            limiter=self._limiter,
            progress=self.progress,
            base_url=self.transport.config.base_url,
            record_stability_info=record_stability_info,
        )
        name: tuple[str, ...] = ("sampling", sid)
        if join:  # another client of a session someone made: a clone, so seq_ids never collide
            state.clone_id = uuid.uuid4().int % CLONE_STRIDE + 1
            name = ("sampling", sid, str(state.clone_id))
        with self._lock:
            self._sampler_states.append(state)
        start = SamplingClientActor.start
        if retry_config is not None:
            start = functools.partial(SamplingClientActor.start, policy=retry_config)
        actor = self._start_client_actor("sampling_clients", name, start, state)
        client = SamplingClient(state, actor)
        client._telemetry = self.get_telemetry()
        return client if self._recovery is None else self._recovery.adopt_sampler(client)

    def _sampling_out_of_process(
        self, model_path: str | None, base_model: str | None
    ) -> OutOfProcessSamplingClient:
        sid, base = self._open_sampling_session(model_path, base_model)
        with self._lock:
            if self._host_state is None:
                self._host_state = HostState(api_key=self.transport.config.api_key)
                start_child(
                    self.supervisor,
                    ChildSpec(
                        id="sampling_process",
                        name="sampling_process",
                        type="supervisor",  # no shutdown limit: it closes its child itself
                        start=functools.partial(SamplingProcessHost.start, self._host_state),
                    ),
                    timeout_s=CALL_TIMEOUT_S * 2,
                )
        handle = sampler_handle(sid, self.transport.config.base_url, base, model_path)
        return OutOfProcessSamplingClient(
            handle,
            self._host_state,
            SupervisedRef("sampling_process", self.registry),
            sid,
            model_path,
            base,
        )

    def _open_sampling_session(
        self, model_path: str | None, base_model: str | None
    ) -> tuple[str, str | None]:
        if (model_path is None) == (base_model is None):
            raise ValueError("give exactly one of model_path (tinker://...) or base_model")
        request = types.CreateSamplingSessionRequest(
            session_id=self.session_id,
            sampling_session_seq_id=next(self._sampler_seq),
            base_model=base_model,
            model_path=model_path,
        )
        answer = call_json(
            self.transport,
            HttpRequest(
                "POST", "create_sampling_session", types.to_json(request), pool=PoolKind.SESSION
            ),
            self._persistent_wait_s(),
            progress=self.progress,
        )
        return str(answer["sampling_session_id"]), base_model or answer.get("base_model")

    def create_sampling_client(
        self,
        model_path: str | None = None,
        base_model: str | None = None,
        retry_config: RetryPolicy | None = None,
        record_stability_info: bool = False,
        *,
        out_of_process: bool = False,
    ) -> ClientFuture[Any]:
        """A sampler over saved weights (`model_path`) or a base model.

        `retry_config` (a `RetryPolicy`) sets the sampler's backoff on 5xx and connection
        errors; `record_stability_info` asks the server to record stability information of
        every sequence sampled. With `out_of_process=True` it runs in this ServiceClient's
        sampling child process (see `tinkex_actors.clients.sampling_process`): for programs
        whose own work holds the GIL.
        """
        self._check_open()
        if model_path is not None:
            self._check_path(model_path)
        check_retry_config(retry_config)
        if out_of_process:
            return self._background(lambda: self._sampling_out_of_process(model_path, base_model))
        return self._background(
            lambda: self._sampling_now(
                model_path,
                base_model,
                retry_config=retry_config,
                record_stability_info=record_stability_info,
            )
        )

    def _sampling_client_future(
        self,
        *,
        model_path: str | None = None,
        base_model: str | None = None,
        sampling_session_id: str | None = None,
        retry_config: RetryPolicy | None = None,
        record_stability_info: bool = False,
    ) -> ClientFuture[SamplingClient]:
        """`SamplingClient.create(service, ...)`: a new sampler, or one joining a session."""
        self._check_open()
        check_retry_config(retry_config)
        if sampling_session_id is None:
            return self.create_sampling_client(
                model_path, base_model, retry_config, record_stability_info
            )
        return self._background(
            lambda: self._sampling_now(
                base_model=base_model,
                sampling_session_id=sampling_session_id,
                retry_config=retry_config,
                record_stability_info=record_stability_info,
                join=True,
            )
        )

    async def create_sampling_client_async(
        self,
        model_path: str | None = None,
        base_model: str | None = None,
        retry_config: RetryPolicy | None = None,
        record_stability_info: bool = False,
        *,
        out_of_process: bool = False,
    ) -> SamplingClient:
        """The awaitable twin of `create_sampling_client`."""
        client: SamplingClient = await self.create_sampling_client(
            model_path,
            base_model,
            retry_config,
            record_stability_info,
            out_of_process=out_of_process,
        )
        return client

