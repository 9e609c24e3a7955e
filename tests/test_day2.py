"""Day-2 verbs (issue 15): several names at once, restart, suspend and resume, against the
real daemon."""

from __future__ import annotations

import json
import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from conftest import busybox_spec

from lxcvirt.cli import main

COUNTER_INIT = ("/bin/sh", "-c", "i=0; trap 'exit 0' TERM; "
                "while :; do i=$((i+1)); echo $i > /tmp/count; sleep 0.05; done")


def test_verbs_take_several_names_and_go_on_past_a_bad_one(
    host: Any, names: Any, busybox_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = names("multi-a"), names("multi-b")
    missing = names("multi-missing")
    for n in (a, b):
        host.define(busybox_spec(n, busybox_root))
    capsys.readouterr()
    assert main(["start", a, missing, b]) == 2  # partial: the others done
    out, err = capsys.readouterr()
    assert f"{a}: running" in out and f"{b}: running" in out
    assert err.strip() == (f"lxcvirt: error: no container named {missing!r} on lxc:/// "
                           "(`lxcvirt list --all` shows the defined ones)")
    assert host.status(a).running and host.status(b).running
    assert main(["stop", a, b, missing, "--json"]) == 2
    report = json.loads(capsys.readouterr().out)
    assert report["exit_code"] == 2 and not report["ok"]
    by = {c["name"]: c for c in report["containers"]}
    assert by[a]["ok"] and by[a]["result"] == "shut down" and by[b]["ok"]
    assert not by[missing]["ok"] and "no container named" in by[missing]["message"]
    assert by[missing]["error"] == "not-found"
    assert not host.status(a).running and not host.status(b).running
    # every one failing is exit 1; one name keeps the single-command form
    assert main(["destroy", missing, names("multi-missing-too")]) == 1
    # already in the wanted state is done, and said (as stop of a stopped one always was)
    capsys.readouterr()
    assert main(["destroy", a, b]) == 0
    said = capsys.readouterr().out.splitlines()
    assert [ln.split(" (at ")[0] for ln in said[:2]] == [f"[1/2] {a}: already stopped",
                                                        f"[2/2] {b}: already stopped"]
    assert said[2].startswith("destroy: 2 already stopped (2 in ") and len(said) == 3
    assert main(["start", a, "--json"]) == 0
    # one name or several: the same report
    first = json.loads(capsys.readouterr().out)["containers"][0]
    assert (first["name"], first["result"]) == (a, "started")
    assert main(["start", a, "--json"]) == 0
    again = json.loads(capsys.readouterr().out)["containers"][0]
    assert again["result"] == "already running"
    assert again["status"]["id"] == first["status"]["id"]
    assert main(["start", a]) == 0
    assert capsys.readouterr().out.strip() == \
        f"{a}: already running (id {first['status']['id']})"
    assert main(["undefine", "--force", a, b]) == 0
    assert not host.exists(a) and not host.exists(b)


def _count(host: Any, name: str) -> int:
    from lxcvirt._proc import init_pid

    f = Path(f"/proc/{init_pid(host.status(name).id)}/root/tmp/count")
    for _ in range(100):
        text = f.read_text().strip() if f.exists() else ""
        if text.isdigit():
            return int(text)
        time.sleep(0.02)
    raise AssertionError(f"no counter in {f}")


def test_suspend_freezes_and_resume_continues(
    host: Any, names: Any, busybox_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from lxcvirt.spec import Filesystem

    name = names("freeze")
    spec = busybox_spec(name, busybox_root, init=COUNTER_INIT,
                        filesystems=(Filesystem(target="/tmp", type="ram", usage="1MiB"),))
    host.create(spec, check=False)
    time.sleep(0.3)
    capsys.readouterr()
    assert main(["suspend", name]) == 0
    assert capsys.readouterr().out.strip() == f"{name}: paused"
    frozen = _count(host, name)
    time.sleep(0.5)
    assert _count(host, name) == frozen  # nothing runs while suspended
    assert host.status(name).state == "paused"
    assert main(["suspend", name]) == 0  # already: nothing to do
    capsys.readouterr()
    assert main(["resume", name, "--json"]) == 0
    resumed = json.loads(capsys.readouterr().out)["containers"][0]
    assert resumed["result"] == "resumed" and resumed["status"]["state"] == "running"
    time.sleep(0.5)
    assert _count(host, name) > frozen  # it counts again
    assert main(["resume", name]) == 0  # already running: nothing to do
    host.destroy(name)
    assert main(["suspend", name]) == 1
    assert "is not running" in capsys.readouterr().err


def test_restart_is_a_new_instance_running_the_stored_definition(
    host: Any, names: Any, busybox_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    name = names("restart")
    spec = busybox_spec(name, busybox_root)
    host.create(spec, check=False)
    first = host.status(name).id
    host.define(replace(spec, memory="80MiB"))
    assert host.status(name).restart_needed
    capsys.readouterr()
    assert main(["restart", name, "--no-check"]) == 0
    assert f"{name}: restarted in " in capsys.readouterr().out
    st = host.status(name)
    assert st.running and st.id != first and not st.restart_needed
    assert st.max_memory_kib == 80 * 1024
    host.destroy(name)
    assert main(["restart", name]) == 1
    assert "is not running" in capsys.readouterr().err


def test_events_show_lifecycle_changes_as_json_lines(
    host: Any, names: Any, busybox_root: Path
) -> None:
    import select
    import subprocess
    import sys

    name, other, ping = names("events"), names("events-other"), names("events-ping")
    host.define(busybox_spec(name, busybox_root))
    host.define(busybox_spec(other, busybox_root))
    proc = subprocess.Popen(
        [sys.executable, "-m", "lxcvirt", "events", name, ping, "--json", "--timeout", "60"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    lines: list[dict[str, Any]] = []
    pending = b""
    fd = proc.stdout.fileno()  # type: ignore[union-attr]

    def read(until: float) -> None:
        # Raw reads: select() does not see what a buffered reader already holds.
        nonlocal pending
        while time.monotonic() < until:
            ready, _, _ = select.select([fd], [], [], 0.1)
            if ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    return
                pending += chunk
                *done, pending = pending.split(b"\n")
                lines.extend(json.loads(d) for d in done if d.strip())
                return

    try:
        # Listening yet? A container defined and undefined again says so, without a sleep.
        deadline = time.monotonic() + 30
        while not any(e["name"] == ping for e in lines):
            assert time.monotonic() < deadline, "events printed nothing"
            host.define(busybox_spec(ping, busybox_root))
            host.undefine(ping)
            read(time.monotonic() + 0.5)
        host.start(other, check=False)  # not asked for: not shown
        host.start(name, check=False)
        host.suspend(name)
        host.resume(name)
        host.stop(name)
        want = [("started", "booted"), ("suspended", "paused"), ("resumed", "unpaused"),
                ("stopped", "shutdown")]
        deadline = time.monotonic() + 20
        while len([e for e in lines if e["name"] == name]) < len(want):
            assert time.monotonic() < deadline, lines
            read(time.monotonic() + 0.5)
    finally:
        proc.terminate()
        proc.wait(10)
    mine = [(e["event"], e["detail"]) for e in lines if e["name"] == name]
    assert mine == want
    assert not any(e["name"] == other for e in lines)
    assert all(e["time"].endswith("Z") for e in lines)


def test_logs_show_the_tail_and_follow_new_starts(
    host: Any, names: Any, busybox_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import select
    import subprocess
    import sys

    from lxcvirt.host import LXC_LOG_DIR

    name = names("logs")
    host.create(busybox_spec(name, busybox_root), check=False)
    capsys.readouterr()
    assert main(["logs", name, "-n", "3"]) == 0
    out = capsys.readouterr().out
    assert len(out.splitlines()) <= 3 and f"LIBVIRT_LXC_NAME={name}" in out, out
    starts = (LXC_LOG_DIR / f"{name}.log").read_bytes().count(b"starting up")
    proc = subprocess.Popen([sys.executable, "-m", "lxcvirt", "logs", name, "-f", "-n",
                             "100000", "--interval", "0.1"], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL)
    got = b""
    fd = proc.stdout.fileno()  # type: ignore[union-attr]

    def read_until(count: int) -> None:
        nonlocal got
        deadline = time.monotonic() + 20
        while got.count(b"starting up") < count:
            assert time.monotonic() < deadline, got[-2000:]
            if select.select([fd], [], [], 0.2)[0]:
                got += os.read(fd, 65536)

    try:
        read_until(starts)  # the whole log so far
        host.destroy(name)
        host.start(name, check=False)
        read_until(starts + 1)  # and the new start, as it is written
    finally:
        proc.terminate()
        proc.wait(10)
    assert got.count(b"starting up") == starts + 1
    assert main(["logs", "no-such-container-x"]) == 1


def test_info_of_a_running_and_a_stopped_container(
    host: Any, names: Any, busybox_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from lxcvirt.spec import Filesystem, Interface, Limits

    name = names("info")
    spec = busybox_spec(name, busybox_root, limits=Limits(memory_hard_limit="48MiB"),
                        interfaces=(Interface("network", "default",
                                              addresses=("192.168.122.233/24",)),),
                        filesystems=(Filesystem(target="/srv", source=str(busybox_root),
                                                readonly=True),))
    host.create(spec, check=False)
    capsys.readouterr()
    assert main(["info", name, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["state"] == "running" and data["init_pid"] > 1
    assert data["memory"]["limit_kib"] == 48 * 1024 and data["memory"]["used_kib"] > 0
    itf = data["interfaces"][0]
    assert itf["source"] == "default" and itf["mac"].startswith("52:54:00:")
    assert itf["addresses"] == ["192.168.122.233/24"] and itf["host_dev"]
    assert {(m["target"], m["readonly"]) for m in data["mounts"]} == {("/", False),
                                                                     ("/srv", True)}
    assert main(["info", name]) == 0
    out = capsys.readouterr().out
    assert "memory:     " in out and "limit 48 MiB" in out and "/srv (ro)" in out, out
    host.destroy(name)
    assert main(["info", name, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["state"] == "shut off" and data["init_pid"] is None
    assert data["interfaces"][0]["host_dev"] is None and data["memory"]["used_kib"] is None
    assert main(["info", names("info-missing")]) == 1


EDITOR = """import sys, pathlib
state = pathlib.Path(sys.argv[1])
n = int(state.read_text()) if state.exists() else 0
state.write_text(str(n + 1))
steps = sys.argv[2].split(",")
step = steps[min(n, len(steps) - 1)]
f = pathlib.Path(sys.argv[3])
text = f.read_text()
if step == "invalid":
    text = text.replace("<memory unit='KiB'>65536</memory>", "<memory unit='KiB'>0</memory>")
elif step == "valid":  # also mends what the invalid step left in the file
    for old in ("65536", "0"):
        text = text.replace(f"<memory unit='KiB'>{old}</memory>",
                            "<memory unit='KiB'>81920</memory>")
    text = text.replace("<currentMemory unit='KiB'>65536</currentMemory>",
                        "<currentMemory unit='KiB'>81920</currentMemory>")
elif step == "rename":
    text = text.replace("<name>", "<name>x", 1)
f.write_text(text)
"""


def test_edit_validates_shows_the_change_and_offers_to_edit_again(
    host: Any, names: Any, busybox_root: Path, tmp_path: Path
) -> None:
    import subprocess
    import sys

    name = names("edit")
    host.define(busybox_spec(name, busybox_root))
    script = tmp_path / "editor.py"
    script.write_text(EDITOR)

    def edit(steps: str, answers: str = "") -> subprocess.CompletedProcess[str]:
        counter = tmp_path / f"count-{steps}-{len(answers)}"
        env = {**os.environ, "EDITOR": f"{sys.executable} {script} {counter} {steps}"}
        return subprocess.run([sys.executable, "-m", "lxcvirt", "edit", name], env=env,
                              input=answers, capture_output=True, text=True, timeout=60)

    before = host.dumpxml(name, inactive=True)
    r = edit("none")
    assert r.returncode == 0 and r.stdout.strip() == f"{name}: unchanged", r
    # invalid, refused ("no" to editing again): nothing stored
    r = edit("invalid", "n\n")
    assert r.returncode == 1 and "memory" in r.stderr and "Edit again?" in r.stderr, r
    assert host.dumpxml(name, inactive=True) == before
    # invalid, then edited again into a valid one: the diff, then redefined
    r = edit("invalid,valid", "y\n")
    assert r.returncode == 0, r
    assert "+  <memory unit=\"KiB\">81920</memory>" in r.stdout.replace("'", '"'), r.stdout
    assert r.stdout.strip().endswith(f"{name}: redefined")
    assert host.status(name).max_memory_kib == 80 * 1024
    # a rename is refused; no answer (EOF) ends the edit without storing anything
    r = edit("rename", "")
    assert r.returncode == 1 and "cannot rename" in r.stderr, r
    assert not host.exists("x" + name)
    r = edit("none")
    assert r.returncode == 0


def test_list_columns_formats_and_human_units(
    host: Any, names: Any, busybox_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import csv
    import io

    from lxcvirt._units import human_kib

    assert (human_kib(1012), human_kib(65536), human_kib(3355), human_kib(1536 * 1024)) == (
        "1012 KiB", "64 MiB", "3.3 MiB", "1.5 GiB")
    run, off = names("list-run"), names("list-off")
    host.create(busybox_spec(run, busybox_root), check=False)
    host.define(busybox_spec(off, busybox_root, memory="96MiB"))
    capsys.readouterr()
    assert main(["list", "--all", "-c", "name,state,memory,cpu", "-f", "csv"]) == 0
    rows = {r[0]: r for r in csv.reader(io.StringIO(capsys.readouterr().out))}
    assert rows["NAME"] == ["NAME", "STATE", "MEMORY", "CPU TIME"]
    assert rows[off][1:3] == ["shut off", "- / 96 MiB"]
    used, limit = rows[run][2].split(" / ")
    assert limit == "64 MiB" and used.endswith(("KiB", "MiB")) and rows[run][3].endswith(" s")
    assert main(["list", "--all", "--format", "json"]) == 0
    assert {d["name"] for d in json.loads(capsys.readouterr().out)} >= {run, off}
    assert main(["list", "-c", "name,nope"]) == 1
    assert "unknown column 'nope'" in capsys.readouterr().err


def test_stats_json_rates_over_an_interval(
    host: Any, names: Any, busybox_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from lxcvirt.spec import Limits

    busy, idle = names("stats-busy"), names("stats-idle")
    host.create(busybox_spec(busy, busybox_root, init=(
        "/bin/sh", "-c", "trap 'exit 0' TERM; while :; do :; done"),
        limits=Limits(memory_hard_limit="40MiB")), check=False)
    host.create(busybox_spec(idle, busybox_root), check=False)
    capsys.readouterr()
    assert main(["stats", busy, idle, "--interval", "1", "--json"]) == 0
    rows = {u["name"]: u for u in json.loads(capsys.readouterr().out)}
    assert set(rows) == {busy, idle}
    assert rows[busy]["cpu_percent"] > 50, rows  # one busy loop: about one CPU
    assert rows[idle]["cpu_percent"] < 20, rows
    assert rows[busy]["limit_kib"] == 40 * 1024 and 0 < rows[busy]["memory_kib"] < 40 * 1024
    host.destroy(busy)
    assert main(["stats", busy, "--interval", "0.2", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []  # not running: nothing to measure


def test_exec_tty_is_a_pty_with_job_control_and_the_terminal_comes_back(
    host: Any, names: Any, busybox_root: Path, tmp_path: Path
) -> None:
    """exec -t under tmux: `tty` names a pty of the container's own, the window size
    reaches it, Ctrl+Z stops a job and fg brings it back, Ctrl+C ends it, and the
    terminal settings are as before when exec ends, with the shell's exit status."""
    import shutil

    from test_console import LXCVIRT, Tmux, _pids_running, _same_terminal, _wait_until

    if shutil.which("tmux") is None:
        pytest.fail("tmux is needed for the terminal tests (scripts/host-setup)")
    name = names("exec-tty")
    host.create(busybox_spec(name, busybox_root), check=False)
    tmux = Tmux()
    try:
        cmd = " ".join([*LXCVIRT, "exec", "-it", name, "--", "sh"])
        tmux.type(f"stty -a > {tmp_path}/before; {cmd}; echo \"rc=$?\"; "
                  f"stty -a > {tmp_path}/after; echo ended")
        tmux.wait_for(r"\n/ # ")  # typed earlier, it would be flushed with raw mode
        tmux.type("tty")
        tmux.wait_for(r"\n/dev/pts/\d+")
        tmux.type("stty size")
        tmux.wait_for(r"\n30 120")
        sleep = ["sleep", str(200_000 + os.getpid())]
        tmux.type(" ".join(sleep))
        _wait_until(lambda: _pids_running(sleep), f"{sleep} never ran")
        tmux.keys("C-z")
        tmux.wait_for(r"Stopped")
        tmux.type("fg")
        tmux.keys("C-c")
        _wait_until(lambda: not _pids_running(sleep), "^C did not end the job", timeout=5)
        tmux.type("echo back-$((40+2))")
        tmux.wait_for("back-42")
        tmux.type("exit 7")
        tmux.wait_for(r"rc=7\s+(\$ )?ended")
        _same_terminal(tmp_path)
    finally:
        tmux.kill()


def test_suspend_resume_and_restart_all(
    host: Any, names: Any, busybox_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b, off = names("all-a"), names("all-b"), names("all-off")
    for n in (a, b):
        host.create(busybox_spec(n, busybox_root), check=False)
    host.define(busybox_spec(off, busybox_root))
    capsys.readouterr()
    try:
        assert main(["suspend", "--all", "--json"]) == 0
        report = json.loads(capsys.readouterr().out)
        done = {c["name"] for c in report["containers"] if c["ok"]}
        assert {a, b} <= done and off not in done
        assert host.status(a).state == host.status(b).state == "paused"
        assert main(["resume", "--all"]) == 0
        assert host.status(a).running and host.status(b).running
        first = host.status(a).id
        assert main(["restart", "--all", "--no-check"]) == 0
        assert host.status(a).id != first and not host.status(off).running
        assert main(["suspend", a, "--all"]) == 1
        assert "not both" in capsys.readouterr().err
        assert main(["resume"]) == 1
    finally:
        main(["resume", "--all"])  # never leave the host's other containers frozen


def test_comma_lists_rw_mounts_and_subfolders_said(
    host: Any, names: Any, busybox_root: Path, tmp_path: Path,
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue 16's small frictions: --group web,shell as lxc-autostart -g takes it; --mount
    SRC:DST:rw; a subfolder of an applied folder named, not silently skipped."""
    from test_apply import write_spec

    from lxcvirt.autostart import LOCK_ENV
    from lxcvirt.cli import main as cli_main

    monkeypatch.setenv(LOCK_ENV, str(tmp_path / "run.lock"))
    web, shell = names("comma-web"), names("comma-shell")
    tag = f"g{os.getpid()}"
    for n, group in ((web, f"{tag}w"), (shell, f"{tag}s")):
        host.define(busybox_spec(n, busybox_root))
        assert cli_main(["autostart", n, "--enable", "--group", group]) == 0
    capsys.readouterr()
    assert cli_main(["autostart", "list", "--group", f"{tag}w,{tag}s", "--json"]) == 0
    listed = [e["name"] for e in json.loads(capsys.readouterr().out)]
    assert set(listed) == {web, shell}, listed  # a comma list used to match nothing
    # --mount ...:rw is a writable bind, :ro a read-only one, anything else refused
    base = ["render", "--name", "m", "--init", "/bin/sh", "--root", "/srv/m"]
    assert cli_main([*base, "--mount", "/srv/a:/a:rw", "--mount", "/srv/b:/b:ro"]) == 0
    xml = capsys.readouterr().out
    a, b = xml.split("<source dir='/srv/a'/>")[1], xml.split("<source dir='/srv/b'/>")[1]
    assert "<readonly/>" not in a.split("</filesystem>")[0]
    assert "<readonly/>" in b.split("</filesystem>")[0]
    assert cli_main([*base, "--mount", "/srv/a:/a:rx"]) == 1
    assert "'ro' or 'rw'" in capsys.readouterr().err
    # apply names a subfolder it does not read
    specs = tmp_path / "specs"
    (specs / "more").mkdir(parents=True)
    one = names("comma-apply")
    write_spec(specs, one, busybox_root, state="defined")
    write_spec(specs / "more", names("comma-deeper"), busybox_root, state="defined")
    assert cli_main(["apply", "--dry-run", str(specs)]) == 0
    err = capsys.readouterr().err
    assert f"{specs / 'more'}: a folder inside the folder applied, not read" in err, err


def test_busybox_helper_help_makes_no_folder(tmp_path: Path) -> None:
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "lxcvirt._busybox", "--help"], cwd=tmp_path,
                       capture_output=True, text=True, check=False)
    assert r.returncode == 0 and "usage:" in r.stdout
    assert list(tmp_path.iterdir()) == []  # it used to make a folder called --help


def test_libvirts_own_autostart_flag_shows_in_list_and_status(
    host: Any, names: Any, busybox_root: Path, libvirt_conn: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    name = names("libvirt-flag")
    host.define(busybox_spec(name, busybox_root))
    assert host.status(name).libvirt_autostart is False
    libvirt_conn.lookupByName(name).setAutostart(1)  # as virsh autostart does
    try:
        assert host.status(name).libvirt_autostart is True
        capsys.readouterr()
        assert main(["list", "--all", "-c", "name,autostart"]) == 0
        line = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith(name))
        assert "libvirt's flag only" in line
        assert main(["status", name]) == 0
        assert "its own autostart flag is on" in capsys.readouterr().out
    finally:
        libvirt_conn.lookupByName(name).setAutostart(0)


def test_completion_offers_container_names(host: Any, names: Any, busybox_root: Path,
                                           tmp_path: Path) -> None:
    import subprocess
    import sys

    name = names("complete-me")
    host.define(busybox_spec(name, busybox_root))
    prefix = name[:-3]

    def complete(words: str, cword: int) -> list[str]:
        env = {**os.environ, "_LXCVIRT_COMPLETE": "bash_complete", "COMP_WORDS": words,
               "COMP_CWORD": str(cword)}
        r = subprocess.run([sys.executable, "-m", "lxcvirt"], env=env, capture_output=True,
                           text=True, timeout=30, check=False)
        assert r.returncode == 0, r.stderr
        return [ln.split(",", 1)[1] for ln in r.stdout.splitlines() if ln.startswith("plain,")]

    for verb in ("start", "stop", "info", "logs", "edit", "set", "restart"):
        assert name in complete(f"lxcvirt {verb} {prefix}", 2), verb
    assert name not in complete(f"lxcvirt start zz{prefix}", 2)
    # a daemon that does not answer: no names, no error
    assert complete(f"lxcvirt -c lxc:///system?socket=/nonexistent start {prefix}", 4) == []
    # autostart groups the containers name, and the hosts of an inventory
    from lxcvirt import autostart

    group = f"cg{os.getpid()}"
    autostart.update(host, name, groups=(group,))
    assert complete(f"lxcvirt start --all --group {group[:-1]}", 4) == [group]
    assert group in complete("lxcvirt autostart list --group cg", 4)
    inventory = tmp_path / "hosts.toml"
    inventory.write_text('[hosts]\nweb1 = "lxc:///"\nweb2 = "lxc:///"\ndb = "lxc:///"\n')
    assert complete(f"lxcvirt apply -i {inventory} --host web", 5) == ["web1", "web2"]


def test_a_long_stop_says_what_it_waits_for(
    host: Any, names: Any, busybox_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from conftest import STUBBORN_INIT

    from lxcvirt._cli_lifecycle import WAIT_NOTE_AFTER

    name, quick = names("stubborn"), names("quick")
    host.create(busybox_spec(name, busybox_root, init=STUBBORN_INIT), check=False)
    host.create(busybox_spec(quick, busybox_root), check=False)
    capsys.readouterr()
    assert main(["stop", name, "--timeout", str(WAIT_NOTE_AFTER + 1.5)]) == 0
    out, err = capsys.readouterr()
    assert out.startswith(f"{name}: destroyed")
    assert err == (f"lxcvirt: waiting for {name} to shut down (destroyed if still up after "
                   f"{WAIT_NOTE_AFTER + 1.5:g} s)\n")
    # one that goes at once, or JSON: nothing said
    assert main(["stop", quick, "--timeout", "30"]) == 0
    assert capsys.readouterr().err == ""
