"""Small helpers shared by the client actors."""

from __future__ import annotations

from typing import Any

from pykka import ActorDeadError, ActorRef


def tell_quietly(ref: ActorRef[Any], message: Any) -> bool:
    """Tell `ref`, or drop the message if the actor is gone (its successor adopts the work
    from state kept outside the actor); returns whether it was delivered."""
    try:
        ref.tell(message)
    except ActorDeadError:
        return False
    return True
