"""The daemon's side: the namespaces containers need, the daemon on the URI (its LXC
driver and emulator), and the networks a spec's interfaces use."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from ..errors import LxcvirtError

if TYPE_CHECKING:
    from ..spec import Container
    from ._checker import Checker

NAMESPACES_REQUIRED = ("mnt", "pid", "uts", "ipc")
NAMESPACES_OPTIONAL = {
    "net": "a container with its own network (an <interface>, privnet) needs it",
    "user": "a container with an <idmap> needs it",
}


def namespace_checks(c: Checker) -> None:
    for ns in NAMESPACES_REQUIRED + tuple(NAMESPACES_OPTIONAL):
        have = c.reader.path(f"/proc/self/ns/{ns}").exists() or os.path.lexists(
            c.reader.path(f"/proc/self/ns/{ns}")
        )
        required = ns in NAMESPACES_REQUIRED
        if have:
            c.add(f"namespace.{ns}", "ok", f"{ns} namespace", required=required)
            continue
        why = NAMESPACES_OPTIONAL.get(ns, "every LXC container runs in one")
        c.add(f"namespace.{ns}", "fail" if required else "warn",
                 f"the kernel has no {ns} namespace (/proc/self/ns/{ns} missing)", why,
                 f"use a kernel with CONFIG_{ns.upper()}_NS=y", required=required)
    if c.reader.path("/proc/self/ns/user").exists():
        limit = (c.reader.text("/proc/sys/user/max_user_namespaces") or "").strip()
        if limit == "0":
            c.add("namespace.user.limit", "warn", "user namespaces are disabled "
                     "(max_user_namespaces = 0)", NAMESPACES_OPTIONAL["user"],
                     "sysctl user.max_user_namespaces=15000")


#: inotify instances one idle Debian systemd container takes of its root user (systemd
#: 5, logind 1, agetty 1; measured with bookworm): containers without an idmap share the
#: host root's budget, ``fs.inotify.max_user_instances`` (128 by default).
INOTIFY_PER_SYSTEM = 7
#: Below this many systemd containers' worth, the limit is worth a warning.
INOTIFY_ENOUGH_FOR = 100


def inotify_checks(c: Checker) -> None:
    """The inotify budget systemd containers share: with the default 128 instances, the
    19th Debian container's systemd exits at once ("Too many open files")."""
    text = (c.reader.text("/proc/sys/fs/inotify/max_user_instances") or "").strip()
    if not text.isdigit():
        return
    limit = int(text)
    room = limit // INOTIFY_PER_SYSTEM
    what = (f"fs.inotify.max_user_instances = {limit}: room for about {room} systemd "
            "containers at once (7 instances each, shared by every container without an "
            "idmap)")
    if room >= INOTIFY_ENOUGH_FOR:
        c.add("host.inotify", "ok", what)
        return
    c.add("host.inotify", "warn", what,
          "past it the next container's systemd cannot watch its units and exits at once",
          "sysctl -w fs.inotify.max_user_instances=8192 fs.inotify.max_user_watches=1048576 "
          "(and the same in /etc/sysctl.d/ to keep it; scripts/host-setup does this)")


# the daemon -------------------------------------------------------------------------


def daemon_checks(c: Checker, spec: Container | None) -> None:
    assert c.host is not None
    host = c.host
    try:
        driver = str(host.conn.getType())
    except LxcvirtError as exc:
        c.add("daemon.connect", "fail", str(exc), "nothing can start without it",
                 "start libvirtd (scripts/host-setup)", required=True)
        return
    except Exception as exc:  # noqa: BLE001 - libvirtError, converted nowhere else here
        c.add("daemon.connect", "fail", f"{host.uri}: {exc}", "", "check the URI",
                 required=True)
        return
    if driver.upper() != "LXC":
        c.add("daemon.connect", "fail", f"{host.uri} is the {driver} driver, not LXC",
                 "lxcvirt drives libvirt's LXC driver only",
                 "connect to lxc:/// (or lxc+ssh://HOST/)", required=True)
        return
    c.add("daemon.connect", "ok", f"{host.uri} answers with the LXC driver",
             required=True)
    try:
        emulator = host.emulator()
    except LxcvirtError as exc:
        c.add("daemon.emulator", "fail", str(exc), "no LXC guest can be defined",
                 "install libvirt-daemon-driver-lxc", required=True)
        return
    if not host.is_local:
        c.add("daemon.emulator", "unknown", f"capabilities name the emulator {emulator}; "
                 "its file is not checkable on a remote URI", required=True)
    elif os.access(c.reader.path(emulator), os.X_OK):
        c.add("daemon.emulator", "ok", f"LXC emulator {emulator} (from capabilities)",
                 required=True)
    else:
        c.add("daemon.emulator", "fail", f"capabilities name {emulator}, which is not "
                 "an executable here", "libvirtd runs it for every container start",
                 "reinstall libvirt-daemon-driver-lxc", required=True)
    if spec is not None:
        network_checks(c, spec)


def network_checks(c: Checker, spec: Container) -> None:
    from .. import _libvirt
    from ..errors import NotFound

    host = c.host
    assert host is not None

    for iface in spec.interfaces:
        src = iface.source or ""
        if iface.type == "network":
            check = f"network.{src}"
            try:
                net = _libvirt.call(f"looking up network {src}",
                                    host.conn.networkLookupByName, src)
                active = bool(_libvirt.call(f"reading network {src}", net.isActive))
            except NotFound:
                c.add(check, "fail", f"network {src} (used by {spec.name}) is not "
                         "defined", "the container cannot start without it",
                         f"virsh net-define a network named {src}")
                continue
            except LxcvirtError as exc:
                c.add(check, "fail", str(exc))
                continue
            if active:
                c.add(check, "ok", f"network {src} is active")
            else:
                c.add(check, "fail", f"network {src} is defined but not active",
                         "the container cannot start without it", f"virsh net-start {src}")
        elif iface.type == "bridge":
            check = f"bridge.{src}"
            if not host.is_local:
                c.add(check, "unknown", f"bridge {src} not checkable on a remote URI")
            elif c.reader.path(f"/sys/class/net/{src}/bridge").is_dir():
                c.add(check, "ok", f"bridge {src} exists")
            else:
                c.add(check, "fail", f"no bridge {src} on this host",
                         "the container's interface is attached to it",
                         f"create it (ip link add {src} type bridge)")
