"""The future endpoints: long polls of one future or of a sampling session's, and cancelling.

`retrieve_future` polls one future, `retrieve_futures` every future of a sampling session,
`cancel_future` fails pending ones as cancelled. A poll answers the result (JSON, or protobuf
when asked), the failure, or after `long_poll_timeout_s` a 408 `try_again` (200 with the
queue's state while a fault pauses it).
"""

from __future__ import annotations

from typing import Any

from tinkex_actors.local.http_messages import HTTPError, Request, Response, json_response
from tinkex_actors.local.request_body import body_of, need
from tinkex_actors.local.state import ServerState

__all__ = ["FutureEndpoints"]


class FutureEndpoints:
    """`retrieve_future`, `retrieve_futures` and `cancel_future`."""

    def __init__(self, state: ServerState) -> None:
        self.state = state

    async def retrieve_future(self, request: Request) -> Response:
        """`POST retrieve_future`: long-poll one future."""
        body = body_of(request)
        request_id = need(body, "request_id", str)
        record = await self.state.store.wait(request_id, self.state.settings.long_poll_timeout_s)
        if record is None:
            raise HTTPError(
                404,
                f"no future with request_id {request_id!r}: it never existed "
                "or its result expired; resubmit the request",
            )
        if record.state == "failed":
            return json_response({"error": record.error, "category": record.category})
        if record.state == "completed":
            if record.proto_result is not None and request.accepts_protobuf():
                return Response(200, record.proto_result, "application/x-protobuf")
            result = record.json_result
            return json_response(result() if callable(result) else result)
        kind = "sampling" if record.request_type == "Sample" else "training"
        pause = self.state.faults.pause_for(kind, record.owner)
        answer: dict[str, Any] = {
            "type": "try_again",
            "request_id": request_id,
            "queue_state": pause.state if pause else "active",
        }
        if pause is not None and pause.reason:
            answer["queue_state_reason"] = pause.reason
        if pause is not None:
            return json_response(answer)
        return json_response(answer, 408)

    async def retrieve_futures(self, request: Request) -> Response:
        """`POST retrieve_futures`: one long-poll for every future of a sampling session."""
        body = body_of(request)
        target = need(body, "target", dict)
        owner = need(target, "sampling_session_id", str)
        self.state.sampler(owner)
        self.state.store.ack(
            owner, [r for r in body.get("retrieved_request_ids") or [] if isinstance(r, str)]
        )
        timeout = body.get("timeout")
        long_poll_s = self.state.settings.long_poll_timeout_s
        timeout_s = long_poll_s if timeout is None else float(timeout)
        prev = body.get("prev_cursor")
        got = await self.state.store.wait_log(
            owner, prev if isinstance(prev, int) else None, min(timeout_s, long_poll_s)
        )
        if got is None:
            raise HTTPError(404, f"sampling session not found: {owner!r}")
        completions, cursor = got
        return json_response(
            {
                "cursor": cursor,
                "completions": [
                    {
                        "state": c.state,
                        "request_id": c.request_id,
                        **(
                            {"response_payload_uncompressed_size": c.payload_size}
                            if c.state == "finished" and c.payload_size is not None
                            else {}
                        ),
                    }
                    for c in completions
                ],
            }
        )

    async def cancel_future(self, request: Request) -> Response:
        """`POST cancel_future`: fail a pending sampling future as cancelled."""
        body = body_of(request)
        ids = body.get("request_ids") or [body.get("request_id")]
        for rid in ids:
            if isinstance(rid, str):
                self.state.store.fail(rid, "cancelled by the client", "user")
        return json_response({"status": "accepted"})
