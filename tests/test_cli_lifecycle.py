"""The lifecycle commands (define, start, create, stop, destroy, undefine, list, status,
dumpxml) through click's CliRunner and as a real subprocess: output, JSON, exit codes."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from conftest import TERM_INIT, URI

from lxcvirt.cli import cli, main


def invoke(*args: str) -> tuple[int, str, str]:
    """A command that succeeds, in-process (errors go through ``main`` below)."""
    result = CliRunner().invoke(
        cli, ["-c", URI, *args], standalone_mode=False, catch_exceptions=False
    )
    return (result.return_value or 0), result.stdout, result.stderr


def run_main(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["-c", URI, *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def subprocess_lxcvirt(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lxcvirt", "-c", URI, *args],
        capture_output=True, text=True, timeout=120, check=False,
    )


def toml_quote(s: str) -> str:
    return json.dumps(s)  # a JSON string is a valid TOML basic string


@pytest.fixture
def spec_file(tmp_path: Path, busybox_root: Path) -> Callable[..., Path]:
    """``spec_file(name, memory=...)`` writes a TOML spec for a busybox container."""

    def make(name: str, memory: str = "64MiB", init: tuple[str, ...] = TERM_INIT,
             extra: str = "") -> Path:
        path = tmp_path / f"{name}-{memory}.toml"
        args = ", ".join(toml_quote(a) for a in init[1:])
        path.write_text(
            f"name = {toml_quote(name)}\nmemory = {toml_quote(memory)}\n"
            f"[init]\npath = {toml_quote(init[0])}\nargs = [{args}]\n"
            f"[[filesystem]]\nsource = {toml_quote(str(busybox_root))}\ntarget = \"/\"\n"
            + extra
        )
        return path

    return make


def test_define_idempotent_with_diff(names: Any, spec_file: Any) -> None:
    name = names("cli-define")
    code, out, _ = invoke("define", str(spec_file(name)))
    assert (code, out) == (0, f"{name}: created\n")
    code, out, _ = invoke("define", "--diff", str(spec_file(name)))
    assert (code, out) == (0, f"{name}: unchanged\n")
    code, out, _ = invoke("define", "--diff", str(spec_file(name, memory="96MiB")))
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == f"{name}: redefined"
    assert any(ln.startswith("-") and "65536" in ln for ln in lines)
    assert any(ln.startswith("+") and "98304" in ln for ln in lines)
    code, out, _ = invoke("define", "--json", str(spec_file(name, memory="96MiB")))
    assert json.loads(out) == {
        "name": name, "action": "define", "result": "unchanged", "ok": True, "seconds": 0.0,
        "error": None, "message": None, "diff": "", "restart_needed": False,
    }


def test_full_cycle_json(names: Any, spec_file: Any) -> None:
    name = names("cli-cycle")
    extra = "[autostart]\nauto = true\npriority = 3\n"
    code, out, _ = invoke("create", "--no-check", "--json", str(spec_file(name, extra=extra)))
    assert code == 0
    data = json.loads(out)
    assert (data["action"], data["result"]) == ("create", "created")
    assert data["status"]["state"] == "running" and data["status"]["id"] > 0

    code, out, _ = invoke("status", "--json", name)
    status = json.loads(out)
    assert status["reason"] == "booted" and status["managed"] is True
    assert status["autostart"]["auto"] is True and status["autostart"]["priority"] == 3

    code, out, _ = invoke("status", name)
    assert "state:      running (booted)" in out
    assert "autostart:  yes, priority 3" in out

    code, out, _ = invoke("list", "--json")
    assert name in [c["name"] for c in json.loads(out)]
    code, out, _ = invoke("list")
    row = next(ln for ln in out.splitlines() if ln.startswith(name))
    assert "running" in row and "yes (priority 3)" in row

    code, out, _ = invoke("dumpxml", name)
    assert out.startswith("<domain type='lxc' id=")
    code, out, _ = invoke("dumpxml", "--inactive", name)
    assert out.startswith("<domain type='lxc'>") and f"<name>{name}</name>" in out

    code, out, _ = invoke("stop", "--json", name)
    assert code == 0 and json.loads(out)["containers"][0]["result"] == "shut down"
    code, out, _ = invoke("stop", name)
    assert out == f"{name}: already stopped\n"
    code, out, _ = invoke("list")
    assert name not in out
    code, out, _ = invoke("list", "--all")
    assert any(ln.startswith(name) and "shut off" in ln for ln in out.splitlines())

    code, out, _ = invoke("undefine", "--json", name)
    done = json.loads(out)
    assert (done["ok"], done["exit_code"], done["counts"]) == (True, 0, {"undefined": 1})
    assert [(c["name"], c["result"]) for c in done["containers"]] == [(name, "undefined")]


@pytest.mark.parametrize(
    ("argv", "kind", "fragment"),
    [
        pytest.param(["start", "--no-check", "{missing}"], "not-found", "list --all",
                     id="start-missing"),
        pytest.param(["stop", "{missing}"], "not-found", "no container", id="stop-missing"),
        pytest.param(["status", "{missing}"], "not-found", "no container", id="status-missing"),
        pytest.param(["undefine", "{running}"], "invalid-state", "--force",
                     id="undefine-running"),
        pytest.param(["start", "--no-check", "{dies}"], "start-failed", "exited",
                     id="init-exits"),
    ],
)
def test_errors_exit_1_with_json(
    capsys: pytest.CaptureFixture[str],
    host: Any,
    names: Any,
    spec_file: Any,
    argv: list[str],
    kind: str,
    fragment: str,
) -> None:
    fill = {"missing": "lxcvirt-test-never-defined"}
    if any("{stopped}" in a or "{running}" in a for a in argv):
        fill["stopped"] = fill["running"] = name = names("cli-err")
        host.define(spec_file(name))
        if "{running}" in " ".join(argv):
            host.start(name)
    if "{dies}" in " ".join(argv):
        fill["dies"] = name = names("cli-dies")
        host.define(spec_file(name, init=("/bin/true",)))
    args = [a.format(**fill) for a in argv]
    code, out, err = run_main(capsys, *args)
    assert code == 1
    assert err.startswith("lxcvirt: error: ") and fragment in err
    assert "Traceback" not in err
    code, out, err = run_main(capsys, *args, "--json")
    assert code == 1 and err.startswith("lxcvirt: error: ") and fragment in err
    doc = json.loads(out)
    if "containers" in doc:  # a verb's report: the container's outcome says what failed
        assert doc["exit_code"] == 1 and doc["counts"] == {"failed": 1}
        doc = doc["containers"][0]
    assert doc["error"] == kind


def test_undefine_force_stops_first(host: Any, names: Any, spec_file: Any) -> None:
    name = names("cli-force")
    host.define(spec_file(name))
    host.start(name)
    code, out, _ = invoke("undefine", "--force", name)
    assert (code, out) == (0, f"{name}: undefined\n")
    assert not host.exists(name)


def test_bad_usage_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_main(capsys, "stop", "--timeout", "-3", "x")
    assert code == 1 and "timeout" in err


def test_real_subprocess(host: Any, names: Any, spec_file: Any, tmp_path: Path) -> None:
    name = names("cli-proc")
    path = spec_file(name)
    proc = subprocess_lxcvirt("create", "--no-check", "--json", str(path))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["status"]["state"] == "running"

    proc = subprocess_lxcvirt("list", "--all", "--json")
    assert proc.returncode == 0
    assert {"name", "state", "reason", "id", "memory_kib", "autostart"} <= set(
        next(c for c in json.loads(proc.stdout) if c["name"] == name)
    )

    proc = subprocess_lxcvirt("undefine", name)
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.startswith("lxcvirt: error: ") and "--force" in proc.stderr
    assert proc.stderr.count("\n") == 1

    proc = subprocess_lxcvirt("stop", "--timeout", "10", name)
    # A busybox shell init: no systemd signals and no sysvinit pipe, so SIGTERM.
    assert proc.returncode == 0
    assert re.fullmatch(rf"{re.escape(name)}: shut down in \d+\.\d s \(SIGTERM\)\n",
                        proc.stdout), proc.stdout

    bad = tmp_path / "bad.xml"
    bad.write_text("<domain type='lxc'><name>x</name>")
    proc = subprocess_lxcvirt("define", "--json", str(bad))
    assert proc.returncode == 1 and json.loads(proc.stdout)["error"] == "xml"
    assert "Traceback" not in proc.stderr


def test_cli_settle_default_is_the_library_default() -> None:
    from lxcvirt.host import DEFAULT_SETTLE

    for command in ("start", "create"):
        settle = next(p for p in cli.commands[command].params if p.name == "settle")
        assert settle.default == DEFAULT_SETTLE
