"""What a TrainingClient uses of the ServiceClient that made it, as a Protocol.

The training handle names this, not `ServiceClient`, so that the client actors never import
the service that owns them: imports run one way (service -> clients). mypy checks that
`ServiceClient` satisfies it wherever the service hands itself to a TrainingClient.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from tinkex_actors.clients.extras import Telemetry
from tinkex_actors.futures.client_future import ClientFuture
from tinkex_actors.transport.retry import RetryPolicy

if TYPE_CHECKING:
    from tinkex_actors.clients.sampling import SamplingClient

__all__ = ["TrainingOwner"]

T = TypeVar("T")


class TrainingOwner(Protocol):
    """The ServiceClient as its TrainingClients see it: samplers, background work, telemetry."""

    @property
    def _sampler_seq(self) -> Iterator[int]:
        """Numbers for the names of ephemeral sampler saves, unique within the session."""
        ...

    def _background(self, fn: Callable[[], T]) -> ClientFuture[T]:
        """Run `fn` off the caller's thread; its result settles the returned future."""
        ...

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
        """A SamplingClient over saved weights or a sampling session, made now (blocking)."""
        ...

    def _report_event(self, event_name: str, event_data: dict[str, Any], severity: str) -> None:
        """Send one telemetry event of a user error to the session's reporter."""
        ...

    def create_sampling_client(
        self,
        model_path: str | None = None,
        base_model: str | None = None,
        retry_config: RetryPolicy | None = None,
        record_stability_info: bool = False,
        *,
        out_of_process: bool = False,
    ) -> ClientFuture[Any]:
        """A future of a new SamplingClient (the official factory)."""
        ...

    def get_telemetry(self) -> Telemetry | None:
        """The session's telemetry, or None when it is off."""
        ...
