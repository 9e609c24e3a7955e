"""Autostart against the real libvirtd: the metadata API, start/stop order, time, groups,
``after``, cycles, the lock and the import of libvirt's own flag.

Every run is limited to a group of the test's own (``--group``), so containers of other
tests and people on the same daemon are never touched.  Start order is read from libvirt's
lifecycle events, not from our own output.
"""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import libvirt
import pytest
from conftest import STUBBORN_INIT, TERM_INIT, busybox_spec
from lxml import etree

from lxcvirt import autostart
from lxcvirt._xml import parse_xml
from lxcvirt.errors import LockHeld, NotFound, SpecError
from lxcvirt.metadata import read_autostart
from lxcvirt.rendering import render
from lxcvirt.spec import METADATA_NS, Autostart

_Q = "{" + METADATA_NS + "}"
_groups = itertools.count(1)
#: An init that exits at once: libvirt starts it, then it is gone.
DYING_INIT = ("/bin/sh", "-c", "exit 3")


@pytest.fixture(autouse=True)
def _private_lock(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(autostart.LOCK_ENV, str(tmp_path / "autostart.lock"))


@pytest.fixture
def group() -> str:
    return f"t{os.getpid()}-{next(_groups)}"


class Events:
    """Lifecycle events of the whole daemon, in arrival order."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.seen: list[tuple[str, int]] = []
        self.cond = threading.Condition()
        self.cb = conn.domainEventRegisterAny(
            None, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, self._cb, None
        )

    def _cb(self, _c: Any, dom: Any, event: int, _d: int, _o: Any) -> None:
        with self.cond:
            self.seen.append((dom.name(), event))
            self.cond.notify_all()

    def order(self, event: int, names: list[str], wait: float = 15.0) -> list[str]:
        """The names in the order their first ``event`` arrived (waits for all of them)."""
        with self.cond:
            self.cond.wait_for(lambda: all((n, event) in self.seen for n in names), wait)
            out: list[str] = []
            for n, ev in self.seen:
                if ev == event and n in names and n not in out:
                    out.append(n)
            return out

    def count(self, name: str, event: int) -> int:
        with self.cond:
            return self.seen.count((name, event))


@pytest.fixture
def events(libvirt_conn: Any) -> Iterator[Events]:
    ev = Events(libvirt_conn)
    yield ev
    libvirt_conn.domainEventDeregisterAny(ev.cb)


Make = Callable[..., str]


@pytest.fixture
def make(host: Any, names: Callable[[str], str], busybox_root: Path, group: str) -> Make:
    """Define a busybox container in the test's group; returns its name."""

    def _make(label: str, priority: int = 0, *, time: int = 0, after: tuple[str, ...] = (),
              auto: bool = True, init: tuple[str, ...] = TERM_INIT,
              groups: tuple[str, ...] | None = None, name: str | None = None) -> str:
        name = name or names(label)
        settings = Autostart(auto=auto, priority=priority, time=time, after=after,
                             groups=(group,) if groups is None else groups)
        host.define(busybox_spec(name, busybox_root, init=init, autostart=settings))
        return name

    return _make


def _stored(host: Any, name: str, *, inactive: bool) -> list[Any]:
    root = parse_xml(host.dumpxml(name, inactive=inactive))
    return root.findall(f"metadata/{_Q}container")


def _result(report: autostart.Report) -> dict[str, str]:
    return {o.name: o.result for o in report.outcomes}


# --- the metadata API (compare libvirt's tests/metadatatest.c) -----------------------------


def test_set_rewrite_erase(host: Any, make: Make, group: str) -> None:
    name = make("meta", auto=False)
    assert autostart.get(host, name) == Autostart(groups=(group,))
    first = autostart.update(host, name, auto=True, priority=7, time=3, groups=["a", "b"],
                             after=["elsewhere"])
    assert first.changed
    want = Autostart(auto=True, priority=7, time=3, groups=("a", "b"), after=("elsewhere",))
    assert autostart.get(host, name) == want
    assert len(_stored(host, name, inactive=True)) == 1

    # Rewrite: only what is given changes, and there is still one element.
    autostart.update(host, name, priority=-2, groups=[])
    assert autostart.get(host, name) == Autostart(True, -2, 3, (), ("elsewhere",))
    assert len(_stored(host, name, inactive=True)) == 1
    assert not autostart.update(host, name, priority=-2).changed

    # Erase: the settings read as the defaults; lxcvirt's mark (this container was
    # rendered from a spec) stays, so `apply --prune` still knows it as its own.
    autostart.erase(host, name)
    (element,) = _stored(host, name, inactive=True)
    assert element.find(f"{_Q}autostart") is None
    assert element.find(f"{_Q}managed") is not None
    assert autostart.get(host, name) == Autostart()
    autostart.erase(host, name)  # erasing nothing is fine


def test_erase_on_a_hand_defined_container_removes_the_element(
    host: Any, names: Callable[[str], str], busybox_root: Path
) -> None:
    name = names("hand")
    xml = render(busybox_spec(name, busybox_root), emulator=host.emulator())
    root = parse_xml(xml)
    root.remove(root.find("metadata"))  # as a user writes it: no metadata of ours
    host.define(etree.tostring(root, encoding="unicode"))
    autostart.update(host, name, auto=True, priority=4)
    assert autostart.get(host, name).priority == 4
    # Settings alone do not make a container lxcvirt's: prune must leave it alone.
    assert not host.status(name).managed
    autostart.erase(host, name)
    dom = host.domain(name)
    with pytest.raises(NotFound) as err:
        dom.metadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, METADATA_NS,
                     libvirt.VIR_DOMAIN_AFFECT_CONFIG)
    assert err.value.code == libvirt.VIR_ERR_NO_DOMAIN_METADATA


