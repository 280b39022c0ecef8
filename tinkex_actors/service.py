"""The ServiceClient: the entry point, and the owner of the client's supervision tree.

    with ServiceClient() as service:               # TINKER_* env, or the embedded server
        trainer = service.create_lora_training_client("tiny-byte-lm", rank=8)

With no API key, no base URL and no `TINKER_*` environment, it starts the embedded server on
loopback and says so once in the log. The tree (DESIGN.md section 3):

    ServiceSupervisor (rest_for_one)
    ├── SessionManager          heartbeats every session on its own timer
    ├── PollerPool              a fixed pool of Poller actors (a supervisor of its own)
    └── TrainingClients         DynamicSupervisor: one TrainingClientActor per model

The Transport (one I/O loop thread and its HTTP clients) is owned by the ServiceClient itself
and closed last. Creation methods return a `ClientFuture`: a Future of the client that also
forwards attribute access to the client, so `service.create_lora_training_client(...)` can be
used as the client directly (older code), `.result()`-ed (official 0.38) or awaited.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import functools
import itertools
import os
import threading
from collections.abc import Callable, Hashable
from typing import Any, Generic, TypeVar, cast

from pykka import ActorDeadError, ActorRef

from supervisors import (
    ChildSpec,
    DynamicSupervisor,
    ExitReason,
    Normal,
    Registry,
    Shutdown,
    SupervisedRef,
    Supervisor,
    start_child,
)
from supervisors import stop as stop_process
from supervisors._logging import get_logger
from supervisors.timers import TimerService
from tinkex_actors import types
from tinkex_actors.backpressure import DispatchBudget, rate_limiter_for
from tinkex_actors.config import ClientFlags, Config, PoolKind
from tinkex_actors.futures import Future
from tinkex_actors.poller import PollerPool, PollSpec
from tinkex_actors.rest import RestClient
from tinkex_actors.retry import ProgressTracker
from tinkex_actors.sampling import (
    SamplerState,
    SamplingClient,
    SamplingClientActor,
    sampler_handle,
)
from tinkex_actors.sampling_process import (
    HostState,
    OutOfProcessSamplingClient,
    SamplingProcessHost,
)
from tinkex_actors.session import (
    CreateSession,
    FinishSession,
    SessionLost,
    SessionManager,
    SessionTable,
    Subscribe,
)
from tinkex_actors.telemetry_reporter import (
    DRAIN_TIMEOUT_S,
    Drain,
    Log,
    LogException,
    TelemetryReporter,
)
from tinkex_actors.training import TrainingClient, TrainingClientActor, TrainingState
from tinkex_actors.transport import HttpRequest, Transport

log = get_logger("tinkex_actors.service")

T = TypeVar("T")
CALL_TIMEOUT_S = 60.0
_EMBEDDED_KEY = "tml-embedded-local-server"

__all__ = ["ClientFuture", "ServiceClient"]


class ClientFuture(Future[T], Generic[T]):
    """A Future of a client that can also be used as the client itself (waiting for it)."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.result(), name)


def _settle_from(future: Future[T], fn: Callable[[], T]) -> None:
    try:
        future.set_result(fn())
    except BaseException as exc:
        future.set_exception(exc)


class _ServiceSupervisor(Supervisor):
    """The ServiceClient's top supervisor: ends the session and closes the client with it."""

    def __init__(
        self,
        children: list[ChildSpec],
        on_exit: Callable[[str, ExitReason], None],
        **options: Any,
    ) -> None:
        super().__init__(children, **options)
        self._on_exit = on_exit

    def terminate(self, reason: ExitReason) -> None:
        """Finish the session, stop the children, then close transport and embedded server."""
        try:
            self._on_exit("before", reason)
        finally:
            try:
                super().terminate(reason)
            finally:
                self._on_exit("after", reason)


