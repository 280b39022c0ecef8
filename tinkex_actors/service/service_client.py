"""The ServiceClient: the entry point, its session, and the factories of its clients.

    with ServiceClient() as service:               # TINKER_* env, or the embedded server
        trainer = service.create_lora_training_client("tiny-byte-lm", rank=8)

With no API key, no base URL and no `TINKER_*` environment, it starts the embedded server on
loopback and says so once in the log. Its actors run in a supervision tree of their own
(`tinkex_actors.service.tree`, DESIGN.md section 3); the Transport (one I/O loop thread and its
HTTP clients) is owned by the ServiceClient itself and closed last. Creation methods return a
`ClientFuture` (`tinkex_actors.futures.client_future`): a Future of the client that can also
be used as the client directly (older code), `.result()`-ed (official 0.38) or awaited.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import itertools
import os
import threading
from collections.abc import Hashable
from typing import Any, TypeVar, cast

from pykka import ActorDeadError, ActorRef

from supervisors import (
    ChildSpec,
    Registry,
    SupervisedRef,
    start_child,
)
from supervisors.library_logging import get_logger
from supervisors.timers import TimerService
from tinkex_actors import types
from tinkex_actors.clients.backpressure import DispatchBudget, rate_limiter_for
from tinkex_actors.clients.client_actor import fail_pending
from tinkex_actors.clients.extras import (
    check_optimizer,
)
from tinkex_actors.clients.handshake import fetch_client_flags
from tinkex_actors.clients.sampling_actor import SamplerState
from tinkex_actors.clients.sampling_process import (
    HostState,
    SamplingProcessHost,
)
from tinkex_actors.clients.session import (
    CreateSession,
    SessionLost,
    SessionTable,
    Subscribe,
)
from tinkex_actors.clients.training import TrainingClient
from tinkex_actors.clients.training_sequencer import TrainingClientActor, TrainingState
from tinkex_actors.config import Config, PoolKind
from tinkex_actors.errors import ClientClosedError, SessionExpiredError
from tinkex_actors.futures.client_future import ClientFuture
from tinkex_actors.futures.poller_pool import PollerPool
from tinkex_actors.recovery.session_recovery import Origin, RecoveryPolicy, SessionRecovery
from tinkex_actors.service.closing import ClosingService
from tinkex_actors.service.model_creation import ModelMaker
from tinkex_actors.service.sampling_factories import SamplingFactories
from tinkex_actors.service.tree import (
    CLOSE_BUDGET_S,
    CloseBudget,
    close_at_exit,
    close_open_clients,
    forget_at_exit,
    start_tree,
    telemetry_child,
)
from tinkex_actors.transport.blocking_call import CALL_TIMEOUT_S, call_json
from tinkex_actors.transport.loop_thread import run_at_exit
from tinkex_actors.transport.messages import HttpRequest
from tinkex_actors.transport.retry import ProgressTracker
from tinkex_actors.transport.transport import Transport

__all__ = ["CALL_TIMEOUT_S", "CLOSE_BUDGET_S", "ClientFuture", "ServiceClient"]

log = get_logger("tinkex_actors.service.service_client")

T = TypeVar("T")


class ServiceClient(SamplingFactories, ClosingService):
    """A session with the Tinker service (or the embedded server) and every client made in it."""

    _recovery: SessionRecovery | None

    def __init__(
        self,
        user_metadata: dict[str, str] | None = None,
        project_id: str | None = None,
        *,
        display_name: str | None = None,
        base_url: str | None = None,
        api_key: str | None = None,
        default_headers_overrides: dict[str, str] | None = None,
        tags: list[str] | None = None,
        pollers: int = 4,
        timers: TimerService | None = None,
        environ: dict[str, str] | None = None,
        recovery: RecoveryPolicy | None = None,
        **config_options: Any,
    ) -> None:
        if recovery is not None and not isinstance(recovery, RecoveryPolicy):
            raise TypeError(
                f"recovery is a {type(recovery).__name__}; pass "
                "tinkex_actors.RecoveryPolicy(...) or None"
            )
        self._recovery = None if recovery is None else SessionRecovery(self, recovery)
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
            # The documented default, not a problem: only visible when logging is turned up.
            log.info(
                "using_embedded_server",
                url=base_url,
                message="no TINKER_API_KEY / TINKER_BASE_URL: using the embedded "
                "Tinker-compatible server on loopback",
            )
        self._closed = False
        self._close_budget = CloseBudget()
        self._training_states: list[TrainingState] = []
        self._sampler_states: list[SamplerState] = []
        self._finish_with: tuple[str, str | None] = ("success", None)
        self._host_state: HostState | None = None
        self._timers = timers
        self._lock = threading.Lock()
        self._model_seq = itertools.count()
        self._sampler_seq = itertools.count()
        self.project_id: str | None = project_id or env.get("TINKER_PROJECT_ID") or None
        self.display_name = display_name
        try:
            if default_headers_overrides:
                config_options["default_headers"] = dict(default_headers_overrides)
            config = Config.resolve(
                api_key=api_key, base_url=base_url, environ=dict(env), **config_options
            )
            self.transport = Transport(config)
            self.transport.start()
            close_at_exit(self)
            run_at_exit(close_open_clients)  # after the transport's own: runs before it
            self.transport.health.on_lost(self._on_lost)
            self.flags = fetch_client_flags(self.transport, CALL_TIMEOUT_S)
            self.registry = Registry()
            self.progress = ProgressTracker()
            self.pollers = PollerPool(self.transport, size=pollers)
            self._models = ModelMaker(
                self.transport, self.pollers, self.progress, self._known_models
            )
            self._limiter = rate_limiter_for(config.base_url, config.api_key)
            self._budget = DispatchBudget.from_flags(self.flags, rate_limiter=self._limiter)
            self._sessions = SessionTable()
            self.supervisor: ActorRef[Any] = start_tree(
                self.transport,
                self._sessions,
                self.pollers,
                self.registry,
                self._timers,
                self._on_tree_exit,
            )
            manager = self.registry.whereis("session_manager")
            assert manager is not None
            self._manager = SupervisedRef("session_manager", self.registry)
            created = cast(
                concurrent.futures.Future[str],
                manager.ask(
                    CreateSession(
                        tuple(tags or ()), user_metadata, self.project_id, self.display_name
                    ),
                    timeout=CALL_TIMEOUT_S,
                ),
            )
            self.session_id: str = created.result(CALL_TIMEOUT_S)
            self._watch_session()
            if config.telemetry_enabled:
                start_child(
                    self.supervisor,
                    telemetry_child(self.transport, self.session_id, self._timers),
                    timeout_s=CALL_TIMEOUT_S,
                )
        except BaseException:
            forget_at_exit(self)
            self._teardown()
            raise

    # -- losing the session ------------------------------------------------------------------

    def _watch_session(self) -> None:
        """A heartbeat answered 404/410 is a loss too: report it where every loss goes (the
        transport stays usable: REST calls and `reconnect` still reach the server)."""
        session_id = self.session_id

        def on_event(event: Any) -> None:
            # Only the current session: a recovered client must not lose its new one.
            current = event.session_id == session_id == self.session_id
            if isinstance(event, SessionLost) and current:
                self._on_lost(event.error)

        self._manager.current().tell(Subscribe(session_id, on_event))

    def _on_lost(self, error: SessionExpiredError) -> None:
        """The one place a lost session lands, whoever found it out (the transport's outage
        gate, or a heartbeat answered 404/410); a recovery policy would hook in here. Every
        pending operation fails with `error` at once, and so does every later call."""
        failed = self._fail_pending(error)
        log.warning("session_lost_failed_pending", failed=failed, error=str(error))
        if self._recovery is not None:  # only internal futures failed: rebuild and replay
            self._recovery.session_lost(error)

    def _fail_pending(self, error: BaseException) -> int:
        with self._lock:
            trainers = list(self._training_states)
            samplers = list(self._sampler_states)
        failed = sum(fail_pending(state, error) for state in trainers)
        failed += sum(fail_pending(state, error) for state in samplers)
        pollers = getattr(self, "pollers", None)
        if pollers is not None:
            failed += pollers.fail_all(error)
        if self._host_state is not None:
            SamplingProcessHost.fail_pending(self._host_state, str(error))
        return failed

    # -- the tree ------------------------------------------------------------------------------

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

    # -- training --------------------------------------------------------------------------------

    def _start_training(
        self, model_id: str, base_model: str, first_seq_id: int = 1
    ) -> TrainingClient:
        self._check_open()
        state = TrainingState(
            model_id,
            self.session_id,
            base_model,
            flags=self.flags,
            next_seq_id=first_seq_id,
            next_to_submit=first_seq_id,
            progress=self.progress,
        )
        with self._lock:
            self._training_states.append(state)
        actor = self._start_client_actor(
            "training_clients", ("training", model_id), TrainingClientActor.start, state
        )

        def on_session_event(event: Any) -> None:
            # Runs in the SessionManager's thread: hand over, never block.
            if isinstance(event, SessionLost):
                with contextlib.suppress(ActorDeadError):
                    actor.current().tell(event)

        self._manager.current().tell(Subscribe(self.session_id, on_session_event))
        return TrainingClient(
            state, actor, self.transport, sampling_factory=self._sampling_now, service=self
        )

    def _create_model(
        self,
        base_model: str,
        lora: types.LoraConfig,
        user_metadata: dict[str, Any] | None,
        optimizer: types.OptimizerConfig | None = None,
    ) -> TrainingClient:
        request = types.CreateModelRequest(
            session_id=self.session_id,
            model_seq_id=next(self._model_seq),
            base_model=base_model,
            user_metadata=user_metadata,
            lora_config=lora,
            optimizer_config=optimizer or types.AdamOptimizerConfig(),
        )
        return self._models.create(
            request, lambda model_id: self._start_training(model_id, base_model)
        )

    def _known_models(self) -> set[str]:
        with self._lock:
            return {s.model_id for s in self._training_states}

    def create_lora_training_client(
        self,
        base_model: str,
        rank: int = 32,
        seed: int | None = None,
        train_mlp: bool = True,
        train_attn: bool = True,
        train_unembed: bool = True,
        user_metadata: dict[str, str] | None = None,
        optimizer: types.OptimizerConfig | None = None,
    ) -> ClientFuture[TrainingClient]:
        """Create a LoRA model on `base_model`; a Future of its TrainingClient (usable as one).

        `optimizer` selects the optimizer family for the model's life
        (`types.AdamOptimizerConfig()`, the default, or `types.DimuonOptimizerConfig()`);
        `optim_step` then takes that family's params.
        """
        check_optimizer(optimizer)
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
        return self._background(
            lambda: self._recoverable(
                self._create_model(base_model, lora, user_metadata, optimizer),
                Origin(
                    base_model, lora=lora, user_metadata=user_metadata, optimizer_config=optimizer
                ),
            )
        )

    async def create_lora_training_client_async(
        self,
        base_model: str,
        rank: int = 32,
        seed: int | None = None,
        train_mlp: bool = True,
        train_attn: bool = True,
        train_unembed: bool = True,
        user_metadata: dict[str, str] | None = None,
        optimizer: types.OptimizerConfig | None = None,
    ) -> TrainingClient:
        """The awaitable twin of `create_lora_training_client`."""
        return await self.create_lora_training_client(
            base_model, rank, seed, train_mlp, train_attn, train_unembed, user_metadata, optimizer
        )

    def _recoverable(self, client: TrainingClient, origin: Origin) -> TrainingClient:
        """With a recovery policy, the handle that survives a lost session (see recovery.py)."""
        return client if self._recovery is None else self._recovery.adopt(client, origin)

    def _from_state(
        self,
        path: str,
        optimizer: bool,
        base_model: str | None = None,
        user_metadata: dict[str, str] | None = None,
        weights_access_token: str | None = None,
        optimizer_config: types.OptimizerConfig | None = None,
        recover: bool = False,
    ) -> TrainingClient:
        info = call_json(
            self.transport,
            HttpRequest(
                "POST",
                "weights_info",
                types.to_json(types.WeightsInfoRequest(tinker_path=path)),
                pool=PoolKind.TRAIN,
            ),
            CALL_TIMEOUT_S,
        )
        lora = types.LoraConfig(
            rank=info.get("lora_rank") or 32,
            train_mlp=info.get("train_mlp", True) is not False,
            train_attn=info.get("train_attn", True) is not False,
            train_unembed=info.get("train_unembed", True) is not False,
        )
        base = base_model or info["base_model"]
        client = self._create_model(base, lora, user_metadata, optimizer_config)
        client._load(path, optimizer, weights_access_token).result()
        if recover:
            return self._recoverable(
                client,
                Origin(
                    base,
                    path=path,
                    optimizer=optimizer,
                    user_metadata=user_metadata,
                    optimizer_config=optimizer_config,
                ),
            )
        return client

    def create_training_client_from_state(
        self,
        path: str,
        base_model: str | None = None,
        user_metadata: dict[str, str] | None = None,
        weights_access_token: str | None = None,
        optimizer: types.OptimizerConfig | None = None,
    ) -> ClientFuture[TrainingClient]:
        """A new model with the weights of a checkpoint (fresh optimizer state).

        `base_model` overrides the checkpoint's (a compatible one), `user_metadata` goes on
        the new training run, `weights_access_token` reads another account's checkpoint,
        `optimizer` selects the new run's optimizer (Adam by default).
        """
        self._check_path(path)
        check_optimizer(optimizer)
        return self._background(
            lambda: self._from_state(
                path, False, base_model, user_metadata, weights_access_token, optimizer,
                recover=True,
            )
        )

    def create_training_client_from_state_with_optimizer(
        self,
        path: str,
        base_model: str | None = None,
        user_metadata: dict[str, str] | None = None,
        weights_access_token: str | None = None,
    ) -> ClientFuture[TrainingClient]:
        """A new model with the weights and optimizer state of a checkpoint."""
        self._check_path(path)
        return self._background(
            lambda: self._from_state(
                path, True, base_model, user_metadata, weights_access_token, recover=True
            )
        )

    async def create_training_client_from_state_async(
        self,
        path: str,
        base_model: str | None = None,
        user_metadata: dict[str, str] | None = None,
        weights_access_token: str | None = None,
        optimizer: types.OptimizerConfig | None = None,
    ) -> TrainingClient:
        """The awaitable twin of `create_training_client_from_state`."""
        return await self.create_training_client_from_state(
            path, base_model, user_metadata, weights_access_token, optimizer
        )

    async def create_training_client_from_state_with_optimizer_async(
        self,
        path: str,
        base_model: str | None = None,
        user_metadata: dict[str, str] | None = None,
        weights_access_token: str | None = None,
    ) -> TrainingClient:
        """The awaitable twin of `create_training_client_from_state_with_optimizer`."""
        return await self.create_training_client_from_state_with_optimizer(
            path, base_model, user_metadata, weights_access_token
        )

    def reconnect(
        self,
        tags: list[str] | None = None,
        *,
        cancel: concurrent.futures.Future[Any] | None = None,
    ) -> str:
        """Open a new session after the old one was lost; returns its id.

        Models and samplers of a lost session are gone on the server: recreate training clients
        from your last checkpoint (`create_training_client_from_state_with_optimizer`) and
        samplers from their weights. Clients made before keep failing with
        SessionExpiredError. `cancel` (set by a recovery that is told to stop) ends the wait
        for the new session with ClientClosedError.
        """
        self._check_open()
        self.transport.health.reset()
        self.transport.health.on_lost(self._on_lost)
        created = cast(
            concurrent.futures.Future[str],
            self._manager.resolve(CALL_TIMEOUT_S).ask(
                CreateSession(tuple(tags or ()), None), timeout=CALL_TIMEOUT_S
            ),
        )
        if cancel is not None:
            concurrent.futures.wait(
                [created, cancel], CALL_TIMEOUT_S, concurrent.futures.FIRST_COMPLETED
            )
            if not created.done():
                raise ClientClosedError("the ServiceClient closed while reconnecting")
        self.session_id = created.result(CALL_TIMEOUT_S)
        self._watch_session()
        self._model_seq = itertools.count()
        self._sampler_seq = itertools.count()
        log.info("session_reconnected", session_id=self.session_id)
        return self.session_id

    # -- life cycle (see service_close.py) -----------------------------------------------------

    def _fail_hosted(self, reason: str) -> None:
        if self._host_state is not None:
            SamplingProcessHost.fail_pending(self._host_state, reason)

    def _forget_instance(self) -> None:
        for key, client in list(ServiceClient.instances.items()):
            if client is self:
                del ServiceClient.instances[key]

    def __enter__(self) -> ServiceClient:
        return self

    def __repr__(self) -> str:
        return f"ServiceClient(session_id={getattr(self, 'session_id', None)!r})"
