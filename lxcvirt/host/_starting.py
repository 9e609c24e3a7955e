"""Starting a container: what would stop a start before libvirt is asked, one create()
and the waits after it, and the container's log when it fails."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import libvirt

from .. import _libvirt
from .._hostfs import io_weights_missing
from .._libvirt import Domain
from .._proc import init_execd, init_exited
from ..errors import (
    DaemonUnreachable,
    InvalidState,
    LibvirtError,
    NotFound,
    StartFailed,
)
from ._domain import destroy_domain, dom_init, wait_init_known
from ._events import LifecycleWatch
from ._status import reason_name, state_name

if TYPE_CHECKING:
    from ._controller import Host

LXC_LOG_DIR = Path("/var/log/libvirt/lxc")

#: Seconds a started container may run before libvirt knows its init pid; then the
#: monitor is taken as lost.  libvirt hears the pid from the controller within
#: milliseconds (at the first or second look, 10 ms apart, with 80 starts on 4 daemons
#: sharing 2 CPUs); a lost monitor never delivers it, and on a daemon whose logs are not ours to
#: read (remote, or in another mount namespace) nothing else says so.
INIT_PID_WAIT = 3.0
#: Seconds to wait for the STOPPED event of a container destroyed to be started again.
OWN_DEATH_WAIT = 5.0
#: Seconds a container that libvirt says started, but is neither running nor shut off,
#: is given to end (an init that exited at once, still being taken down).
STOPPING_WAIT = 2.0


def monitor_lost(host: Host, name: str) -> bool:
    """libvirtd dropped its monitor connection to the controller of this start: the
    controller logs "End of file while reading data" (local daemons only)."""
    return "End of file while reading data" in log_tail(host, name, lines=50)

def log_tail(host: Host, name: str, lines: int = 15) -> str:
    """The end of the container's libvirt log from its last start (local daemons)."""
    if not host.is_local:
        return ""
    try:
        text = (LXC_LOG_DIR / f"{name}.log").read_text(errors="replace")
    except OSError:
        return ""
    # Each start appends; keep only what the last one wrote.
    last = text.rfind(": starting up")
    if last >= 0:
        text = text[text.rfind("\n", 0, last) + 1 :]
    tail = [ln for ln in text.splitlines() if ln.strip() and " info : " not in ln][-lines:]
    return "\n".join(tail)


def _init_ran_unheard(tail: str) -> bool:
    """Whether a start's log tail ends with the init's command line, followed at most by
    the controller's "Dropping event ... because libvirtd is not connected": the init was
    started and the controller had nothing else to say."""
    lines = tail.splitlines()
    ran = [i for i, ln in enumerate(lines) if "LIBVIRT_LXC_NAME=" in ln]
    return bool(ran) and all("because libvirtd is not connected" in ln
                             for ln in lines[ran[-1] + 1:])


def start_blocker(host: Host, root: Any, name: str) -> str | None:
    """Why the domain ``root`` (parsed XML) cannot start, seen before libvirt is
    asked; None when nothing is.

    libvirt would create a missing root directory on the host (with dev/, proc/, sys/,
    .oldroot/ in it) and then fail to find init there; a missing or inactive network
    fails the start with a message that does not say what to do.
    """
    for fs in root.findall("devices/filesystem") if host.is_local else ():
        src, tgt = fs.find("source"), fs.find("target")
        if src is None or tgt is None or (fs.get("type") or "mount") != "mount":
            continue
        sdir = src.get("dir")
        if sdir and not Path(sdir).exists():
            tdir = tgt.get("dir") or "?"
            what = "root filesystem" if tdir.rstrip("/") == "" else f"mount for {tdir}"
            return (f"the {what} source {sdir} does not exist on the host (create it, "
                    "or fix <source dir> and redefine)")
    weighted = root.find("blkiotune/weight") is not None or root.find(
        "blkiotune/device/weight") is not None
    missing = io_weights_missing() if weighted and host.is_local else None
    if missing is not None:
        return (f"its <blkiotune> sets a block I/O weight, and this host has none to set "
                f"({missing} has no weight file: no I/O scheduler with weights, such as "
                "BFQ; see `lxcvirt check`): remove the weight (limits.blkio_weight, or the "
                "device's weight) and redefine, or use the bfq scheduler")
    for iface in root.findall("devices/interface"):
        src = iface.find("source")
        if src is None:
            continue
        if iface.get("type") == "network" and src.get("network"):
            net = src.get("network")
            try:
                active = _libvirt.call(
                    f"reading network {net}",
                    lambda n=net: host.conn.networkLookupByName(n).isActive(),
                )
            except NotFound:
                return (f"its interface is on the libvirt network {net!r}, which is not "
                        f"defined on {host.uri}: define it (virsh net-define), or "
                        "change the interface's source")
            if not active:
                return (f"its interface is on the libvirt network {net!r}, which is not "
                        f"active: `virsh -c {host.uri} net-start {net}` (and "
                        f"`net-autostart {net}` to keep it so)")
        elif iface.get("type") == "bridge" and src.get("bridge") and host.is_local:
            bridge = src.get("bridge")
            if not Path(f"/sys/class/net/{bridge}/bridge").is_dir():
                return (f"its interface is on the host bridge {bridge!r}, which does not "
                        f"exist on this host: create it (ip link add {bridge} type bridge)")
    return None


