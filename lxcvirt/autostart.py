"""Autostart: settings that travel inside the domain, an ordered start-all and stop-all.

Containers carry their own settings (:class:`~lxcvirt.spec.Autostart`) in lxcvirt's
``<metadata>`` element, so a ``dumpxml`` / ``define`` to another host keeps them; libvirt's
own autostart flag is a symlink under /etc/libvirt that stays behind and has no order.

The pieces, in data-path order::

    get / update / erase      libvirt's metadata API (virDomain{Get,Set}Metadata), keyed
                              by our namespace URI, on the persistent config and, while
                              the container runs, the live one too
    entries(host)             every container with its settings and whether it runs
    plan(entries, ...)        pure (lxcvirt._autoplan): select, order, cut into waves
    start_all / stop_all      run a plan under a lock, a thread pool per wave
    import_libvirt_autostart  take over libvirt's own flag

``time``: when > 0, the run waits up to that long for the container to be RUNNING before
it starts the next wave; 0 means it does not wait, so the next wave's starts are begun
right after (in order) and may overlap.  ``after`` always waits for the start of the one
followed to succeed, and skips the follower when it did not.
"""

from __future__ import annotations

import os
import threading
import time as _time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import libvirt

from . import _libvirt
from ._autoplan import Entry, Plan, Wave, find_cycle, plan, settings_dict
from ._libvirt import Domain
from ._pidlock import PidLock
from .errors import (
    EXIT_ERROR,
    EXIT_OK,
    EXIT_PARTIAL,
    InvalidState,
    LockHeld,
    LxcvirtError,
    NotFound,
    SpecError,
    XMLError,
)
from .host import LifecycleWatch
from .spec import METADATA_NS, Autostart, check_name

__all__ = [
    "DEFAULT_PARALLEL", "BootSwitch", "Entry", "Imported", "Outcome", "Plan", "Report",
    "SetResult", "Wave", "boot_switch", "entries", "erase", "find_cycle", "get",
    "import_libvirt_autostart", "plan", "run_lock", "settings_dict", "start_all", "stop_all",
    "update",
]

if TYPE_CHECKING:
    from .host import Host

DEFAULT_LOCK = Path("/run/lxcvirt/autostart.lock")
LOCK_ENV = "LXCVIRT_AUTOSTART_LOCK"
#: Starts/stops at once within a wave, each on a connection of its own.  libvirtd has 20
#: workers by default; a destroy of a SIGTERM-ignoring container holds one ~1.8 s.
DEFAULT_PARALLEL = 10

_Q = "{" + METADATA_NS + "}"
_NO_METADATA = getattr(libvirt, "VIR_ERR_NO_DOMAIN_METADATA", 80)
_META = libvirt.VIR_DOMAIN_METADATA_ELEMENT
_CONFIG = libvirt.VIR_DOMAIN_AFFECT_CONFIG
_LIVE = libvirt.VIR_DOMAIN_AFFECT_LIVE


# --- settings through the metadata API ---------------------------------------------------
# libvirt hands our element back without its namespace and wants it that way on input
# (it adds xmlns itself from the uri and key arguments; a declaration of our own makes
# virDomainSetMetadata fail with "failed to create a new XML namespace").


def _qualify(root: Any) -> Any:
    for el in root.iter():
        if isinstance(el.tag, str) and not el.tag.startswith("{"):
            el.tag = _Q + el.tag
    return root


def _unqualified_text(root: Any) -> str:
    from copy import deepcopy

    from lxml import etree

    copy = deepcopy(root)
    for el in copy.iter():
        if isinstance(el.tag, str) and el.tag.startswith(_Q):
            el.tag = el.tag[len(_Q):]
    etree.cleanup_namespaces(copy)
    return str(etree.tostring(copy, encoding="unicode"))


def _read_element(dom: Domain, name: str, flags: int) -> Any | None:
    """Our ``<container>`` element (namespaced again), or None when the domain has none."""
    from ._xml import parse_xml

    try:
        with _libvirt.converted(f"reading the autostart settings of {name}"):
            text = dom.metadata(_META, METADATA_NS, flags)
    except NotFound as exc:
        if exc.code == _NO_METADATA:
            return None
        raise
    return _qualify(parse_xml(text, f"{name}: lxcvirt metadata"))


