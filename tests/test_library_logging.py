"""Library logging: quiet unless the application configured structlog or logging."""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Iterator

import pytest
import structlog

from supervisors._logging import get_logger


@pytest.fixture
def unconfigured_structlog() -> Iterator[None]:
    """structlog as a fresh process has it (not configured), restored afterwards."""
    was_configured = structlog.is_configured()
    saved = structlog.get_config()
    structlog.reset_defaults()
    yield
    if was_configured:
        structlog.configure(**saved)
    else:
        structlog.reset_defaults()


class TestWhereEventsGo:
    def test_unconfigured_structlog_sends_events_to_stdlib_logging_with_their_fields(
        self, unconfigured_structlog: None, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A warning reaches the stdlib logger of the same name as 'event key=value'."""
        with caplog.at_level(logging.WARNING, logger="tinkex_actors.test"):
            get_logger("tinkex_actors.test").warning("queue_paused", sampler="s-1", n=2)
            get_logger("tinkex_actors.test").info("child_started", child="x")
        assert [(r.name, r.levelno, r.getMessage()) for r in caplog.records] == [
            ("tinkex_actors.test", logging.WARNING, "queue_paused sampler='s-1' n=2")
        ]

    def test_exception_carries_the_traceback_to_stdlib_logging(
        self, unconfigured_structlog: None, caplog: pytest.LogCaptureFixture
    ) -> None:
        """log.exception inside an except block records the exception."""
        with caplog.at_level(logging.ERROR, logger="supervisors"):
            try:
                raise KeyError("boom")
            except KeyError:
                get_logger("supervisors").exception("terminate_failed", process="p")
        assert caplog.records[0].exc_info is not None
        assert caplog.records[0].exc_info[0] is KeyError

    def test_configured_structlog_gets_the_events_with_their_fields(self) -> None:
        """Once structlog is configured (here by capture_logs), events go through it."""
        with structlog.testing.capture_logs() as logs:
            get_logger("tinkex_actors.test").info("child_started", child="x")
        assert logs == [{"event": "child_started", "child": "x", "log_level": "info"}]

    def test_a_client_session_prints_nothing_in_a_program_that_set_no_logging(self) -> None:
        """Start the embedded server, open a session, train a step, close: nothing on
        stdout or stderr (a library says nothing unasked)."""
        program = (
            "from tinkex_actors import ServiceClient, types\n"
            "with ServiceClient() as sc:\n"
            "    tc = sc.create_lora_training_client('tiny-byte-lm', rank=2).result(60)\n"
            "    d = types.Datum(model_input=types.ModelInput.from_ints([1, 2, 3]),\n"
            "                    loss_fn_inputs={'target_tokens': [2, 3, 4]})\n"
            "    tc.forward_backward([d], 'cross_entropy').result(60)\n"
        )
        env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("TINKER")}
        done = subprocess.run(
            [sys.executable, "-c", program], capture_output=True, text=True, timeout=120, env=env
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout == ""
        assert done.stderr == ""
