"""OTP-style supervision for pykka actors.

This package knows nothing of Tinker: it offers synchronous start, exit reasons, monitors and
links, child specs, supervisors with restart strategies and intensity, dynamic supervisors, a
registry and timers, for any pykka application. Each module's docstring lists where it differs
from Erlang/OTP; the largest difference is that Python cannot kill a thread, so "kill" means
*abandon* (see ``Killed``).

Every thread the package starts (process threads, pool workers, the timer thread, watchers of
plain pykka actors) is a daemon thread: a program that never stops its tree still exits when
its main thread ends. It uses pykka's public API and the extension points pykka documents for
new actor types only, and patches nothing of pykka (``_process`` and ``_ref`` say how).

A tree in a few lines::

    import supervisors as sv

    class Counter(sv.Process):
        def init(self) -> None:
            self.count = 0

        def on_receive(self, message: object) -> object:
            self.count += 1
            return self.count

    top = sv.Supervisor.start(
        [sv.ChildSpec(id="counter", start=Counter.start, name="counter")],
        strategy="one_for_one",
    )
    counter = sv.SupervisedRef("counter")  # survives restarts of the Counter
    counter.ask("hit", timeout=5.0)
    sv.stop(top, timeout_s=10.0)  # children stop right to left, then the supervisor
"""

from __future__ import annotations

from supervisors._process import Process, StopRequest, kill, stop
from supervisors._reasons import (
    REACHED_MAX_RESTART_INTENSITY,
    Crashed,
    ExitReason,
    Killed,
    NoProc,
    Normal,
    Shutdown,
    StartError,
    Unknown,
)
from supervisors.dynamic import DynamicSupervisor, MaxChildrenError
from supervisors.library_logging import LibraryLogger, get_logger
from supervisors.monitor import Down, Exit, MonitorRef, demonitor, link, monitor, trap_exits, unlink
from supervisors.registry import AlreadyRegisteredError, Registry, SupervisedRef, default_registry
from supervisors.scheduler import Scheduler, default_scheduler
from supervisors.spec import BRUTAL_KILL, ChildSpec, ChildType, Restart
from supervisors.supervisor import (
    ChildInfo,
    ChildStateError,
    Strategy,
    Supervisor,
    count_children,
    delete_child,
    get_childspec,
    restart_child,
    start_child,
    terminate_child,
    which_children,
)
from supervisors.tasks import TaskSupervisor, map_unordered, run
from supervisors.timers import (
    Clock,
    Timer,
    TimerService,
    cancel,
    default_timer_service,
    send_after,
    send_interval,
)

__all__ = [
    "BRUTAL_KILL",
    "REACHED_MAX_RESTART_INTENSITY",
    "AlreadyRegisteredError",
    "ChildInfo",
    "ChildSpec",
    "ChildStateError",
    "ChildType",
    "Clock",
    "Crashed",
    "Down",
    "DynamicSupervisor",
    "Exit",
    "ExitReason",
    "Killed",
    "LibraryLogger",
    "MaxChildrenError",
    "MonitorRef",
    "NoProc",
    "Normal",
    "Process",
    "Registry",
    "Restart",
    "Scheduler",
    "Shutdown",
    "StartError",
    "StopRequest",
    "Strategy",
    "SupervisedRef",
    "Supervisor",
    "TaskSupervisor",
    "Timer",
    "TimerService",
    "Unknown",
    "cancel",
    "count_children",
    "default_registry",
    "default_scheduler",
    "default_timer_service",
    "delete_child",
    "demonitor",
    "get_childspec",
    "get_logger",
    "kill",
    "link",
    "map_unordered",
    "monitor",
    "restart_child",
    "run",
    "send_after",
    "send_interval",
    "start_child",
    "stop",
    "terminate_child",
    "trap_exits",
    "unlink",
    "which_children",
]
