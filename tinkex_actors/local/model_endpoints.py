"""Training models and their weights: create, describe, unload; save and load checkpoints.

`create_model` and `unload_model` answer futures; saves and loads queue behind the model's
earlier requests (in `seq_id` order, see `queueing.py`). Checkpoints are named
`tinker://<model_id>/weights/<name>` (weights and optimizer state), `.../sampler_weights/<name>`
and `.../external_weights/<name>` (see `storage.py`).
"""

from __future__ import annotations

import contextlib
import uuid
from typing import Any

from tinkex_actors.local.checks import is_integer
from tinkex_actors.local.engine import Job, ModelEntry
from tinkex_actors.local.http_messages import HTTPError, Request, Response, json_response
from tinkex_actors.local.model import LoraModel
from tinkex_actors.local.queueing import fail_if_scripted, future_answer, queue, refusing
from tinkex_actors.local.request_body import body_of, need, storage_errors
from tinkex_actors.local.state import ServerState
from tinkex_actors.local.storage import CheckpointKind, check_name, parse_tinker_path

__all__ = ["ModelEndpoints"]


class ModelEndpoints:
    """`create_model`, `get_info`, `unload_model`, `weights_info` and the weight endpoints."""

    def __init__(self, state: ServerState) -> None:
        self.state = state

    # -- models -----------------------------------------------------------------------------------

    async def create_model(self, request: Request) -> Response:
        """`POST create_model`: answers a future of `{model_id}`."""
        body = body_of(request)
        session = self.state.session(body.get("session_id"))
        model_seq_id = need(body, "model_seq_id", int)
        base_model = need(body, "base_model", str)
        lora = need(body, "lora_config", dict, optional=True) or {}
        if "rank" in lora and not is_integer(lora["rank"]):
            raise HTTPError(400, "field 'lora_config.rank' must be an integer")
        entry = self.state.new_model(
            session,
            model_seq_id,
            base_model,
            lora,
            need(body, "user_metadata", dict, optional=True),
            1,
        )
        record = self.state.store.create("CreateModel", entry.model_id)
        if not fail_if_scripted(self.state, request.path, record.request_id):
            self.state.store.complete(
                record.request_id, {"type": "create_model", "model_id": entry.model_id}
            )
        return future_answer(record.request_id, entry.model_id)

    async def get_info(self, request: Request) -> Response:
        """`POST get_info`."""
        entry = self.state.model(body_of(request).get("model_id"))
        return json_response(
            {
                "type": "get_info",
                "model_id": entry.model_id,
                "model_data": {
                    "arch": "byte-mlp",
                    "model_name": entry.base_model,
                    "tokenizer_id": entry.base_model,
                },
                "is_lora": True,
                "lora_rank": entry.model.rank,
                "model_name": entry.base_model,
            }
        )

    async def unload_model(self, request: Request) -> Response:
        """`POST unload_model`: a future of `{model_id}`; queued behind the model's work."""
        body = body_of(request)
        entry = self.state.model(body.get("model_id"))
        record = self.state.store.create("UnloadModel", entry.model_id)

        def unload() -> tuple[Any, bytes | None]:
            with self.state.lock:
                self.state.models.pop(entry.model_id, None)
            entry.worker.stop()
            return {"type": "unload_model", "model_id": entry.model_id}, None

        entry.worker.submit(body.get("seq_id"), record.request_id, unload)
        return future_answer(record.request_id, entry.model_id)

    async def weights_info(self, request: Request) -> Response:
        """`POST weights_info {tinker_path}`: the LoRA config a checkpoint was made with."""
        path = need(body_of(request), "tinker_path", str)
        with storage_errors():
            meta = self.state.storage.meta(path)
        lora = meta.get("lora", {})
        return json_response(
            {
                "base_model": meta.get("base_model"),
                "is_lora": True,
                "lora_rank": lora.get("rank"),
                "train_unembed": lora.get("train_unembed"),
                "train_mlp": lora.get("train_mlp"),
                "train_attn": lora.get("train_attn"),
            }
        )

    # -- weights ----------------------------------------------------------------------------------

    def _save(
        self,
        entry: ModelEntry,
        kind: CheckpointKind,
        name: str,
        answer_type: str,
        *,
        with_optimizer: bool,
        user_metadata: Any,
        ttl_seconds: int | None,
    ) -> Job:
        """The job saving the model's state as a `kind` checkpoint, answering its path."""

        def run() -> tuple[Any, bytes | None]:
            state = entry.model.state(include_optimizer=with_optimizer)
            meta = {
                "base_model": entry.base_model,
                "lora": entry.model.lora_config(),
                "user_metadata": user_metadata,
            }
            p = self.state.storage.save(
                entry.model_id, kind, name, state, meta, ttl_seconds=ttl_seconds
            )
            return {"type": answer_type, "path": p.tinker_path}, None

        return run

    async def save_weights(self, request: Request) -> Response:
        """`POST save_weights`: weights and optimizer state, as `tinker://<model>/weights/<name>`."""
        body = body_of(request)
        entry = self.state.model(body.get("model_id"))
        with refusing(entry, body.get("seq_id")):
            name = check_name(
                need(body, "path", str, optional=True) or f"ckpt-{uuid.uuid4().hex[:8]}"
            )
            ttl = need(body, "ttl_seconds", int, optional=True)
            metadata = need(body, "user_metadata", dict, optional=True)
        run = self._save(
            entry,
            "training",
            name,
            "save_weights",
            with_optimizer=True,
            user_metadata=metadata,
            ttl_seconds=ttl,
        )
        return queue(self.state, request, entry, body.get("seq_id"), "SaveWeights", run)

    async def save_weights_external(self, request: Request) -> Response:
        """`POST save_weights_external`: weights for download, `tinker://<m>/external_weights/<n>`."""
        body = body_of(request)
        entry = self.state.model(body.get("model_id"))
        with refusing(entry, body.get("seq_id")):
            name = check_name(need(body, "path", str))
            ttl = need(body, "ttl_seconds", int, optional=True)
            if body.get("age_encryption_recipients"):
                raise HTTPError(
                    400,
                    "field 'age_encryption_recipients' is not supported by the "
                    "embedded server; leave it out",
                )
        run = self._save(
            entry,
            "external",
            name,
            "save_weights_external",
            with_optimizer=False,
            user_metadata=None,
            ttl_seconds=ttl,
        )
        return queue(self.state, request, entry, body.get("seq_id"), "SaveWeightsExternal", run)

    async def save_weights_for_sampler(self, request: Request) -> Response:
        """`POST save_weights_for_sampler`: a sampler checkpoint, or an ephemeral sampler."""
        body = body_of(request)
        entry = self.state.model(body.get("model_id"))
        with refusing(entry, body.get("seq_id")):
            name = need(body, "path", str, optional=True)
            if name is not None:
                check_name(name)
            ttl = need(body, "ttl_seconds", int, optional=True)
            seq = need(body, "sampling_session_seq_id", int, optional=True)
            metadata = need(body, "user_metadata", dict, optional=True)
            if name is None and seq is None:
                raise HTTPError(
                    400,
                    "give 'path' (a checkpoint name) or 'sampling_session_seq_id' "
                    "(an ephemeral sampler)",
                )
        session = self.state.session(entry.session_id)

        def new_sampler() -> tuple[Any, bytes | None]:
            state = entry.model.state(include_optimizer=False)
            snapshot = LoraModel.from_state(state, with_optimizer=False)
            sid = self.state.add_sampler(session, seq, entry.base_model, None, snapshot)
            return {"type": "save_weights_for_sampler", "sampling_session_id": sid}, None

        run = new_sampler
        if name is not None:
            run = self._save(
                entry,
                "sampler",
                name,
                "save_weights_for_sampler",
                with_optimizer=False,
                user_metadata=metadata,
                ttl_seconds=ttl,
            )
        return queue(self.state, request, entry, body.get("seq_id"), "SaveWeightsForSampler", run)

    async def load_weights(self, request: Request) -> Response:
        """`POST load_weights`: into a model (model_id form) or a new one (session form)."""
        body = body_of(request)
        into = self.state.model(body["model_id"]) if body.get("model_id") is not None else None
        with contextlib.nullcontext() if into is None else refusing(into, body.get("seq_id")):
            path = need(body, "path", str)
            optimizer = bool(body.get("optimizer", False))
            with storage_errors():
                parse_tinker_path(path)
                meta = self.state.storage.meta(path)
            if optimizer and meta.get("checkpoint_type") != "training":
                raise HTTPError(
                    400,
                    f"{path} is a sampler checkpoint without optimizer state; "
                    "load a 'weights' checkpoint (save_state) instead",
                )
        if into is not None:
            entry = into
            seq_id = body.get("seq_id")
        else:
            session = self.state.session(body.get("session_id"))
            model_seq_id = need(body, "model_seq_id", int)
            lora = dict(meta.get("lora", {}))
            base = need(body, "base_model", str, optional=True) or meta.get("base_model", "")
            entry = self.state.new_model(
                session,
                model_seq_id,
                base,
                lora,
                need(body, "user_metadata", dict, optional=True),
                1,
            )
            seq_id = None

        def run() -> tuple[Any, bytes | None]:
            arrays, _ = self.state.storage.load(path)
            entry.model.load_state(arrays, with_optimizer=optimizer)
            return {"type": "load_weights", "path": path, "model_id": entry.model_id}, None

        return queue(self.state, request, entry, seq_id, "LoadWeights", run)
