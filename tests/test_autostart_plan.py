"""The autostart plan, the lock and the config switch: pure logic, plain data, no daemon."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from lxcvirt.autostart import Entry, Plan, find_cycle, lock_path, plan, run_lock
from lxcvirt.config import Config, load_config
from lxcvirt.errors import ConfigError, LockHeld, SpecError
from lxcvirt.spec import Autostart


def e(name: str, priority: int = 0, *, auto: bool = True, groups: tuple[str, ...] = (),
      after: tuple[str, ...] = (), time: int = 0, running: bool = False) -> Entry:
    return Entry(name, Autostart(auto=auto, priority=priority, time=time, groups=groups,
                                 after=after), running)


def waves(p: Plan) -> list[list[str]]:
    return [list(w.names) for w in p.waves]


# --- order ---------------------------------------------------------------------------------


def test_higher_priority_first_ties_by_name() -> None:
    p = plan([e("c", 0), e("b", 10), e("a", 0), e("d", 5)])
    assert p.order() == ["b", "d", "a", "c"]
    assert waves(p) == [["b"], ["d"], ["a", "c"]]
    assert [w.priority for w in p.waves] == [10, 5, 0]


def test_negative_priorities_come_last() -> None:
    assert plan([e("x", -3), e("y", 0)]).order() == ["y", "x"]


def test_only_auto_unless_ignore_auto() -> None:
    entries = [e("on", 1), e("off", 9, auto=False)]
    assert plan(entries).order() == ["on"]
    assert plan(entries, ignore_auto=True).order() == ["off", "on"]


def test_after_wins_over_priority() -> None:
    # web (10) follows db (0): db must come first although it has the lower priority.
    p = plan([e("web", 10, after=("db",)), e("db", 0), e("cache", 5)])
    assert p.order().index("db") < p.order().index("web")
    assert p.follows("web") == ("db",)
    assert waves(p) == [["cache"], ["db"], ["web"]]


def test_wave_members_have_no_ordering_between_them() -> None:
    p = plan([e("a", 1), e("b", 1, after=("a",)), e("c", 1)])
    assert waves(p) == [["a", "c"], ["b"]]


def test_after_outside_the_run_is_a_note_not_a_wait() -> None:
    p = plan([e("app", after=("ghost", "manual")), e("manual", auto=False)])
    assert p.order() == ["app"]
    assert p.follows("app") == ()
    assert any("ghost, which is not defined" in n for n in p.notes)
    assert any("manual, which is not part of this run" in n for n in p.notes)


def test_running_containers_stay_in_the_plan() -> None:
    p = plan([e("up", 3, running=True), e("down", 1)])
    assert p.order() == ["up", "down"]
    assert p.entries["up"].running


def test_reversed_is_the_stop_order() -> None:
    p = plan([e("a", 10), e("b", 5), e("c", 5), e("d", 0, after=("a",))])
    assert waves(p.reversed()) == [["d"], ["b", "c"], ["a"]]


def test_empty_plan() -> None:
    assert plan([]).order() == []
    assert plan([e("x", auto=False)]).waves == ()


# --- groups ---------------------------------------------------------------------------------


GROUPED = [
    e("w1", 1, groups=("web",)),
    e("w2", 9, groups=("web", "db")),
    e("d1", 5, groups=("db",)),
    e("lone", 7),
    e("web2", 3, groups=("web2",)),
]


@pytest.mark.parametrize(
    ("groups", "expected"),
    [
        pytest.param(None, ["w2", "lone", "d1", "web2", "w1"], id="no-group-means-all"),
        pytest.param(["web"], ["w2", "w1"], id="exact-name-no-prefix-match"),
        pytest.param(["db", "web"], ["w2", "d1", "w1"], id="order-given-each-once"),
        pytest.param(["web", "db"], ["w2", "w1", "d1"], id="other-order"),
        pytest.param([""], ["lone"], id="empty-means-no-group"),
        pytest.param(["", "web2"], ["lone", "web2"], id="empty-then-group"),
        pytest.param(["web", "web"], ["w2", "w1"], id="repeated-group-once"),
        pytest.param(["nosuch"], [], id="unknown-group-empty"),
    ],
)
def test_groups(groups: list[str] | None, expected: list[str]) -> None:
    assert plan(GROUPED, groups=groups).order() == expected


def test_group_passes_keep_their_group_in_waves() -> None:
    p = plan(GROUPED, groups=["db", ""])
    assert [(w.group, w.names) for w in p.waves] == [
        ("db", ("w2",)), ("db", ("d1",)), ("", ("lone",))
    ]


def test_after_into_a_later_group_is_refused() -> None:
    entries = [e("app", groups=("apps",), after=("db",)), e("db", groups=("infra",))]
    assert plan(entries, groups=["infra", "apps"]).order() == ["db", "app"]
    with pytest.raises(SpecError, match="app .*follows db, whose group comes later"):
        plan(entries, groups=["apps", "infra"])


# --- cycles ---------------------------------------------------------------------------------


def test_cycle_is_named() -> None:
    entries = [e("a", after=("c",)), e("b", after=("a",)), e("c", after=("b",)), e("x")]
    with pytest.raises(SpecError, match=r"cycle: a -> c -> b -> a"):
        plan(entries)


def test_self_cycle() -> None:
    with pytest.raises(SpecError, match="cycle: me -> me"):
        plan([e("me", after=("me",))])


def test_cycle_outside_the_selection_does_not_matter() -> None:
    entries = [e("a", auto=False, after=("b",)), e("b", auto=False, after=("a",)), e("ok")]
    assert plan(entries).order() == ["ok"]
    with pytest.raises(SpecError, match="cycle"):
        plan(entries, ignore_auto=True)


@pytest.mark.parametrize(
    ("graph", "cycle"),
    [
        pytest.param({"a": ["b"], "b": []}, None, id="chain"),
        pytest.param({"a": ["b", "c"], "b": ["c"], "c": []}, None, id="diamond"),
        pytest.param({"a": ["zz"]}, None, id="unknown-edge"),
        pytest.param({"a": ["b"], "b": ["a"]}, ["a", "b", "a"], id="two"),
        pytest.param({"x": ["y"], "y": ["z"], "z": ["y"]}, ["y", "z", "y"], id="tail"),
    ],
)
def test_find_cycle(graph: dict[str, list[str]], cycle: list[str] | None) -> None:
    assert find_cycle(graph) == cycle


# --- lock -----------------------------------------------------------------------------------


def test_lock_refuses_a_second_holder(tmp_path: Path) -> None:
    where = tmp_path / "sub" / "autostart.lock"
    with run_lock(where):
        assert where.read_text().strip().isdigit()
        busy = r"holds the lock: pid \d+"
        with pytest.raises(LockHeld, match=busy), run_lock(where):
            pass
    with run_lock(where):  # released: taken again
        pass


def test_lock_across_threads(tmp_path: Path) -> None:
    where = tmp_path / "lock"
    held = threading.Event()
    release = threading.Event()

    def hold() -> None:
        with run_lock(where):
            held.set()
            release.wait(10)

    t = threading.Thread(target=hold)
    t.start()
    try:
        assert held.wait(10)
        with pytest.raises(LockHeld), run_lock(where):
            pass
    finally:
        release.set()
        t.join()


def test_lock_path_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LXCVIRT_AUTOSTART_LOCK", str(tmp_path / "x.lock"))
    assert lock_path() == tmp_path / "x.lock"
    assert lock_path(tmp_path / "given") == tmp_path / "given"


# --- config ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "autostart"),
    [
        pytest.param("autostart = false\n", False, id="off"),
        pytest.param("autostart = true\n", True, id="on"),
        pytest.param("# nothing\n", True, id="default-on"),
    ],
)
def test_config_switch(tmp_path: Path, text: str, autostart: bool) -> None:
    f = tmp_path / "lxcvirt.conf"
    f.write_text(text)
    assert load_config(f).autostart is autostart


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param('autostart = "no"\n', "autostart: expected true or false", id="type"),
        pytest.param("autostart = \n", "not valid TOML", id="syntax"),
    ],
)
def test_config_errors(tmp_path: Path, text: str, message: str) -> None:
    f = tmp_path / "lxcvirt.conf"
    f.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(f)


def test_config_unknown_keys_are_reported(tmp_path: Path) -> None:
    f = tmp_path / "c.conf"
    f.write_text("autostrat = false\n")
    cfg = load_config(f)
    assert cfg.autostart is True and cfg.unknown == ("autostrat",)


def test_config_env_and_missing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LXCVIRT_CONFIG", str(tmp_path / "missing.conf"))
    with pytest.raises(ConfigError, match="no such configuration file"):
        load_config()
    (tmp_path / "missing.conf").write_text("autostart = false\n")
    assert load_config() == Config(False, tmp_path / "missing.conf")


def test_boot_switch_is_decided_by_the_library(tmp_path: Path) -> None:
    from lxcvirt.autostart import boot_switch

    off = tmp_path / "off.conf"
    off.write_text("autostart = false\ncolour = 'blue'\n")
    switch = boot_switch(off)
    assert not switch.allowed and str(off) in switch.reason
    assert switch.notes == (f"{off}: unknown setting 'colour' ignored",)
    on = tmp_path / "on.conf"
    on.write_text("autostart = true\n")
    assert boot_switch(on).allowed and boot_switch(on).notes == ()


def test_lock_path_is_one_per_host(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LXCVIRT_AUTOSTART_LOCK", str(tmp_path / "x.lock"))
    base = tmp_path / "x.lock"
    for system in ("lxc:///", "lxc:///system", "lxc://localhost/", None):
        assert lock_path(None, system) == base
    a = lock_path(None, "lxc+ssh://a.example/system")
    b = lock_path(None, "lxc+ssh://b.example/system")
    assert a != b and a.parent == b.parent == tmp_path and a.name.startswith("x-")
    assert lock_path(None, "lxc+ssh://a.example/system") == a