def test_other_metadata_is_kept(host: Any, make: Make) -> None:
    name = make("foreign")
    dom = host.domain(name)
    dom.setMetadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, "<note>keep me</note>", "other",
                    "https://example.org/other", libvirt.VIR_DOMAIN_AFFECT_CONFIG)
    autostart.update(host, name, priority=4)
    autostart.erase(host, name)
    text = dom.metadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, "https://example.org/other",
                        libvirt.VIR_DOMAIN_AFFECT_CONFIG)
    assert "keep me" in text


def test_live_and_config_both_change_while_running(host: Any, make: Make) -> None:
    name = make("live")
    host.start(name, check=False, settle=0)
    autostart.update(host, name, priority=9, groups=["x"])
    for inactive in (False, True):
        (element,) = _stored(host, name, inactive=inactive)
        assert read_autostart(element) == Autostart(auto=True, priority=9, groups=("x",))


def test_read_by_uri_not_by_prefix(host: Any, names: Callable[[str], str],
                                   busybox_root: Path) -> None:
    name = names("prefix")
    spec = busybox_spec(name, busybox_root, autostart=Autostart(auto=True, priority=3))
    xml = host.prepare(spec).xml.replace("lxcvirt:", "zz:").replace("xmlns:lxcvirt", "xmlns:zz")
    assert "zz:autostart" in xml
    host.conn.defineXML(xml)
    assert autostart.get(host, name) == Autostart(auto=True, priority=3)


def test_settings_survive_dumpxml_undefine_define(host: Any, make: Make) -> None:
    name = make("travel", 6, time=2, after=("db",))
    autostart.update(host, name, groups=["moved"])
    xml = host.dumpxml(name, inactive=True)
    host.undefine(name)
    assert not host.exists(name)
    host.define(xml)
    assert autostart.get(host, name) == Autostart(True, 6, 2, ("moved",), ("db",))


def test_update_refuses_a_cycle(host: Any, make: Make) -> None:
    a = make("cyc-a")
    b = make("cyc-b", after=(a,))
    with pytest.raises(SpecError, match=f"would make a cycle: {a} -> {b} -> {a}"):
        autostart.update(host, a, after=[b])
    assert autostart.get(host, a).after == ()


# --- start --all ---------------------------------------------------------------------------


def test_start_order_follows_priority(host: Any, make: Make, group: str,
                                      events: Events) -> None:
    low = make("p0", 0, time=5)
    high = make("p10", 10, time=5)
    mid = make("p5", 5, time=5)
    off = make("off", 20, auto=False)
    report = autostart.start_all(host, groups=[group], check=False)
    assert [o.name for o in report.outcomes] == [high, mid, low]
    assert _result(report) == {high: "started", mid: "started", low: "started"}
    assert report.exit_code == 0
    started = events.order(libvirt.VIR_DOMAIN_EVENT_STARTED, [high, mid, low])
    assert started == [high, mid, low]
    assert not host.domain(off).isActive()


