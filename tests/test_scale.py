"""Many containers on one host (issue 17): rounds of ``start --all`` / ``stop --all`` of
60 busybox containers against the real daemon, with no failed start and no forced stop
(a stop that had to destroy, or one that waited out its timeout).  The counts of 25 to
400 are measured by bench/scale_bench.py."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from conftest import busybox_spec

from lxcvirt.autostart import LOCK_ENV
from lxcvirt.cli import main
from lxcvirt.spec import Autostart

COUNT = 60
ROUNDS = 3


def test_rounds_of_start_all_and_stop_all_with_no_failure(
    host: Any, names: Any, busybox_root: Path, tmp_path: Path,
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(LOCK_ENV, str(tmp_path / "autostart.lock"))
    group = f"scale{os.getpid()}"
    made = [names(f"scale{i:02d}") for i in range(COUNT)]
    for i, name in enumerate(made):
        host.define(busybox_spec(name, busybox_root, autostart=Autostart(
            auto=True, priority=(i % 3) * 10, groups=(group,))))

    def run(*argv: str) -> dict[str, Any]:
        capsys.readouterr()
        rc = main([*argv, "--group", group, "--json"])
        report: dict[str, Any] = json.loads(capsys.readouterr().out)
        bad = [c for c in report["containers"] if not c["ok"]]
        assert rc == 0 and not bad, bad
        return report

    for round_ in range(ROUNDS):
        started = run("start", "--all", "--no-check")
        assert started["counts"] == {"started": COUNT}, (round_, started["counts"])
        assert all(s.state == "running" and s.monitor_lost is None
                   for s in host.list(all=False) if s.name in made)
        stopped = run("stop", "--all", "--timeout", "20")
        # every one asked and gone by itself: none destroyed, none waited out
        assert stopped["counts"] == {"shut down": COUNT}, (round_, stopped["counts"])
        assert max(c["seconds"] for c in stopped["containers"]) < 20
    assert not any(host.status(n).running for n in made)
