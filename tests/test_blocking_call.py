"""The one blocking call and the `client/config` handshake, against a transport stand-in."""

from __future__ import annotations

import concurrent.futures

from tinkex_actors.clients.handshake import fetch_client_flags
from tinkex_actors.config import ClientFlags, PoolKind
from tinkex_actors.errors import APIConnectionError
from tinkex_actors.restart_intensity import CLIENT_TREE_RESTARTS
from tinkex_actors.transport.blocking_call import call, call_json
from tinkex_actors.transport.retry import ProgressTracker


class _Answer:
    def __init__(self, body):
        self.body = body

    def json(self):
        return self.body


class _Transport:
    """Records what is submitted; answers with `body`, or fails with `error`."""

    def __init__(self, body=None, error=None):
        self.body, self.error, self.sent = body, error, []

    def submit(self, request, **options):
        self.sent.append((request, options))
        future = concurrent.futures.Future()
        if self.error is not None:
            future.set_exception(self.error)
        else:
            future.set_result(_Answer(self.body))
        return future


def test_call_json_decodes_the_answer_and_passes_progress_only_when_given():
    """`call_json` returns the body; a progress tracker reaches the transport when given."""
    from tinkex_actors.transport.messages import HttpRequest

    transport = _Transport({"ok": 1})
    request = HttpRequest("GET", "get_server_capabilities")
    assert call_json(transport, request, 1.0) == {"ok": 1}
    progress = ProgressTracker()
    assert call(transport, request, 1.0, progress=progress).json() == {"ok": 1}
    assert transport.sent == [(request, {}), (request, {"progress": progress})]


def test_the_handshake_asks_on_the_session_pool():
    """`fetch_client_flags` posts `client/config` on the session pool and reads the flags."""
    transport = _Transport({})
    assert fetch_client_flags(transport, 1.0) == ClientFlags.from_mapping({})
    (request, _), = transport.sent
    assert (request.method, request.path, request.pool) == (
        "POST",
        "/api/v1/client/config",
        PoolKind.SESSION,
    )


def test_the_handshake_falls_back_to_the_defaults():
    """A server that cannot be reached leaves every flag at its default."""
    transport = _Transport(error=APIConnectionError("unreachable"))
    assert fetch_client_flags(transport, 1.0) == ClientFlags()


def test_the_tree_restart_intensity_as_supervisor_options():
    """The intensity is handed to a supervisor as its two keyword arguments."""
    assert CLIENT_TREE_RESTARTS.options() == {"max_restarts": 10, "max_seconds": 10.0}
