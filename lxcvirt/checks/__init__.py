"""Host checks: will a container really start here?

The checker reads ``/proc`` and ``/sys`` under a root it is given (``/`` on a real host, a
fixture tree in the tests), never guessing a layout: mounts come from
``/proc/self/mountinfo``, the kernel's controllers from ``/proc/cgroups``, cgroup v2's from
``cgroup.controllers``.  With a :class:`~lxcvirt.host.Host` it also asks the daemon side:
the mount namespace libvirtd really runs in (``/proc/PID/mountinfo``), the LXC driver on
the URI, the emulator its capabilities name, the networks a spec refers to.  For a spec
with an ``<idmap>`` it also predicts what would stop it (a shared host network, user
namespaces off, a root folder the mapped root cannot reach or write, systemd as init without
its own name=systemd cgroup): each was seen to fail a real start here.

Why the daemon's view: on a hybrid host (v1 controllers plus cgroup2 at
``/sys/fs/cgroup/unified``) libvirt 9.0's LXC driver fails every start with "Unable to
create directory /sys/fs/cgroup/unified" while ``virt-host-validate lxc`` and
``lxc-checkconfig`` pass; a libvirtd started in a mount namespace without that mount works.
Only the daemon's mountinfo tells which of the two a start will meet.

Each :class:`Finding` is ``fail``, ``warn``, ``ok`` or ``unknown`` (not checkable: a remote
URI, a file only root may read); only ``fail`` makes the verdict fail.  :func:`enforce`
runs the required checks once per process and URI before containers start.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from .._hostfs import (
    PROBE_PREFIX,
    DirOp,
    Layout,
    Mount,
    Reader,
    daemon_socket,
    make_dir,
    parse_mountinfo,
    parse_proc_cgroups,
    probe_hierarchy,
    remove_dir,
    socket_owner,
)
from ..errors import HostError
from ._checker import Checker
from ._report import Finding, Level, Report

if TYPE_CHECKING:
    from ..host import Host
    from ..spec import Container


def run_checks(
    host: Host | None = None,
    *,
    root: str | Path = "/",
    spec: Container | str | Path | None = None,
    probe: bool = True,
    mkdir: DirOp = make_dir,
    rmdir: DirOp = remove_dir,
    daemon_pid: int | None = None,
    daemon_mountinfo: str | Path | None = None,
) -> Report:
    """Check the host (and ``host``'s daemon, when given); ``spec`` adds its networks and,
    with an <idmap>, what would make it fail to start."""
    container: Container | None = None
    if spec is not None:
        from ..spec import Container as _Container

        if isinstance(spec, _Container):
            container = spec
        else:
            from ..load import load_spec

            container = load_spec(spec)
    checker = Checker(root, host, probe=probe, mkdir=mkdir, rmdir=rmdir, daemon_pid=daemon_pid,
                      daemon_mountinfo=daemon_mountinfo)
    return checker.run(container)


# --- enforcement ----------------------------------------------------------------------

_cache: dict[str, Report] = {}
_cache_lock = threading.Lock()


def required_failures(report: Report) -> tuple[Finding, ...]:
    return tuple(f for f in report.findings if f.required and f.level == "fail")


def enforce(host: Host) -> None:
    """Run the required checks once per process and URI; refuse with the failing finding.

    A remote URI's file checks are "unknown", which does not refuse: only what was seen
    to fail stops a start.
    """
    with _cache_lock:
        report = _cache.get(host.uri)
        if report is None:
            report = run_checks(host)
            _cache[host.uri] = report
    failing = required_failures(report)
    if failing:
        more = f" (and {len(failing) - 1} more)" if len(failing) > 1 else ""
        raise HostError(f"host check failed: {failing[0].message}{more}",
                        hint="--no-check skips the checks")


def forget(uris: Iterable[str] | None = None) -> None:
    """Drop cached results (all, or those of ``uris``) so the next enforce() checks again."""
    with _cache_lock:
        if uris is None:
            _cache.clear()
        else:
            for uri in uris:
                _cache.pop(uri, None)


__all__ = [
    "PROBE_PREFIX",
    "Checker",
    "Finding",
    "Layout",
    "Level",
    "Mount",
    "Reader",
    "Report",
    "daemon_socket",
    "enforce",
    "forget",
    "parse_mountinfo",
    "parse_proc_cgroups",
    "probe_hierarchy",
    "run_checks",
    "socket_owner",
]