def wait_exec(dom: Domain, until: float, stopped: Callable[[], bool]) -> None:
    """Wait until the container's init has exec'd its program (see
    :func:`lxcvirt._proc.init_execd`), it stopped, /proc cannot tell, or ``until``."""
    controller = dom.ID()
    while controller > 0 and time.monotonic() < until:
        if init_execd(controller) is not False or stopped():
            return
        time.sleep(0.01)


def init_gone(host: Host, name: str) -> bool:
    """Whether this machine's /proc shows the container's init gone, whatever libvirt
    says (it can keep such a container running, with no event); False when that cannot
    be known (a remote daemon, a container without a controller)."""
    if not host.is_local:
        return False
    with _libvirt.ignored():
        return _dom_init_gone(host, host.domain(name))
    return False


def _dom_init_gone(host: Host, dom: Domain) -> bool:
    controller = dom.ID() if host.is_local else -1
    return controller > 0 and init_exited(controller)


def leave_shut_off(host: Host, name: str) -> None:
    """A container judged dead after its start (``start --all``, ``apply``) that libvirt
    still counts as running: destroyed, so that it is left shut off as a failed start
    should be.  Only when :func:`init_gone` says so: never one that may be running."""
    if init_gone(host, name):
        with _libvirt.ignored():
            destroy_domain(host.domain(name), name)


def _ended_unseen(host: Host, dom: Domain, watch: LifecycleWatch, ends: set[int]) -> bool:
    """Whether this start's init has ended though libvirt still says it runs: a STOPPED
    (or CRASHED) event after the STARTED one, or, on a local daemon, /proc."""
    with watch.cond:
        kinds = [e[2] for e in watch.events]
    started = kinds.index(libvirt.VIR_DOMAIN_EVENT_STARTED) \
        if libvirt.VIR_DOMAIN_EVENT_STARTED in kinds else None
    if started is not None and any(k in ends for k in kinds[started + 1:]):
        return True
    return _dom_init_gone(host, dom)


