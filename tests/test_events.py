"""LifecycleWatch against the real daemon: a death counts even when a start follows it
(libvirt can report an init that exits at once as stopped, then started); only a restart
that start() itself made (a lost monitor) moves the count past it (deaths_since)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import libvirt
from conftest import busybox_spec

from lxcvirt.host import RESTARTED, LifecycleWatch, deaths_since


def _wait(watch: LifecycleWatch, name: str, event: int, count: int) -> None:
    deadline = time.monotonic() + 10
    with watch.cond:
        while sum(1 for _u, n, e, _t in watch.events if n == name and e == event) < count:
            assert time.monotonic() < deadline, f"no event {event} for {name}: {watch.events}"
            watch.cond.wait(0.2)


def test_a_death_counts_until_start_restarts_the_container(
    host: Any, names: Any, busybox_root: Path
) -> None:
    name = names("events")
    host.define(busybox_spec(name, busybox_root))
    with LifecycleWatch(host.conn) as watch:
        since = time.monotonic()
        host.start(name, check=False, settle=0)
        assert not watch.died(name, since)
        host.destroy(name)
        _wait(watch, name, libvirt.VIR_DOMAIN_EVENT_STOPPED, 1)
        assert watch.died(name, since)
        host.start(name, check=False, settle=0)
        _wait(watch, name, libvirt.VIR_DOMAIN_EVENT_STARTED, 2)
        assert watch.died(name, since)  # a start after it does not undo it
        # as start() records when it destroyed a container to start it again
        RESTARTED[(host.uri, name)] = time.monotonic()
        try:
            assert not watch.died(name, deaths_since(host.uri, name, since))
        finally:
            RESTARTED.pop((host.uri, name), None)
        assert deaths_since(host.uri, name, since) == since
        assert not watch.died(name, time.monotonic() + 1)  # a death before since: not counted
