"""``apply`` across an inventory of hosts, in parallel: four private libvirtd daemons on
this machine (tests/plain_daemon.py, never the shared one), one of them dead (issue 13).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_apply import write_spec

from lxcvirt.cli import main

HOSTS = 4


@pytest.fixture
def daemons(libvirt_conn: Any) -> Iterator[list[Any]]:
    import plain_daemon

    why_not = plain_daemon.available()
    if why_not:
        pytest.fail(f"cannot start private libvirtd daemons: {why_not}")
    with contextlib.ExitStack() as stack:
        yield [stack.enter_context(plain_daemon.restartable_daemon()) for _ in range(HOSTS)]


def test_an_inventory_is_applied_in_parallel_and_a_dead_host_says_why(
    daemons: list[Any], busybox_root: Path, tmp_path: Path,
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    from lxcvirt.autostart import LOCK_ENV, lock_path, run_lock

    monkeypatch.setenv(LOCK_ENV, str(tmp_path / "run.lock"))
    specs = tmp_path / "specs"
    specs.mkdir()
    names = [f"lxcvirt-test-{os.getpid()}-inv{i}" for i in range(3)]
    for n in names:
        write_spec(specs, n, busybox_root)
    inventory = tmp_path / "hosts.toml"
    inventory.write_text('project = "fleet"\n[hosts]\n' + "".join(
        f'h{i} = "{d.uri}"\n' for i, d in enumerate(daemons)))
    dead = daemons[2]
    dead.kill()
    code = main(["apply", "-i", str(inventory), "--no-check", "--settle", "0",
                 "--parallel-hosts", str(HOSTS), "--json", str(specs)])
    report = json.loads(capsys.readouterr().out)
    assert code == 2, report  # partial: one host failed
    assert report["project"] == "fleet"
    by_host = {h["host"]: h for h in report["hosts"]}
    assert list(by_host) == [f"h{i}" for i in range(HOSTS)]  # the inventory's order
    assert by_host["h2"]["message"].startswith(f"cannot connect to {dead.uri}")
    assert by_host["h2"]["results"] == []
    for i, d in enumerate(daemons):
        if d is dead:
            continue
        done = {r["name"]: r for r in by_host[f"h{i}"]["results"]}
        assert all(done[n]["ok"] and done[n]["done"] == ["created", "started"] for n in names)
        import libvirt

        conn = libvirt.open(d.uri)
        try:
            running = {dom.name() for dom in conn.listAllDomains(0) if dom.isActive()}
        finally:
            conn.close()
        assert set(names) <= running
    # The text report keeps each host's lines together, the dead one with its reason.
    dead.start()
    dead.kill()
    main(["apply", "-i", str(inventory), "--no-check", "--settle", "0", str(specs)])
    out = capsys.readouterr().out
    assert f"host h2 ({dead.uri}): FAILED: cannot connect" in out, out

    # One run at a time per host: a run holding h1's lock keeps this apply off h1 only;
    # the other hosts are served (nothing to change there), h1 says who holds it.
    busy = daemons[1]
    assert lock_path(None, busy.uri) != lock_path(None, daemons[0].uri)
    with run_lock(uri=busy.uri, what="start --all"):
        code = main(["apply", "-i", str(inventory), "--host", "h0", "--host", "h1",
                     "--host", "h3", "--no-check", "--settle", "0", "--json", str(specs)])
    report = json.loads(capsys.readouterr().out)
    assert code == 2, report
    by_host = {h["host"]: h for h in report["hosts"]}
    assert by_host["h1"]["error"] == "locked"
    assert by_host["h1"]["message"].startswith(f"another run against {busy.uri} holds the lock")
    assert f"pid {os.getpid()} (start --all)" in by_host["h1"]["message"]
    assert by_host["h0"]["error"] is None and by_host["h3"]["error"] is None
    assert all(not r["done"] and r["ok"] for h in ("h0", "h3") for r in by_host[h]["results"])
