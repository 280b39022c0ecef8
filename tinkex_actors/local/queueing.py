"""Answering with a future: queue a request's work on its model and answer `{request_id}`.

A queued request is answered at once with its future, which `retrieve_future` long-polls. A
training request carries a `seq_id`: the model applies its requests in that order, and a
`seq_id` sent again (a retry whose answer was lost) gets its first future back, never applied
twice. A `fail_future` fault armed for the path fails the new future at once.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from tinkex_actors.local.engine import Job, ModelEntry, UserError
from tinkex_actors.local.http_messages import HTTPError, Request, Response, json_response
from tinkex_actors.local.state import ServerState

__all__ = ["fail_if_scripted", "future_answer", "queue", "refusing"]


def future_answer(record_id: str, model_id: str | None = None, **extra: Any) -> Response:
    """The immediate answer of a queued request: its future."""
    out: dict[str, Any] = {"request_id": record_id}
    if model_id is not None:
        out["model_id"] = model_id
    out.update(extra)
    return json_response(out)


def fail_if_scripted(state: ServerState, path: str, request_id: str) -> bool:
    """Fail a new future now if a `fail_future` fault is armed for this path."""
    fault = state.faults.take(path, ("fail_future",))
    if fault is None:
        return False
    state.store.fail(request_id, fault.error, fault.category)
    return True


@contextlib.contextmanager
def refusing(entry: ModelEntry, seq_id: Any) -> Iterator[None]:
    """Count `seq_id` as used when the request is refused inside this block.

    Without this a refused request would leave a hole in the model's seq_id order, and the
    next good request would wait `gap_timeout_s` for a request that never comes.
    """
    try:
        yield
    except BaseException:
        if isinstance(seq_id, int) and not isinstance(seq_id, bool):
            entry.worker.consume(seq_id)
        raise


def queue(
    state: ServerState,
    request: Request,
    entry: ModelEntry,
    seq_id: Any,
    request_type: str,
    job: Job,
) -> Response:
    """Queue `job` on the model's worker at `seq_id` and answer its future."""
    if seq_id is not None and (isinstance(seq_id, bool) or not isinstance(seq_id, int)):
        raise HTTPError(400, "field 'seq_id' must be an integer")
    if seq_id is not None:
        known = entry.worker.known(seq_id)
        if known is not None:
            # The same step sent again (a retry whose answer was lost): never apply twice.
            return future_answer(known, entry.model_id)
    record = state.store.create(request_type, entry.model_id)
    if fail_if_scripted(state, request.path, record.request_id):
        if seq_id is not None:
            entry.worker.consume(seq_id)
        return future_answer(record.request_id, entry.model_id)
    try:
        entry.worker.submit(seq_id, record.request_id, job)
    except UserError as exc:
        raise HTTPError(400, str(exc)) from exc
    return future_answer(record.request_id, entry.model_id)
