"""Running a plan: start-all in priority order and stop-all in reverse, a thread pool per
wave, each worker on a connection of its own, one outcome per container."""

from __future__ import annotations

import threading
import time as _time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import wait as wait_all
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from .. import _libvirt
from .._outcome import outcome, report
from ..errors import (
    EXIT_ERROR,
    EXIT_OK,
    EXIT_PARTIAL,
    DaemonUnreachable,
    InvalidState,
    LxcvirtError,
    NotFound,
)
from ..host import (
    RECONNECT_WAIT,
    LifecycleWatch,
    deaths_since,
    init_gone,
    leave_shut_off,
    running_when_back,
    start_retries,
)
from ._boot import run_lock
from ._plan import Plan, plan
from ._settings import entries

if TYPE_CHECKING:
    from ..host import Host


#: Starts/stops at once within a wave, each on a connection of its own.  libvirtd has 20
#: workers by default; a destroy of a SIGTERM-ignoring container holds one ~1.8 s.
DEFAULT_PARALLEL = 10


# --- running a plan ------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """What happened to one container."""

    name: str
    action: str  # "start" | "stop" | "skip"
    result: str  # started, already running, failed, skipped, shut down, destroyed, ...
    ok: bool
    seconds: float = 0.0
    reason: str = ""
    priority: int = 0
    #: The run stopped waiting for it after its ``time`` and went on.
    went_on: bool = False
    #: The kind of error when it failed (as in lxcvirt.errors), "skipped" when skipped.
    error: str | None = None

    def to_dict(self) -> dict[str, object]:
        # A skip is said as the verb asked ("start"); why, in ``message``.
        action = "start" if self.action == "skip" else self.action
        return outcome(self.name, action, self.result, ok=self.ok, seconds=self.seconds,
                       error=self.error, message=self.reason, priority=self.priority,
                       went_on=self.went_on)


@dataclass(frozen=True)
class Report:
    action: str  # "start" | "stop"
    outcomes: tuple[Outcome, ...]
    notes: tuple[str, ...] = ()
    seconds: float = 0.0

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.ok]

    @property
    def exit_code(self) -> int:
        """0 all done, 2 some not, 1 none (nothing to do is success)."""
        bad = len(self.failed)
        if bad == 0:
            return EXIT_OK
        return EXIT_ERROR if bad == len(self.outcomes) else EXIT_PARTIAL

    def to_dict(self) -> dict[str, object]:
        return report(self.action, [o.to_dict() for o in self.outcomes],
                      seconds=self.seconds, notes=self.notes)


Progress = Callable[[Outcome], None]


class _Connections:
    """One connection per worker thread.

    libvirtd serves at most ``max_client_requests`` (default 5) calls of one client at a
    time, so threads sharing one connection queue behind each other in the daemon; seen
    here: ten parallel stops on one connection took as long as five.
    """

    def __init__(self, host: Host) -> None:
        self.uri = host.uri
        self.local = threading.local()
        self.made: list[Host] = []
        self.lock = threading.Lock()

    def host(self) -> Host:
        mine: Host | None = getattr(self.local, "host", None)
        if mine is None:
            from ..host import Host

            mine = Host(self.uri, preflight=lambda _h: None)
            self.local.host = mine
            with self.lock:
                self.made.append(mine)
        return mine

    def close(self) -> None:
        with self.lock:
            for h in self.made:
                h.close()
            self.made.clear()


class _Job:
    def __init__(self, name: str, priority: int) -> None:
        self.name = name
        self.priority = priority
        self.began = threading.Event()
        self.done = threading.Event()
        self.t_begin = 0.0
        self.t_end = 0.0
        self.outcome: Outcome | None = None

    def finish(self, outcome: Outcome, progress: Progress | None) -> None:
        self.t_end = _time.monotonic()
        self.outcome = outcome
        self.began.set()
        self.done.set()
        if progress is not None:
            progress(outcome)


def _first_line(exc: BaseException) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0]


def _settle_lost(uri: str, outcomes: Sequence[Outcome], lost: set[str],
                 want_running: bool) -> list[Outcome]:
    """Outcomes of the containers whose call lost the daemon, told from what runs once it
    is back: done after all, not done, or unknown (never "failed" for one that is as
    asked)."""
    deadline = _time.monotonic() + RECONNECT_WAIT
    out = []
    for o in outcomes:
        if o.name in lost:
            running = running_when_back(uri, o.name, deadline)
            why = "the connection to libvirtd was lost"
            if running is None:
                o = replace(o, result="unknown", ok=False,
                            reason=f"{why}, and it did not answer again; state unknown")
            elif running == want_running:
                done = "started" if want_running else "shut down"
                o = replace(o, result=done, ok=True, error=None,
                            reason=f"{why}; its state was read again once it answered")
            else:
                o = replace(o, reason=f"{why}; {o.reason}")
        out.append(o)
    return out


