"""What a defined or running domain tells beyond its state: DHCP leases, whether libvirt
knows its init pid yet, its init path."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import libvirt

from .. import _libvirt
from .._libvirt import Domain
from .._xml import parse_xml
from ..errors import InvalidState, LibvirtError, LxcvirtError


def leased_ipv4(dom: Domain) -> tuple[str, ...]:
    """The IPv4 addresses libvirt's networks leased to ``dom`` (DHCP), sorted.

    The lease source is the one the LXC driver answers (ARP failed here with "wrong
    nlmsg len", and there is no guest agent); an error means none are known, never a
    failed listing.
    """
    ifaces = None
    with _libvirt.ignored():
        ifaces = dom.interfaceAddresses(libvirt.VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_LEASE, 0)
    found = {
        a["addr"]
        for iface in (ifaces or {}).values()
        for a in iface.get("addrs") or ()
        if a.get("type") == libvirt.VIR_IP_ADDR_TYPE_IPV4 and a.get("addr")
    }
    return tuple(sorted(found, key=lambda ip: tuple(int(p) for p in ip.split("."))))


def wait_init_known(dom: Domain, deadline: float, lost: Callable[[], bool] = lambda: False) -> bool:
    """Wait until libvirt knows the container's init pid (it hears it from the
    libvirt_lxc controller after create() returns); until then shutdown and exec fail
    with "not yet known".  No event says so: ask for the namespaces (~1 ms) until it
    answers.  Other answers (remote URIs cannot pass fds) end the wait.  False when the
    deadline passed with the container running and its init pid still unknown, or when
    ``lost()`` (asked every 0.1 s) says it never will be."""

    import libvirt_lxc

    next_look = time.monotonic() + 0.1
    while True:
        try:
            fds = _libvirt.call("", libvirt_lxc.lxcOpenNamespace, dom, 0)
        except InvalidState:  # "Init process ID is not yet known"
            fds = None
        except LibvirtError:
            return True  # e.g. a URI that cannot pass file descriptors: nothing to wait for
        if fds:
            for fd in fds:
                os.close(fd)
            return True
        # Not known yet; or (no namespaces at all) libvirt holds a pid that names no process:
        # it kept an earlier instance's and never heard this one's (a lost monitor).
        if not _libvirt.call("", dom.isActive):
            return True  # it died: the caller's state checks report that
        if time.monotonic() >= deadline or (time.monotonic() >= next_look and lost()):
            # An init that exits at once never reports its pid either, and libvirt may
            # take a moment to notice it is gone: a container about to be shut off is
            # no lost monitor (destroying and starting it again would hide its death).
            grace = time.monotonic() + 1.0
            while time.monotonic() < grace:
                if not _libvirt.call("", dom.isActive):
                    return True
                time.sleep(0.05)
            return False
        if time.monotonic() >= next_look:
            next_look = time.monotonic() + 0.1
        time.sleep(0.01)


#: Seconds a controller may run before an unknown init pid means a lost monitor (a start
#: learns it within milliseconds; start() gives it INIT_PID_WAIT).
LOST_AFTER = 5.0
#: lost_monitor()'s kinds: the controller has exited unnoticed; the init pid never came.
EXITED, NO_INIT_PID = "exited", "no-init-pid"


def lost_monitor(dom: Domain, *, ask: bool = True) -> tuple[str, str] | None:
    """``(kind, why)`` when libvirtd has lost its monitor connection to this running
    container's ``libvirt_lxc`` controller (a local daemon's only), else None.

    Two ways show it: the controller has exited (its init did) and libvirt still calls it
    running (no end-of-file reached libvirtd); or the controller has run a while and
    libvirt never learned its init pid (the start-time race of libvirtd 9.0, see
    _starting.start_once), or holds a wrong one.  ``ask``: also ask libvirt for the init
    pid (one lxcOpenNamespace call: only over a connection that passes fds)."""
    from .._proc import controller_gone, process_age

    cid = dom.ID()
    if cid <= 0:
        return None
    if controller_gone(cid):
        return EXITED, (f"its controller (pid {cid}) has exited, but libvirtd did not "
                        "notice: it had lost its monitor connection")
    if not ask:
        return None
    import libvirt_lxc

    try:
        fds = _libvirt.call("", libvirt_lxc.lxcOpenNamespace, dom, 0)
    except InvalidState as exc:
        # "Init pid is not yet available": for a start's first moments, that is normal.
        age = process_age(cid)
        if "not yet" in exc.message and age is not None and age >= LOST_AFTER:
            return NO_INIT_PID, ("libvirtd never learned its init pid: it lost its monitor "
                                 "connection to the controller (libvirt's shutdown, exec "
                                 "and console cannot reach it)")
        return None
    except LxcvirtError:
        return None
    if not fds:  # the pid libvirt holds names no process: an earlier instance's
        return NO_INIT_PID, ("libvirtd holds a wrong init pid for it (an earlier instance's: "
                             "it lost its monitor connection before it heard this one's), "
                             "so libvirt's shutdown, exec and console cannot reach it")
    for fd in fds:
        os.close(fd)
    return None


def dom_init(dom: Domain) -> str:
    """`` /path/to/init`` of a domain, for messages ('' when unreadable)."""
    try:
        xml = _libvirt.call("", dom.XMLDesc, libvirt.VIR_DOMAIN_XML_INACTIVE)
        root = parse_xml(xml, "")
    except LxcvirtError:
        return ""
    path = (root.findtext("os/init") or "").strip()
    return f" {path}" if path else ""


def destroy_domain(dom: Domain, name: str) -> None:
    """Destroy ``dom``; an error is raised only when it is still running after it (it may
    have gone down by itself meanwhile)."""
    try:
        _libvirt.call(f"destroying {name}", dom.destroy)
    except LibvirtError:
        if _libvirt.call(f"reading the state of {name}", dom.isActive):
            raise


def resume_domain(conn: Any, dom: Domain, name: str, timeout: float) -> None:
    """Thaw a suspended (paused) container and wait until libvirt says it runs."""
    from ._events import LifecycleWatch

    with LifecycleWatch(conn, dom) as watch:
        _libvirt.call(f"resuming {name}", dom.resume)
        watch.wait_for({libvirt.VIR_DOMAIN_EVENT_RESUMED}, timeout,
                       lambda: dom.state()[0] == libvirt.VIR_DOMAIN_RUNNING)
    if dom.state()[0] != libvirt.VIR_DOMAIN_RUNNING:
        raise InvalidState(f"{name} did not run again within {timeout:g} s of resuming it")
