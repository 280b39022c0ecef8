"""The recovery policy's validation and the bounded operation log (no server needed)."""

from __future__ import annotations

from typing import Any

import pytest

from tinkex_actors import RecoveryPolicy, ServiceClient
from tinkex_actors.errors import (
    APIStatusError,
    ClientClosedError,
    ConnectionLostError,
    NotFoundError,
    RecoveryFailedError,
    SessionExpiredError,
)
from tinkex_actors.futures.future import Future
from tinkex_actors.recovery.log import OpKind, OpLog
from tinkex_actors.recovery.session_recovery import is_session_loss


def _record(log: OpLog, kind: OpKind, size: int = 10) -> Any:
    return log.record(kind, "m", ("payload",), {}, Future(request_type="T"), size)


class TestRecoveryPolicy:
    def test_defaults_are_valid(self) -> None:
        """The default policy checkpoints every 10 steps within a quarter GiB, 3 attempts."""
        policy = RecoveryPolicy()
        assert (policy.checkpoint_every_steps, policy.max_attempts) == (10, 3)
        assert policy.max_log_bytes == 256 * 2**20

    @pytest.mark.parametrize(
        ("field", "value"),
        [
            ("checkpoint_every_steps", 0),
            ("checkpoint_every_steps", 2.5),
            ("max_log_bytes", -1),
            ("max_attempts", True),
            ("checkpoint_prefix", "a/b"),
        ],
    )
    def test_bad_value_names_the_field(self, field: str, value: object) -> None:
        """A bad knob is refused with its name in the message."""
        with pytest.raises(ValueError, match=f"RecoveryPolicy.{field}"):
            RecoveryPolicy(**{field: value})  # type: ignore[arg-type]


    def test_service_client_refuses_a_non_policy(self) -> None:
        """ServiceClient(recovery=...) takes a RecoveryPolicy or None, and says so."""
        with pytest.raises(TypeError, match="recovery is a dict"):
            ServiceClient(base_url="http://127.0.0.1:9", api_key="tml-x", recovery={})  # type: ignore[arg-type]


class TestOpLog:
    def test_save_after_step_is_a_checkpoint(self) -> None:
        """A save right after an optim_step is a checkpoint; one after a forward is not."""
        log = OpLog(max_bytes=1000, checkpoint_every_steps=5)
        _record(log, "op")
        assert _record(log, "save").kind == "save"
        _record(log, "step")
        assert _record(log, "save").kind == "checkpoint"

    def test_checkpoint_due_every_n_steps(self) -> None:
        """An automatic checkpoint is due after every N-th step, not after other ops."""
        log = OpLog(max_bytes=1000, checkpoint_every_steps=2)
        _record(log, "step")
        assert not log.checkpoint_due()
        _record(log, "step")
        assert log.checkpoint_due()
        _record(log, "op")
        assert not log.checkpoint_due()

    def test_landed_checkpoint_trims_once_earlier_ops_settled(self) -> None:
        """The log is trimmed at a landed checkpoint only when every op before it settled."""
        log = OpLog(max_bytes=1000, checkpoint_every_steps=1)
        fb = _record(log, "op")
        _record(log, "step").future.set_result("s")
        cp = _record(log, "save")
        after = _record(log, "op")
        cp.future.set_result("p")
        log.landed(cp, "tinker://m/weights/cp1")
        assert log.checkpoint_path is None, "an op before the checkpoint is still pending"
        fb.future.set_result("fb")
        assert log.advance()
        assert log.ops() == [after]
        assert (log.checkpoint_path, log.safe_step, log.bytes) == ("tinker://m/weights/cp1", 1, 10)

    def test_older_checkpoint_never_replaces_a_newer_one(self) -> None:
        """A checkpoint landing after a later one was adopted is ignored."""
        log = OpLog(max_bytes=1000, checkpoint_every_steps=1)
        _record(log, "step").future.set_result(1)
        first = _record(log, "save")
        _record(log, "step").future.set_result(2)
        second = _record(log, "save")
        first.future.set_result(1)
        second.future.set_result(2)
        log.landed(second, "tinker://m/weights/2")
        log.landed(first, "tinker://m/weights/1")
        assert (log.checkpoint_path, log.safe_step, log.ops()) == ("tinker://m/weights/2", 2, [])

    def test_over_budget_drops_payloads_until_next_checkpoint(self) -> None:
        """Past max_log_bytes the payloads go, a checkpoint is forced at the next step, and
        the model is recoverable again once that checkpoint lands."""
        log = OpLog(max_bytes=100, checkpoint_every_steps=50)
        early = _record(log, "op", size=60)
        _record(log, "op", size=60)
        assert log.overflowed and early.args is None and log.bytes == 0
        assert log.unrecoverable() is not None and "max_log_bytes=100" in str(log.unrecoverable())
        step = _record(log, "step")
        assert step.args is None and log.checkpoint_due()
        cp = _record(log, "save")
        log.checkpoint_taken()
        later = _record(log, "op", size=30)
        assert later.args == ("payload",) and log.bytes == 10 + 30  # the checkpoint, then it
        for op in log.ops()[:-1]:
            op.future.set_result(None)
        log.landed(cp, "tinker://m/weights/forced")
        assert log.unrecoverable() is None and log.ops() == [later]

    def test_fail_unsettled_fails_each_future_once(self) -> None:
        """Giving up fails only the futures not settled; a settled one keeps its result."""
        log = OpLog(max_bytes=1000, checkpoint_every_steps=5)
        done = _record(log, "op")
        done.future.set_result("kept")
        pending = _record(log, "op")
        error = RecoveryFailedError("gone", last_safe_step=3, checkpoint_path="tinker://x")
        assert log.fail_unsettled(lambda: error) == 1
        assert log.fail_unsettled(lambda: error) == 0
        assert done.future.result(0) == "kept" and pending.future.exception(0) is error


class TestSessionLoss:
    @pytest.mark.parametrize(
        ("error", "lost"),
        [
            (SessionExpiredError("expired"), True),
            (ConnectionLostError("gone"), True),
            (NotFoundError("404", status_code=404, body={"detail": "model not found: 'm'"}), True),
            (APIStatusError("410", status_code=410, body={"detail": "expired"}), True),
            (
                NotFoundError(
                    "404", status_code=404, body={"detail": "checkpoint tinker://m/w/x missing"}
                ),
                False,
            ),
            (APIStatusError("400", status_code=400, body={}), False),
            (ClientClosedError("closed"), False),
            (RecoveryFailedError("failed"), False),
        ],
    )
    def test_which_errors_are_a_lost_session(self, error: BaseException, lost: bool) -> None:
        """Lost session, model or future: recoverable; the caller's bad path or a close: not."""
        assert is_session_loss(error) is lost
