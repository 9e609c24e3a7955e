"""In-process use releases what it opens (issue 12, item 9): a program that calls
``lxcvirt.cli.main`` (or the library) many times must not grow its own file descriptors
nor libvirtd's connections."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import busybox_spec

from lxcvirt.cli import main

RUNS = 40


def _fds(pid: int | str) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def _daemon_pid() -> int:
    out = subprocess.run(["pgrep", "-xo", "libvirtd"], capture_output=True, text=True,
                         check=True).stdout
    return int(out.split()[0])


@pytest.mark.parametrize("command", ["list", "console", "status"])
def test_repeated_commands_release_connections(
    host: Any, names: Callable[[str], str], busybox_root: Path, command: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    name = names("inproc")
    host.create(busybox_spec(name, busybox_root), settle=0)
    argv = {"list": ["list", "--all"],
            "console": ["console", name, "--timeout", "0.05"],
            "status": ["status", name, "--json"]}[command]
    daemon = _daemon_pid()
    assert main(["-c", host.uri, *argv]) == 0  # warm: libvirt's event loop, imports
    mine, theirs = _fds("self"), _fds(daemon)
    for _ in range(RUNS):
        assert main(["-c", host.uri, *argv]) == 0
    capsys.readouterr()
    # A leak grows by at least one descriptor a run; a little slack for libvirt's own.
    assert _fds("self") - mine < RUNS // 4, f"{command}: own fds {mine} -> {_fds('self')}"
    assert _fds(daemon) - theirs < RUNS // 4, \
        f"{command}: libvirtd's fds {theirs} -> {_fds(daemon)}"
