"""Waiting by libvirt's lifecycle events (the default event loop runs in a thread, see
:mod:`lxcvirt._libvirt`), never by fixed sleeps."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import libvirt

from .. import _libvirt


class LifecycleWatch:
    """One lifecycle-event callback, on one domain or on every domain of a connection;
    each event is kept with the time it arrived.

    ``start``, ``stop`` and ``reboot`` wait on one domain (:meth:`wait_for`); ``start
    --all`` and ``apply`` start many with ``settle=0`` and watch them all for an init that
    exits at once in one window (:meth:`died`, :meth:`wait_window`): libvirt's create()
    succeeds for such an init and the daemon notices ~0.2 s later.  The console listens
    (``on_event``).  Without events (the registration fails) callers still check the
    state themselves.
    """

    def __init__(self, conn: Any, dom: Any = None, *,
                 on_event: Callable[[int], None] | None = None) -> None:
        self.conn = conn
        self.uuid: str | None = dom.UUIDString() if dom is not None else None
        self.on_event = on_event
        #: (uuid, name, event, monotonic time it arrived)
        self.events: list[tuple[str, str, int, float]] = []
        self.cond = threading.Condition()
        self.cb_id: int | None = None
        with _libvirt.ignored():
            self.cb_id = conn.domainEventRegisterAny(
                dom, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, self._event, None
            )

    def _event(self, _conn: Any, dom: Any, event: int, _detail: int, _opaque: Any) -> None:
        uuid, name = "", ""
        with _libvirt.ignored():
            uuid, name = dom.UUIDString(), dom.name()
        if self.uuid is not None and uuid != self.uuid:
            return
        with self.cond:
            self.events.append((uuid, name, event, time.monotonic()))
            self.cond.notify_all()
        if self.on_event is not None:
            self.on_event(event)

    def wait_for(self, wanted: set[int], timeout: float, also: Callable[[], bool]) -> bool:
        """Wait until one of ``wanted`` arrives or ``also()`` is true, up to ``timeout``."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                if any(e[2] in wanted for e in self.events) or also():
                    return True
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                # Re-check ``also`` now and then: an event may have been missed if it
                # fired before registration.
                self.cond.wait(min(left, 1.0))

    def _stopped_at(self, name: str) -> float:
        return max((t for _u, n, e, t in self.events if n == name and e in _DEATHS), default=-1.0)

    def died(self, name: str, since: float) -> bool:
        """True when ``name`` stopped at or after ``since`` (monotonic).  A STARTED event
        after it does not undo it: libvirt can report an init that exited at once as
        stopped and then started (the two events out of order) and keep it "running"."""
        with self.cond:
            return self._stopped_at(name) >= since

    def wait_window(self, until: float, names: Sequence[tuple[str, float]]) -> None:
        """Watch until ``until`` (monotonic), or until every ``(name, since)`` has died."""
        with self.cond:
            while not all(self._stopped_at(n) >= t for n, t in names):
                left = until - time.monotonic()
                if left <= 0:
                    return
                self.cond.wait(left)

    def close(self) -> None:
        if self.cb_id is not None:
            with _libvirt.ignored():
                self.conn.domainEventDeregisterAny(self.cb_id)
            self.cb_id = None

    def __enter__(self) -> LifecycleWatch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_DEATHS = (libvirt.VIR_DOMAIN_EVENT_STOPPED, libvirt.VIR_DOMAIN_EVENT_CRASHED)
