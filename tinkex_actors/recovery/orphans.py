"""No orphan models: after a creating call whose answer may have been lost, find the models of
the session this client does not know, and unload them (DESIGN.md section 4b).

A `create_model` retried after a lost answer may have landed twice on a server that does not
dedupe by idempotency key: the answer we got names one model, the first attempt made another
that nobody will ever use or unload. A server that refuses the repeated `model_seq_id` (409)
answers nothing we can use either, although our model exists. Both are settled with the public
protocol only: `GET sessions/{id}` lists the session's models (`training_run_ids`); every one
this client neither knows nor was just answered is the lost attempt's. Creates of one client are
serialized while this runs, so a sibling being created is never mistaken for an orphan.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import msgspec

from supervisors.library_logging import get_logger
from tinkex_actors.config import PoolKind
from tinkex_actors.errors import APIStatusError
from tinkex_actors.futures.poll_ledger import PollSpec
from tinkex_actors.futures.poller_pool import PollerPool
from tinkex_actors.transport.blocking_call import call_json
from tinkex_actors.transport.messages import HttpRequest
from tinkex_actors.transport.retry import ProgressTracker
from tinkex_actors.transport.transport import Transport

__all__ = ["session_models", "unload_orphans"]

_log = get_logger("tinkex_actors.recovery.orphans")

UNLOAD_WAIT_S = 30.0
"""How long the creating call waits for an orphan's unload to be confirmed."""


def session_models(transport: Transport, session_id: str, wait_s: float) -> list[str]:
    """The model ids the server lists for the session (`GET sessions/{id}`)."""
    request = HttpRequest("GET", f"sessions/{session_id}", pool=PoolKind.SESSION)
    listing = call_json(transport, request, wait_s)
    return [str(model_id) for model_id in listing.get("training_run_ids") or ()]


def unload_orphans(
    transport: Transport,
    pollers: PollerPool,
    session_id: str,
    known: Collection[str],
    *,
    progress: ProgressTracker | None,
    wait_s: float,
) -> list[str]:
    """Unload every model of the session not in `known`; returns their ids."""
    orphans = [m for m in session_models(transport, session_id, wait_s) if m not in known]
    for model_id in orphans:
        _unload(transport, pollers, model_id, progress)
    return orphans


def _unload(
    transport: Transport, pollers: PollerPool, model_id: str, progress: ProgressTracker | None
) -> None:
    # Nothing was ever sent to an orphan: its first request carries seq_id 1.
    body = msgspec.json.encode({"model_id": model_id, "seq_id": 1, "type": "unload_model"})
    try:
        answer: Any = call_json(
            transport, HttpRequest("POST", "unload_model", body, pool=PoolKind.TRAIN), UNLOAD_WAIT_S
        )
        if "request_id" in answer:
            pollers.track(
                PollSpec(
                    request_id=answer["request_id"], request_type="UnloadModel", progress=progress
                )
            ).result(UNLOAD_WAIT_S)
    except APIStatusError as exc:
        if exc.status_code not in (404, 410):  # already gone counts as unloaded
            raise
    _log.warning(
        "orphan_model_unloaded",
        model_id=model_id,
        message=f"model {model_id} was created by a retried create_model whose first answer "
        "was lost; it is unloaded",
    )