def start_once(host: Host, dom: Domain, name: str, settle: float, timeout: float) -> bool:
    """One create() and the waits after it; False when libvirtd lost the container's
    controller (it was destroyed again), StartFailed for every other failure."""
    with LifecycleWatch(host.conn, dom) as watch:
        try:
            _libvirt.call("", dom.create)
        except (NotFound, InvalidState, DaemonUnreachable):
            raise
        except LibvirtError as exc:
            msg = re.sub(r"^(internal error: )?(Timed out while reading log output:)?", "",
                         exc.message).strip()
            msg = re.sub(r"^Failure in libvirt_lxc startup: ", "", msg)
            tail = log_tail(host, name)
            if not msg and _init_ran_unheard(tail):
                # The init ran and exited before libvirt had finished starting it (10
                # containers with /bin/true started at once: 6 of 50 starts; the others
                # end as stopped below).
                raise StartFailed(
                    f"{name} stopped right after it started: its init{dom_init(dom)} exited "
                    "before libvirt had finished starting it; an init must keep running "
                    "for the container to stay up", log_tail=tail, code=exc.code,
                ) from exc
            hint = ""
            if "cannot find init path" in msg:
                hint = " (the path is inside the container's root; fix <init>, then redefine)"
            raise StartFailed(
                f"{name} failed to start: {msg or 'libvirt gave no reason'}{hint}",
                log_tail=tail,
                code=exc.code,
            ) from exc

        def running() -> bool:
            return bool(dom.state()[0] == libvirt.VIR_DOMAIN_RUNNING)

        def stopped() -> bool:
            return not dom.isActive()

        stopped_events = {libvirt.VIR_DOMAIN_EVENT_STOPPED, libvirt.VIR_DOMAIN_EVENT_CRASHED}
        began = time.monotonic()
        if not stopped():
            watch.wait_for({libvirt.VIR_DOMAIN_EVENT_STARTED}, timeout, running)
        if host.is_local and not stopped():
            # libvirt can say RUNNING before the init has run its own program (1 of 30
            # starts of ten at once): the watch for an init that exits at once begins
            # when it has.
            wait_exec(dom, began + timeout, stopped)
        if settle > 0 and not stopped():
            watch.wait_for(stopped_events, settle, stopped)
            if not stopped() and _ended_unseen(host, dom, watch, stopped_events):
                # The init is gone, libvirt's state does not say so yet (busy, it notices
                # later): let it catch up rather than call the container started.
                until = time.monotonic() + STOPPING_WAIT
                while not stopped() and time.monotonic() < until:
                    time.sleep(0.02)
                if not stopped():
                    # libvirt keeps it running with its init gone (its STOPPED event came
                    # before the STARTED one; 1 of ~150 starts of /bin/true, 8 at once).
                    destroy_domain(dom, name)
                    raise StartFailed(
                        f"{name} stopped right after it started: its init{dom_init(dom)} "
                        "exited (libvirt still counted it running: destroyed to clear "
                        "that); an init must keep running for the container to stay up",
                        log_tail=log_tail(host, name),
                    )
        if running() and host.passes_fds and not wait_init_known(
            dom, min(began + timeout, time.monotonic() + INIT_PID_WAIT),
            lambda: monitor_lost(host, name),
        ):
            # libvirtd dropped its monitor connection to the controller ("End of file
            # while reading data" in the container's log) and never learns the init pid.
            # libvirtd's debug log says why: the controller's first message (the init
            # pid) came in before libvirtd had registered the monitor's protocol on the
            # new connection ("No program found for event"), and libvirtd closes a
            # connection on an unknown message.  A race inside libvirtd (9.0), seen more
            # often the busier the CPUs: 1 to 4 of 80 starts with 4 daemons on 2 CPUs,
            # ~1 in 300 with 20 threads on one daemon.  Such a container cannot be shut
            # down gracefully nor entered: destroy it (start() starts it once more).
            destroy_domain(dom, name)
            # Wait for the destroy's own STOPPED event: start() counts deaths from its
            # return on, so that event must not reach a watch after it (each watch gets
            # its own copy from libvirtd, in the order they were registered).
            watch.wait_for(stopped_events, OWN_DEATH_WAIT, lambda: False)
            return False
        if not stopped() and not running():
            # Active but not RUNNING once the STARTED event came: libvirt is taking down
            # an init that has already exited (seen in a CI run with /bin/true as init).
            # Let it finish saying so instead of calling it a start that never came.
            watch.wait_for(stopped_events, min(timeout, STOPPING_WAIT),
                           lambda: stopped() or running())
        if stopped():
            init = dom_init(dom)
            raise StartFailed(
                f"{name} stopped right after it started: its init{init} exited "
                f"(shut off: {reason_name(*dom.state())}); an init must keep running "
                "for the container to stay up",
                log_tail=log_tail(host, name),
            )
        if not running():
            # Leave it shut off, as a failed start should.
            state = dom.state()
            destroy_domain(dom, name)
            raise StartFailed(
                f"{name} did not reach RUNNING (it was {state_name(state[0])}: "
                f"{reason_name(*state)}); destroyed it",
                log_tail=log_tail(host, name),
            )
    return True
