"""``lxcvirt apply`` against the real daemon: plan, apply, idempotence, prune, failures."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import TERM_INIT, URI, busybox_spec

from lxcvirt import apply as A
from lxcvirt.cli import main
from lxcvirt.errors import ValidationError


def toml_str(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid TOML basic string


def write_spec(
    folder: Path,
    name: str,
    root: Path | str,
    *,
    state: str | None = None,
    memory: str = "64MiB",
    extra: str = "",
    file: str | None = None,
) -> Path:
    lines = [f"name = {toml_str(name)}", f"memory = {toml_str(memory)}"]
    if state is not None:
        lines.append(f"state = {toml_str(state)}")
    lines.append(extra)
    lines += [
        "[init]",
        f"path = {toml_str(TERM_INIT[0])}",
        "args = [" + ", ".join(toml_str(a) for a in TERM_INIT[1:]) + "]",
        "[[filesystem]]",
        f"source = {toml_str(str(root))}",
        'target = "/"',
    ]
    path = folder / (file or f"{name}.toml")
    path.write_text("\n".join(lines) + "\n")
    return path


def write_xml(folder: Path, name: str, root: Path, memory_mib: int = 32) -> Path:
    """A hand-written domain XML file: no uuid, no emulator, no MAC (libvirt fills them)."""
    init = "".join(f"<initarg>{a.replace('&', '&amp;')}</initarg>" for a in TERM_INIT[1:])
    path = folder / f"{name}.xml"
    path.write_text(
        f"""<!-- written by hand -->
<domain type='lxc'>
  <name>{name}</name>
  <memory unit='MiB'>{memory_mib}</memory>
  <os><type>exe</type><init>{TERM_INIT[0]}</init>{init}</os>
  <devices>
    <filesystem type='mount'><source dir='{root}'/><target dir='/'/></filesystem>
    <interface type='ethernet'/>
    <console type='pty'/>
  </devices>
