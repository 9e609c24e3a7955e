"""The checker: the root it reads and the daemon it asks, the findings it collects, and
the cgroup checks (the host's layout, the controllers, and the daemon's own view)."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

from .._hostfs import (
    DirOp,
    Layout,
    Reader,
    Subsystem,
    daemon_socket,
    make_dir,
    parse_mountinfo,
    probe_hierarchy,
    remove_dir,
    socket_owner,
)
from ._daemon import daemon_checks, inotify_checks, namespace_checks
from ._idmap import idmap_checks
from ._report import LEVELS, Finding, Level, Report

if TYPE_CHECKING:
    from ..host import Host
    from ..spec import Container

#: libvirt's LXC driver cannot run without these (v1 names; see _required()).
REQUIRED_V1 = ("cpuacct", "memory", "devices")
RECOMMENDED_V1 = ("cpu", "freezer", "blkio")
#: On cgroup v2 device access is filtered by a BPF program, not a "devices" controller.
REQUIRED_V2 = ("cpu", "memory")
RECOMMENDED_V2 = ("io",)
HYBRID_FIX = (
    "run libvirtd in a private mount namespace without that mount: "
    "unshare -m --propagation private sh -c 'umount {mp} && exec libvirtd -d' "
    "(scripts/host-setup does this), or boot with a pure v1 or pure v2 layout"
)


def _required(kind: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    return (REQUIRED_V2, RECOMMENDED_V2) if kind == "v2" else (REQUIRED_V1, RECOMMENDED_V1)


class Checker:
    """Runs the checks against one root and, optionally, one Host's daemon."""

    def __init__(
        self,
        root: str | Path = "/",
        host: Host | None = None,
        *,
        probe: bool = True,
        mkdir: DirOp = make_dir,
        rmdir: DirOp = remove_dir,
        daemon_pid: int | None = None,
        daemon_mountinfo: str | Path | None = None,
    ) -> None:
        self.reader = Reader(root)
        self.host = host
        self.probe = probe
        self.mkdir = mkdir
        self.rmdir = rmdir
        self._daemon_pid = daemon_pid
        #: Read the daemon's mounts from this file instead (simulates another namespace).
        self.daemon_mountinfo = Path(daemon_mountinfo) if daemon_mountinfo else None
        self.findings: list[Finding] = []
        self._layout: Layout | None = None
        #: Where block I/O weights are set (see _io_weight), None when nowhere.
        self._weight_file: str | None = None

    @property
    def local(self) -> bool:
        return self.host is None or self.host.is_local

    def add(self, check: str, level: Level, what: str, why: str = "", fix: str = "",
            required: bool = False) -> None:
        self.findings.append(Finding(check, level, what, why, fix, required))

    def run(self, spec: Container | None = None) -> Report:
        layout = "unknown"
        if self.local:
            layout = self._cgroups()
            namespace_checks(self)
            inotify_checks(self)
        else:
            uri = self.host.uri if self.host else ""
            for check in ("cgroup.layout", "daemon.cgroups", "namespaces"):
                self.add(check, "unknown", f"not checkable on the remote URI {uri}",
                         "this check reads the host's /proc and /sys", "run lxcvirt check "
                         "on that host", required=check != "namespaces")
        if self.host is not None:
            daemon_checks(self, spec)
        if spec is not None and spec.idmap is not None:
            idmap_checks(self, spec, layout)
        if spec is not None and self.local and self._layout is not None:
            self._spec_limits(spec, self._layout)
        order = {lv: i for i, lv in enumerate(LEVELS)}
        ranked = sorted(enumerate(self.findings), key=lambda p: (order[p[1].level], p[0]))
        return Report(layout, tuple(f for _, f in ranked))

    # cgroups ----------------------------------------------------------------------------

    def _cgroups(self) -> str:
        r = self.reader
        mountinfo = r.text("/proc/self/mountinfo")
        if mountinfo is None:
            self.add("cgroup.layout", "fail", "no /proc/self/mountinfo",
                     "the mounts cannot be read", "mount /proc", required=True)
            return "unknown"
        subs = r.subsystems()
        lay = r.layout(parse_mountinfo(mountinfo), subs)
        self._layout = lay
        if lay.kind == "none":
            self.add("cgroup.layout", "fail", "no cgroup filesystem is mounted",
                     "libvirt's LXC driver puts every container in cgroups",
                     "mount cgroup2 on /sys/fs/cgroup (or the v1 controllers)", required=True)
            return lay.kind
        # A hybrid layout is judged where it matters, in libvirtd's namespace (daemon.cgroups).
        why = ("libvirt 9.0's LXC driver fails on a hybrid layout unless libvirtd runs without "
               "the cgroup2 mount (see daemon.cgroups)" if lay.kind == "hybrid" else "")
        self.add("cgroup.layout", "ok", f"cgroup layout {lay.describe()}", why)
        required, recommended = _required(lay.kind)
        for ctl in required:
            self._controller(lay, subs, ctl, required=True)
        if lay.kind == "v2":
            self._v2_devices()
        for ctl in recommended:
            self._controller(lay, subs, ctl, required=False)
        if lay.kind == "v2":
            self._v2_freezer()
        self._io_weight(lay)
        if self.probe:
            self._probes(lay)
        self._daemon_view(lay, subs)
        return lay.kind

    def _controller(self, lay: Layout, subs: dict[str, Subsystem], ctl: str,
                    required: bool) -> None:
        check = f"cgroup.{ctl}"
        bad: Level = "fail" if required else "warn"
        role = "required" if required else "recommended"
        where = lay.where(ctl)
        if where is not None:
            self.add(check, "ok", f"{ctl} controller ({role}) at {where}", required=required)
            return
        sub = subs.get(ctl)
        uses = {
            "memory": "memory limits and accounting", "cpuacct": "CPU accounting",
            "devices": "the container's device access list", "cpu": "CPU shares and quotas",
            "freezer": "suspending and stopping containers cleanly",
            "blkio": "block I/O limits", "io": "block I/O limits",
        }.get(ctl, "container resource control")
        why = f"libvirt's LXC driver uses it for {uses}"
        if sub is not None and not sub.enabled:
            what = f"{ctl} controller ({role}) is disabled in the kernel"
            fix = f"remove cgroup_disable={ctl} from the kernel command line"
        elif sub is None and self.reader.text("/proc/cgroups") is not None:
            what = f"{ctl} controller ({role}): the kernel does not have it"
            fix = f"use a kernel built with the {ctl} cgroup controller"
        elif lay.kind == "v2":
            what = f"{ctl} controller ({role}) is not in {lay.unified}/cgroup.controllers"
            fix = (f"enable it for this cgroup (echo +{ctl} > cgroup.subtree_control of the "
                   "parent), or use a kernel that has it")
        else:
            what = f"{ctl} controller ({role}) is not mounted"
            fix = f"mkdir -p /sys/fs/cgroup/{ctl} && mount -t cgroup -o {ctl} cgroup " \
                  f"/sys/fs/cgroup/{ctl}"
        self.add(check, bad, what, why, fix, required=required)

    def _io_weight(self, lay: Layout) -> None:
        ctl = "io" if lay.kind == "v2" else "blkio"
        where = lay.where(ctl)
        if where is None:
            return  # the controller's own check says so
        found = self._weight_file = self.reader.io_weight_file(lay)
        if found is not None:
            self.add("cgroup.io-weight", "ok", f"block I/O weights can be set ({found})")
            return
        self.add("cgroup.io-weight", "warn",
                 f"block I/O weights cannot be set: {where} has no {ctl} weight file",
                 "the kernel makes it only with an I/O scheduler that has weights (BFQ); "
                 "libvirt fails the start of a container that sets limits.blkio_weight or "
                 "a device weight (throttles work)",
                 "use the bfq scheduler for the disks (echo bfq > "
                 "/sys/block/DISK/queue/scheduler, with the bfq module), or set no weights")

    def _spec_limits(self, spec: Container, lay: Layout) -> None:
        """The controller each limit of the spec needs; a blkio limit also a hierarchy that
        takes nested cgroups (the probe above)."""
        lim = spec.limits
        v2 = lay.kind == "v2"
        asked = {
            "cpu": [k for k in ("cpu_shares", "cpu_period", "cpu_quota")
                    if getattr(lim, k) is not None],
            "cpuset": ["cpuset"] if lim.cpuset is not None else [],
            "io" if v2 else "blkio": (["blkio_weight"] if lim.blkio_weight is not None else [])
            + (["blkio_device"] if lim.blkio_devices else []),
            "memory": [k for k in ("memory_hard_limit", "memory_soft_limit", "swap_hard_limit")
                       if getattr(lim, k) is not None],
        }
        for ctl, keys in asked.items():
            if not keys:
                continue
            check = f"spec.limits.{ctl}"
            said = ", ".join(f"limits.{k}" for k in keys)
            where = lay.where(ctl)
            if where is None:
                self.add(check, "fail", f"{said} needs the {ctl} controller, which this host "
                         "does not have mounted", "libvirt fails the start (or ignores the "
                         "limit) without it", f"mount the {ctl} controller, or remove {said}",
                         required=True)
                continue
            failed_probe = next((f for f in self.findings if f.check.startswith(
                "cgroup.probe.") and f.level == "fail" and ctl in f.check.split(".", 2)[2]
                .split(",")), None)
            if failed_probe is not None:
                self.add(check, "fail", f"{said} needs nested cgroups in {where}, which "
                         f"refuses them ({failed_probe.check})", failed_probe.why,
                         failed_probe.fix, required=True)
                continue
            weights = (["limits.blkio_weight"] if lim.blkio_weight is not None else []) + (
                ["limits.blkio_device weight"]
                if any(d.weight is not None for d in lim.blkio_devices) else [])
            if ctl in ("io", "blkio") and weights and self._weight_file is None:
                said = ", ".join(weights)
                self.add(check, "fail", f"{said} needs block I/O weights, which {where} "
                         "does not offer (see cgroup.io-weight)",
                         "libvirt fails the start: its weight needs an I/O scheduler with "
                         "weights (BFQ)", "remove the weight (throttles work), or use the bfq "
                         "scheduler for the disks", required=True)
                continue
            self.add(check, "ok", f"{said}: {ctl} controller at {where}")

    def _v2_devices(self) -> None:
        config = self.reader.kernel_config()
        why = "on cgroup v2 libvirt filters device access with a BPF program"
        value = None if config is None else config.get("CONFIG_CGROUP_BPF")
        if value == "y":
            self.add("cgroup.devices", "ok", "device control through BPF (CONFIG_CGROUP_BPF=y; "
                     "no devices controller needed on cgroup v2)", required=True)
        elif config is None:
            self.add("cgroup.devices", "warn",
                     "device control through BPF not verified: no kernel config readable",
                     why, "check that the kernel has CONFIG_CGROUP_BPF=y", required=True)
        else:
            self.add("cgroup.devices", "fail", "the kernel has no CONFIG_CGROUP_BPF", why,
                     "use a kernel built with CONFIG_CGROUP_BPF=y", required=True)

    def _v2_freezer(self) -> None:
        release = (self.reader.text("/proc/sys/kernel/osrelease") or "").strip()
        m = re.match(r"(\d+)\.(\d+)", release)
        if m and (int(m.group(1)), int(m.group(2))) >= (5, 2):
            self.add("cgroup.freezer", "ok", f"freezing is built into cgroup v2 (cgroup.freeze, "
                     f"kernel {release})")
        else:
            self.add("cgroup.freezer", "warn", f"kernel {release or '(unknown)'} has no cgroup "
                     "v2 freezer (needs 5.2)", "containers cannot be suspended",
                     "use Linux 5.2 or later")

    def _probes(self, lay: Layout) -> None:
        points: dict[str, list[str]] = {}
        for ctl, mp in lay.v1.items():
            points.setdefault(mp, []).append(ctl)
        if lay.kind == "v2" and lay.unified is not None:
            points[lay.unified] = ["cgroup2"]
        root_user = os.geteuid() == 0 or self.reader.root != Path("/")
        for mp, ctls in sorted(points.items()):
            name = ",".join(sorted(ctls))
            check = f"cgroup.probe.{name}"
            if not root_user:
                self.add(check, "unknown", f"nested cgroup in {mp} not probed",
                         "creating cgroups needs root", "run lxcvirt check as root")
                continue
            problem = probe_hierarchy(self.reader.path(mp), mkdir=self.mkdir, rmdir=self.rmdir)
            if problem is None:
                self.add(check, "ok", f"nested cgroup created and removed in {mp}",
                         required=True)
            else:
                self.add(check, "fail", f"{mp} ({name}) refuses nested cgroups: {problem}",
                         "libvirt creates machine/NAME.libvirt-lxc in every mounted hierarchy, "
                         "so every start fails",
                         f"unmount it (umount {mp}) before starting libvirtd", required=True)

    def daemon_pid(self) -> int | None:
        """The libvirtd that starts this URI's containers, if one runs here."""
        pid = self._daemon_pid
        if pid is None and self.host is not None and self.reader.root == Path("/"):
            # The daemon behind this URI, not just any libvirtd: ask its socket.
            path = daemon_socket(self.host.uri)
            pid = socket_owner(path) if path else None
        if pid is None:
            pid = self.reader.daemon_pid()
        return pid

    def _daemon_view(self, own: Layout, subs: dict[str, Subsystem]) -> None:
        """What libvirtd's mount namespace shows (it, not this process, starts containers)."""
        check = "daemon.cgroups"
        pid: int | None = None
        sees = "sees"
        if self.daemon_mountinfo is not None:
            source = f"a libvirtd with the mounts of {self.daemon_mountinfo}"
            try:
                text: str | None = self.daemon_mountinfo.read_text()
            except OSError as exc:
                text = None
                self.add(check, "unknown", f"cannot read {source}: {exc.strerror}")
                return
        else:
            pid = self.daemon_pid()
            if pid is None:
                text = None
                source = "no libvirtd runs here; one started in this mount namespace"
                sees = "would see"
            else:
                source = f"libvirtd (pid {pid})"
                try:
                    text = self.reader.text(f"/proc/{pid}/mountinfo")
                except PermissionError:
                    self.add(check, "unknown", f"cannot read /proc/{pid}/mountinfo",
                             "only root may read another user's mounts", "run as root",
                             required=True)
                    return
        lay = own if text is None else self.reader.layout(parse_mountinfo(text), subs)
        if lay.kind == "hybrid" and lay.unified is not None:
            self.add(check, "fail",
                     f"{source} {sees} cgroup2 at {lay.unified} beside the v1 controllers",
                     "libvirt's LXC driver then fails every start with \"Unable to create "
                     f"directory {lay.unified}\"", HYBRID_FIX.format(mp=lay.unified),
                     required=True)
            return
        required, _ = _required(lay.kind)
        missing = [c for c in required if lay.where(c) is None and own.where(c) is not None]
        if missing:
            self.add(check, "fail", f"{source} {sees} no {', '.join(missing)} "
                     "controller(s) that this process sees",
                     "containers get their cgroups in the daemon's mount namespace",
                     "restart libvirtd where the controllers are mounted", required=True)
            return
        hidden = " (its namespace hides the hybrid cgroup2 mount)" if own.kind == "hybrid" else ""
        self.add(check, "ok", f"{source} {sees} cgroup layout {lay.kind}{hidden}", required=True)

    # namespaces -------------------------------------------------------------------------
