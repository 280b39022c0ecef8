"""Small helpers shared by the package's actors and the handles that talk to them."""

from __future__ import annotations

from typing import Any

from pykka import ActorDeadError, ActorRef

from supervisors import SupervisedRef


def tell_quietly(ref: ActorRef[Any], message: Any) -> bool:
    """Tell `ref`, or drop the message if the actor is gone (its successor adopts the work
    from state kept outside the actor); returns whether it was delivered."""
    try:
        ref.tell(message)
    except ActorDeadError:
        return False
    return True


def current_ref(actor: SupervisedRef | ActorRef[Any], timeout_s: float) -> ActorRef[Any]:
    """The live incarnation behind `actor`: a supervised process's current ref, waiting up to
    `timeout_s` while it restarts (`ActorDeadError` past that), or `actor` itself."""
    return actor.resolve(timeout_s) if isinstance(actor, SupervisedRef) else actor
