"""``info``: one container in full: its status, and what runs now (init, uptime, CPU
time split, memory peak, each interface with its addresses and traffic, its mounts)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import libvirt

from .. import _libvirt
from .._proc import init_pid, memory_peak_kib, uptime_seconds
from .._xml import parse_xml
from ..errors import XMLError
from ._status import Status

if TYPE_CHECKING:
    from ._controller import Host


@dataclass(frozen=True)
class InterfaceInfo:
    type: str
    source: str | None
    mac: str | None
    #: the host side of the veth (running only)
    host_dev: str | None
    addresses: tuple[str, ...]
    rx_bytes: int | None
    tx_bytes: int | None

    def to_dict(self) -> dict[str, object]:
        return {"type": self.type, "source": self.source, "mac": self.mac,
                "host_dev": self.host_dev, "addresses": list(self.addresses),
                "rx_bytes": self.rx_bytes, "tx_bytes": self.tx_bytes}


@dataclass(frozen=True)
class MountInfo:
    type: str
    source: str | None
    target: str
    readonly: bool

    def to_dict(self) -> dict[str, object]:
        return {"type": self.type, "source": self.source, "target": self.target,
                "readonly": self.readonly}


@dataclass(frozen=True)
class Info:
    status: Status
    init_pid: int | None
    uptime_s: float | None
    cpu_user_ns: int | None
    cpu_system_ns: int | None
    memory_peak_kib: int | None
    interfaces: tuple[InterfaceInfo, ...]
    mounts: tuple[MountInfo, ...]

    def to_dict(self) -> dict[str, object]:
        s = self.status
        return {
            **s.to_dict(),
            "init_pid": self.init_pid,
            "uptime_s": None if self.uptime_s is None else round(self.uptime_s, 1),
            "cpu": {"total_ns": s.cpu_time_ns, "user_ns": self.cpu_user_ns,
                    "system_ns": self.cpu_system_ns},
            "memory": {"used_kib": s.memory_kib if s.running else None,
                       "limit_kib": s.limits.get("memory_hard_limit", s.max_memory_kib),
                       "peak_kib": self.memory_peak_kib, "max_kib": s.max_memory_kib},
            "interfaces": [i.to_dict() for i in self.interfaces],
            "mounts": [m.to_dict() for m in self.mounts],
        }


def info(host: Host, name: str) -> Info:
    dom = host.domain(name)
    status = host.status(name, monitor=True)
    running = status.id is not None and status.state in ("running", "paused")
    try:
        root = parse_xml(dom.XMLDesc(0), name)
    except XMLError:
        root = None  # status says why (its problem); the rest is still worth showing
    local = host.is_local and running and status.id is not None
    user = system = None
    if running:
        with _libvirt.ignored():
            stats = dom.getCPUStats(True)
            if stats:
                user, system = stats[0].get("user_time"), stats[0].get("system_time")
    leases: dict[str, list[str]] = {}
    if running:
        with _libvirt.ignored():
            found = dom.interfaceAddresses(libvirt.VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_LEASE, 0)
            for iface in (found or {}).values():
                mac = (iface.get("hwaddr") or "").lower()
                leases.setdefault(mac, []).extend(
                    f"{a['addr']}/{a['prefix']}" for a in iface.get("addrs") or ())
    interfaces = []
    for el in [] if root is None else root.findall("devices/interface"):
        src = el.find("source")
        source = None if src is None else (src.get("network") or src.get("bridge"))
        mac_el, target = el.find("mac"), el.find("target")
        mac = None if mac_el is None else (mac_el.get("address") or "").lower() or None
        host_dev = target.get("dev") if running and target is not None else None
        static = [f"{ip.get('address')}/{ip.get('prefix')}" for ip in el.findall("ip")]
        rx = tx = None
        if host_dev:
            with _libvirt.ignored():
                counters = dom.interfaceStats(host_dev)
                # libvirt counts on the host side of the veth: what it receives, the
                # container sent
                rx, tx = int(counters[4]), int(counters[0])
        addrs = tuple(dict.fromkeys([*static, *leases.get(mac or "", [])]))
        interfaces.append(InterfaceInfo(el.get("type") or "", source, mac, host_dev, addrs,
                                        rx, tx))
    mounts = []
    for fs in [] if root is None else root.findall("devices/filesystem"):
        src, tgt = fs.find("source"), fs.find("target")
        source = None if src is None else (src.get("dir") or src.get("file")
                                           or src.get("name"))
        mounts.append(MountInfo(fs.get("type") or "mount", source,
                                "" if tgt is None else tgt.get("dir") or "",
                                fs.find("readonly") is not None))
    cid = status.id if status.id is not None else -1
    return Info(
        status,
        init_pid(cid) if local else None,
        uptime_seconds(cid) if local else None,
        None if user is None else int(user),
        None if system is None else int(system),
        memory_peak_kib(cid) if local else None,
        tuple(interfaces),
        tuple(mounts),
    )
