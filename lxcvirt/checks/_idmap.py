"""Host checks for a container with an ``<idmap>`` (an unprivileged container): what
would stop it from starting here, each cause seen failing a real start (a shared host
network, user namespaces off, a root folder the mapped root cannot reach or write, systemd
as init without a name=systemd cgroup of its own).  Part of :mod:`lxcvirt.checks`, which
calls :func:`idmap_checks` with its checker.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from .._hostfs import HOOK_PATH, Reader, find_hook, parse_mountinfo, resolve_in

if TYPE_CHECKING:
    from ..spec import Container, IdRange
    from ._checker import Checker


def idmap_checks(c: Checker, spec: Container, layout: str) -> None:
    """What makes a container with an <idmap> fail to start, seen before it does."""
    assert spec.idmap is not None
    _idmap_network(c, spec, layout)
    if not c.local:
        uri = c.host.uri if c.host else ""
        c.add("idmap.host", "unknown", f"user namespaces, the root folder's owner and "
                 f"systemd's cgroup are not checkable on the remote URI {uri}",
                 "these checks read the host's files", "run lxcvirt check on that host")
        return
    _idmap_userns(c)
    uid = _mapped_root(spec.idmap.uid)
    gid = _mapped_root(spec.idmap.gid)
    if uid is None or gid is None:
        c.add("idmap.root", "warn", f"the <idmap> of {spec.name} maps no uid or gid 0",
                 "the container has no root user: its init runs as nobody",
                 "add a range with start = 0 for uid and gid")
    else:
        _idmap_root(c, spec, uid, gid)
    _idmap_cgroup(c, spec, layout, uid)

def _idmap_network(c: Checker, spec: Container, layout: str) -> None:
    # Judged on the rendered XML: whether a container gets a network namespace of its
    # own is the template's decision (an <interface>, or <features><privnet/>).
    from .._xml import parse_xml
    from ..rendering import render

    dom = parse_xml(render(spec), f"spec {spec.name}")
    if dom.find("devices/interface") is not None or dom.find("features/privnet") is not None:
        c.add("idmap.network", "ok", f"{spec.name} has a network namespace of its own "
                 "(an <interface> or <privnet/>), which an <idmap> container needs")
        return
    seen = layout in ("v1", "hybrid")
    c.add("idmap.network", "fail" if seen else "warn",
             f"{spec.name} has an <idmap> and shares the host's network namespace "
             "(no <interface>, no <features><privnet/>)",
             "libvirt 9.0 then fails the start with \"virCgroupV1BindMount: Unable to "
             "create directory /sys/fs/cgroup: Read-only file system\""
             + ("" if seen else f" (seen with cgroup v1; the layout here: {layout})"),
             "leave out host_network = true (lxcvirt then gives it <features><privnet/>, "
             "a namespace with only lo), or give it an [[interface]]")

def _idmap_userns(c: Checker) -> None:
    r = c.reader
    why = "libvirt makes a user namespace for every container with an <idmap>"
    have = os.path.lexists(r.path("/proc/self/ns/user"))
    config = r.kernel_config() or {}
    limit = (r.text("/proc/sys/user/max_user_namespaces") or "").strip()
    if not have or config.get("CONFIG_USER_NS") == "n":
        c.add("idmap.userns", "fail", "the kernel has no user namespaces "
                 "(CONFIG_USER_NS)", why, "use a kernel built with CONFIG_USER_NS=y")
    elif limit == "0":
        c.add("idmap.userns", "fail", "user namespaces are turned off "
                 "(/proc/sys/user/max_user_namespaces = 0)", f"{why}: the start fails",
                 "sysctl -w user.max_user_namespaces=15000 (and set it in /etc/sysctl.d/)")
    else:
        c.add("idmap.userns", "ok", "user namespaces are available"
                 + (f" (max_user_namespaces = {limit})" if limit else ""))

def _idmap_root(c: Checker, spec: Container, uid: int, gid: int) -> None:
    check = "idmap.root"
    fs = spec.root
    if fs is None or fs.source is None:
        c.add(check, "fail", f"{spec.name} has an <idmap> but no root filesystem of its "
                 "own (no filesystem with target /)", "the host's / belongs to the host's "
                 "root, which is not mapped inside", "give it a root folder owned by the "
                 f"mapped root ({uid}:{gid})")
        return
    src = fs.source
    shift = (f"shift the tree to the mapped ids (each file's uid + {uid}, gid + {gid}); "
             f"a tree owned by root alone: chown -R {uid}:{gid} {src}")
    try:
        st = c.reader.path(src).stat()
    except OSError as exc:
        c.add(check, "fail", f"root folder {src}: {exc.strerror}",
                 "the container cannot start without it", "create it, or fix the spec")
        return
    # The container's root creates <root>/.oldroot while it starts: it must be able to
    # reach the folder and write in it.
    for parent in reversed(Path(src).parents):
        try:
            pst = c.reader.path(str(parent)).stat()
        except OSError:
            continue
        if not _may(pst, uid, gid, 0o1):
            c.add(check, "fail", f"{parent} (mode {pst.st_mode & 0o7777:o}, owner "
                     f"{pst.st_uid}) cannot be searched by the mapped root {uid}",
                     f"libvirt fails the start with \"Failed to create {src}/.oldroot: "
                     "Permission denied\"", f"chmod o+x {parent}, or keep the root folder "
                     "elsewhere")
            return
    if st.st_uid != uid or not _may(st, uid, gid, 0o3):
        c.add(check, "fail", f"root folder {src} belongs to {st.st_uid}:{st.st_gid}, "
                 f"not to the mapped root {uid}:{gid}",
                 f"uid 0 inside is {uid} on the host; libvirt fails the start with \"Failed "
                 f"to create {src}/.oldroot: Permission denied\"", shift)
        return
    idmap = spec.idmap
    assert idmap is not None
    strangers = []
    with contextlib.suppress(OSError):
        for entry in sorted(c.reader.path(src).iterdir()):
            est = entry.lstat()
            if not (_in(est.st_uid, idmap.uid) and _in(est.st_gid, idmap.gid)):
                strangers.append(entry.name)
    if strangers:
        c.add(check, "warn", f"in root folder {src}, {', '.join(strangers[:5])}"
                 f"{' …' if len(strangers) > 5 else ''} belong to ids outside the <idmap>",
                 "inside they show as nobody (65534) and the container's root cannot "
                 "change them", shift)
        return
    c.add(check, "ok", f"root folder {src} belongs to the mapped root {uid}:{gid}")

def _idmap_cgroup(c: Checker, spec: Container, layout: str, uid: int | None) -> None:
    """systemd's own cgroup hierarchy (name=systemd), which libvirt 9.0 leaves alone
    on a host without systemd: the container's cgroup there is libvirtd's, the root."""
    check = "idmap.cgroup"
    fs = spec.root
    tree = c.reader.path(fs.source) if fs is not None and fs.source else c.reader.root
    init = resolve_in(tree, spec.init.path)
    systemd = "systemd" in spec.init.path or "systemd" in Path(init).name
    what = f"init {spec.init.path}" + (f" (-> {init})" if init != spec.init.path else "")
    # The hooks and mounts that count are the daemon's: read them in its mount namespace.
    pid = c.daemon_pid()
    daemon = c.reader
    mountinfo = None
    if pid is not None:
        with contextlib.suppress(OSError):
            mountinfo = c.reader.text(f"/proc/{pid}/mountinfo")
            if c.reader.path(f"/proc/{pid}/root/etc").is_dir():
                daemon = Reader(c.reader.path(f"/proc/{pid}/root"))
    mountinfo = mountinfo or c.reader.text("/proc/self/mountinfo") or ""
    named = next((m.mount_point for m in parse_mountinfo(mountinfo)
                  if m.fstype == "cgroup" and "name=systemd" in m.options), None)
    booted = c.reader.path("/run/systemd/system").is_dir()
    if named is None or booted:
        if systemd:
            where = ("this host runs systemd, whose machined gives each container a "
                     "cgroup of its own" if booted else f"the cgroup layout is {layout}")
            c.add(check, "unknown", f"{what} is systemd; systemd in an <idmap> "
                     f"container is not verified here ({where})")
        return
    hook = find_hook(daemon)
    shown = "/" + str(hook.relative_to(daemon.root)) if hook else HOOK_PATH
    started = c.reader.started_at(pid) if pid is not None else None
    fix = ("install lxcvirt's libvirt hook, which gives each <idmap> container a name=systemd "
           f"cgroup of its own: scripts/host-setup installs it as {HOOK_PATH} and "
           "restarts libvirtd to load it")
    if hook is None:
        problem = "libvirtd has no lxcvirt hook"
    elif started is not None and started < hook.stat().st_mtime:
        # libvirtd looks for hook scripts only when it starts.
        problem = f"libvirtd (pid {pid}) started before the hook {shown} was installed"
        fix = "restart libvirtd so that it runs the hook (scripts/host-setup does it)"
    else:
        c.add(check, "ok", f"the libvirt hook {shown} gives {spec.name} a name=systemd "
                 "cgroup of its own, which libvirt hands to its mapped root"
                 + (f" ({what} is systemd)" if systemd else ""))
        return
    why = ("on a cgroup v1 host without systemd libvirt 9.0 leaves every container in "
           "libvirtd's name=systemd cgroup, the hierarchy's root, and for an <idmap> "
           "chowns that root and the files in it to the mapped root")
    if not systemd:
        c.add(check, "warn", f"{problem}: starting {spec.name} hands the host's "
                 f"name=systemd root to its mapped root {uid}",
                 f"{why}; the container starts, and its root may then write there", fix)
        return
    # systemd puts itself into <its cgroup>/init.scope: one another container's systemd
    # made there first is not the mapped root's.
    try:
        scope: os.stat_result | None = daemon.path(f"{named}/init.scope/cgroup.procs").stat()
    except OSError:
        scope = None
    if scope is not None and scope.st_uid != uid:
        c.add(check, "fail", f"{what} is systemd, and {problem}",
                 f"{why}; systemd then exits at once (\"Failed to create /init.scope "
                 f"control group: Permission denied\"): {named}/init.scope, made by "
                 f"another container's systemd, belongs to {scope.st_uid}; a busybox or "
                 "shell init runs", fix)
    else:
        c.add(check, "warn", f"{what} is systemd, and {problem}: it boots in the "
                 f"host's name=systemd root, which it shares with every container",
                 f"{why}; the next container with systemd (and a different mapping, or "
                 "none) fails or mixes its cgroups with this one's", fix)


def _mapped_root(ranges: Iterable[IdRange]) -> int | None:
    """The host id that id 0 inside maps to (None: 0 is not mapped)."""
    return next((r.target for r in ranges if r.start == 0), None)


def _in(host_id: int, ranges: Iterable[IdRange]) -> bool:
    return any(r.target <= host_id < r.target + r.count for r in ranges)


def _may(st: os.stat_result, uid: int, gid: int, bits: int) -> bool:
    """Whether ``uid``:``gid`` (no capabilities over the file) has ``bits`` (rwx = 4, 2, 1)
    on a file with stat ``st``."""
    if st.st_uid == uid:
        granted = st.st_mode >> 6
    elif st.st_gid == gid:
        granted = st.st_mode >> 3
    else:
        granted = st.st_mode
    return granted & bits == bits