</domain>
"""
    )
    return path


def state_of(host: Any, name: str) -> str:
    return "absent" if not host.exists(name) else str(host.status(name).state)


@pytest.fixture
def mk(names: Callable[[str], str]) -> Callable[[str], str]:
    """Container names of this test (all share the test process's name prefix)."""
    return names


def prune_glob(name: str) -> str:
    """A --prune-match glob for this test process's containers only: other people's tests
    and containers on the shared daemon stay out of reach."""
    return name.rsplit("-", 2)[0] + "-*"


def run_plan(host: Any, paths: list[Path], **kw: Any) -> A.Plan:
    return A.plan(paths, hosts={"local": host}, **kw)


def run_apply(host: Any, paths: list[Path], **kw: Any) -> A.ApplyResult:
    settle = kw.pop("settle", 0.2)
    return A.apply(run_plan(host, paths, **kw), check=False, settle=settle)


def by_name(result: A.ApplyResult) -> dict[str, A.ItemResult]:
    return {r.name: r for r in result.results}


def test_folder_of_five_end_to_end(
    host: Any, mk: Callable[[str], str], busybox_root: Path, tmp_path: Path
) -> None:
    run1, run2, stop, defd, xml = (mk(x) for x in ("run1", "run2", "stop", "defd", "xml"))
    folder = tmp_path / "specs"
    folder.mkdir()
    write_spec(folder, run1, busybox_root)
    write_spec(folder, run2, busybox_root, state="running",
               extra='[autostart]\nauto = true\npriority = 5\ngroups = ["web"]')
    write_spec(folder, stop, busybox_root, state="stopped")
    write_spec(folder, defd, busybox_root, state="defined")
    write_xml(folder, xml, busybox_root)
    # "stopped" must stop a container that runs before the first apply.
    host.create(A.read_source(folder / f"{stop}.toml").spec, check=False)
    assert state_of(host, stop) == "running"

    # 1. first apply: everything as described
    p = run_plan(host, [folder])
    planned = {i.name: i.actions for i in p.items}
    assert planned == {
        run1: ("create", "start"),
        run2: ("create", "start"),
        # made by `create`, so of no project yet: the apply takes it into its own (only
        # lxcvirt's metadata changes), then stops it
        stop: ("project", "stop"),
        defd: ("create",),
        xml: ("create", "start"),
    }
    result = A.apply(p, check=False, settle=0.2)
    assert result.exit_code == 0 and result.ok, [r.error for r in result.failed]
    assert by_name(result)[stop].done == (f"project set to {p.project}", "stopped")
    assert {n: state_of(host, n) for n in planned} == {
        run1: "running", run2: "running", stop: "shut off", defd: "shut off", xml: "running"
    }
    auto = host.status(run2).autostart
    assert auto is not None and auto.auto and auto.priority == 5 and auto.groups == ("web",)
    mac = host.dumpxml(xml, inactive=True).split("<mac address='")[1][:17]

    # 2. apply again: nothing changes, and it says so
    again = run_apply(host, [folder])
    assert not again.plan.changed and not again.changed
    assert all(not r.done for r in again.results) and again.exit_code == 0
    # the XML file without a MAC kept the one libvirt made up the first time
    assert host.dumpxml(xml, inactive=True).split("<mac address='")[1][:17] == mac

    # 3. edit one spec's memory: only that one is redefined, with a diff; it keeps running
    write_spec(folder, run1, busybox_root, memory="96MiB")
    before_id = host.status(run1).id
    p = run_plan(host, [folder])
    changed = {i.name: i for i in p.items if i.changed}
    assert list(changed) == [run1]
    item = changed[run1]
    assert item.actions == ("redefine",) and item.restart_needed
    assert "-  <memory unit=\"KiB\">65536</memory>" in item.diff
    assert "+  <memory unit=\"KiB\">98304</memory>" in item.diff
    result = A.apply(p, check=False)
    assert by_name(result)[run1].done == ("redefined",)
    assert by_name(result)[run1].restart_needed
    assert host.status(run1).id == before_id  # still the same running instance
    assert "98304" in host.dumpxml(run1, inactive=True)
    assert not run_plan(host, [folder]).changed

    # 4. remove one file and prune: that one (running) is stopped and undefined
    (folder / f"{run2}.toml").unlink()
    p = run_plan(host, [folder], prune=True, prune_match=prune_glob(run1))
    pruned = [i for i in p.items if i.wanted == "absent"]
    assert [(i.name, i.actions) for i in pruned] == [(run2, ("stop", "undefine"))]
    result = A.apply(p, check=False)
    assert result.ok and by_name(result)[run2].done == ("stopped", "undefined")
    assert not host.exists(run2)
    assert all(host.exists(n) for n in (run1, stop, defd, xml))


def test_broken_file_changes_nothing(
    host: Any, mk: Callable[[str], str], busybox_root: Path, tmp_path: Path
) -> None:
    good, other = mk("good"), mk("other")
    write_spec(tmp_path, good, busybox_root, state="defined")
    assert run_apply(host, [tmp_path]).ok
    write_spec(tmp_path, good, busybox_root, state="defined", memory="128MiB")
    write_spec(tmp_path, other, busybox_root)
    bad = tmp_path / "zz-bad.toml"
    bad.write_text('name = "x"\nmemory = "lots"\n[init]\npath = "/bin/sh"\n')
    with pytest.raises(ValidationError) as err:
        run_plan(host, [tmp_path])
    assert str(bad) in str(err.value) and "memory" in str(err.value)
    assert not host.exists(other)  # not created
    assert "65536" in host.dumpxml(good, inactive=True)  # not redefined
    # the CLI: exit 1, the file named, nothing changed
    rc = main(["-c", URI, "apply", "--no-check", str(tmp_path)])
    assert rc == 1
    assert not host.exists(other)


def test_failed_start_is_partial(
    host: Any, mk: Callable[[str], str], busybox_root: Path, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ok1, broken, ok2 = mk("ok1"), mk("broken"), mk("ok2")
    write_spec(tmp_path, ok1, busybox_root, file="a.toml")
    write_spec(tmp_path, broken, tmp_path / "no-such-root", file="b.toml")
    write_spec(tmp_path, ok2, busybox_root, file="c.toml")
    rc = main(["-c", URI, "apply", "--no-check", "--settle", "0.2", "--json", str(tmp_path)])
    out = json.loads(capsys.readouterr().out)
    assert rc == 2 and out["exit_code"] == 2 and not out["ok"]
    results = {r["name"]: r for r in out["hosts"][0]["results"]}
    assert results[broken]["done"] == ["created"] and not results[broken]["ok"]
    assert results[broken]["error"] == "start-failed"
    assert "no-such-root" in results[broken]["message"]
    assert results[ok1]["ok"] and results[ok2]["ok"]
    assert state_of(host, ok1) == state_of(host, ok2) == "running"
    assert state_of(host, broken) == "shut off"  # defined, not lost


def test_restart_and_autostart_on_running(
    host: Any, mk: Callable[[str], str], busybox_root: Path, tmp_path: Path
) -> None:
    web = mk("web")
    write_spec(tmp_path, web, busybox_root)
    assert run_apply(host, [tmp_path]).ok
    first_id = host.status(web).id
    # only autostart changes: the live definition gets it too, no restart is needed
    write_spec(tmp_path, web, busybox_root, extra="[autostart]\nauto = true\npriority = 3")
    p = run_plan(host, [tmp_path])
    assert p.items[0].actions == ("autostart",) and not p.items[0].restart_needed
    res = A.apply(p, check=False)
    assert res.results[0].done == ("autostart updated",) and res.ok
    st = host.status(web)  # reads the live XML
    assert st.id == first_id and st.autostart is not None and st.autostart.priority == 3
    assert not run_plan(host, [tmp_path]).changed
    # a real change with --restart: a new instance runs the new definition
    write_spec(tmp_path, web, busybox_root, memory="80MiB",
               extra="[autostart]\nauto = true\npriority = 3")
    res = run_apply(host, [tmp_path], restart=True)
    assert res.results[0].done == ("redefined", "restarted") and res.ok
    st = host.status(web)
    assert st.running and st.id != first_id and st.max_memory_kib == 80 * 1024


def test_prune_never_touches_foreign(
    host: Any, libvirt_conn: Any, mk: Callable[[str], str], busybox_root: Path,
    tmp_path: Path,
) -> None:
    keep, gone, foreign = mk("keep"), mk("gone"), mk("foreign")
    write_spec(tmp_path, keep, busybox_root, state="defined")
    spare = tmp_path / "spare"
    spare.mkdir()
    write_spec(spare, gone, busybox_root, state="defined")
    assert run_apply(host, [tmp_path, spare], project="foreign-test").ok
    # a container lxcvirt did not create (no lxcvirt metadata), defined behind its back
    libvirt_conn.defineXML(
        f"<domain type='lxc'><name>{foreign}</name><memory>65536</memory>"
        "<os><type>exe</type><init>/bin/sh</init></os>"
        f"<devices><filesystem type='mount'><source dir='{busybox_root}'/>"
        "<target dir='/'/></filesystem><console type='pty'/></devices></domain>"
    )
    result = run_apply(host, [tmp_path], prune=True, prune_match=prune_glob(keep),
                       project="foreign-test")
    assert [(r.name, r.done) for r in result.results if r.done] == [(gone, ("undefined",))]
    assert host.exists(keep) and host.exists(foreign) and not host.exists(gone)


def test_cli_dry_run_and_second_apply(
    host: Any, mk: Callable[[str], str], busybox_root: Path, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    c = mk("cli")
    write_spec(tmp_path, c, busybox_root)
    assert main(["-c", URI, "apply", "--dry-run", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"{c}: would create, start" in out and "nothing was changed" in out
    assert not host.exists(c)
    assert main(["-c", URI, "apply", "--no-check", "--settle", "0", str(tmp_path)]) == 0
    assert f"{c}: created, started" in capsys.readouterr().out
    assert main(["-c", URI, "apply", "--no-check", str(tmp_path)]) == 0
    assert "no changes: 1 unchanged" in capsys.readouterr().out
    assert main(["-c", URI, "apply", "--json", str(tmp_path)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["changed"] is False and data["hosts"][0]["plan"][0]["actions"] == []


def test_duplicate_names_refused(
    host: Any, mk: Callable[[str], str], busybox_root: Path, tmp_path: Path
) -> None:
    c = mk("dup")
    a = write_spec(tmp_path, c, busybox_root, file="a.toml")
    b = write_spec(tmp_path, c, busybox_root, file="b.toml")
    with pytest.raises(ValidationError) as err:
        run_plan(host, [tmp_path])
    assert str(b) in str(err.value) and str(a) in str(err.value)
    assert not host.exists(c)


def test_an_init_that_exits_at_once_is_caught_in_the_settle_window(
    host: Any, mk: Callable[[str], str], busybox_root: Path, tmp_path: Path
) -> None:
    quitter, steady = mk("quitter"), mk("steady")
    (tmp_path / "q.toml").write_text(
        f"name = {toml_str(quitter)}\nmemory = \"64MiB\"\n[init]\npath = \"/bin/true\"\n"
        f"[[filesystem]]\nsource = {toml_str(str(busybox_root))}\ntarget = \"/\"\n"
    )
    write_spec(tmp_path, steady, busybox_root)
    result = run_apply(host, [tmp_path], settle=1.0)
    res = by_name(result)
    assert result.exit_code == 2
    assert res[quitter].error is not None and "stopped right after it started" in res[quitter].error
    assert res[steady].error is None and state_of(host, steady) == "running"
    assert state_of(host, quitter) == "shut off"  # defined, not lost


def test_inits_that_exit_at_once_started_together_all_say_so(
    host: Any, mk: Callable[[str], str], busybox_root: Path
) -> None:
    """Started at once, an init that exits at once ends one of three ways in libvirt: shut
    off right after RUNNING, "Timed out while reading log output" with nothing more (the
    init exited before libvirt had finished), or taken down just after the STARTED event.
    Each says the same: it stopped right after it started.  And none passes for started:
    libvirt can say RUNNING before the init has run its program (then still a copy of
    libvirt_lxc), and the settle window begins only when it has."""
    from concurrent.futures import ThreadPoolExecutor

    from lxcvirt.errors import StartFailed
    from lxcvirt.host import Host

    quitters = [mk(f"q{i}") for i in range(8)]
    for name in quitters:
        host.define(busybox_spec(name, busybox_root, init=("/bin/true",)))

    def start(name: str) -> list[str]:
        said = []
        with Host(URI, preflight=lambda _h: None) as mine:
            for _ in range(3):
                try:
                    mine.start(name, check=False)  # the default settle window
                    said.append("started")
                    mine.destroy(name)
                except StartFailed as exc:
                    said.append(str(exc).splitlines()[0])
        return said

    with ThreadPoolExecutor(len(quitters)) as pool:
        said = [line for lines in pool.map(start, quitters) for line in lines]
    assert len(said) == 3 * len(quitters), said
    odd = [line for line in said
           if "stopped right after it started: its init /bin/true exited" not in line]
    assert not odd, odd


def test_a_start_log_that_ends_with_the_init_line_means_it_ran() -> None:
    from lxcvirt.host._starting import _init_ran_unheard

    init = ("PATH=/bin:/sbin TERM=linux container=lxc-libvirt HOME=/ "
            "LIBVIRT_LXC_NAME=web /bin/true")
    dropped = ("2026-12-07 10:20:57.257+0000: 22894: warning : virLXCControllerEventSend:"
               "2200 : Dropping event 1 because libvirtd is not connected")
    failed = "2026-12-07 10:20:57.257+0000: 22894: error : virLXCControllerRun: boom"
    assert _init_ran_unheard(f"starting up\n{init}")
    assert _init_ran_unheard(f"starting up\n{init}\n{dropped}")
    assert not _init_ran_unheard(f"starting up\n{init}\n{failed}")
    assert not _init_ran_unheard("starting up\n" + failed)
    assert not _init_ran_unheard("")


def test_one_run_at_a_time_refused_or_waiting(
    host: Any, mk: Callable[[str], str], busybox_root: Path, tmp_path: Path,
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A second apply while one runs (or a start --all) is refused naming the holder, or
    waits with --wait; never the false "FAILED: already running" lines of two runs acting
    at once (issue 13)."""
    import threading

    from lxcvirt.autostart import LOCK_ENV, run_lock

    lock = tmp_path / "run.lock"
    monkeypatch.setenv(LOCK_ENV, str(lock))
    specs = tmp_path / "specs"
    specs.mkdir()
    c = mk("once")
    write_spec(specs, c, busybox_root)
    held = threading.Event()
    release = threading.Event()

    def other_run() -> None:
        with run_lock(lock, what="apply"):
            held.set()
            release.wait(10)

    t = threading.Thread(target=other_run)
    t.start()
    try:
        held.wait(5)
        capsys.readouterr()
        assert main(["-c", URI, "apply", "--no-check", "--settle", "0", str(specs)]) == 1
        err = capsys.readouterr().err
        assert f"pid {os.getpid()} (apply)" in err and "--wait" in err, err
        assert not host.exists(c)
        # A dry run reads only: it takes no lock.
        assert main(["-c", URI, "apply", "--dry-run", str(specs)]) == 0
        threading.Timer(0.5, release.set).start()
        assert main(["-c", URI, "apply", "--no-check", "--settle", "0", "--wait", "10",
                     str(specs)]) == 0
        assert f"{c}: created, started" in capsys.readouterr().out
    finally:
        release.set()
        t.join()


def test_an_unreachable_host_says_why(
    tmp_path: Path, busybox_root: Path, capsys: pytest.CaptureFixture[str], libvirt_conn: Any,
) -> None:
    # Port 1 on loopback: nothing listens there.
    write_spec(tmp_path, "lxcvirt-test-nowhere", busybox_root)
    uri = "lxc+tcp://127.0.0.1:1/"
    assert main(["-c", uri, "apply", str(tmp_path)]) == 2
    out = capsys.readouterr().out
    assert f"host {uri}: FAILED: cannot connect to {uri}" in out, out
    assert main(["-c", uri, "apply", "--json", str(tmp_path)]) == 2
    data = json.loads(capsys.readouterr().out)
    assert data["hosts"][0]["error"] == "unreachable"
    assert data["hosts"][0]["message"].startswith(f"cannot connect to {uri}")


def test_restart_needed_is_remembered_until_the_restart(
    host: Any, mk: Callable[[str], str], busybox_root: Path, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A redefinition of a running container is "restart needed" in status, list and
    every later apply, until it is restarted; --restart restarts exactly those (issue 13)."""
    web, other = mk("rn"), mk("rn-other")
    write_spec(tmp_path, web, busybox_root)
    write_spec(tmp_path, other, busybox_root)
    assert run_apply(host, [tmp_path]).ok
    assert not host.status(web).restart_needed  # just started: runs what is stored
    other_id = host.status(other).id
    write_spec(tmp_path, web, busybox_root, memory="80MiB")
    first = by_name(run_apply(host, [tmp_path]))[web]
    assert first.done == ("redefined",) and first.restart_needed
    assert host.status(web).restart_needed and host.status(web).max_memory_kib == 64 * 1024
    second = run_plan(host, [tmp_path])  # nothing to define any more: still remembered
    item = next(i for i in second.items if i.name == web)
    assert item.actions == () and item.restart_needed
    capsys.readouterr()
    assert main(["-c", URI, "list"]) == 0
    line = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith(web + " "))
    assert "restart needed" in line
    res = by_name(run_apply(host, [tmp_path], restart=True))
    assert res[web].done == ("restarted",)
    assert res[other].done == ()  # not restarted: it runs what is stored
    st = host.status(web)
    assert not st.restart_needed and st.max_memory_kib == 80 * 1024
    assert host.status(other).id == other_id


def test_restart_goes_in_autostart_order(
    host: Any, mk: Callable[[str], str], busybox_root: Path, tmp_path: Path
) -> None:
    """--restart restarts in the autostart order (higher priority first, ``after`` before
    priority), not in file order; the report stays in file order."""
    import libvirt

    from lxcvirt.host import LifecycleWatch

    low, high, follower = mk("ord-a"), mk("ord-b"), mk("ord-c")
    settings = {
        low: "priority = 1",
        high: "priority = 9",
        follower: f"priority = 20\nafter = [{toml_str(low)}]",
    }
    for name, extra in settings.items():
        write_spec(tmp_path, name, busybox_root, extra=f"[autostart]\n{extra}")
    assert run_apply(host, [tmp_path]).ok
    for name, extra in settings.items():  # a change that needs a restart
        write_spec(tmp_path, name, busybox_root, memory="72MiB",
                   extra=f"[autostart]\n{extra}")
    with LifecycleWatch(host.conn) as watch:
        res = run_apply(host, [tmp_path], restart=True)
        assert res.ok, [r.error for r in res.failed]
    started = [n for _u, n, e, _t in watch.events if e == libvirt.VIR_DOMAIN_EVENT_STARTED]
    assert started == [high, low, follower]
    assert [r.name for r in res.results] == sorted(settings)  # file order
    assert all(r.done == ("redefined", "restarted") for r in res.results)


def test_act_order_stops_first_starts_last() -> None:
    from lxcvirt.spec import Autostart

    def item(name: str, actions: tuple[str, ...], priority: int = 0) -> A.PlanItem:
        return A.PlanItem("h", name, None, "", "", actions,
                          autostart=Autostart(priority=priority))

    items = [
        item("start-low", (A.START,), 1),
        item("stop-low", (A.STOP,), 1),
        item("define", (A.CREATE,)),
        item("start-high", (A.CREATE, A.START), 5),
        item("gone-high", (A.STOP, A.UNDEFINE), 5),
        item("unchanged", ()),
    ]
    order = [items[i].name for i in A.act_order(items)]
    assert order == ["stop-low", "gone-high", "define", "unchanged", "start-high", "start-low"]


def test_two_projects_on_one_host_prune_only_their_own(
    host: Any, mk: Callable[[str], str], busybox_root: Path, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Two folders (two teams) applied to one host, each with --prune: each removes only
    what it made; a container made with `create` is nobody's (issue 13)."""
    a_keep, a_gone, b_keep, b_gone, hand = (mk(x) for x in ("pa1", "pa2", "pb1", "pb2", "hand"))
    team_a, team_b = tmp_path / "a" / "specs", tmp_path / "b" / "specs"
    for folder, names_ in ((team_a, (a_keep, a_gone)), (team_b, (b_keep, b_gone))):
        folder.mkdir(parents=True)
        for n in names_:
            write_spec(folder, n, busybox_root, state="defined")
    host.define(busybox_spec(hand, busybox_root))
    assert main(["-c", URI, "apply", str(team_a)]) == 0
    assert main(["-c", URI, "apply", str(team_b)]) == 0
    out = capsys.readouterr().out
    projects = {s.name: s.project for s in host.list(all=True)}
    assert projects[a_keep] == projects[a_gone] != projects[b_keep] == projects[b_gone]
    assert projects[a_keep].startswith("specs-") and projects[hand] is None
    assert f"project: {projects[a_keep]}" in out
    # Team a drops a file and prunes: only its own goes, the dry run says exactly that.
    (team_a / f"{a_gone}.toml").unlink()
    assert main(["-c", URI, "apply", "--prune", "--dry-run", "--json", str(team_a)]) == 0
    plan = json.loads(capsys.readouterr().out)
    gone = [i["name"] for h in plan["hosts"] for i in h["plan"] if i["wanted"] == "absent"]
    assert gone == [a_gone]
    assert main(["-c", URI, "apply", "--prune", str(team_a)]) == 0
    assert not host.exists(a_gone)
    assert host.exists(a_keep) and host.exists(b_keep) and host.exists(b_gone)
    assert host.exists(hand)
    # list filters by project
    capsys.readouterr()
    assert main(["-c", URI, "list", "--all", "--json", "--project", projects[b_keep]]) == 0
    assert {s["name"] for s in json.loads(capsys.readouterr().out)} == {b_keep, b_gone}