class ServiceClient:
    """A session with the Tinker service (or the embedded server) and every client made in it."""

    def __init__(
        self,
        api_key: str | None = None,
        base_url: str | None = None,
        *,
        user_metadata: dict[str, str] | None = None,
        tags: list[str] | None = None,
        pollers: int = 4,
        timers: TimerService | None = None,
        environ: dict[str, str] | None = None,
        **config_options: Any,
    ) -> None:
        env = os.environ if environ is None else environ
        self._server: Any = None
        if (
            api_key is None
            and base_url is None
            and not env.get("TINKER_BASE_URL")
            and not env.get("TINKER_API_KEY")
        ):
            from tinkex_actors.local import LocalServer

            self._server = LocalServer().start()
            base_url, api_key = self._server.url, self._server.api_key
            log.warning(
                "using_embedded_server",
                url=base_url,
                message="no TINKER_API_KEY / TINKER_BASE_URL: using the embedded "
                "Tinker-compatible server on loopback",
            )
        self._closed = False
        self._finish_with: tuple[str, str | None] = ("success", None)
        self._host_state: HostState | None = None
        self._timers = timers
        self._lock = threading.Lock()
        self._model_seq = itertools.count()
        self._sampler_seq = itertools.count()
        try:
            config = Config.resolve(
                api_key=api_key, base_url=base_url, environ=dict(env), **config_options
            )
            self.transport = Transport(config)
            self.transport.start()
            self.flags = self._fetch_flags()
            self.registry = Registry()
            self.progress = ProgressTracker()
            self.pollers = PollerPool(self.transport, size=pollers)
            self._limiter = rate_limiter_for(config.base_url, config.api_key)
            self._budget = DispatchBudget.from_flags(self.flags, rate_limiter=self._limiter)
            self._sessions = SessionTable()
            self.supervisor: ActorRef[Any] = _ServiceSupervisor.start(
                self._child_specs(),
                self._on_tree_exit,
                strategy="rest_for_one",
                registry=self.registry,
                max_restarts=10,
                max_seconds=10.0,
            )
            manager = self.registry.whereis("session_manager")
            assert manager is not None
            self._manager = SupervisedRef("session_manager", self.registry)
            created = cast(
                concurrent.futures.Future[str],
                manager.ask(
                    CreateSession(tuple(tags or ()), user_metadata), timeout=CALL_TIMEOUT_S
                ),
            )
            self.session_id: str = created.result(CALL_TIMEOUT_S)
            if config.telemetry_enabled:
                start_child(
                    self.supervisor,
                    ChildSpec(
                        id="telemetry",
                        name="telemetry",
                        start=functools.partial(
                            TelemetryReporter.start,
                            self.transport,
                            self.session_id,
                            timers=self._timers,
                        ),
                    ),
                    timeout_s=CALL_TIMEOUT_S,
                )
        except BaseException:
            self._teardown()
            raise

    # -- the tree ------------------------------------------------------------------------------

    def _child_specs(self) -> list[ChildSpec]:
        def start_pollers() -> ActorRef[Any]:
            self.pollers.supervisor = None
            ref = self.pollers.start().supervisor
            assert ref is not None
            return ref

        return [
            ChildSpec(
                id="session_manager",
                name="session_manager",
                start=functools.partial(
                    SessionManager.start, self.transport, self._sessions, timers=self._timers
                ),
            ),
            ChildSpec(id="pollers", start=start_pollers, type="supervisor"),
            *(
                ChildSpec(
                    id=kind,
                    name=kind,
                    type="supervisor",
                    start=functools.partial(
                        DynamicSupervisor.start,
                        registry=self.registry,
                        max_restarts=10,
                        max_seconds=10.0,
                    ),
                )
                for kind in ("training_clients", "sampling_clients")
            ),
        ]

    @classmethod
    def child_spec(cls, id: Hashable = "tinkex_service", **kwargs: Any) -> ChildSpec:
        """A ChildSpec that runs a ServiceClient's tree under the user's own supervisor.

        The ServiceClient object is kept in `ServiceClient.instances[id]` while it runs.
        """

        def start() -> ActorRef[Any]:
            client = cls(**kwargs)
            cls.instances[id] = client
            return client.supervisor

        return ChildSpec(id=id, start=start, type="supervisor")

    instances: dict[Hashable, ServiceClient] = {}

    def _fetch_flags(self) -> ClientFlags:
        try:
            response = self.transport.submit(
                HttpRequest.json(
                    "POST", "client/config", {"sdk_version": "tinkex-actors"}, pool=PoolKind.SESSION
                )
            ).result(CALL_TIMEOUT_S)
            return ClientFlags.from_mapping(response.json())
        except Exception as exc:
            log.info("client_config_unavailable", error=str(exc))
            return ClientFlags()

    # -- training --------------------------------------------------------------------------------

    def _start_training(
        self, model_id: str, base_model: str, first_seq_id: int = 1
    ) -> TrainingClient:
        state = TrainingState(
            model_id,
            self.session_id,
            base_model,
            flags=self.flags,
            next_seq_id=first_seq_id,
            next_to_submit=first_seq_id,
            progress=self.progress,
        )
        actor = self._start_client_actor(
            "training_clients", ("training", model_id), TrainingClientActor.start, state
        )

        def on_session_event(event: Any) -> None:
            # Runs in the SessionManager's thread: hand over, never block.
            if isinstance(event, SessionLost):
                with contextlib.suppress(ActorDeadError):
                    actor.current().tell(event)

        self._manager.current().tell(Subscribe(self.session_id, on_session_event))
        return TrainingClient(state, actor, self.transport, sampling_factory=self._sampling_now)

    def _start_client_actor(
        self, supervisor: str, name: Hashable, start: Callable[..., ActorRef[Any]], state: Any
    ) -> SupervisedRef:
        """Start a client actor under one of the tree's dynamic supervisors; its stable ref."""
        sup = self.registry.whereis(supervisor)
        if sup is None:
            raise RuntimeError(f"the {supervisor} supervisor is not running; make a new client")
        spec = ChildSpec(
            id=name,
            name=name,
            start=functools.partial(start, state, self.transport, self.pollers),
        )
        start_child(sup, spec, timeout_s=CALL_TIMEOUT_S)
        return SupervisedRef(name, self.registry)

    def _create_model(
        self, base_model: str, lora: types.LoraConfig, user_metadata: dict[str, Any] | None
    ) -> TrainingClient:
        request = types.CreateModelRequest(
            session_id=self.session_id,
            model_seq_id=next(self._model_seq),
            base_model=base_model,
            user_metadata=user_metadata,
            lora_config=lora,
        )
        response = (
            self.transport.submit(
                HttpRequest(
                    "POST",
                    "create_model",
                    types.to_json(request),
                    pool=PoolKind.TRAIN,
                )
            )
            .result(CALL_TIMEOUT_S)
            .json()
        )
        if "request_id" not in response:  # a server that answers create_model inline
            return self._start_training(str(response["model_id"]), base_model)
        created = self.pollers.track(
            PollSpec(
                request_id=response["request_id"],
                request_type="CreateModel",
                decode_json=lambda v: types.convert(v, types.CreateModelResponse),
                progress=self.progress,
            )
        ).result()
        return self._start_training(created.model_id, base_model)

    def _background(self, fn: Callable[[], T]) -> ClientFuture[T]:
        future: ClientFuture[T] = ClientFuture(request_type="CreateClient")
        threading.Thread(
            target=_settle_from, args=(future, fn), daemon=True, name="tinkex-create-client"
        ).start()
        return future

    def create_lora_training_client(
        self,
        base_model: str,
        rank: int = 32,
        seed: int | None = None,
        train_mlp: bool = True,
        train_attn: bool = True,
        train_unembed: bool = True,
        user_metadata: dict[str, Any] | None = None,
    ) -> ClientFuture[TrainingClient]:
        """Create a LoRA model on `base_model`; a Future of its TrainingClient (usable as one)."""
        if not isinstance(base_model, str) or not base_model:
            raise ValueError(f"base_model={base_model!r}: name a base model, e.g. 'tiny-byte-lm'")
        if not (train_mlp or train_attn or train_unembed):
            raise ValueError(
                "train_mlp, train_attn and train_unembed are all False: the adapter "
                "would train nothing; enable at least one"
            )
        lora = types.LoraConfig(
            rank=rank,
            seed=seed,
            train_mlp=train_mlp,
            train_attn=train_attn,
            train_unembed=train_unembed,
        )
        self._check_open()
        return self._background(lambda: self._create_model(base_model, lora, user_metadata))

    async def create_lora_training_client_async(self, *args: Any, **kwargs: Any) -> TrainingClient:
        """The awaitable twin of `create_lora_training_client`."""
        return await self.create_lora_training_client(*args, **kwargs)

    def _from_state(self, path: str, optimizer: bool) -> TrainingClient:
        info = (
            self.transport.submit(
                HttpRequest(
                    "POST",
                    "weights_info",
                    types.to_json(types.WeightsInfoRequest(tinker_path=path)),
                    pool=PoolKind.TRAIN,
                )
            )
            .result(CALL_TIMEOUT_S)
            .json()
        )
        lora = types.LoraConfig(
            rank=info.get("lora_rank") or 32,
            train_mlp=info.get("train_mlp", True) is not False,
            train_attn=info.get("train_attn", True) is not False,
            train_unembed=info.get("train_unembed", True) is not False,
        )
        client = self._create_model(info["base_model"], lora, None)
        loader = client.load_state_with_optimizer if optimizer else client.load_state
        loader(path).result()
        return client

    def create_training_client_from_state(self, path: str) -> ClientFuture[TrainingClient]:
        """A new model with the weights of a checkpoint (fresh optimizer state)."""
        self._check_path(path)
        return self._background(lambda: self._from_state(path, optimizer=False))

    def create_training_client_from_state_with_optimizer(
        self, path: str
    ) -> ClientFuture[TrainingClient]:
        """A new model with the weights and optimizer state of a checkpoint."""
        self._check_path(path)
        return self._background(lambda: self._from_state(path, optimizer=True))

    # -- sampling and REST ---------------------------------------------------------------------

    def _sampling_now(
        self, model_path: str | None = None, base_model: str | None = None
    ) -> SamplingClient:
        sid, base = self._open_sampling_session(model_path, base_model)
        state = SamplerState(
            sampling_session_id=sid,
            base_model=base,
            model_path=model_path,
            budget=self._budget,
            limiter=self._limiter,
            progress=self.progress,
            base_url=self.transport.config.base_url,
        )
        actor = self._start_client_actor(
            "sampling_clients", ("sampling", sid), SamplingClientActor.start, state
        )
        return SamplingClient(state, actor)

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
        answer = (
            self.transport.submit(
                HttpRequest(
                    "POST",
                    "create_sampling_session",
                    types.to_json(request),
                    pool=PoolKind.SESSION,
                )
            )
            .result(CALL_TIMEOUT_S)
            .json()
        )
        return str(answer["sampling_session_id"]), base_model or answer.get("base_model")

    def create_sampling_client(
        self,
        model_path: str | None = None,
        base_model: str | None = None,
        *,
        out_of_process: bool = False,
    ) -> ClientFuture[Any]:
        """A sampler over saved weights (`model_path`) or a base model.

        With `out_of_process=True` it runs in this ServiceClient's sampling child process
        (see `tinkex_actors.sampling_process`): for programs whose own work holds the GIL.
        """
        self._check_open()
        if model_path is not None:
            self._check_path(model_path)
        if out_of_process:
            return self._background(lambda: self._sampling_out_of_process(model_path, base_model))
        return self._background(lambda: self._sampling_now(model_path, base_model))

    def create_rest_client(self) -> RestClient:
        """A RestClient sharing this ServiceClient's transport."""
        return RestClient(self.transport)

    async def create_training_client_from_state_async(self, path: str) -> TrainingClient:
        """The awaitable twin of `create_training_client_from_state`."""
        return await self.create_training_client_from_state(path)

    async def create_training_client_from_state_with_optimizer_async(
        self, path: str
    ) -> TrainingClient:
        """The awaitable twin of `create_training_client_from_state_with_optimizer`."""
        return await self.create_training_client_from_state_with_optimizer(path)

    async def create_sampling_client_async(
        self,
        model_path: str | None = None,
        base_model: str | None = None,
        *,
        out_of_process: bool = False,
    ) -> Any:
        """The awaitable twin of `create_sampling_client`."""
        return await self.create_sampling_client(
            model_path, base_model, out_of_process=out_of_process
        )

    async def get_server_capabilities_async(self) -> types.GetServerCapabilitiesResponse:
        """The awaitable twin of `get_server_capabilities`."""
        return await self.get_server_capabilities()

    def reconnect(self, tags: list[str] | None = None) -> str:
        """Open a new session after the old one was lost; returns its id.

        Models and samplers of a lost session are gone on the server: recreate training clients
        from your last checkpoint (`create_training_client_from_state_with_optimizer`) and
        samplers from their weights. Clients made before keep failing with
        SessionExpiredError.
        """
        self._check_open()
        created = cast(
            concurrent.futures.Future[str],
            self._manager.resolve(CALL_TIMEOUT_S).ask(
                CreateSession(tuple(tags or ()), None), timeout=CALL_TIMEOUT_S
            ),
        )
        self.session_id = created.result(CALL_TIMEOUT_S)
        self._model_seq = itertools.count()
        self._sampler_seq = itertools.count()
        log.info("session_reconnected", session_id=self.session_id)
        return self.session_id

    def get_server_capabilities(self) -> Future[types.GetServerCapabilitiesResponse]:
        """The base models the server offers."""
        future: Future[types.GetServerCapabilitiesResponse] = Future(request_type="Capabilities")

        def fetch() -> types.GetServerCapabilitiesResponse:
            answer = self.transport.submit(
                HttpRequest("GET", "get_server_capabilities", pool=PoolKind.SESSION)
            ).result(CALL_TIMEOUT_S)
            return types.convert(answer.json(), types.GetServerCapabilitiesResponse)

        threading.Thread(
            target=_settle_from, args=(future, fetch), daemon=True, name="tinkex-capabilities"
        ).start()
        return future

    # -- life cycle ------------------------------------------------------------------------------

    @staticmethod
    def _check_path(path: object) -> None:
        if not isinstance(path, str) or not path.startswith("tinker://"):
            raise ValueError(f"path={path!r} is not a tinker path; pass 'tinker://<run>/...'")

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("this ServiceClient is closed; make a new one")

    def close(self, status: str = "success", detail: str | None = None) -> None:
        """Finish the session, stop the tree, close connections; leaves no thread behind."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._finish_with = (status, detail)
        self._teardown()

    def _on_tree_exit(self, phase: str, reason: ExitReason) -> None:
        """Called by the tree's supervisor as it ends (also when it ends under a user's tree):
        before its children stop, finish the session; after, close what is not an actor."""
        if phase == "before":
            status, detail = self._finish_with
            if not isinstance(reason, Normal | Shutdown) and status == "success":
                status, detail = "errored", repr(reason)
            self._drain_telemetry()
            self._finish_session(status, detail)
        else:
            self._closed = True
            if self._host_state is not None:
                SamplingProcessHost.fail_pending(self._host_state, "the ServiceClient closed")
            self._close_resources()

    def _drain_telemetry(self) -> None:
        reporter = self.registry.whereis("telemetry")
        if reporter is None:
            return
        try:
            drained = cast(
                concurrent.futures.Future[int],
                reporter.ask(Drain(), timeout=CALL_TIMEOUT_S),
            )
            drained.result(DRAIN_TIMEOUT_S)
        except Exception as exc:
            log.warning("telemetry_drain_failed", error=str(exc))

    def report(self, event_name: str, event_data: dict[str, Any] | None = None) -> None:
        """Send a GENERIC_EVENT with this session's telemetry (dropped when disabled)."""
        reporter = self.registry.whereis("telemetry")
        if reporter is not None:
            reporter.tell(Log(event_name, dict(event_data or {})))

    def report_exception(self, error: BaseException) -> None:
        """Send an UNHANDLED_EXCEPTION event for `error` (dropped when telemetry is off)."""
        reporter = self.registry.whereis("telemetry")
        if reporter is not None:
            reporter.tell(LogException(error))

    def _finish_session(self, status: str, detail: str | None) -> None:
        session_id = getattr(self, "session_id", None)
        manager = self.registry.whereis("session_manager") if session_id else None
        if manager is None or session_id is None:
            return
        try:
            finished = cast(
                concurrent.futures.Future[None],
                manager.ask(FinishSession(session_id, status, detail), timeout=CALL_TIMEOUT_S),
            )
            finished.result(CALL_TIMEOUT_S)
        except Exception as exc:
            log.warning("session_finish_failed", session_id=session_id, error=str(exc))

    def _teardown(self) -> None:
        supervisor = getattr(self, "supervisor", None)
        if supervisor is not None and supervisor.is_alive():
            stop_process(supervisor, timeout_s=CALL_TIMEOUT_S)
        self._close_resources()

    def _close_resources(self) -> None:
        for key, client in list(ServiceClient.instances.items()):
            if client is self:
                del ServiceClient.instances[key]
        pollers = getattr(self, "pollers", None)
        if pollers is not None:
            pollers.stop()
        transport = getattr(self, "transport", None)
        if transport is not None:
            transport.close()
        if self._server is not None:
            self._server.stop()
            self._server = None

    def __enter__(self) -> ServiceClient:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.close(
            "success" if exc_type is None else "errored",
            None if exc is None else f"{type(exc).__name__}",
        )

    def __repr__(self) -> str:
        return f"ServiceClient(session_id={getattr(self, 'session_id', None)!r})"