def _flags(dom: Domain, name: str) -> tuple[int, int]:
    """(flags to read with, flags to write with) for this domain's current state."""
    with _libvirt.converted(f"reading the state of {name}"):
        persistent = bool(dom.isPersistent())
        active = bool(dom.isActive())
    write = (_CONFIG if persistent else 0) | (_LIVE if active else 0)
    # The persistent config is what the next boot uses; a transient domain has only live.
    return (_CONFIG if persistent else _LIVE), write


def _settings_of(element: Any | None) -> Autostart:
    from .metadata import read_autostart

    if element is None:
        return Autostart()
    return read_autostart(element) or Autostart()


def get(host: Host, name: str) -> Autostart:
    """A container's settings (the defaults when it has none)."""
    dom = host.domain(name)
    read, _ = _flags(dom, name)
    return _settings_of(_read_element(dom, name, read))


def _write(host: Host, name: str, settings: Autostart | None) -> None:
    """Replace (``None``: remove) our ``<autostart>`` child, keeping anything else ours."""
    from ._xml import parse_xml
    from .metadata import metadata_xml

    dom = host.domain(name)
    read, write = _flags(dom, name)
    element = _read_element(dom, name, read)
    if element is None:
        if settings is None:
            return
        from lxml import etree

        element = etree.Element(_Q + "container", nsmap={None: METADATA_NS})
    old = element.find(_Q + "autostart")
    if old is not None:
        element.remove(old)
    if settings is not None:
        fresh = parse_xml(metadata_xml(settings), "autostart settings").find(_Q + "autostart")
        element.insert(0, fresh)
    with _libvirt.converted(f"writing the autostart settings of {name}"):
        if len(element) == 0 and not element.attrib:
            # Nothing of ours is left: erase the element (the metadata API's erase).
            dom.setMetadata(_META, None, None, METADATA_NS, write)
        else:
            dom.setMetadata(_META, _unqualified_text(element), "lxcvirt", METADATA_NS, write)


@dataclass(frozen=True)
class SetResult:
    """What ``autostart NAME`` reports."""

    name: str
    settings: Autostart
    changed: bool
    #: libvirt's own autostart flag is on as well (the daemon starts it unordered).
    libvirt_flag: bool

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, **settings_dict(self.settings), "changed": self.changed,
                "libvirt_autostart": self.libvirt_flag}


def update(
    host: Host,
    name: str,
    *,
    auto: bool | None = None,
    priority: int | None = None,
    time: int | None = None,
    groups: Sequence[str] | None = None,
    after: Sequence[str] | None = None,
) -> SetResult:
    """Change the given settings (``None`` keeps one); refuse an ``after`` that makes a cycle."""
    current = get(host, name)
    changes: dict[str, Any] = {}
    if auto is not None:
        changes["auto"] = auto
    if priority is not None:
        changes["priority"] = priority
    if time is not None:
        changes["time"] = time
    if groups is not None:
        changes["groups"] = tuple(groups)
    if after is not None:
        changes["after"] = tuple(after)
    new = replace(current, **changes) if changes else current
    if new.after != current.after:
        graph = {e.name: e.settings.after for e in entries(host)}
        graph[name] = new.after
        cycle = find_cycle(graph)
        if cycle and name in cycle:
            raise SpecError("autostart.after", f"would make a cycle: {' -> '.join(cycle)}")
    if new != current:
        _write(host, name, new)
    flag = bool(_libvirt.call(f"reading libvirt's autostart flag of {name}",
                              host.domain(name).autostart))
    return SetResult(name, new, new != current, flag)


def erase(host: Host, name: str) -> None:
    """Remove the settings (the container falls back to the defaults: auto off)."""
    _write(host, name, None)


# --- what is there ----------------------------------------------------------------------


def entries(host: Host) -> list[Entry]:
    """Every container on the host with its settings and whether it runs."""
    doms = _libvirt.call("listing containers", host.conn.listAllDomains, 0)
    out = []
    for dom in doms:
        try:
            name = str(dom.name())
            read, _ = _flags(dom, name)
            settings = _settings_of(_read_element(dom, name, read))
            with _libvirt.converted(f"reading the state of {name}"):
                running = bool(dom.isActive())
        except NotFound:
            continue  # undefined while we looked
        except XMLError as exc:
            raise XMLError(f"{dom.name()}: {exc}") from exc
        out.append(Entry(name, settings, running))
    return sorted(out, key=lambda e: e.name)


