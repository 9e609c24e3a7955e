"""``stats``: what running containers use, as rates over an interval: CPU (100 % is one
CPU), memory against its limit, network and block I/O bytes per second."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import libvirt

from .. import _libvirt
from .._proc import block_io_bytes
from .._xml import parse_xml
from ..errors import LxcvirtError

if TYPE_CHECKING:
    from ._controller import Host


@dataclass(frozen=True)
class Sample:
    name: str
    at: float  # monotonic seconds
    cpu_ns: int
    memory_kib: int
    limit_kib: int
    rx_bytes: int | None
    tx_bytes: int | None
    read_bytes: int | None
    write_bytes: int | None


@dataclass(frozen=True)
class Usage:
    name: str
    cpu_percent: float
    memory_kib: int
    limit_kib: int
    rx_per_s: float | None
    tx_per_s: float | None
    read_per_s: float | None
    write_per_s: float | None

    def to_dict(self) -> dict[str, object]:
        def r(v: float | None) -> float | None:
            return None if v is None else round(v, 1)

        return {"name": self.name, "cpu_percent": round(self.cpu_percent, 1),
                "memory_kib": self.memory_kib, "limit_kib": self.limit_kib,
                "rx_bytes_per_s": r(self.rx_per_s), "tx_bytes_per_s": r(self.tx_per_s),
                "read_bytes_per_s": r(self.read_per_s),
                "write_bytes_per_s": r(self.write_per_s)}


def _sample(host: Host, name: str) -> Sample | None:
    try:
        dom = host.domain(name)
        info = dom.info()
        if info[0] not in (libvirt.VIR_DOMAIN_RUNNING, libvirt.VIR_DOMAIN_PAUSED):
            return None
        root = parse_xml(dom.XMLDesc(0), name)
        dom_id = dom.ID()
    except LxcvirtError:
        return None  # gone or stopped meanwhile: not running, not listed
    limit_el = root.find("memtune/hard_limit")
    limit = int(info[1])
    if limit_el is not None and (limit_el.text or "").strip().isdigit():
        limit = min(limit, int((limit_el.text or "0").strip()))
    rx = tx = 0
    known = False
    for target in root.findall("devices/interface/target"):
        dev = target.get("dev")
        if not dev:
            continue
        with _libvirt.ignored():
            counters = dom.interfaceStats(dev)
            # counted on the host side of the veth: it receives what the container sends
            rx, tx, known = rx + int(counters[4]), tx + int(counters[0]), True
    io = block_io_bytes(dom_id) if host.is_local and dom_id > 0 else None
    return Sample(name, time.monotonic(), int(info[4]), int(info[2]), limit,
                  rx if known else None, tx if known else None,
                  None if io is None else io[0], None if io is None else io[1])


def sample(host: Host, names: Sequence[str] = ()) -> dict[str, Sample]:
    """One sample of ``names`` (default: every running container)."""
    wanted = list(names) or [s.name for s in host.list(all=False)]
    out = {}
    for n in wanted:
        s = _sample(host, n)
        if s is not None:
            out[n] = s
    return out


def usage(before: dict[str, Sample], after: dict[str, Sample]) -> list[Usage]:
    """Rates between two samples, for the containers in both."""
    out = []
    for name, b in after.items():
        a = before.get(name)
        if a is None or b.at <= a.at:
            continue
        dt = b.at - a.at

        def rate(x: int | None, y: int | None, dt: float = dt) -> float | None:
            return None if x is None or y is None else max(0, y - x) / dt

        out.append(Usage(name, max(0, b.cpu_ns - a.cpu_ns) / 1e9 / dt * 100, b.memory_kib,
                         b.limit_kib, rate(a.rx_bytes, b.rx_bytes), rate(a.tx_bytes, b.tx_bytes),
                         rate(a.read_bytes, b.read_bytes), rate(a.write_bytes, b.write_bytes)))
    return sorted(out, key=lambda u: u.name)