def test_time_does_not_block_and_a_dying_container_is_reported(
    host: Any, make: Make, group: str, events: Events
) -> None:
    slow = make("slow", 10, time=1)
    dies = make("dies", 5, time=1, init=DYING_INIT)
    last = make("last", 0)
    # A start that takes longer than its time: the real start, held back until the
    # containers after it have started (libvirt's LXC start itself is too quick to miss
    # a time of 1 s).
    release = threading.Event()

    def starter(name: str) -> None:
        if name == slow:
            release.wait(60)
        host.start(name, check=False, settle=0)
        if name == last:
            release.set()

    report = autostart.start_all(host, groups=[group], check=False, settle=1.0,
                                 starter=starter)
    by = {o.name: o for o in report.outcomes}
    assert by[slow].result == "started" and by[slow].went_on
    assert by[dies].result == "failed" and not by[dies].ok
    assert by[last].result == "started" and not by[last].went_on
    assert report.exit_code == 2
    assert events.order(libvirt.VIR_DOMAIN_EVENT_STARTED, [last, slow]) == [last, slow]
    assert host.domain(slow).isActive() and host.domain(last).isActive()
    assert not host.domain(dies).isActive()


def test_after_and_a_failed_dependency(host: Any, make: Make, group: str) -> None:
    db = make("db", 0, init=("/no/such/init",))
    app = make("app", 10, after=(db,))
    other = make("other", 5)
    report = autostart.start_all(host, groups=[group], check=False, settle=0.5)
    assert [o.name for o in report.outcomes] == [other, db, app]
    by = {o.name: o for o in report.outcomes}
    assert by[db].result == "failed" and by[db].reason
    assert by[app].result == "skipped" and by[app].reason == f"follows {db}, which failed"
    assert by[other].result == "started"
    assert report.exit_code == 2
    assert not host.domain(app).isActive()


def test_all_failed_is_exit_1_and_running_ones_are_skipped(
    host: Any, make: Make, group: str
) -> None:
    bad = make("bad", init=("/no/such/init",))
    assert autostart.start_all(host, groups=[group], check=False, settle=0).exit_code == 1
    up = make("up")
    host.start(up, check=False, settle=0)
    autostart.update(host, bad, auto=False)
    report = autostart.start_all(host, groups=[group], check=False, settle=0)
    assert _result(report) == {up: "already running"}
    assert report.exit_code == 0


def test_cycle_is_found_before_anything_starts(host: Any, make: Make, group: str,
                                               names: Callable[[str], str]) -> None:
    free = make("free", 50)
    a_name, b_name = names("ca"), names("cb")
    # The cycle is defined directly (update() would refuse it).
    make("", name=a_name, after=(b_name,))
    make("", name=b_name, after=(a_name,))
    with pytest.raises(SpecError, match=f"cycle: {a_name} -> {b_name} -> {a_name}"):
        autostart.start_all(host, groups=[group], check=False)
    assert not host.domain(free).isActive()


def test_two_runs_at_once_start_nothing_twice(host: Any, make: Make, group: str,
                                              events: Events) -> None:
    first = make("once-a", 1)
    second = make("once-b", 0)
    holding = threading.Event()
    release = threading.Event()
    reports: list[autostart.Report] = []

    def starter(name: str) -> None:
        holding.set()
        release.wait(60)
        host.start(name, check=False, settle=0)

    t = threading.Thread(target=lambda: reports.append(
        autostart.start_all(host, groups=[group], check=False, settle=0, starter=starter)))
    t.start()
    try:
        assert holding.wait(30)
        with pytest.raises(LockHeld, match="holds the lock") as held:
            autostart.start_all(host, groups=[group], check=False, settle=0)
        assert "`start --all`" in held.value.hint and "--wait" in held.value.hint
    finally:
        release.set()
        t.join(60)
    assert _result(reports[0]) == {first: "started", second: "started"}
    events.order(libvirt.VIR_DOMAIN_EVENT_STARTED, [first, second])
    assert events.count(first, libvirt.VIR_DOMAIN_EVENT_STARTED) == 1
    assert events.count(second, libvirt.VIR_DOMAIN_EVENT_STARTED) == 1


