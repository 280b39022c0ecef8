"""The TrainingClient: the official API surface of a LoRA training model, in the caller's thread.

Each method checks its arguments (`training_requests.py`), queues its request with the next
seq_ids (`training_sequencer.py`) and returns a Future at once; the model's actor submits the
requests in seq_id order and the pollers settle the Futures. `forward_backward_custom` runs
its loss client-side (`custom_loss.py`). The handle keeps working across restarts of its actor.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

from pykka import ActorRef

from supervisors import SupervisedRef
from supervisors.library_logging import get_logger
from tinkex_actors import types
from tinkex_actors.clients.actor_support import current_ref, tell_quietly
from tinkex_actors.clients.chunked_results import combine_forward_backward_outputs
from tinkex_actors.clients.custom_loss import CustomLossFn, run_custom_loss
from tinkex_actors.clients.extras import (
    LossHandle,
    Telemetry,
    check_optim_params,
    check_retry_config,
    console_url,
    report_user_errors,
)
from tinkex_actors.clients.training_owner import TrainingOwner
from tinkex_actors.clients.training_requests import (
    SAVES,
    BodyBuilder,
    JsonBuilder,
    check_age_recipients,
    check_data,
    check_loss,
    check_name,
    decode_fb_json,
    decoder,
    forward_backward_bodies,
    json_body,
    optim_step_body,
    sampling_session_of,
)
from tinkex_actors.clients.training_sequencer import (
    Kick,
    TrainingState,
    chunk_data,
    enqueue_jobs,
)
from tinkex_actors.config import PoolKind
from tinkex_actors.futures.client_future import ClientFuture
from tinkex_actors.futures.future import Future, combine
from tinkex_actors.transport.messages import HttpRequest
from tinkex_actors.transport.retry import RetryPolicy
from tinkex_actors.transport.transport import Transport
from tinkex_actors.types import proto

if TYPE_CHECKING:
    from tinkex_actors.clients.sampling import SamplingClient

__all__ = [
    "TrainingClient",
]

log = get_logger("tinkex_actors.clients.training")

RESOLVE_TIMEOUT_S = 10.0
"""How long a call waits for a restarting TrainingClient actor to come back."""


class TrainingClient:
    """A LoRA training model. Every method returns a Future at once (see the module docstring).

    Built by `ServiceClient.create_lora_training_client` and friends; the handle keeps working
    across restarts of its actor.
    """

    def __init__(
        self,
        state: TrainingState,
        actor: SupervisedRef | ActorRef[Any],
        transport: Transport,
        *,
        sampling_factory: Callable[..., Any] | None = None,
        service: TrainingOwner | None = None,
    ) -> None:
        self._state = state
        self._actor = actor
        self._transport = transport
        self._sampling_factory = sampling_factory
        self._service = service
        self._info: types.GetInfoResponse | None = None

    def __repr__(self) -> str:
        return f"TrainingClient(model_id={self.model_id!r}, base_model={self._state.base_model!r})"

    @property
    def model_id(self) -> str:
        """The server's id of this model (also its training run id)."""
        return self._state.model_id

    # -- plumbing ----------------------------------------------------------------------------

    def _tell(self) -> None:
        if self._state.lost is not None:
            return  # closed or lost meanwhile: its jobs were failed, nobody will submit them
        if not tell_quietly(current_ref(self._actor, RESOLVE_TIMEOUT_S), Kick()):
            # The actor is restarting: its successor adopts the queued jobs in init().
            log.debug("kick_to_restarting_actor", model_id=self.model_id)

    def _enqueue(
        self,
        path: str,
        request_type: str,
        build: BodyBuilder,
        decode_json: Callable[[Any], Any],
        decode_proto: Callable[[bytes], Any] | None = None,
        on_conflict: Callable[[], Any] | None = None,
    ) -> Future[Any]:
        """Reserve one seq_id, build the body for it, and queue the job (atomically)."""
        return self._enqueue_many(
            path, request_type, [build], decode_json, decode_proto, on_conflict
        )[0]

    def _enqueue_many(
        self,
        path: str,
        request_type: str,
        builders: list[BodyBuilder],
        decode_json: Callable[[Any], Any],
        decode_proto: Callable[[bytes], Any] | None = None,
        on_conflict: Callable[[], Any] | None = None,
        json_builders: list[JsonBuilder] | None = None,
    ) -> list[Future[Any]]:
        futures = enqueue_jobs(
            self._state,
            path,
            request_type,
            builders,
            decode_json,
            decode_proto,
            on_conflict,
            json_builders,
        )
        if self._service is not None:
            for future in futures:
                report_user_errors(future, self._service._report_event)
        self._tell()
        return futures

    # -- training ----------------------------------------------------------------------------

    def _forward_backward(
        self,
        data: Sequence[types.Datum],
        loss_fn: str,
        loss_fn_config: Mapping[str, Any] | None,
        forward_only: bool,
    ) -> Future[types.ForwardBackwardOutput]:
        items = check_data(data)
        check_loss(loss_fn, loss_fn_config)
        config = dict(loss_fn_config) if loss_fn_config else None
        flags = self._state.flags
        model_id = self.model_id

        kind = "Forward" if forward_only else "ForwardBackward"
        bodies = [
            forward_backward_bodies(model_id, chunk, loss_fn, config, forward_only)
            for chunk in chunk_data(items, flags)
        ]
        parts = self._enqueue_many(
            "forward_backward",
            kind,
            [proto_body for proto_body, _ in bodies],
            decode_fb_json,
            proto.decode_forward_backward_output,
            json_builders=[json_request for _, json_request in bodies],
        )
        if len(parts) == 1:
            only: Future[types.ForwardBackwardOutput] = parts[0]
            return only
        return combine(parts, combine_forward_backward_outputs)

    def forward(
        self,
        data: Sequence[types.Datum],
        loss_fn: str,
        loss_fn_config: Mapping[str, Any] | None = None,
    ) -> Future[types.ForwardBackwardOutput]:
        """Compute the loss and per-datum outputs without accumulating gradients."""
        return self._forward_backward(data, loss_fn, loss_fn_config, forward_only=True)

    def forward_backward(
        self,
        data: Sequence[types.Datum],
        loss_fn: str,
        loss_fn_config: Mapping[str, Any] | None = None,
    ) -> Future[types.ForwardBackwardOutput]:
        """Compute the loss and accumulate its gradients; chunked by the server's limits."""
        return self._forward_backward(data, loss_fn, loss_fn_config, forward_only=False)

    def forward_backward_custom(
        self,
        data: Sequence[types.Datum],
        loss_fn: CustomLossFn | LossHandle,
        *,
        loss_type_input: Literal["logprobs"] | None = None,
    ) -> Future[types.ForwardBackwardOutput]:
        """Train on a loss computed here, from the model's logprobs, with numpy gradients.

        `loss_fn(data, logprobs_list)` gets one float array of target-token logprobs per datum
        and returns `(loss, metrics, grads)`, `grads[i]` being dLoss/dlogprobs of datum i. The
        forward runs first; its backward is a cross_entropy pass with `weights = -grads` (the
        official weighting), whose seq_id is reserved only when it is sent, as officially.
        A `LossHandle` from `ServiceClient.create_custom_loss` works too (it needs torch).
        """
        return run_custom_loss(
            data,
            loss_fn,
            loss_type_input,
            forward=self.forward,
            forward_backward=self.forward_backward,
        )

    def optim_step(
        self,
        optim_params: types.OptimParams | None = None,
        *,
        adam_params: types.AdamParams | None = None,
    ) -> Future[types.OptimStepResponse]:
        """Apply the accumulated gradients, after every earlier call of this model.

        `optim_params` are the step's settings for the optimizer chosen at creation
        (`types.AdamParams`, or `types.DimuonParams`); `adam_params=` is the older keyword.
        """
        params = check_optim_params(optim_params, adam_params)
        build = optim_step_body(self.model_id, params)
        return self._enqueue("optim_step", "OptimStep", build, decoder(types.OptimStepResponse))

    # -- weights -----------------------------------------------------------------------------

    def save_state(
        self,
        name: str,
        ttl_seconds: int | None = None,
        overwrite: bool = False,
        user_metadata: dict[str, str] | None = None,
    ) -> Future[types.SaveWeightsResponse]:
        """Save weights and optimizer state as `tinker://<model_id>/weights/<name>`.

        `overwrite=True` replaces a checkpoint of that name (and its user_metadata).
        """
        extra: dict[str, Any] = {"user_metadata": user_metadata}
        if overwrite:
            extra["overwrite"] = True
        return self._save("weights", name, ttl_seconds, **extra)

    def _save(
        self, folder: str, name: str, ttl_seconds: int | None, **extra: Any
    ) -> Future[Any]:
        """Queue a save under `tinker://<model_id>/<folder>/<name>`; a 409 (the name exists:
        an earlier attempt of this very save landed) counts as done."""
        check_name(name)
        request_cls, response_cls, route, request_type = SAVES[folder]
        model_id = self.model_id
        build = json_body(
            lambda seq_id: request_cls(
                model_id=model_id, path=name, seq_id=seq_id, ttl_seconds=ttl_seconds, **extra
            )
        )
        landed = response_cls(path=f"tinker://{model_id}/{folder}/{name}", type=route)
        return self._enqueue(
            route, request_type, build, decoder(response_cls), on_conflict=lambda: landed
        )

    def _load(
        self, path: str, optimizer: bool, weights_access_token: str | None = None
    ) -> Future[types.LoadWeightsResponse]:
        if not isinstance(path, str) or not path.startswith("tinker://"):
            raise ValueError(
                f"path={path!r} is not a tinker path; pass 'tinker://<run>/weights/<name>'"
            )
        model_id = self.model_id

        build = json_body(
            lambda seq_id: types.LoadWeightsRequest(
                path=path,
                optimizer=optimizer,
                model_id=model_id,
                seq_id=seq_id,
                weights_access_token=weights_access_token,
            )
        )

        return self._enqueue(
            "load_weights", "LoadWeights", build, decoder(types.LoadWeightsResponse)
        )

    def load_state(
        self, path: str, weights_access_token: str | None = None
    ) -> Future[types.LoadWeightsResponse]:
        """Load weights from a checkpoint (optimizer state left as it is)."""
        return self._load(path, False, weights_access_token)

    def load_state_with_optimizer(
        self, path: str, weights_access_token: str | None = None
    ) -> Future[types.LoadWeightsResponse]:
        """Load weights and optimizer state from a checkpoint (wire field `optimizer`)."""
        return self._load(path, True, weights_access_token)

    def save_weights_for_sampler(
        self,
        name: str,
        ttl_seconds: int | None = None,
        user_metadata: dict[str, str] | None = None,
    ) -> Future[types.SaveWeightsForSamplerResponse]:
        """Save sampler weights as `tinker://<model_id>/sampler_weights/<name>`."""
        return self._save("sampler_weights", name, ttl_seconds, user_metadata=user_metadata)

    def save_weights_and_get_sampling_client(
        self,
        name: str | None = None,
        retry_config: RetryPolicy | None = None,
        record_stability_info: bool = False,
        kind: types.SamplingClientKind = "snapshot",
    ) -> ClientFuture[SamplingClient]:
        """Save the current weights for sampling; a future of the SamplingClient (usable as one).

        With no `name` the save is ephemeral, as officially: no checkpoint is kept, the server
        answers with a sampling session the new sampler uses at once. With a `name` (older
        SDKs' form) the weights are kept as `tinker://<model_id>/sampler_weights/<name>`.
        `kind="inflight"` publishes weights shared by this model's inflight samplers.
        """
        service = self._service
        if service is None:
            raise RuntimeError("this TrainingClient was built without a ServiceClient")
        check_retry_config(retry_config)
        if kind not in ("snapshot", "inflight"):
            raise ValueError(f"kind={kind!r}: use 'snapshot' (the default) or 'inflight'")
        options: dict[str, Any] = {
            "retry_config": retry_config,
            "record_stability_info": record_stability_info,
        }
        base_model = self._state.base_model
        if name is not None:
            saved = self.save_weights_for_sampler(name)
            return service._background(
                lambda: service._sampling_now(
                    model_path=saved.result().path, known_base_model=base_model, **options
                )
            )
        session_saved = self._save_ephemeral(next(service._sampler_seq), kind)
        return service._background(
            lambda: service._sampling_now(
                base_model=base_model, sampling_session_id=session_saved.result(), **options
            )
        )

    # -- information -------------------------------------------------------------------------

    def _simple(self, path: str, body: Any, kind: type[Any]) -> Future[Any]:
        future: Future[Any] = Future(request_type=kind.__name__)
        outcome = self._transport.submit(
            HttpRequest("POST", path, types.to_json(body), pool=PoolKind.TRAIN)
        )

        def done(f: Any) -> None:
            try:
                future.set_result(types.convert(f.result().json(), kind))
            except BaseException as exc:
                future.set_exception(exc)

        outcome.add_done_callback(done)
        return future

    def get_info(self) -> types.GetInfoResponse:
        """The model's base model, LoRA rank and tokenizer id (asked once, then remembered)."""
        info = self._info
        if info is None:
            request = types.GetInfoRequest(model_id=self.model_id)
            info = self._simple("get_info", request, types.GetInfoResponse).result(
                self._transport.config.timeout_s * 2
            )
            self._info = info
        return info

    def unload_model(self) -> Future[types.UnloadModelResponse]:
        """Free the model on the server once its queued work is done."""
        model_id = self.model_id

        build = json_body(
            lambda seq_id: {"model_id": model_id, "seq_id": seq_id, "type": "unload_model"}
        )

        return self._enqueue(
            "unload_model", "UnloadModel", build, decoder(types.UnloadModelResponse)
        )

    def get_tokenizer(self) -> Any:
        """The model's tokenizer: the byte tokenizer for the embedded server's byte models."""
        from tinkex_actors.tokenizer import get_tokenizer

        return get_tokenizer(self._state.base_model)

    # -- the *_async twins (official shape: awaiting one gives the Future) ----------------------

    async def forward_async(
        self,
        data: Sequence[types.Datum],
        loss_fn: str,
        loss_fn_config: Mapping[str, Any] | None = None,
    ) -> Future[types.ForwardBackwardOutput]:
        """`await` gives the Future of `forward` (then await it, or call `.result()`)."""
        return self.forward(data, loss_fn, loss_fn_config)

    async def forward_backward_async(
        self,
        data: Sequence[types.Datum],
        loss_fn: str,
        loss_fn_config: Mapping[str, Any] | None = None,
    ) -> Future[types.ForwardBackwardOutput]:
        """`await` gives the Future of `forward_backward`."""
        return self.forward_backward(data, loss_fn, loss_fn_config)

    async def forward_backward_custom_async(
        self,
        data: Sequence[types.Datum],
        loss_fn: CustomLossFn | LossHandle,
        *,
        loss_type_input: Literal["logprobs"] | None = None,
    ) -> Future[types.ForwardBackwardOutput]:
        """`await` gives the Future of `forward_backward_custom`."""
        return self.forward_backward_custom(data, loss_fn, loss_type_input=loss_type_input)

    async def optim_step_async(
        self,
        optim_params: types.OptimParams | None = None,
        *,
        adam_params: types.AdamParams | None = None,
    ) -> Future[types.OptimStepResponse]:
        """`await` gives the Future of `optim_step`."""
        return self.optim_step(optim_params, adam_params=adam_params)

    async def save_state_async(
        self,
        name: str,
        ttl_seconds: int | None = None,
        overwrite: bool = False,
        user_metadata: dict[str, str] | None = None,
    ) -> Future[types.SaveWeightsResponse]:
        """`await` gives the Future of `save_state`."""
        return self.save_state(name, ttl_seconds, overwrite, user_metadata)

    async def load_state_async(
        self, path: str, weights_access_token: str | None = None
    ) -> Future[types.LoadWeightsResponse]:
        """`await` gives the Future of `load_state`."""
        return self.load_state(path, weights_access_token)

    async def load_state_with_optimizer_async(
        self, path: str, weights_access_token: str | None = None
    ) -> Future[types.LoadWeightsResponse]:
        """`await` gives the Future of `load_state_with_optimizer`."""
        return self.load_state_with_optimizer(path, weights_access_token)

    async def save_weights_for_sampler_async(
        self,
        name: str,
        ttl_seconds: int | None = None,
        user_metadata: dict[str, str] | None = None,
    ) -> Future[types.SaveWeightsForSamplerResponse]:
        """`await` gives the Future of `save_weights_for_sampler`."""
        return self.save_weights_for_sampler(name, ttl_seconds, user_metadata)

    async def save_weights_and_get_sampling_client_async(
        self,
        name: str | None = None,
        retry_config: RetryPolicy | None = None,
        record_stability_info: bool = False,
        kind: types.SamplingClientKind = "snapshot",
    ) -> SamplingClient:
        """`await` gives the SamplingClient (as the official async twin does)."""
        client: SamplingClient = await self.save_weights_and_get_sampling_client(
            name, retry_config, record_stability_info, kind
        )
        return client

    async def get_info_async(self) -> types.GetInfoResponse:
        """`await` gives the model's info."""
        return self.get_info()

    async def unload_model_async(self) -> Future[types.UnloadModelResponse]:
        """`await` gives the Future of `unload_model`."""
        return self.unload_model()

    # -- the rest of the official 0.38 surface ----------------------------------------------------

    def _save_ephemeral(self, sampling_session_seq_id: int, kind: str) -> Future[str]:
        """Queue an ephemeral sampler save; a Future of the sampling session it opens."""
        model_id = self.model_id
        build = json_body(
            lambda seq_id: types.SaveWeightsForSamplerRequest(
                model_id=model_id,
                seq_id=seq_id,
                sampling_session_seq_id=sampling_session_seq_id,
                kind=kind,  # type: ignore[arg-type]
            )
        )
        return self._enqueue(
            "save_weights_for_sampler", "SaveWeightsForSampler", build, sampling_session_of
        )

    def create_sampling_client(
        self,
        model_path: str,
        retry_config: RetryPolicy | None = None,
        record_stability_info: bool = False,
    ) -> ClientFuture[SamplingClient]:
        """A sampler over saved weights (`tinker://...`), in this model's session."""
        if self._service is None:
            raise RuntimeError("this TrainingClient was built without a ServiceClient")
        return self._service.create_sampling_client(
            model_path, None, retry_config, record_stability_info
        )

    async def create_sampling_client_async(
        self,
        model_path: str,
        retry_config: RetryPolicy | None = None,
        record_stability_info: bool = False,
    ) -> SamplingClient:
        """`await` gives the SamplingClient of `create_sampling_client`."""
        client: SamplingClient = await self.create_sampling_client(
            model_path, retry_config, record_stability_info
        )
        return client

    def save_weights_external(
        self,
        name: str,
        ttl_seconds: int | None = None,
        age_encryption_recipients: list[str] | None = None,
    ) -> Future[types.SaveWeightsExternalResponse]:
        """Save the weights for download as `tinker://<model_id>/external_weights/<name>`
        (fetch them with `RestClient.get_external_weights_urls`)."""
        check_name(name)
        check_age_recipients(age_encryption_recipients)
        model_id = self.model_id
        build = json_body(
            lambda seq_id: types.SaveWeightsExternalRequest(
                model_id=model_id,
                path=name,
                seq_id=seq_id,
                ttl_seconds=ttl_seconds,
                age_encryption_recipients=age_encryption_recipients,
            )
        )
        response = types.SaveWeightsExternalResponse
        landed = response(path=f"tinker://{model_id}/external_weights/{name}")
        return self._enqueue(
            "save_weights_external",
            "SaveWeightsExternal",
            build,
            decoder(response),
            on_conflict=lambda: landed,
        )

    async def save_weights_external_async(
        self,
        name: str,
        ttl_seconds: int | None = None,
        age_encryption_recipients: list[str] | None = None,
    ) -> Future[types.SaveWeightsExternalResponse]:
        """`await` gives the Future of `save_weights_external`."""
        return self.save_weights_external(name, ttl_seconds, age_encryption_recipients)

    def get_console_url(self) -> str:
        """The console page of this training run."""
        return console_url("training_runs", self.model_id)

    def get_telemetry(self) -> Telemetry | None:
        """The session's telemetry handle (None when telemetry is off)."""
        return None if self._service is None else self._service.get_telemetry()
