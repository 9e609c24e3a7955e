"""A libvirtd that dies at any moment of a command (issue 12, items 3 and 6).

A private daemon (tests/plain_daemon.py, never the shared one) is SIGKILLed at a point
of a running ``lxcvirt`` command and started again at once, as systemd would.  Whatever
the moment, the command must end with no traceback, an exit code of the README (0, 1,
2), and a report that agrees with what runs once the daemon is back: a container
reported started runs, one reported failed does not (and the reverse for stops).
"failed" is never said of a container that is in the state asked for; "unknown" may be.

The points are drawn from a fixed seed, so a failure can be replayed: the test prints
the seed, the command and the delay of each run.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

ROUNDS = 9
SPEC = """name = "{name}"
memory = "64MiB"
state = "{state}"
[init]
path = "/bin/sh"
args = ["-c", "trap 'exit 0' TERM; while :; do sleep 1 & wait; done"]
[[filesystem]]
source = "{root}"
target = "/"
[autostart]
auto = true
priority = {priority}
"""
SEED = int(os.environ.get("LXCVIRT_FAULT_SEED", "20261125"))
#: Seconds after the command starts at which the daemon is killed.
DELAYS = (0.0, 0.03, 0.08, 0.15, 0.25, 0.4, 0.6, 0.9)
#: A command must end this soon after the daemon is back (stops use --timeout 5).
COMMAND_TIMEOUT = 60.0


def _states(uri: str) -> dict[str, bool]:
    import libvirt

    conn = libvirt.open(uri)
    try:
        return {d.name(): bool(d.isActive()) for d in conn.listAllDomains(0)}
    finally:
        conn.close()


def _run(daemon: Any, argv: list[str], delay: float) -> subprocess.CompletedProcess[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "lxcvirt", "-c", daemon.uri, *argv],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "LXCVIRT_DEBUG": ""},
    )
    time.sleep(delay)
    daemon.kill()
    daemon.start()
    out, err = proc.communicate(timeout=COMMAND_TIMEOUT)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def _check_common(res: subprocess.CompletedProcess[str], what: str) -> Any:
    assert "Traceback" not in res.stderr, f"{what}: {res.stderr}"
    assert "lxcvirt: internal error" not in res.stderr, f"{what}: {res.stderr}"
    assert res.returncode in (0, 1, 2), f"{what}: exit {res.returncode}: {res.stderr}"
    if res.returncode != 0:
        lines = [ln for ln in res.stderr.splitlines() if ln.startswith("lxcvirt: error:")]
        assert len(lines) <= 1, f"{what}: more than one error line: {res.stderr}"
    try:
        return json.loads(res.stdout) if res.stdout.strip() else None
    except json.JSONDecodeError as exc:
        raise AssertionError(f"{what}: stdout is not JSON: {res.stdout!r}") from exc


def _check_start_one(name: str, res: Any, states: dict[str, bool], what: str) -> None:
    _check_common(res, what)
    if res.returncode == 0:
        assert states[name], f"{what}: said started, but {name} is not running"


def _check_stop_one(name: str, res: Any, states: dict[str, bool], what: str) -> None:
    _check_common(res, what)
    if res.returncode == 0:
        assert not states[name], f"{what}: said stopped, but {name} runs"


def _check_all(report: Any, states: dict[str, bool], want_running: bool, what: str) -> None:
    if report is None or "containers" not in report:
        return  # the run did not get as far as a plan: one error line (checked above)
    for o in report["containers"]:
        running = states.get(o["name"])
        if o["ok"] and o["result"] != "skipped":
            assert running == want_running, f"{what}: {o} but running={running}"
        if o["result"] == "failed":
            assert running != want_running, f"{what}: {o} said failed, but it is as asked"


def _check_apply(report: Any, states: dict[str, bool], what: str) -> None:
    if report is None or "hosts" not in report:
        return
    for host in report["hosts"]:
        wanted = {i["name"]: i["wanted"] for i in host["plan"]}
        for r in host["results"]:
            want = wanted.get(r["name"])
            if want not in ("running", "stopped"):
                continue
            as_asked = states.get(r["name"]) == (want == "running")
            if r["ok"]:
                assert as_asked, f"{what}: {r} but running={states.get(r['name'])}"
            elif r["planned"] == ["start"] or r["planned"] == ["stop"]:
                assert not as_asked, f"{what}: {r} said failed, but it is as asked"


def test_daemon_killed_at_random_points(
    libvirt_conn: Any, busybox_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import plain_daemon

    from lxcvirt.host import Host

    why_not = plain_daemon.available()
    if why_not:
        pytest.fail(f"cannot start a private libvirtd: {why_not}")
    rng = random.Random(SEED)
    names = [f"lxcvirt-test-{os.getpid()}-fault{i}" for i in range(3)]
    specs = tmp_path / "specs"
    specs.mkdir()

    def write_specs(state: str) -> None:
        for i, name in enumerate(names):
            (specs / f"{name}.toml").write_text(SPEC.format(
                name=name, state=state, root=busybox_root, priority=i))

    runs = 0
    with plain_daemon.restartable_daemon() as daemon:
        host = Host(daemon.uri, preflight=lambda _h: None)
        write_specs("stopped")
        subprocess.run([sys.executable, "-m", "lxcvirt", "-c", daemon.uri, "apply",
                        str(specs)], check=True, capture_output=True)
        one = names[0]

        def ensure(running: bool, *which: str) -> None:
            for n in which or names:
                if running and not host.status(n).running:
                    host.start(n, check=False, settle=0)
                elif not running and host.status(n).running:
                    host.destroy(n)

        def toggle_apply() -> None:
            ensure(False)
            write_specs("running")

        cases: list[tuple[str, Callable[[], None], list[str],
                          Callable[[Any, dict[str, bool], str], None]]] = [
            ("start", lambda: ensure(False, one), ["start", one, "--json"],
             lambda r, s, w: _check_start_one(one, r, s, w)),
            ("stop", lambda: ensure(True, one), ["stop", one, "--timeout", "5", "--json"],
             lambda r, s, w: _check_stop_one(one, r, s, w)),
            ("start --all", lambda: ensure(False), ["start", "--all", "--json"],
             lambda r, s, w: _check_all(_check_common(r, w), s, True, w)),
            ("stop --all", lambda: ensure(True),
             ["stop", "--all", "--timeout", "5", "--json"],
             lambda r, s, w: _check_all(_check_common(r, w), s, False, w)),
            ("apply", toggle_apply, ["apply", str(specs), "--timeout", "5", "--json"],
             lambda r, s, w: _check_apply(_check_common(r, w), s, w)),
            ("console", lambda: ensure(True, one), ["console", one, "--timeout", "1.5"],
             lambda r, s, w: _check_common(r, w)),
        ]
        try:
            for round_ in range(ROUNDS):
                for label, prepare, argv, check in cases:
                    delay = rng.choice(DELAYS)
                    what = f"seed {SEED} round {round_} `{label}` killed at {delay:.2f} s"
                    prepare()
                    res = _run(daemon, argv, delay)
                    check(res, _states(daemon.uri), what)
                    runs += 1
        finally:
            host.close()
    assert runs >= ROUNDS * len(cases)
    with capsys.disabled():
        print(f"\n{runs} runs with the daemon killed at random points (seed {SEED})")
