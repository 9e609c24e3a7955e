"""Stopping and rebooting a container: how its init is asked (see
:mod:`lxcvirt._initsignals`), the waits by lifecycle events, the signals sent again that
an init did not listen for yet, and destroy as the last resort."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

import libvirt

from .. import _libvirt
from .._initsignals import AUTO, Plan, check_method, halt_plan, listens, reboot_plan
from .._libvirt import Domain
from .._proc import controller_gone, init_has_initctl, init_listens, init_pid
from .._xml import parse_xml
from ..errors import InvalidState, LibvirtError, LxcvirtError, Refused, SpecError
from ..metadata import read_init_methods
from ._domain import (
    EXITED,
    NO_INIT_PID,
    destroy_domain,
    lost_monitor,
    resume_domain,
    wait_init_known,
)
from ._events import LifecycleWatch
from ._status import RebootResult, StopResult, reason_name

if TYPE_CHECKING:
    from ._controller import Host

#: Seconds a halt whose init kind was not knowable (remote daemons) waits for the requests
#: that do not disturb systemd before SIGTERM follows.
LATER_GRACE = 5.0
#: How often :func:`stop` looks whether an init now listens for a signal it missed.
UNHEARD_POLL = 0.1


def init_plan(host: Host, dom: Domain, method: str | None, *, reboot: bool) -> Plan:
    """How to ask this container's init to halt (or reboot): the ``method`` given, or
    the one its definition stores, resolved against what the running init listens for
    (readable on a local daemon only)."""
    if method is None:
        with _libvirt.converted(f"reading the XML of {dom.name()}"):
            xml = dom.XMLDesc(0)
        halt, rebooting = read_init_methods(parse_xml(xml, dom.name()))
        method = rebooting if reboot else halt
    else:
        try:
            method = check_method(method, reboot=reboot)
        except ValueError as exc:
            raise SpecError("mode", str(exc)) from None
    listened = None
    controller = dom.ID() if host.is_local else -1
    if controller > 0:
        listened = init_listens(controller)
    plan = (reboot_plan if reboot else halt_plan)(method, listened)
    if plan.initctl and method == AUTO and controller > 0 and init_has_initctl(
        controller
    ) is False:
        # No sysvinit pipe in its root: libvirt would fork into the container to find
        # none (about 20 ms of libvirtd's time per stop, felt by stop --all).
        plan = replace(plan, initctl=False)
    return plan

def ask_init(dom: Domain, name: str, plan: Plan, signals: Sequence[int],
             deadline: float, give_up: Callable[[], bool] = lambda: False,
             ) -> LxcvirtError | None:
    """Send ``plan``'s initctl request (when it has one) and ``signals`` to init.

    None when at least one went through; otherwise libvirt's refusal.  libvirt learns
    the init's pid from its controller after create() has returned ("Init process ID
    is not yet known"); under load that takes a while and no event says so: ask again,
    until ``deadline`` or until ``give_up()`` (asked every half second) says it never will.
    """
    next_look = time.monotonic() + 0.5
    while True:
        failures: list[LibvirtError] = []
        sent = 0
        doing = f"asking the init of {name}"
        if plan.initctl:
            try:
                _libvirt.call(doing, dom.shutdownFlags, libvirt.VIR_DOMAIN_SHUTDOWN_INITCTL)
                sent += 1
            except LibvirtError as exc:
                failures.append(exc)
        for number in signals:
            try:
                # libvirt's signal numbers are Linux's (RT0 is signal 32).
                _libvirt.call(doing, dom.sendProcessSignal, 1, number, 0)
                sent += 1
            except LibvirtError as exc:
                failures.append(exc)
        if sent or not failures or not _libvirt.call(doing, dom.isActive):
            return None
        refused = failures[-1]
        if not isinstance(refused, (InvalidState, Refused)):
            raise refused
        if "not yet" not in refused.message or time.monotonic() >= deadline:
            return refused
        if time.monotonic() >= next_look:
            if give_up():
                return refused
            next_look = time.monotonic() + 0.5
        time.sleep(0.02)

def stop(host: Host, name: str, *, timeout: float = 30.0, mode: str | None = None,
         before_asking: Callable[[], None] | None = None) -> StopResult:
    """Graceful shutdown; destroy when the container is still up after ``timeout``.

    How init is asked (``mode``, else the spec's ``init.halt``, else "auto") is
    explained in :mod:`lxcvirt._initsignals`: SIGRTMIN+3 for systemd, initctl and
    SIGTERM for other inits.
    """
    began = time.monotonic()
    dom = host.domain(name)
    if not _libvirt.call(f"reading the state of {name}", dom.isActive):
        return StopResult(name, "already stopped")
    resumed = ""
    if dom.state()[0] == libvirt.VIR_DOMAIN_PAUSED:
        # A frozen init cannot handle the request: thaw it first (virsh shutdown of a
        # paused container would wait its whole timeout and destroy it).
        try:
            resume_domain(host.conn, dom, name, min(timeout, 10.0))
            resumed = "resumed, then "
        except LxcvirtError as exc:
            destroy_domain(dom, name)
            return StopResult(name, "destroyed", time.monotonic() - began,
                              f"paused, and resuming it failed ({exc})")
    plan = init_plan(host, dom, mode, reboot=False)
    method = resumed + plan.describe()
    # libvirtd may have lost its monitor connection to the container's controller (issue
    # 17): it then neither hears that the init exited nor, without the init pid, can it
    # deliver a request.  On a local daemon /proc tells, and the host delivers the signals.
    cid = dom.ID()
    lost = lost_monitor(dom, ask=False) if host.is_local else None  # /proc only: cheap
    if lost is not None and lost[0] == EXITED:
        destroy_domain(dom, name)
        return StopResult(name, "destroyed", time.monotonic() - began,
                          f"nothing left to ask: {lost[1]}; destroyed to clear its state")
    with LifecycleWatch(host.conn, dom) as watch:

        def gone() -> bool:
            return host.is_local and cid > 0 and controller_gone(cid)

        def stopped() -> bool:
            return not dom.isActive() or gone()

        def ended(how: str) -> StopResult:
            if gone() and dom.isActive():
                # The init exited, libvirtd did not hear it: clear its state.
                destroy_domain(dom, name)
                return StopResult(name, how, time.monotonic() - began,
                                  f"{method}; libvirtd had lost its monitor connection and "
                                  "did not see the init exit: destroyed to clear its state")
            return StopResult(name, how, time.monotonic() - began, method)

        # A signal the init does not handle yet is dropped by the kernel (a PID
        # namespace's init ignores unhandled signals from outside): a shell init
        # stopped right after it started may not have run its `trap` yet.  On a local
        # daemon, such signals are sent again once the init listens for them.
        unheard: list[int] = []

        def listening() -> int | None:
            return init_listens(dom.ID()) if host.is_local else None

        def resend_heard() -> bool:
            mask = listening()
            for number in [s for s in unheard if listens(mask, s)]:
                unheard.remove(number)
                with _libvirt.ignored():
                    dom.sendProcessSignal(1, number, 0)
            return stopped()

        def wait(seconds: float) -> bool:
            until = time.monotonic() + seconds
            events = {libvirt.VIR_DOMAIN_EVENT_STOPPED}
            while unheard:
                left = until - time.monotonic()
                if left <= 0:
                    return stopped()
                if watch.wait_for(events, min(left, UNHEARD_POLL), resend_heard):
                    return True
            return watch.wait_for(events, max(0.0, until - time.monotonic()), stopped)

        def ask(signals: Sequence[int], initctl: bool) -> LxcvirtError | None:
            nonlocal method
            mask = listening()
            if mask is not None:
                unheard.extend(s for s in signals if not listens(mask, s))
            try:
                refused = ask_init(dom, name, replace(plan, initctl=initctl), signals,
                                   deadline, give_up=lambda: host.is_local
                                   and lost_monitor(dom, ask=host.passes_fds) is not None)
            except LibvirtError as exc:
                # "Unable to send 15 signal to process N: No such process": libvirt holds
                # an earlier instance's init pid (see lost_monitor).
                if not host.is_local or "No such process" not in exc.message:
                    raise
                refused = exc
            if refused is None or not host.is_local or not any(
                    why in refused.message for why in ("not yet", "No such process")):
                return refused
            lost = lost_monitor(dom, ask=host.passes_fds)
            if lost is not None and lost[0] == NO_INIT_PID and signal_init(
                cid, list(signals) or [signal.SIGTERM]
            ):
                # libvirt cannot deliver it: the host did, to the init it can see.
                if "sent from the host" not in method:
                    method += " (sent from the host: libvirtd had lost its monitor)"
                return None
            return refused

        deadline = began + timeout
        if before_asking is not None:
            before_asking()
        refused = ask(plan.signals, plan.initctl)
        if refused is None and plan.later:
            # The init's kind was not knowable: give the requests that do not disturb
            # systemd a while before SIGTERM, which would (it re-executes on SIGTERM).
            if wait(min(LATER_GRACE, timeout / 2)):
                return ended("shut down")
            ask(plan.later, False)
        if refused is None and wait(max(0.0, deadline - time.monotonic())):
            return ended("shut down")
        if stopped():
            return ended("shut down")
        destroy_domain(dom, name)
        # "destroyed": libvirt refused the shutdown itself, so there was nothing to wait for.
        how = "destroyed" if refused is not None else "destroyed after timeout"
        return StopResult(name, how, time.monotonic() - began, method)

def signal_init(controller_pid: int, signals: Sequence[int]) -> bool:
    """Send ``signals`` to the container's init from the host (as libvirt would, from the
    parent PID namespace); False when its init cannot be found."""
    pid = init_pid(controller_pid)
    if pid is None:
        return False
    try:
        for number in signals:
            os.kill(pid, number)
    except ProcessLookupError:
        return False
    return True


def reboot(host: Host, name: str, *, timeout: float = 60.0,
           mode: str | None = None) -> RebootResult:
    """Reboot the system inside: a new init, the container running again.

    systemd is asked with SIGRTMIN+5 and libvirt restarts the container when it has
    gone down (``on_reboot = restart``); an init that knows no reboot request is
    stopped gracefully and started again (method ``restart``).
    """
    began = time.monotonic()
    dom = host.domain(name)
    if not _libvirt.call(f"reading the state of {name}", dom.isActive):
        raise InvalidState(f"{name} is not running", hint=f"`lxcvirt start {name}`")
    plan = init_plan(host, dom, mode, reboot=True)
    if plan.restart:
        stop(host, name, timeout=timeout)
        host.start(name, check=False, timeout=timeout)
        return RebootResult(name, "restarted", time.monotonic() - began, plan.describe(),
                            host.status(name))
    old_id = dom.ID()
    uuid = dom.UUIDString()
    deadline = began + timeout

    conn: _libvirt.Connection = host.conn

    def current() -> Domain:
        # A domain handle caches its id: look it up again to see the new one.
        return conn.lookupByUUIDString(uuid)

    def back() -> bool:
        with _libvirt.ignored():  # not found for a moment while libvirt restarts it
            fresh = current()
            return bool(fresh.state()[0] == libvirt.VIR_DOMAIN_RUNNING
                        and fresh.ID() not in (-1, old_id))
        return False

    with LifecycleWatch(host.conn, dom) as watch:
        refused = ask_init(dom, name, plan, plan.signals, deadline)
        if refused is not None:
            raise refused
        if not watch.wait_for(set(), max(0.0, deadline - time.monotonic()), back):
            state = reason_name(*dom.state()) if dom.isActive() else "shut off"
            raise InvalidState(
                f"{name} did not come back from its reboot within {timeout:g} s "
                f"(now: {state}; on_reboot must be 'restart' for libvirt to start it again)"
            )
    fresh = current()
    if host.passes_fds:
        wait_init_known(fresh, deadline)
    return RebootResult(name, "rebooted", time.monotonic() - began, plan.describe(),
                        host.status_of(fresh))