def start_all(
    host: Host,
    *,
    groups: Sequence[str] | None = None,
    ignore_auto: bool = False,
    parallel: int = DEFAULT_PARALLEL,
    timeout: float = 30.0,
    settle: float = 0.5,
    check: bool = True,
    lock: str | Path | None = None,
    progress: Progress | None = None,
    starter: Callable[[str], object] | None = None,
    wait: float = 0.0,
    on_plan: Callable[[int], None] | None = None,
) -> Report:
    """Start the autostart set in plan order; see the module docstring for the rules.

    Per container: wait for the ones it follows (skip it when one of them failed), start it
    (``timeout`` s at most for RUNNING), and when its ``time`` > 0 hold the next wave back
    until it runs or ``time`` s have passed.  Afterwards ``settle`` s more are watched for
    inits that exit at once.  ``starter`` replaces the start call (tests hold one back).
    """
    began = _time.monotonic()
    with run_lock(lock, uri=host.uri, wait=wait, what="start --all"):
        the_plan = plan(entries(host), groups=groups, ignore_auto=ignore_auto)
        if on_plan is not None:
            on_plan(len(the_plan.entries))
        if check and any(not e.running for e in the_plan.entries.values()):
            host.preflight()
        conns = _Connections(host)
        start = starter or (
            lambda n: conns.host().start(n, check=False, settle=0, timeout=timeout)
        )
        watch = LifecycleWatch(host.conn)
        lost: set[str] = set()
        try:
            outcomes = _run_start(host, the_plan, watch, start, max(1, parallel), settle,
                                  progress, lost)
        finally:
            watch.close()
            conns.close()
        if lost:
            outcomes = tuple(_settle_lost(host.uri, outcomes, lost, want_running=True))
    return Report("start", outcomes, the_plan.notes, _time.monotonic() - began)


def _run_start(
    host: Host, the_plan: Plan, watch: LifecycleWatch, start: Callable[[str], object],
    parallel: int, settle: float, progress: Progress | None, lost: set[str],
) -> tuple[Outcome, ...]:
    jobs: dict[str, _Job] = {}

    def run(job: _Job, deps: list[_Job]) -> None:
        for dep in deps:
            dep.done.wait()
            assert dep.outcome is not None
            why = ""
            if not dep.outcome.ok:
                what = "failed" if dep.outcome.result == "failed" else "was skipped"
                why = f"follows {dep.name}, which {what}"
            elif watch.died(dep.name, deaths_since(host.uri, dep.name, dep.t_begin)):
                why = f"follows {dep.name}, which stopped after it started"
            if why:
                job.finish(Outcome(job.name, "skip", "skipped", False, reason=why,
                                   priority=job.priority, error="skipped"), progress)
                return
        job.t_begin = _time.monotonic()
        job.began.set()
        try:
            start(job.name)
            outcome = Outcome(job.name, "start", "started", True, priority=job.priority,
                              reason=start_retries(host.uri, job.name))
        except InvalidState:
            outcome = Outcome(job.name, "skip", "already running", True, priority=job.priority)
        except DaemonUnreachable as exc:
            lost.add(job.name)  # told again from what runs once the daemon is back
            outcome = Outcome(job.name, "start", "failed", False, reason=_first_line(exc),
                              priority=job.priority, error=exc.kind)
        except LxcvirtError as exc:
            outcome = Outcome(job.name, "start", "failed", False, reason=_first_line(exc),
                              priority=job.priority, error=exc.kind)
        except Exception as exc:  # noqa: BLE001 - one container's bug must not stop the boot
            outcome = Outcome(job.name, "start", "failed", False,
                              reason=f"unexpected {type(exc).__name__}: {_first_line(exc)}",
                              priority=job.priority, error="internal")
        job.finish(replace(outcome, seconds=_time.monotonic() - job.t_begin), progress)

    went_on: set[str] = set()
    with ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="autostart") as pool:
        for wave in the_plan.waves:
            hold = []
            for name in wave.names:
                entry = the_plan.entries[name]
                job = jobs[name] = _Job(name, wave.priority)
                if entry.running:
                    job.finish(Outcome(name, "skip", "already running", True,
                                       priority=wave.priority), progress)
                    continue
                # The ones it follows are in earlier waves, so already in ``jobs``; FIFO
                # hand-out means they hold a worker or are done: no deadlock.
                pool.submit(run, job, [jobs[d] for d in the_plan.follows(name)])
                if entry.settings.time > 0:
                    hold.append((job, entry.settings.time))
            for job, seconds in hold:
                job.began.wait()
                if not job.done.wait(max(0.0, job.t_begin + seconds - _time.monotonic())):
                    went_on.add(job.name)
    started = [(n, j.t_begin) for n, j in jobs.items()
               if j.outcome is not None and j.outcome.result == "started"]
    if started and settle > 0:
        watch.wait_window(max(j.t_end for j in jobs.values()) + settle, started)
    out = []
    for name in the_plan.order():
        o = jobs[name].outcome
        assert o is not None
        # A death counts from the last start on (start() starts a container again when
        # libvirtd lost its monitor), whatever libvirt says of its state after.
        since = deaths_since(host.uri, name, jobs[name].t_begin)
        if o.result == "started" and (watch.died(name, since)
                                      or _active(host, name) is False
                                      or init_gone(host, name)):
            leave_shut_off(host, name)
            o = replace(o, result="failed", ok=False, error="start-failed", reason=(
                f"stopped right after it started (its init exited); see its log, "
                f"/var/log/libvirt/lxc/{name}.log"))
        out.append(replace(o, went_on=name in went_on))
    return tuple(out)


