"""What the controller reports: state and reason names (as virsh prints them) and the
results of status, define, stop and reboot."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import libvirt

from .._outcome import outcome
from ..spec import Autostart

STATE_NAMES = {
    libvirt.VIR_DOMAIN_NOSTATE: "no state",
    libvirt.VIR_DOMAIN_RUNNING: "running",
    libvirt.VIR_DOMAIN_BLOCKED: "blocked",
    libvirt.VIR_DOMAIN_PAUSED: "paused",
    libvirt.VIR_DOMAIN_SHUTDOWN: "in shutdown",
    libvirt.VIR_DOMAIN_SHUTOFF: "shut off",
    libvirt.VIR_DOMAIN_CRASHED: "crashed",
    libvirt.VIR_DOMAIN_PMSUSPENDED: "pmsuspended",
}

# The reason words virsh prints (virsh-domain-monitor.c), per state.
_REASONS: dict[int, tuple[str, ...]] = {
    libvirt.VIR_DOMAIN_RUNNING: (
        "unknown", "booted", "migrated", "restored", "from snapshot", "unpaused",
        "migration canceled", "save canceled", "event wakeup", "crashed", "post-copy",
        "post-copy failed",
    ),
    libvirt.VIR_DOMAIN_SHUTOFF: (
        "unknown", "shutdown", "destroyed", "crashed", "migrated", "saved", "failed",
        "from snapshot", "daemon",
    ),
    libvirt.VIR_DOMAIN_SHUTDOWN: ("unknown", "user"),
    libvirt.VIR_DOMAIN_PAUSED: (
        "unknown", "user", "migrating", "saving", "dumping", "I/O error", "watchdog",
        "from snapshot", "shutting down", "creating snapshot", "crashed", "starting up",
        "post-copy", "post-copy failed",
    ),
    libvirt.VIR_DOMAIN_CRASHED: ("unknown", "panicked"),
}


def state_name(state: int) -> str:
    return STATE_NAMES.get(state, f"state {state}")


def reason_name(state: int, reason: int) -> str:
    names = _REASONS.get(state, ("unknown",))
    return names[reason] if 0 <= reason < len(names) else "unknown"


@dataclass(frozen=True)
class Status:
    """What ``status`` and ``list`` report for one container."""

    name: str
    uuid: str
    state: str
    reason: str
    id: int | None
    memory_kib: int
    max_memory_kib: int
    vcpus: int
    persistent: bool
    managed: bool
    autostart: Autostart | None
    #: IPv4 addresses of a running container, from the DHCP leases of its libvirt networks.
    ipv4: tuple[str, ...] = ()
    #: Why lxcvirt cannot read this container's definition (its XML or lxcvirt's metadata
    #: in it), or None.  Such a container is still listed; commands acting on many skip it.
    problem: str | None = None
    #: Redefined since it started: it runs the old definition until it is restarted.
    restart_needed: bool = False
    #: The project ``lxcvirt apply`` created it for (None: not made by an apply).
    project: str | None = None
    #: The limits its definition sets (spec keys of ``[limits]``; the running one's when
    #: it runs), and the cpuset.
    limits: Mapping[str, int] = field(default_factory=dict)
    cpuset: str | None = None
    #: CPU time used since it started, in nanoseconds (0 when stopped).
    cpu_time_ns: int = 0
    #: Processes the OOM killer killed in it (``status`` on a local daemon; else None).
    oom_kills: int | None = None
    #: Why libvirtd has lost track of the running container (its monitor connection to
    #: the controller), on a local daemon; None when it has not (or cannot be told).
    monitor_lost: str | None = None
    #: libvirt's own autostart flag (``virsh autostart``), apart from lxcvirt's settings.
    libvirt_autostart: bool | None = None

    @property
    def running(self) -> bool:
        return self.state == "running"

    def to_dict(self) -> dict[str, object]:
        a = self.autostart
        return {
            "name": self.name,
            "uuid": self.uuid,
            "state": self.state,
            "reason": self.reason,
            "id": self.id,
            "memory_kib": self.memory_kib,
            "max_memory_kib": self.max_memory_kib,
            "vcpus": self.vcpus,
            "persistent": self.persistent,
            "managed": self.managed,
            "ipv4": list(self.ipv4),
            "problem": self.problem,
            "restart_needed": self.restart_needed,
            "project": self.project,
            "limits": dict(self.limits),
            "cpuset": self.cpuset,
            "cpu_time_ns": self.cpu_time_ns,
            "oom_kills": self.oom_kills,
            "monitor_lost": self.monitor_lost,
            "libvirt_autostart": self.libvirt_autostart,
            "autostart": None
            if a is None
            else {
                "auto": a.auto,
                "priority": a.priority,
                "time": a.time,
                "groups": list(a.groups),
                "after": list(a.after),
            },
        }


@dataclass(frozen=True)
class DefineResult:
    name: str
    action: str  # "created" | "redefined" | "unchanged"
    diff: str = ""
    restart_needed: bool = False

    def to_dict(self, action: str = "define") -> dict[str, object]:
        """The outcome of ``action`` (define, create): ``result`` is created, redefined or
        unchanged."""
        return outcome(self.name, action, self.action, diff=self.diff,
                       restart_needed=self.restart_needed)


@dataclass(frozen=True)
class StopResult:
    name: str
    how: str  # "already stopped" | "shut down" | "destroyed" | "destroyed after timeout"
    seconds: float = 0.0
    #: How init was asked, e.g. "SIGRTMIN+3" or "initctl+SIGTERM" ("" when it was not).
    method: str = ""

    def to_dict(self, action: str = "stop") -> dict[str, object]:
        """The outcome of ``action`` (stop, destroy): ``result`` says how it went."""
        return outcome(self.name, action, self.how, seconds=self.seconds,
                       method=self.method or None)


@dataclass(frozen=True)
class RebootResult:
    name: str
    how: str  # "rebooted" (init asked, libvirt restarted it) | "restarted" (stop + start)
    seconds: float
    method: str
    status: Status

    def to_dict(self, action: str = "reboot") -> dict[str, object]:
        """The outcome of ``action`` (reboot, restart), with the container's status."""
        return outcome(self.name, action, self.how, seconds=self.seconds,
                       method=self.method or None, status=self.status.to_dict())
