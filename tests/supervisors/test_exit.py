"""A program that never stops its supervision tree still exits when its main thread ends."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

EXIT_WITHIN_S = 3.0

SCRIPT = textwrap.dedent(
    """
    import threading
    import time

    import pykka

    import supervisors as sv


    class Echo(sv.Process):
        def on_receive(self, message):
            return message


    class PooledEcho(Echo):
        pooled = True


    class Plain(pykka.ThreadingActor):
        use_daemon_thread = True  # a plain child: the supervisor watches it with a thread


    top = sv.Supervisor.start(
        [
            sv.ChildSpec(id="echo", start=Echo.start, name="echo"),
            sv.ChildSpec(id="plain", start=Plain.start),
            sv.ChildSpec(id="dyn", start=sv.DynamicSupervisor.start, type="supervisor"),
            sv.ChildSpec(id="tasks", start=sv.TaskSupervisor.start, type="supervisor"),
        ],
        strategy="one_for_all",
    )
    children = {c.id: c.ref for c in sv.which_children(top)}
    for i in range(4):
        sv.start_child(children["dyn"], sv.ChildSpec(id=i, start=PooledEcho.start))
    assert sv.SupervisedRef("echo").ask("hi", timeout=5.0) == "hi"
    sv.send_interval(0.01, sv.SupervisedRef("echo"), "tick")
    sv.send_after(60.0, children["echo"], "late")
    assert sv.run(children["tasks"], lambda: 42).get(timeout=5.0) == 42
    sv.run(children["tasks"], threading.Event().wait, 60.0)  # a task still running at exit
    holders = [
        t.name for t in threading.enumerate()
        if not t.daemon and t is not threading.main_thread()
    ]
    print("non-daemon threads:", holders)
    print("main ends at", time.monotonic(), flush=True)
    """
)


class TestExitWithoutStop:
    """Every thread the package starts is a daemon thread."""

    def test_a_script_that_never_stops_its_tree_exits_promptly(self):
        """Children, pooled processes, timers, watchers and a running task: exit in seconds."""
        proc = subprocess.Popen(
            [sys.executable, "-c", SCRIPT],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            out, err = proc.communicate(timeout=30)
        finally:
            proc.kill()
        exited_at = time.monotonic()
        assert proc.returncode == 0, err
        assert "Traceback" not in err
        lines = out.splitlines()
        assert lines[0] == "non-daemon threads: []"
        main_ended_at = float(lines[1].removeprefix("main ends at "))
        assert exited_at - main_ended_at < EXIT_WITHIN_S