# --- the system switch -----------------------------------------------------------------


@dataclass(frozen=True)
class BootSwitch:
    """Whether ``start --all --boot`` may start anything (lxcvirt's configuration file)."""

    allowed: bool
    #: Why nothing starts, when it is not allowed.
    reason: str = ""
    #: Things worth telling about the file (unknown settings, which are ignored).
    notes: tuple[str, ...] = ()


def boot_switch(config: str | Path | None = None) -> BootSwitch:
    """Read the system switch from ``config`` (default: $LXCVIRT_CONFIG, then
    /etc/lxcvirt/lxcvirt.conf; a missing default file means on).  ConfigError for a file
    that is wrong."""
    from .config import load_config

    cfg = load_config(config)
    notes = tuple(f"{cfg.path}: unknown setting {key!r} ignored" for key in cfg.unknown)
    if cfg.autostart:
        return BootSwitch(True, notes=notes)
    where = cfg.path or "the configuration"
    return BootSwitch(False, f"autostart is off in {where} (autostart = false); not "
                      "starting anything", notes)


# --- the lock ------------------------------------------------------------------------------


def lock_path(path: str | Path | None = None) -> Path:
    return Path(path or os.environ.get(LOCK_ENV) or DEFAULT_LOCK)


@contextmanager
def run_lock(path: str | Path | None = None) -> Iterator[Path]:
    """Hold the start-all/stop-all lock (flock: released by the kernel if we die)."""
    where = lock_path(path)
    lock = PidLock(where, mode=0o644)
    try:
        taken = lock.try_acquire()
    except OSError as exc:
        raise LockHeld(f"cannot open the autostart lock {where}: {exc.strerror or exc}") from exc
    if not taken:
        raise LockHeld(
            f"another run of start_all or stop_all holds the lock (pid "
            f"{lock.holder()[0]}, lock {where})",
            hint="another `lxcvirt start --all` or `stop --all` is running; wait for it to finish",
        )
    try:
        yield where
    finally:
        lock.release()


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

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "action": self.action, "result": self.result,
                "ok": self.ok, "seconds": round(self.seconds, 3), "reason": self.reason,
                "priority": self.priority, "went_on": self.went_on}


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
        return {"action": self.action, "seconds": round(self.seconds, 3),
                "exit_code": self.exit_code, "notes": list(self.notes),
                "containers": [o.to_dict() for o in self.outcomes]}


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
            from .host import Host

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
) -> Report:
    """Start the autostart set in plan order; see the module docstring for the rules.

    Per container: wait for the ones it follows (skip it when one of them failed), start it
    (``timeout`` s at most for RUNNING), and when its ``time`` > 0 hold the next wave back
    until it runs or ``time`` s have passed.  Afterwards ``settle`` s more are watched for
    inits that exit at once.  ``starter`` replaces the start call (tests hold one back).
    """
    began = _time.monotonic()
    with run_lock(lock):
        the_plan = plan(entries(host), groups=groups, ignore_auto=ignore_auto)
        if check and any(not e.running for e in the_plan.entries.values()):
            host.preflight()
        conns = _Connections(host)
        start = starter or (
            lambda n: conns.host().start(n, check=False, settle=0, timeout=timeout)
        )
        watch = LifecycleWatch(host.conn)
        try:
            outcomes = _run_start(host, the_plan, watch, start, max(1, parallel), settle,
                                  progress)
        finally:
            watch.close()
            conns.close()
    return Report("start", outcomes, the_plan.notes, _time.monotonic() - began)


