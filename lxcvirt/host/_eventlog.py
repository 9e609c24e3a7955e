"""Lifecycle events as they happen (``lxcvirt events``, like ``virsh event --loop``): one
:class:`Event` per change of any container, or of the ones named."""

from __future__ import annotations

import queue
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import libvirt

from .. import _libvirt
from ..errors import DaemonUnreachable

if TYPE_CHECKING:
    from ._controller import Host

_E = libvirt
EVENTS = {
    _E.VIR_DOMAIN_EVENT_DEFINED: "defined", _E.VIR_DOMAIN_EVENT_UNDEFINED: "undefined",
    _E.VIR_DOMAIN_EVENT_STARTED: "started", _E.VIR_DOMAIN_EVENT_SUSPENDED: "suspended",
    _E.VIR_DOMAIN_EVENT_RESUMED: "resumed", _E.VIR_DOMAIN_EVENT_STOPPED: "stopped",
    _E.VIR_DOMAIN_EVENT_SHUTDOWN: "shutdown", _E.VIR_DOMAIN_EVENT_PMSUSPENDED: "pmsuspended",
    _E.VIR_DOMAIN_EVENT_CRASHED: "crashed",
}
#: event -> detail code -> word (libvirt's virDomainEvent*DetailType, the common ones)
DETAILS: dict[int, dict[int, str]] = {
    _E.VIR_DOMAIN_EVENT_DEFINED: {0: "added", 1: "updated", 2: "renamed"},
    _E.VIR_DOMAIN_EVENT_UNDEFINED: {0: "removed", 1: "renamed"},
    _E.VIR_DOMAIN_EVENT_STARTED: {0: "booted", 1: "migrated", 2: "restored", 4: "wakeup"},
    _E.VIR_DOMAIN_EVENT_SUSPENDED: {0: "paused", 6: "api error"},
    _E.VIR_DOMAIN_EVENT_RESUMED: {0: "unpaused"},
    _E.VIR_DOMAIN_EVENT_STOPPED: {0: "shutdown", 1: "destroyed", 2: "crashed", 5: "failed"},
    _E.VIR_DOMAIN_EVENT_SHUTDOWN: {0: "finished", 1: "guest", 2: "host"},
}


@dataclass(frozen=True)
class Event:
    """One lifecycle change: when (seconds since the epoch), which container, what."""

    time: float
    name: str
    event: str
    detail: str

    def to_dict(self) -> dict[str, object]:
        return {"time": self.stamp, "name": self.name, "event": self.event,
                "detail": self.detail}

    @property
    def stamp(self) -> str:
        """The time in ISO 8601, UTC, to the millisecond."""
        return datetime.fromtimestamp(self.time, UTC).isoformat(
            timespec="milliseconds").replace("+00:00", "Z")


def events(host: Host, names: Sequence[str] = (), *, timeout: float | None = None,
           count: int | None = None) -> Iterator[Event]:
    """The lifecycle events of ``names`` (every container when empty) from now on, until
    ``timeout`` seconds have passed or ``count`` events were seen (both: forever).
    Raises :class:`DaemonUnreachable` when the daemon closes the connection."""
    wanted = set(names)
    q: queue.Queue[Event | None] = queue.Queue()

    def on_event(_conn: Any, dom: Any, event: int, detail: int, _opaque: Any) -> None:
        name = ""
        with _libvirt.ignored():
            name = dom.name()
        if wanted and name not in wanted:
            return
        q.put(Event(time.time(), name, EVENTS.get(event, str(event)),
                    DETAILS.get(event, {}).get(detail, str(detail))))

    def on_close(_conn: Any, _reason: int, _opaque: Any) -> None:
        q.put(None)

    conn = host.conn
    cb_id = _libvirt.call("listening for lifecycle events", conn.domainEventRegisterAny,
                          None, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, on_event, None)
    with _libvirt.ignored():
        conn.registerCloseCallback(on_close, None)
    deadline = None if timeout is None else time.monotonic() + timeout
    seen = 0
    try:
        while count is None or seen < count:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return
            try:
                ev = q.get(timeout=left if left is not None else 1.0)
            except queue.Empty:
                continue
            if ev is None:
                raise DaemonUnreachable(f"lost the connection to libvirtd at {host.uri}")
            seen += 1
            yield ev
    finally:
        with _libvirt.ignored():
            conn.domainEventDeregisterAny(cb_id)
        with _libvirt.ignored():
            conn.unregisterCloseCallback()
