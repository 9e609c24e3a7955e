"""``lxcvirt autostart ...``, ``start --all`` and ``stop --all`` through the CLI entry point.

Runs are limited to a group of the test's own; the lock and the config file live in
tmp_path (environment variables), never in /run or /etc.
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import URI, busybox_spec

from lxcvirt.autostart import LOCK_ENV, run_lock
from lxcvirt.cli import main
from lxcvirt.spec import Autostart

_groups = itertools.count(1)


@pytest.fixture(autouse=True)
def _private_paths(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(LOCK_ENV, str(tmp_path / "autostart.lock"))
    monkeypatch.setenv("LXCVIRT_CONFIG", str(tmp_path / "absent.conf"))


@pytest.fixture
def group() -> str:
    return f"c{os.getpid()}-{next(_groups)}"


Run = Callable[..., tuple[int, str, str]]


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str]) -> Run:
    def _run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        rc = main(["-c", URI, *args])
        out, err = capsys.readouterr()
        return rc, out, err

    return _run


@pytest.fixture
def make(host: Any, names: Callable[[str], str], busybox_root: Path, group: str
         ) -> Callable[..., str]:
    def _make(label: str, priority: int = 0, *, init: tuple[str, ...] | None = None,
              auto: bool = True) -> str:
        name = names(label)
        kw = {} if init is None else {"init": init}
        host.define(busybox_spec(name, busybox_root, autostart=Autostart(
            auto=auto, priority=priority, groups=(group,)), **kw))
        return name

    return _make


# --- no daemon needed ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(["autostart", "list", "--enable"], "rename it", id="container-named-list"),
        pytest.param(["autostart", "import", "--priority", "3"], "rename it",
                     id="container-named-import"),
        pytest.param(["start", "x", "--all"], "a NAME or --all, not both", id="name-and-all"),
        pytest.param(["start"], "or --all", id="neither"),
        pytest.param(["stop", "--group", "g"], "--group goes with --all", id="group-no-all"),
        pytest.param(["start", "x", "--boot"], "--boot goes with --all", id="boot-no-all"),
        pytest.param(["autostart", "x", "--group", "a", "--clear-groups"], "contradict",
                     id="group-and-clear"),
    ],
)
def test_usage_errors(run: Run, args: list[str], message: str) -> None:
    rc, out, err = run(*args)
    assert rc == 1
    assert message in err
    assert "Traceback" not in err + out


# --- against the daemon --------------------------------------------------------------------

def test_set_and_show_settings(run: Run, make: Callable[..., str], group: str) -> None:
    name = make("set", auto=False)
    rc, out, _ = run("autostart", name, "--enable", "--priority", "3", "--time", "2",
                     "--group", group, "--group", "extra", "--json")
    assert rc == 0
    data = json.loads(out)
    a = data["autostart"]
    assert (a["auto"], a["priority"], a["time"]) == (True, 3, 2)
    assert a["groups"] == [group, "extra"] and data["changed"] is True
    rc, out, _ = run("autostart", name)
    assert rc == 0
    assert out.strip() == f"{name}: yes, priority 3, time 2 s, groups {group},extra, after -"
    rc, out, _ = run("autostart", name, "--disable", "--clear-groups")
    assert out.strip() == f"{name}: no, priority 3, time 2 s, groups -, after -"


def test_unknown_container(run: Run, names: Callable[[str], str]) -> None:
    rc, _, err = run("autostart", names("ghost"), "--enable")
    assert rc == 1 and "no container named" in err


def test_list_shows_the_start_order(run: Run, make: Callable[..., str], group: str) -> None:
    low = make("low", 1)
    high = make("high", 9)
    make("off", 20, auto=False)
    rc, out, _ = run("autostart", "list", "--group", group)
    assert rc == 0
    lines = out.splitlines()
    assert lines[0].split() == ["NAME", "PRIORITY", "TIME", "GROUPS", "AFTER", "WAVE"]
    assert [ln.split()[:2] for ln in lines[1:]] == [[high, "9"], [low, "1"]]
    rc, out, _ = run("autostart", "list", "--group", group, "--ignore-auto", "--json")
    assert [d["name"] for d in json.loads(out)][1:] == [high, low]


def test_start_all_then_stop_all(run: Run, make: Callable[..., str], group: str,
                                 host: Any) -> None:
    a = make("a", 2)
    b = make("b", 1)
    rc, out, _ = run("start", "--all", "--group", group, "--no-check", "--settle", "0",
                     "--json")
    assert rc == 0
    report = json.loads(out)
    assert [(c["name"], c["action"], c["result"]) for c in report["containers"]] == [
        (a, "start", "started"), (b, "start", "started")
    ]
    assert all(isinstance(c["seconds"], float) for c in report["containers"])
    assert host.domain(a).isActive() and host.domain(b).isActive()
    rc, out, _ = run("stop", "--all", "--group", group, "--timeout", "10")
    assert rc == 0
    lines = out.splitlines()
    # said as it happens: a waiting note, [i/N] per container in stop order, a summary
    assert lines[0] == "stopping 2: each gracefully, destroyed if still up after 10 s"
    assert lines[1].startswith(f"[1/2] {b}: shut down in ") and lines[1].endswith(" s)")
    assert lines[2].startswith(f"[2/2] {a}: shut down in ")
    assert lines[3].startswith("stop --all: 2 shut down (2 in ")
    assert len(lines) == 4  # each container once
    assert not host.domain(a).isActive()
    rc, out, _ = run("stop", "--all", "--group", group)
    assert (rc, out.strip()) == (0, "nothing to stop")


def test_partial_failure_exits_2(run: Run, make: Callable[..., str], group: str) -> None:
    make("good", 1)
    bad = make("bad", 0, init=("/no/such/init",))
    rc, out, err = run("start", "--all", "--group", group, "--no-check", "--settle", "0")
    assert rc == 2
    assert f"{bad}: failed" in out
    assert "1 of 2 containers did not start" in err


def test_system_switch_off(run: Run, make: Callable[..., str], group: str, host: Any,
                           tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    name = make("boot")
    conf = tmp_path / "lxcvirt.conf"
    conf.write_text("autostart = false\n")
    rc, out, _ = run("start", "--all", "--boot", "--config", str(conf), "--group", group,
                     "--no-check")
    assert rc == 0 and "autostart is off" in out and str(conf) in out
    monkeypatch.setenv("LXCVIRT_CONFIG", str(conf))
    rc, out, _ = run("start", "--all", "--boot", "--group", group, "--no-check", "--json")
    assert rc == 0 and json.loads(out)["skipped"] is True
    assert not host.domain(name).isActive()
    # Without --boot the switch does not apply (a person asked for it).
    rc, _, _ = run("start", "--all", "--group", group, "--no-check", "--settle", "0")
    assert rc == 0 and host.domain(name).isActive()


def test_second_run_is_refused_while_the_lock_is_held(
    run: Run, make: Callable[..., str], group: str, host: Any
) -> None:
    name = make("locked")
    with run_lock():
        rc, _, err = run("start", "--all", "--group", group, "--no-check")
    assert rc == 1
    assert "`start --all` or `stop --all` is running" in err
    assert not host.domain(name).isActive()


def test_cycle_exits_1_naming_it(run: Run, host: Any, names: Callable[[str], str],
                                 busybox_root: Path, group: str) -> None:
    a, b = names("x"), names("y")
    for me, other in ((a, b), (b, a)):
        host.define(busybox_spec(me, busybox_root, autostart=Autostart(
            auto=True, groups=(group,), after=(other,))))
    rc, _, err = run("start", "--all", "--group", group, "--no-check")
    assert rc == 1 and f"cycle: {a} -> {b} -> {a}" in err
    assert not host.domain(a).isActive()


def test_progress_line_and_summary_of_a_failed_start(
    run: Run, make: Callable[..., str], group: str
) -> None:
    dies = make("dies-at-once", 0, init=("/bin/sh", "-c", "exit 3"))
    rc, out, err = run("start", "--all", "--group", group, "--no-check", "--settle", "1")
    assert rc == 1, out  # every one failed
    lines = out.splitlines()
    # said as it happened: failed at once, or started and then dead within the settle
    # window, which the report then says again with the verdict
    assert lines[0].startswith((f"[1/1] {dies}: failed in ", f"[1/1] {dies}: started in ")), lines
    if "started in" in lines[0]:
        assert lines[1].startswith(f"{dies}: failed"), lines
    assert lines[-1].startswith("start --all: 1 failed (1 in "), lines
    assert len(lines) == (3 if "started in" in lines[0] else 2)
    assert "1 of 1 containers did not start" in err


def test_quiet_json_lines_and_a_bar_only_on_a_terminal(
    run: Run, make: Callable[..., str], group: str, host: Any
) -> None:
    import pty
    import subprocess
    import sys

    from test_json_schemas import COMMANDS, _errors

    a, b = make("q-a", 2), make("q-b", 1)
    # --quiet: nothing on stdout, the exit code says it
    rc, out, err = run("-q", "start", "--all", "--group", group, "--no-check", "--settle", "0")
    assert (rc, out, err) == (0, "", "")
    assert host.domain(a).isActive() and host.domain(b).isActive()
    rc, out, err = run("-q", "stop", a, "no-such-container-q", "--timeout", "5")
    assert rc == 2 and out == "" and err.count("lxcvirt: error: ") == 1
    # --json-lines: an outcome per line as each is done, then the summary
    rc, out, _ = run("stop", "--all", "--group", group, "--timeout", "5", "--json-lines")
    lines = [json.loads(ln) for ln in out.splitlines()]
    assert rc == 0 and [ln.get("name") for ln in lines] == [b, None]  # a was stopped
    assert lines[-1]["counts"] == {"shut down": 1} and "containers" not in lines[-1]
    rc, out, _ = run("start", a, b, "--no-check", "--settle", "0", "--json-lines")
    lines = [json.loads(ln) for ln in out.splitlines()]
    assert [(ln.get("name"), ln.get("result")) for ln in lines] == [
        (a, "started"), (b, "started"), (None, None)]
    for ln in lines:
        assert not _errors(COMMANDS["start"].replace("report", "report-line"), ln), ln

    # A bar on stderr only when stderr is a terminal; stdout's lines are the same.
    def stop_start(stderr_tty: bool) -> tuple[str, str]:
        argv = [sys.executable, "-m", "lxcvirt", "-c", URI]
        subprocess.run([*argv, "stop", "--all", "--group", group, "--timeout", "5"],
                       check=True, capture_output=True)
        master, slave = pty.openpty() if stderr_tty else (None, None)
        proc = subprocess.run([*argv, "start", "--all", "--group", group, "--no-check",
                               "--settle", "0"], stdout=subprocess.PIPE,
                              stderr=slave if slave is not None else subprocess.PIPE,
                              text=True, check=True)
        if master is None:
            return proc.stdout, proc.stderr
        assert slave is not None
        os.close(slave)
        err = b""
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            err += chunk
        os.close(master)
        return proc.stdout, err.decode()

    out, err = stop_start(True)
    assert "[" + "#" * 12 in err and "2/2" in err and "\x1b[K" in err  # drawn, then cleared
    said = out.splitlines()
    assert said[0].startswith("[1/2] ") and said[1].startswith("[2/2] ")
    assert {ln.split()[1] for ln in said[:2]} == {f"{a}:", f"{b}:"}
    out, err = stop_start(False)
    assert "#" not in err and "\x1b" not in err and "\x1b" not in out
