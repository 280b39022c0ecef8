"""Making a model on the server: `create_model`, its lost answers, and never an orphan.

A `create_model` is retried until progress; when an attempt's answer was lost, the server may
have made the model twice (the twins are unloaded, `tinkex_actors.recovery.orphans`), or refuse the
repeated `model_seq_id` with 409 although our model exists (it is adopted: the session's one
model nobody of ours knows). Creates of one ServiceClient are serialized from the submit to the
new client's registration, so a sibling being created is never taken for a lost attempt's.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

from supervisors.library_logging import get_logger
from tinkex_actors import types
from tinkex_actors.config import PoolKind
from tinkex_actors.errors import ConflictError
from tinkex_actors.futures.poll_ledger import PollSpec
from tinkex_actors.futures.poller_pool import PollerPool
from tinkex_actors.recovery.orphans import session_models, unload_orphans
from tinkex_actors.transport.blocking_call import CALL_TIMEOUT_S, call
from tinkex_actors.transport.messages import HttpRequest
from tinkex_actors.transport.retry import ProgressTracker
from tinkex_actors.transport.transport import Transport

__all__ = ["ModelMaker"]

log = get_logger("tinkex_actors.service.service_client")

T = TypeVar("T")


class ModelMaker:
    """Makes the models of one ServiceClient, one at a time (see the module docstring).

    `known()` names the models of the client's training clients; the models it unloaded as
    orphans (`disowned`) are never taken for ours either.
    """

    def __init__(
        self,
        transport: Transport,
        pollers: PollerPool,
        progress: ProgressTracker,
        known: Callable[[], set[str]],
    ) -> None:
        self.transport = transport
        self.pollers = pollers
        self.progress = progress
        self._known = known
        self._create_lock = threading.Lock()
        self._lock = threading.Lock()
        self.disowned: set[str] = set()

    def persistent_wait_s(self) -> float:
        """How long a caller waits for a request retried until the progress timeout."""
        return self.progress.progress_timeout_s + CALL_TIMEOUT_S

    def create(self, request: types.CreateModelRequest, register: Callable[[str], T]) -> T:
        """Make the model of `request`; `register(model_id)` makes its client, still in turn."""
        # Serialized from the submit to the client's registration: the orphan check below
        # must never take a sibling being created for the lost attempt of this one.
        with self._create_lock:
            try:
                answer = call(
                    self.transport,
                    HttpRequest(
                        "POST",
                        "create_model",
                        types.to_json(request),
                        pool=PoolKind.TRAIN,
                        max_retries=1,  # counts a 409 only: outages are retried until progress
                    ),
                    self.persistent_wait_s(),
                    progress=self.progress,
                )
            except ConflictError:
                # The model_seq_id is taken: an earlier attempt of this very call landed and
                # its answer was lost. That model is ours.
                return register(self._adopt_lost_model(request.session_id))
            response = answer.json()
            if "request_id" not in response:  # a server that answers create_model inline
                model_id = str(response["model_id"])
            else:
                created = self.pollers.track(
                    PollSpec(
                        request_id=response["request_id"],
                        request_type="CreateModel",
                        decode_json=lambda v: types.convert(v, types.CreateModelResponse),
                        progress=self.progress,
                    )
                ).result()
                model_id = created.model_id
            if answer.retries_taken:  # an earlier attempt may have made a model too
                self.unload_orphans(request.session_id, keep=model_id)
            return register(model_id)

    def known_models(self) -> set[str]:
        """The models of this client: its training clients' and the ones it unloaded."""
        with self._lock:
            disowned = set(self.disowned)
        return self._known() | disowned

    def unload_orphans(self, session_id: str, keep: str) -> list[str]:
        """Unload the models of the session nobody asked for (lost answers' twins)."""
        try:
            orphans = unload_orphans(
                self.transport,
                self.pollers,
                session_id,
                self.known_models() | {keep},
                progress=self.progress,
                wait_s=CALL_TIMEOUT_S,
            )
        except Exception as exc:  # best effort: the model asked for is fine either way
            log.warning("orphan_check_failed", error=repr(exc))
            return []
        with self._lock:
            self.disowned.update(orphans)
        return orphans

    def _adopt_lost_model(self, session_id: str) -> str:
        """The model an earlier attempt of a create_model made (its answer was lost)."""
        unknown = [
            m
            for m in session_models(self.transport, session_id, CALL_TIMEOUT_S)
            if m not in self.known_models()
        ]
        if not unknown:
            raise ConflictError(
                "create_model was refused (409: model_seq_id already used) and the session "
                "lists no model of ours that could have been created by an earlier attempt",
                status_code=409,
            )
        log.info("lost_create_model_adopted", model_id=unknown[0])
        if len(unknown) > 1:
            self.unload_orphans(session_id, keep=unknown[0])
        return unknown[0]
