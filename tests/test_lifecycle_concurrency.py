"""Twenty containers defined, started, stopped and undefined from twenty threads sharing
one Host (one libvirt connection, one event loop)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from conftest import busybox_spec

pytestmark = pytest.mark.slow

COUNT = 20


def test_twenty_threads(host: Any, names: Any, busybox_root: Path) -> None:
    wanted = [names(f"par{i}") for i in range(COUNT)]

    def up(name: str) -> tuple[str, str, int | None]:
        result, status = host.create(busybox_spec(name, busybox_root))
        return result.action, status.state, status.id

    def down(name: str) -> str:
        how = host.stop(name).how
        host.undefine(name)
        return str(how)

    with ThreadPoolExecutor(COUNT) as pool:
        started = list(pool.map(up, wanted))
    assert all(action == "created" and state == "running" for action, state, _ in started)
    ids = [i for _, _, i in started]
    assert len(set(ids)) == COUNT and None not in ids
    running = {s.name for s in host.list(all=False)}
    assert set(wanted) <= running

    with ThreadPoolExecutor(COUNT) as pool:
        stopped = list(pool.map(down, wanted))
    assert stopped == ["shut down"] * COUNT
    left = {s.name for s in host.list(all=True)}
    assert not set(wanted) & left
