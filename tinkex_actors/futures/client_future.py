"""ClientFuture: what a creation method returns, a Future of a client usable as the client.

`service.create_lora_training_client(...)` can be used as the client directly (older code),
`.result()`-ed (official 0.38) or awaited: attribute access on the future waits for the client
and forwards to it. Creations run on a thread of their own (`in_background`), never on an
actor's mailbox.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from tinkex_actors.futures.future import Future

__all__ = ["ClientFuture", "in_background", "settle_from"]

T = TypeVar("T")


class ClientFuture(Future[T], Generic[T]):
    """A Future of a client that can also be used as the client itself (waiting for it)."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.result(), name)


def settle_from(future: Future[T], fn: Callable[[], T]) -> None:
    """Settle `future` with what `fn()` returns, or with what it raises."""
    try:
        future.set_result(fn())
    except BaseException as exc:
        future.set_exception(exc)


def in_background(fn: Callable[[], T]) -> ClientFuture[T]:
    """Run the creation `fn` on a daemon thread of its own; the ClientFuture of its client."""
    future: ClientFuture[T] = ClientFuture(request_type="CreateClient")
    threading.Thread(
        target=settle_from, args=(future, fn), daemon=True, name="tinkex-create-client"
    ).start()
    return future
