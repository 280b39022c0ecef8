"""The ServiceClient's calls about its session as a whole: capabilities, telemetry, REST.

`SessionCalls` is a base of `ServiceClient` (`service_client.py`): the calls of the official
0.38 surface that make no client of their own (server capabilities, telemetry events, a copy of
weights, a custom loss, the console page, a RestClient on the same transport), and the checks
every call starts with.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from supervisors import Registry
from tinkex_actors import types
from tinkex_actors.clients.extras import (
    LossHandle,
    SessionTelemetry,
    Telemetry,
    check_input_ranks,
    console_url,
)
from tinkex_actors.clients.telemetry_reporter import Log, LogException
from tinkex_actors.config import PoolKind
from tinkex_actors.errors import ClientClosedError
from tinkex_actors.futures.client_future import settle_from
from tinkex_actors.futures.future import Future
from tinkex_actors.rest.rest_client import RestClient
from tinkex_actors.transport.blocking_call import CALL_TIMEOUT_S, call_json
from tinkex_actors.transport.messages import HttpRequest
from tinkex_actors.transport.transport import Transport

__all__ = ["SessionCalls"]


class SessionCalls:
    """Session-wide calls of a ServiceClient (see the module docstring)."""

    transport: Transport
    registry: Registry
    session_id: str
    project_id: str | None
    _closed: bool
    _model_seq: Iterator[int]

    def create_rest_client(self) -> RestClient:
        """A RestClient sharing this ServiceClient's transport."""
        return RestClient(self.transport)

    async def get_server_capabilities_async(self) -> types.GetServerCapabilitiesResponse:
        """The awaitable twin of `get_server_capabilities`."""
        return await self._capabilities()

    def get_server_capabilities(self) -> types.GetServerCapabilitiesResponse:
        """The base models the server offers (waits for the answer, as officially)."""
        return self._capabilities().result(CALL_TIMEOUT_S)

    def _capabilities(self) -> Future[types.GetServerCapabilitiesResponse]:
        future: Future[types.GetServerCapabilitiesResponse] = Future(request_type="Capabilities")

        def fetch() -> types.GetServerCapabilitiesResponse:
            answer = call_json(
                self.transport,
                HttpRequest("GET", "get_server_capabilities", pool=PoolKind.SESSION),
                CALL_TIMEOUT_S,
            )
            return types.convert(answer, types.GetServerCapabilitiesResponse)

        threading.Thread(
            target=settle_from, args=(future, fetch), daemon=True, name="tinkex-capabilities"
        ).start()
        return future

    @staticmethod
    def _check_path(path: object) -> None:
        if not isinstance(path, str) or not path.startswith("tinker://"):
            raise ValueError(f"path={path!r} is not a tinker path; pass 'tinker://<run>/...'")

    def _check_open(self) -> None:
        if self._closed:
            raise ClientClosedError("this ServiceClient is closed; make a new one")

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

    def get_console_url(self) -> str:
        """The console page of this session."""
        return console_url("sessions", getattr(self, "session_id", None))

    def get_telemetry(self) -> Telemetry | None:
        """A handle to log events into this session's telemetry (None when it is off)."""
        if self.registry.whereis("telemetry") is None:
            return None
        return SessionTelemetry(self._report_event)

    def _report_event(self, event_name: str, event_data: dict[str, Any], severity: str) -> None:
        reporter = self.registry.whereis("telemetry")
        if reporter is not None:
            reporter.tell(Log(event_name, event_data, severity))

    def copy_weights(
        self,
        path: str,
        *,
        ttl_seconds: int | None = None,
        weights_access_token: str | None = None,
    ) -> Future[str]:
        """Copy a checkpoint into this client's project; a Future of the copy's tinker path.

        The copy belongs to a new training run that cannot be trained on. With a `project_id`
        (argument or `TINKER_PROJECT_ID`) the copy goes to that project; without one it goes
        to this session (a difference on purpose: officially that is a ValueError).
        """
        self._check_open()
        self._check_path(path)
        rest = self.create_rest_client()
        if self.project_id is not None:
            return rest.copy_weights(
                path,
                self.project_id,
                ttl_seconds=ttl_seconds,
                weights_access_token=weights_access_token,
            )
        request = types.CopyWeightsRequest(
            source_path=path,
            session_id=self.session_id,
            model_seq_id=next(self._model_seq),
            ttl_seconds=ttl_seconds,
        )
        return rest._copy_weights(request, weights_access_token)

    def create_custom_loss(
        self, fn: Callable[..., Any], input_ranks: Mapping[str, int]
    ) -> Future[LossHandle]:
        """A handle of a custom loss for `TrainingClient.forward_backward_custom`.

        `fn(logprobs, <one tensor per loss_fn_input it reads>)` runs once per datum and returns
        `(loss, metrics)`; `input_ranks` gives the rank (0, 1, 2) of each parameter. The loss
        runs client-side (this server does not take traced losses) and needs torch.
        """
        self._check_open()
        ranks = check_input_ranks(fn, input_ranks)
        name = getattr(fn, "__name__", "custom_loss")
        return Future.completed(LossHandle(name, fn, ranks, self.session_id))

    def _sampler_base_model(self, sampling_session_id: str) -> str | None:
        answer = self.create_rest_client().get_sampler(sampling_session_id).result(CALL_TIMEOUT_S)
        return answer.base_model
