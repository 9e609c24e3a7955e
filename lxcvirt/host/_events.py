"""Waiting by libvirt's lifecycle events (the default event loop runs in a thread, see
:mod:`lxcvirt._libvirt`), never by fixed sleeps."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import libvirt

from .. import _libvirt

if TYPE_CHECKING:
    from ._controller import Host


@dataclass
class _Lifecycle:
    """Collects lifecycle events of one domain while it is registered."""

    uuid: str
    events: list[int] = field(default_factory=list)
    cond: threading.Condition = field(default_factory=threading.Condition)

    def callback(self, _conn: Any, dom: Any, event: int, _detail: int, _opaque: Any) -> None:
        if dom.UUIDString() != self.uuid:
            return
        with self.cond:
            self.events.append(event)
            self.cond.notify_all()

    def wait_for(self, wanted: set[int], timeout: float, also: Callable[[], bool]) -> bool:
        """Wait until one of ``wanted`` arrives or ``also()`` is true, up to ``timeout``."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                if any(e in wanted for e in self.events) or also():
                    return True
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                # Re-check ``also`` now and then: an event may have been missed if it
                # fired before registration.
                self.cond.wait(min(left, 1.0))


class DeathWatch:
    """Remembers when containers stopped, through one lifecycle callback for all of them.

    libvirt's create() succeeds for an init that exits at once (the daemon notices ~0.2 s
    later), so commands that start many containers start each with ``settle=0`` and then
    watch them all in one window here, instead of paying the window per container.
    """

    def __init__(self, host: Host) -> None:
        self.host = host
        self.stopped: dict[str, float] = {}
        self.cond = threading.Condition()
        self.cb_id: int | None = None
        # Without events (the registration fails) callers still check isActive() at the end.
        with _libvirt.ignored():
            self.cb_id = host.conn.domainEventRegisterAny(
                None, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, self._event, None
            )

    def _event(self, _conn: Any, dom: Any, event: int, _detail: int, _opaque: Any) -> None:
        if event in (libvirt.VIR_DOMAIN_EVENT_STOPPED, libvirt.VIR_DOMAIN_EVENT_CRASHED):
            with self.cond:
                self.stopped[dom.name()] = time.monotonic()
                self.cond.notify_all()

    def died(self, name: str, since: float) -> bool:
        """True when ``name`` stopped at or after ``since`` (monotonic)."""
        with self.cond:
            return self.stopped.get(name, -1.0) >= since

    def wait_window(self, until: float, names: Sequence[tuple[str, float]]) -> None:
        """Watch until ``until`` (monotonic), or until every ``(name, since)`` has died."""
        with self.cond:
            while not all(self.stopped.get(n, -1.0) >= t for n, t in names):
                left = until - time.monotonic()
                if left <= 0:
                    return
                self.cond.wait(left)

    def close(self) -> None:
        if self.cb_id is not None:
            with _libvirt.ignored():
                self.host.conn.domainEventDeregisterAny(self.cb_id)
            self.cb_id = None

    def __enter__(self) -> DeathWatch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