# --- stop --all ----------------------------------------------------------------------------


def test_stop_order_reversed_and_stubborn_destroyed(host: Any, make: Make, group: str,
                                                    events: Events) -> None:
    high = make("s10", 10)
    mid = make("s5", 5, init=STUBBORN_INIT)
    low = make("s0", 0)
    idle = make("s-idle", 3)  # defined, not running: not part of the stop
    for n in (high, mid, low):
        host.start(n, check=False, settle=0)
    report = autostart.stop_all(host, groups=[group], timeout=0.3)
    assert [o.name for o in report.outcomes] == [low, mid, high]
    assert _result(report) == {low: "shut down", mid: "destroyed after timeout",
                               high: "shut down"}
    assert report.exit_code == 0
    stopped = events.order(libvirt.VIR_DOMAIN_EVENT_STOPPED, [low, mid, high])
    assert stopped == [low, mid, high]
    assert not any(host.domain(n).isActive() for n in (high, mid, low, idle))


def test_the_stops_of_a_chunk_ask_together(monkeypatch: pytest.MonkeyPatch) -> None:
    """stop --all lines the stops of a chunk up before any asks its init (see _Together):
    none goes on until every other one is ready or over, and none waits past WAIT."""
    from lxcvirt.autostart._run import _Together

    group = _Together(3)
    first, second, third = group.member(), group.member(), group.member()
    passed: list[str] = []
    threads = [threading.Thread(target=lambda m=m, n=n: (m.arrive(), passed.append(n)))
               for m, n in ((first, "first"), (second, "second"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(0.3)
    assert passed == [] and all(t.is_alive() for t in threads)  # the third is not ready
    third.leave()  # over before it asked (already stopped, or failed): nobody waits for it
    for t in threads:
        t.join(5)
    assert sorted(passed) == ["first", "second"]
    third.leave()
    first.leave()  # counted once each: nothing goes below zero
    assert group.left == 0

    # One that never comes holds the others back WAIT seconds at most.
    monkeypatch.setattr(_Together, "WAIT", 0.2)
    lonely = _Together(2).member()
    t = threading.Thread(target=lonely.arrive)
    t.start()
    t.join(5)
    assert not t.is_alive()


def test_inits_that_exit_at_once_fail_start_all_and_are_left_shut_off(
    host: Any, make: Make, group: str
) -> None:
    """Whichever way libvirt reports an init that exits at once (sometimes still
    'running', its init a zombie), start --all says failed and leaves it shut off; a
    container that does run is never touched by that clean-up."""
    from lxcvirt.host import leave_shut_off

    quitters = [make(f"q{i}", i % 3, init=("/bin/true",)) for i in range(8)]
    for _ in range(3):
        report = autostart.start_all(host, groups=[group], check=False)
        said = {o.name: (o.result, o.reason) for o in report.outcomes}
        assert all(r == "failed" for r, _ in said.values()), said
        assert not [n for n in quitters if host.domain(n).isActive()]
    steady = make("steady", init=TERM_INIT)
    host.start(steady, check=False)
    leave_shut_off(host, steady)
    assert host.domain(steady).isActive()


# --- libvirt's own flag -------------------------------------------------------------------


def test_import_takes_over_libvirts_flag(host: Any, make: Make) -> None:
    flagged = make("flagged", 4, auto=False, groups=("kept",))
    plain = make("plain", auto=False)
    host.domain(flagged).setAutostart(1)
    dry = autostart.import_libvirt_autostart(host, [flagged, plain], dry_run=True)
    assert [d.name for d in dry] == [flagged]
    assert host.domain(flagged).autostart() == 1
    assert not autostart.get(host, flagged).auto

    done = autostart.import_libvirt_autostart(host, [flagged, plain])
    assert [d.name for d in done] == [flagged]
    assert host.domain(flagged).autostart() == 0
    assert autostart.get(host, flagged) == Autostart(True, 4, 0, ("kept",))
    assert not autostart.get(host, plain).auto
