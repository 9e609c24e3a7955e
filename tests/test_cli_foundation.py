"""`lxcvirt render` and `lxcvirt validate` through click's CliRunner, and `main`'s
error handling (one line, exit code, never a traceback)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from conftest import DATA

from lxcvirt.cli import cli, main

GOOD = DATA / "specs" / "minimal.toml"
BAD = DATA / "invalid" / "unknown-key-invalid.toml"


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), standalone_mode=False, catch_exceptions=False)
    return (result.return_value or 0), result.stdout, result.stderr


def test_render_offline_prints_xml_and_says_which_emulator() -> None:
    code, out, err = invoke("render", "--offline", str(GOOD))
    assert code == 0
    assert out.startswith("<domain type='lxc'>") and "<name>minimal</name>" in out
    assert "emulator" in err


def test_render_explicit_emulator() -> None:
    _, out, err = invoke("render", "--emulator", "/opt/lxc/emu", str(GOOD))
    assert "<emulator>/opt/lxc/emu</emulator>" in out
    assert err == ""


@pytest.mark.parametrize(
    ("files", "code"),
    [
        pytest.param([GOOD], 0, id="one-valid"),
        pytest.param([GOOD, DATA / "xml" / "libvirt-doc-app.xml"], 0, id="spec-and-xml"),
        pytest.param([GOOD, BAD], 1, id="one-bad"),
    ],
)
def test_validate_exit_codes(files: list[Path], code: int) -> None:
    got, out, err = invoke("validate", *map(str, files))
    assert got == code
    assert out.count(": valid") == len(files) - code
    assert err.count("\n") == code  # one line per problem


def test_validate_json() -> None:
    code, out, _ = invoke("validate", "--json", str(GOOD), str(BAD))
    data = json.loads(out)
    assert code == 1 and data["exit_code"] == 1 and not data["ok"]
    assert data["counts"] == {"valid": 1, "invalid": 1}
    files = data["files"]
    assert [d["valid"] for d in files] == [True, False]
    assert files[0]["error"] is None and files[0]["message"] is None
    assert files[1]["error"] == "spec" and "memroy" in files[1]["message"]


@pytest.mark.parametrize(
    ("argv", "code", "fragment"),
    [
        pytest.param(["render", "/no/such.toml"], 1, "cannot read spec", id="missing-spec"),
        pytest.param(["render", str(BAD)], 1, "memroy: unknown key", id="bad-spec"),
        pytest.param(["no-such-command"], 1, "No such command", id="usage"),
        pytest.param(["validate"], 1, "Missing argument", id="no-files"),
        pytest.param(
            ["-c", "lxc+tcp://127.0.0.1:1/", "list"], 1, "cannot connect", id="unreachable"
        ),
    ],
)
def test_main_errors_are_one_clean_line(
    argv: list[str], code: int, fragment: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == code
    err = capsys.readouterr().err
    assert fragment in err
    assert "Traceback" not in err


def test_main_json_error_object(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-c", "lxc+tcp://127.0.0.1:1/", "list", "--json"]) == 1
    out = capsys.readouterr().out
    assert json.loads(out)["error"] == "unreachable"


def test_python_dash_m(tmp_path: Path) -> None:
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "lxcvirt", "render", "--offline", str(GOOD)],
        capture_output=True, text=True, check=False, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert "<name>minimal</name>" in proc.stdout


def test_render_of_domain_xml_says_what_to_use(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["render", str(DATA / "xml" / "minimal.xml")]) == 1
    err = capsys.readouterr().err
    assert "rendering takes a spec (.toml)" in err and "lxcvirt define" in err


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param(["validate", "/dev/zero"], id="validate"),
        pytest.param(["render", "--offline", "/dev/zero"], id="render"),
        pytest.param(["define", "/dev/zero"], id="define"),
        pytest.param(["apply", "--dry-run", "/dev/zero"], id="apply"),
    ],
)
def test_an_endless_file_is_refused_not_read(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "/dev/zero" in err and ("larger than" in err or "not a regular file" in err)


def test_an_unexpected_error_is_one_line(monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    """A bug reaches the user as one "internal error" line and exit 1, never a traceback;
    LXCVIRT_DEBUG=1 shows the traceback."""
    import lxcvirt.rendering

    def broken(*_a: object, **_k: object) -> object:
        raise RuntimeError("boom\nsecond line")

    monkeypatch.setattr(lxcvirt.rendering, "check_files", broken)
    monkeypatch.delenv("LXCVIRT_DEBUG", raising=False)
    assert main(["validate", "x.toml"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("lxcvirt: internal error: RuntimeError: boom (a bug in lxcvirt;")
    assert err.count("\n") == 1 and "Traceback" not in err
    assert main(["validate", "--json", "x.toml"]) == 1
    assert json.loads(capsys.readouterr().out)["error"] == "internal"
    # -v: the traceback on stderr, then the same line; the exit code stays 1
    assert main(["-v", "validate", "x.toml"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("Traceback") and "RuntimeError: boom" in err
    assert err.splitlines()[-1].startswith("lxcvirt: internal error: RuntimeError: boom")
    monkeypatch.setenv("LXCVIRT_DEBUG", "1")
    with pytest.raises(RuntimeError, match="boom"):
        main(["validate", "x.toml"])


def test_debug_logs_each_libvirt_call_with_its_duration(
    libvirt_conn: object, capsys: pytest.CaptureFixture[str]
) -> None:
    import logging
    import re

    assert main(["-v", "list", "--all"]) == 0
    err = capsys.readouterr().err.splitlines()
    assert any(re.fullmatch(r"lxcvirt: debug: open \S+ \d+\.\d ms", ln) for ln in err), err
    assert any(re.fullmatch(r"lxcvirt: debug: listAllDomains \(\S+\) \d+\.\d ms", ln)
               for ln in err), err
    assert not any("Conn." in ln for ln in err)  # not twice through call()
    # in-process, the next command without -v is quiet again
    assert main(["list", "--all"]) == 0
    assert "debug:" not in capsys.readouterr().err
    assert not logging.getLogger("lxcvirt").handlers


def test_json_errors_follow_the_option_not_argv(
    libvirt_conn: object, capsys: pytest.CaptureFixture[str]
) -> None:
    """An error is JSON when the command took --json; a "--json" that is only an argument
    of the command run inside the container leaves it a line of text."""
    assert main(["status", "--json", "lxcvirt-test-no-such"]) == 1
    assert json.loads(capsys.readouterr().out)["error"] == "not-found"
    assert main(["exec", "lxcvirt-test-no-such", "--", "echo", "--json"]) == 1
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("lxcvirt: error: no container named")


def test_version_names_lxcvirt_libvirt_python_libvirt_and_the_daemon(
    libvirt_conn: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    import libvirt

    import lxcvirt


    assert main(["--version"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"lxcvirt {lxcvirt.__version__}"
    assert lines[1].startswith("libvirt-python ")
    v = libvirt.getVersion()
    assert lines[2] == f"libvirt library {v // 1_000_000}.{v // 1000 % 1000}.{v % 1000}"
    d = libvirt_conn.getLibVersion()
    assert lines[3].startswith(f"libvirtd {d // 1_000_000}.{d // 1000 % 1000}.{d % 1000} (")
    # a daemon that does not answer is said, not an error
    assert main(["-c", "lxc:///system?socket=/nonexistent/sock", "--version"]) == 0
    assert capsys.readouterr().out.splitlines()[3].startswith("libvirtd: not reachable (")


def test_help_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["help", "start"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Usage: lxcvirt start [OPTIONS] [NAME]...") and "--all" in out
    assert main(["help"]) == 0
    assert "Commands:" in capsys.readouterr().out
    assert main(["help", "nope"]) == 1
    assert "no command 'nope'" in capsys.readouterr().err


def test_no_daemon_says_how_to_start_one(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-c", "lxc:///system?socket=/nonexistent/sock", "list"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("lxcvirt: error: cannot connect to lxc:///system?socket=")
    assert "systemctl start libvirtd" in err and len(err.splitlines()) == 1


def test_autostart_help_shows_the_options_of_autostart_name(
    capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["autostart", "--help"]) == 0
    out = capsys.readouterr().out
    section = out.split("Options of autostart NAME:")[1]
    for option in ("--enable / --disable", "--priority", "--time", "--group", "--after"):
        assert option in section, option