class _Together:
    """The stops of one chunk of a level ask their inits at the same moment.

    Once one init has exited, libvirtd takes the container down in steps of about 0.2 s,
    and every call that reaches it meanwhile (reading a definition, registering for
    events, sending a signal) waits for one: a stop still getting ready then asks its
    init 0.2 s late, and the level ends a step later (30 containers: about 0.2 s per
    level).  So each stop gets ready first, and all ask together.
    """

    #: Seconds one stop waits for the others of its chunk to be ready.
    WAIT = 2.0

    def __init__(self, parties: int) -> None:
        self.left = parties
        self.cond = threading.Condition()

    def member(self) -> _Member:
        return _Member(self)


class _Member:
    """One stop of a :class:`_Together`, counted once: when ready, or when over."""

    def __init__(self, group: _Together) -> None:
        self.group = group
        self.counted = False

    def arrive(self) -> None:
        """Ready to ask: wait (``_Together.WAIT`` s at most) for the others."""
        g = self.group
        with g.cond:
            self._count()
            g.cond.wait_for(lambda: g.left <= 0, g.WAIT)

    def leave(self) -> None:
        """This stop is over: count it, if it never arrived."""
        with self.group.cond:
            self._count()

    def _count(self) -> None:
        if not self.counted:
            self.counted = True
            self.group.left -= 1
            if self.group.left <= 0:
                self.group.cond.notify_all()


def _active(host: Host, name: str) -> bool | None:
    """Whether ``name`` runs; None when the daemon does not answer (not known)."""
    try:
        return bool(_libvirt.call(f"reading the state of {name}", host.domain(name).isActive))
    except NotFound:
        return False
    except DaemonUnreachable:
        return None


def stop_all(
    host: Host,
    *,
    groups: Sequence[str] | None = None,
    parallel: int = DEFAULT_PARALLEL,
    timeout: float = 30.0,
    lock: str | Path | None = None,
    progress: Progress | None = None,
    wait: float = 0.0,
    on_plan: Callable[[int], None] | None = None,
) -> Report:
    """Stop every running container (of ``groups``) in the reverse start order.

    Each wave in parallel: a graceful shutdown, destroyed after ``timeout`` s.  A container
    that fails to stop is reported and the rest go on.
    """
    began = _time.monotonic()
    with run_lock(lock, uri=host.uri, wait=wait, what="stop --all"):
        running = [e for e in entries(host) if e.running]
        the_plan = plan(running, groups=groups, ignore_auto=True).reversed()
        if on_plan is not None:
            on_plan(len(the_plan.entries))
        outcomes: dict[str, Outcome] = {}
        lost: set[str] = set()
        conns = _Connections(host)

        def run(name: str, priority: int, together: _Member) -> None:
            t0 = _time.monotonic()
            try:
                res = conns.host().stop(name, timeout=timeout, before_asking=together.arrive)
                o = Outcome(name, "stop", res.how, True, priority=priority)
            except DaemonUnreachable as exc:
                lost.add(name)
                o = Outcome(name, "stop", "failed", False, reason=_first_line(exc),
                            priority=priority, error=exc.kind)
            except LxcvirtError as exc:
                o = Outcome(name, "stop", "failed", False, reason=_first_line(exc),
                            priority=priority, error=exc.kind)
            except Exception as exc:  # noqa: BLE001 - keep stopping the others
                o = Outcome(name, "stop", "failed", False,
                            reason=f"unexpected {type(exc).__name__}: {_first_line(exc)}",
                            priority=priority, error="internal")
            finally:
                together.leave()  # a stop that ended before asking holds nobody back
            outcomes[name] = o = replace(o, seconds=_time.monotonic() - t0)
            if progress is not None:
                progress(o)

        width = max(1, parallel)
        try:
            with ThreadPoolExecutor(max_workers=width, thread_name_prefix="autostop") as pool:
                for wave in the_plan.waves:
                    futures = []
                    for i in range(0, len(wave.names), width):
                        chunk = wave.names[i:i + width]
                        together = _Together(len(chunk))
                        futures += [pool.submit(run, n, wave.priority, together.member())
                                    for n in chunk]
                    wait_all(futures)
        finally:
            conns.close()
    ordered = [outcomes[n] for n in the_plan.order()]
    if lost:
        ordered = _settle_lost(host.uri, ordered, lost, want_running=False)
    # The plan's notes are about waiting at start ("follows X, which ..."): not said here.
    return Report("stop", tuple(ordered), (), _time.monotonic() - began)