def _run_start(
    host: Host, the_plan: Plan, watch: LifecycleWatch, start: Callable[[str], object],
    parallel: int, settle: float, progress: Progress | None,
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
            elif watch.died(dep.name, dep.t_begin):
                why = f"follows {dep.name}, which stopped after it started"
            if why:
                job.finish(Outcome(job.name, "skip", "skipped", False, reason=why,
                                   priority=job.priority), progress)
                return
        job.t_begin = _time.monotonic()
        job.began.set()
        try:
            start(job.name)
            outcome = Outcome(job.name, "start", "started", True, priority=job.priority)
        except InvalidState:
            outcome = Outcome(job.name, "skip", "already running", True, priority=job.priority)
        except LxcvirtError as exc:
            outcome = Outcome(job.name, "start", "failed", False, reason=_first_line(exc),
                              priority=job.priority)
        except Exception as exc:  # noqa: BLE001 - one container's bug must not stop the boot
            outcome = Outcome(job.name, "start", "failed", False,
                              reason=f"unexpected {type(exc).__name__}: {_first_line(exc)}",
                              priority=job.priority)
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
        if o.result == "started" and (watch.died(name, jobs[name].t_begin)
                                      or not _active(host, name)):
            o = replace(o, result="failed", ok=False, reason=(
                f"stopped right after it started (its init exited); see its log, "
                f"/var/log/libvirt/lxc/{name}.log"))
        out.append(replace(o, went_on=name in went_on))
    return tuple(out)


def _active(host: Host, name: str) -> bool:
    try:
        return bool(_libvirt.call(f"reading the state of {name}", host.domain(name).isActive))
    except NotFound:
        return False


def stop_all(
    host: Host,
    *,
    groups: Sequence[str] | None = None,
    parallel: int = DEFAULT_PARALLEL,
    timeout: float = 30.0,
    lock: str | Path | None = None,
    progress: Progress | None = None,
) -> Report:
    """Stop every running container (of ``groups``) in the reverse start order.

    Each wave in parallel: a graceful shutdown, destroyed after ``timeout`` s.  A container
    that fails to stop is reported and the rest go on.
    """
    began = _time.monotonic()
    with run_lock(lock):
        running = [e for e in entries(host) if e.running]
        the_plan = plan(running, groups=groups, ignore_auto=True).reversed()
        outcomes: dict[str, Outcome] = {}
        conns = _Connections(host)

        def run(name: str, priority: int) -> None:
            t0 = _time.monotonic()
            try:
                res = conns.host().stop(name, timeout=timeout)
                o = Outcome(name, "stop", res.how, True, priority=priority)
            except LxcvirtError as exc:
                o = Outcome(name, "stop", "failed", False, reason=_first_line(exc),
                            priority=priority)
            except Exception as exc:  # noqa: BLE001 - keep stopping the others
                o = Outcome(name, "stop", "failed", False,
                            reason=f"unexpected {type(exc).__name__}: {_first_line(exc)}",
                            priority=priority)
            outcomes[name] = o = replace(o, seconds=_time.monotonic() - t0)
            if progress is not None:
                progress(o)

        try:
            with ThreadPoolExecutor(max_workers=max(1, parallel),
                                    thread_name_prefix="autostop") as pool:
                for wave in the_plan.waves:
                    wait([pool.submit(run, n, wave.priority) for n in wave.names])
        finally:
            conns.close()
    # The plan's notes are about waiting at start ("follows X, which ..."): not said here.
    return Report("stop", tuple(outcomes[n] for n in the_plan.order()), (),
                  _time.monotonic() - began)


# --- libvirt's own flag ---------------------------------------------------------------------


@dataclass(frozen=True)
class Imported:
    name: str
    settings: Autostart
    dry_run: bool

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, **settings_dict(self.settings), "dry_run": self.dry_run}


def import_libvirt_autostart(
    host: Host, names: Sequence[str] | None = None, *, dry_run: bool = False
) -> list[Imported]:
    """Take over containers that have libvirt's autostart flag: set ``auto`` in our
    settings (keeping the rest), then clear the flag so libvirtd does not start them
    unordered at its own start.  ``names`` restricts it to those containers."""
    if names is not None:
        for n in names:
            check_name(n)
            host.domain(n)  # NotFound for a name that is not there
    doms = _libvirt.call("listing containers", host.conn.listAllDomains,
                         libvirt.VIR_CONNECT_LIST_DOMAINS_AUTOSTART)
    wanted = None if names is None else {*names}
    done = []
    for dom in sorted(doms, key=lambda d: str(d.name())):
        name = str(dom.name())
        if wanted is not None and name not in wanted:
            continue
        settings = replace(get(host, name), auto=True)
        if not dry_run:
            # Ours first: when clearing the flag fails, the container still starts.
            _write(host, name, settings)
            _libvirt.call(f"clearing libvirt's autostart flag of {name}", dom.setAutostart, 0)
        done.append(Imported(name, settings, dry_run))
    return done
