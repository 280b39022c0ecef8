"""`TinkerService`: the embedded server's Tinker endpoints, assembled over its state.

Each handler validates its request (bad input is a 400 in the service's error shape, naming the
field), then either answers at once (sessions, capabilities) or queues work and answers with a
future (`{"request_id": ...}`) that `retrieve_future` long-polls. The handlers live by concern:
`session_endpoints.py`, `model_endpoints.py` (models and weights), `training_endpoints.py`,
`sampling_endpoints.py` and `future_endpoints.py`; what they share is `state.py`. REST
listings, telemetry and the fault-control endpoint live in `rest.py` and `rest_extras.py`.
"""

from __future__ import annotations

from tinkex_actors.local.asgi import Router
from tinkex_actors.local.faults import FaultPlan
from tinkex_actors.local.future_endpoints import FutureEndpoints
from tinkex_actors.local.futures import FutureStore
from tinkex_actors.local.model_endpoints import ModelEndpoints
from tinkex_actors.local.sampling_endpoints import SamplingEndpoints
from tinkex_actors.local.session_endpoints import SessionEndpoints
from tinkex_actors.local.settings import ServerSettings
from tinkex_actors.local.state import ServerState
from tinkex_actors.local.storage import CheckpointStore
from tinkex_actors.local.training_endpoints import TrainingEndpoints

__all__ = ["ServerSettings", "TinkerService"]
# ServerSettings is re-exported: the command line and scripts import it from here.


class TinkerService(ServerState):
    """The server's state with its Tinker endpoints, one group per concern."""

    def __init__(
        self,
        store: FutureStore,
        faults: FaultPlan,
        storage: CheckpointStore,
        settings: ServerSettings,
    ) -> None:
        super().__init__(store, faults, storage, settings)
        self.session_endpoints = SessionEndpoints(self)
        self.model_endpoints = ModelEndpoints(self)
        self.training_endpoints = TrainingEndpoints(self)
        self.sampling_endpoints = SamplingEndpoints(self)
        self.future_endpoints = FutureEndpoints(self)

    def register(self, router: Router) -> None:
        """Add every Tinker endpoint to a router."""
        sessions, models = self.session_endpoints, self.model_endpoints
        training, sampling = self.training_endpoints, self.sampling_endpoints
        futures = self.future_endpoints
        for method, path, handler in (
            ("GET", "/api/v1/healthz", sessions.healthz),
            ("GET", "/api/v1/get_server_capabilities", sessions.capabilities),
            ("POST", "/api/v1/client/config", sessions.client_config),
            ("POST", "/api/v1/client/dynamic_config", sessions.dynamic_config),
            ("POST", "/api/v1/create_session", sessions.create_session),
            ("POST", "/api/v1/session_heartbeat", sessions.heartbeat),
            ("POST", "/api/v1/sessions/{session_id}/finish", sessions.finish_session),
            ("POST", "/api/v1/create_model", models.create_model),
            ("POST", "/api/v1/get_info", models.get_info),
            ("POST", "/api/v1/unload_model", models.unload_model),
            ("POST", "/api/v1/weights_info", models.weights_info),
            ("POST", "/api/v1/forward_backward", training.forward_backward),
            ("POST", "/api/v1/forward", training.forward),
            ("POST", "/api/v1/optim_step", training.optim_step),
            ("POST", "/api/v1/save_weights", models.save_weights),
            ("POST", "/api/v1/load_weights", models.load_weights),
            ("POST", "/api/v1/save_weights_for_sampler", models.save_weights_for_sampler),
            ("POST", "/api/v1/save_weights_external", models.save_weights_external),
            ("POST", "/api/v1/create_sampling_session", sampling.create_sampling_session),
            ("POST", "/api/v1/join_sampling_session", sampling.join_sampling_session),
            ("POST", "/api/v1/asample", sampling.asample),
            ("POST", "/api/v1/retrieve_future", futures.retrieve_future),
            ("POST", "/api/v1/retrieve_futures", futures.retrieve_futures),
            ("POST", "/api/v1/cancel_future", futures.cancel_future),
        ):
            router.add(method, path, handler)
