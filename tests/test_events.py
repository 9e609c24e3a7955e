"""LifecycleWatch against the real daemon: a death followed by a start again (what start()
does when libvirtd lost a container's monitor) is not a death."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import libvirt
from conftest import busybox_spec

from lxcvirt.host import LifecycleWatch


def _wait(watch: LifecycleWatch, name: str, event: int, count: int) -> None:
    deadline = time.monotonic() + 10
    with watch.cond:
        while sum(1 for _u, n, e, _t in watch.events if n == name and e == event) < count:
            assert time.monotonic() < deadline, f"no event {event} for {name}: {watch.events}"
            watch.cond.wait(0.2)


def test_death_then_start_again_is_not_a_death(host: Any, names: Any,
                                               busybox_root: Path) -> None:
    name = names("events")
    host.define(busybox_spec(name, busybox_root))
    with LifecycleWatch(host.conn) as watch:
        since = time.monotonic()
        host.start(name, check=False, settle=0)
        host.destroy(name)
        _wait(watch, name, libvirt.VIR_DOMAIN_EVENT_STOPPED, 1)
        assert watch.died(name, since)
        host.start(name, check=False, settle=0)
        _wait(watch, name, libvirt.VIR_DOMAIN_EVENT_STARTED, 2)
        assert not watch.died(name, since)
        host.destroy(name)
        _wait(watch, name, libvirt.VIR_DOMAIN_EVENT_STOPPED, 2)
        assert watch.died(name, since)
        # a death before ``since`` is not counted
        assert not watch.died(name, time.monotonic() + 1)
