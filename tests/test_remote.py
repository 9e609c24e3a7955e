"""Remote URIs end to end: ``lxc+tcp://`` through libvirt's remote driver.

The tests start a second libvirtd of their own (tests/plain_daemon.py) listening with
libvirtd's own TCP transport on 127.0.0.1 only, without authentication, and stop it
afterwards; the shared libvirtd is never touched.  The second daemon keeps its state in
folders of its own, so what it holds is invisible to the shared one: a container that
appears there came over TCP.  Traffic stays on this machine.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import TERM_INIT
from plain_daemon import available, free_port, plain_daemon
from test_apply import write_spec

from lxcvirt import apply as A
from lxcvirt.cli import main
from lxcvirt.host import LOCAL_HOSTS, Host


@dataclass(frozen=True)
class Second:
    """The second daemon: its TCP URI, and its unix socket URI for checking from here."""

    port: int
    tcp_uri: str
    local_uri: str


@pytest.fixture(scope="module")
def second(libvirt_conn: Any) -> Iterator[Second]:
    why = available()
    if why:
        pytest.fail(f"cannot start a second libvirtd for the remote tests: {why}")
    port = free_port()
    with plain_daemon(hide_unified=True, tcp_port=port) as daemon:
        yield Second(port, f"lxc+tcp://127.0.0.1:{port}/", daemon.uri)
        # libvirt_lxc controllers outlive their daemon: remove every container first.
        import libvirt

        conn = libvirt.open(daemon.uri)
        for dom in conn.listAllDomains(0):
            with contextlib.suppress(libvirt.libvirtError):
                if dom.isActive():
                    dom.destroy()
            with contextlib.suppress(libvirt.libvirtError):
                dom.undefine()
        conn.close()


@pytest.fixture
def tcp_uri(second: Second) -> str:
    return second.tcp_uri


@pytest.fixture
def there(second: Second) -> Iterator[Host]:
    """The second daemon seen through its unix socket (not through TCP)."""
    with Host(second.local_uri, preflight=lambda _h: None) as h:
        yield h


def _loopback_alias() -> str | None:
    """A name for 127.0.0.1 that lxcvirt does not take for "this machine"."""
    for name in (socket.gethostname(), "127.1"):
        if name in LOCAL_HOSTS:
            continue
        try:
            addrs = {a[4][0] for a in socket.getaddrinfo(name, None, socket.AF_INET)}
        except OSError:
            continue
        if addrs == {"127.0.0.1"}:
            return name
    return None


@pytest.fixture
def remote_uri(second: Second) -> str:
    """The second daemon under a name that is not in Host's list of local names, so
    lxcvirt treats it as a remote host (no local files, no local logs)."""
    alias = _loopback_alias()
    assert alias is not None, "no loopback alias (hostname or 127.1) resolves here"
    return f"lxc+tcp://{alias}:{second.port}/"


def test_apply_start_status_list_over_tcp(
    tcp_uri: str, there: Host, host: Any, names: Callable[[str], str], busybox_root: Path,
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    web, idle = names("tcpweb"), names("tcpidle")
    write_spec(tmp_path, web, busybox_root)
    write_spec(tmp_path, idle, busybox_root, state="defined")
    rc = main(["-c", tcp_uri, "apply", "--no-check", "--settle", "0.2", str(tmp_path)])
    assert rc == 0
    out = capsys.readouterr().out
    assert f"{web}: created, started" in out and f"{idle}: created" in out
    # the second daemon holds what the TCP URI made; the shared one knows nothing of it
    assert there.status(web).running and not there.status(idle).running
    assert not host.exists(web) and not host.exists(idle)
    # status and list over the remote URI
    assert main(["-c", tcp_uri, "status", "--json", web]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["state"] == "running" and status["managed"] is True
    assert main(["-c", tcp_uri, "list", "--all", "--json"]) == 0
    listed = {s["name"]: s["state"] for s in json.loads(capsys.readouterr().out)}
    assert listed[web] == "running" and listed[idle] == "shut off"
    # start over the remote URI, then a second apply that changes nothing
    assert main(["-c", tcp_uri, "start", "--no-check", "--settle", "0", idle]) == 0
    capsys.readouterr()
    write_spec(tmp_path, idle, busybox_root, state="running")
    assert main(["-c", tcp_uri, "apply", "--no-check", str(tmp_path)]) == 0
    assert "no changes: 2 unchanged" in capsys.readouterr().out


def test_console_over_tcp(
    tcp_uri: str, names: Callable[[str], str], busybox_root: Path, tmp_path: Path
) -> None:
    from lxcvirt.console import attach

    name = names("tcpcon")
    init = (
        "/bin/sh", "-c", "trap 'exit 0' TERM; while :; do echo tick-tock; sleep 1 & wait; done"
    )
    assert init[0] == TERM_INIT[0]
    write_spec(tmp_path, name, busybox_root)
    spec = A.read_source(tmp_path / f"{name}.toml").spec
    assert spec is not None
    from dataclasses import replace

    from lxcvirt.spec import Init

    with Host(tcp_uri, preflight=lambda _h: None) as remote:
        remote.create(replace(spec, init=Init(init[0], args=init[1:])), check=False)
        read_end, write_end = os.pipe()  # stdin that never ends: the session waits
        with tempfile.TemporaryFile() as out:
            try:
                result = attach(
                    remote, name, expect=["tick-tock"], timeout=15, stdin=read_end,
                    stdout=out.fileno(), lock_dir=tmp_path / "locks",
                )
            finally:
                os.close(write_end)
                os.close(read_end)
            out.seek(0)
            seen = out.read().decode(errors="replace")
    assert result.code == 0, result
    assert "tick-tock" in seen


def test_inventory_per_host(
    tcp_uri: str, there: Host, host: Any, names: Callable[[str], str], busybox_root: Path,
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    on_a, on_b, anywhere = names("inva"), names("invb"), names("invany")
    inv = tmp_path / "hosts.toml"
    inv.write_text(
        f'[hosts]\na = "lxc:///"\nb = {{ uri = "{tcp_uri}" }}\n'
        'down = "lxc+tcp://127.0.0.1:1/"\n'
    )
    specs = tmp_path / "specs"
    specs.mkdir()
    write_spec(specs, on_a, busybox_root, state="defined", extra='hosts = ["a"]')
    write_spec(specs, on_b, busybox_root, state="defined", extra='hosts = ["b"]')
    write_spec(specs, anywhere, busybox_root, state="defined")

    # --host b: only b's containers and the ones for every host; a's is left alone
    rc = main(["apply", "-i", str(inv), "--host", "b", "--json", str(specs)])
    data = json.loads(capsys.readouterr().out)
    assert rc == 0 and [h["host"] for h in data["hosts"]] == ["b"]
    done = {r["name"]: r["done"] for r in data["hosts"][0]["results"]}
    assert done == {on_b: ["created"], anywhere: ["created"]}
    assert not host.exists(on_a) and not there.exists(on_a)
    assert there.exists(on_b) and there.exists(anywhere) and not host.exists(on_b)

    # host a and b together (the per-host specs only), each reported on its own
    (specs / f"{anywhere}.toml").unlink()
    rc = main(["apply", "-i", str(inv), "--host", "a", "--host", "b", str(specs)])
    out = capsys.readouterr().out
    assert rc == 0
    assert "host a (lxc:///):" in out and f"host b ({tcp_uri}):" in out
    assert f"  {on_a}: created" in out and f"  {on_b}: unchanged" in out
    assert host.exists(on_a) and not there.exists(on_a)

    # a host that does not answer is reported; the others go on; exit 2
    rc = main(["apply", "-i", str(inv), "--host", "down", "--host", "b", str(specs)])
    out = capsys.readouterr().out
    assert rc == 2
    assert "host down (lxc+tcp://127.0.0.1:1/): FAILED: cannot connect" in out
    assert f"  {on_b}: unchanged" in out

    # an unknown host name in a spec: refused before anything is done, file named
    bad = write_spec(specs, names("invbad"), busybox_root, extra='hosts = ["nowhere"]')
    assert main(["apply", "-i", str(inv), str(specs)]) == 1
    assert str(bad) in capsys.readouterr().err


def test_remote_host_checks_are_not_checkable(
    remote_uri: str, names: Callable[[str], str], busybox_root: Path, tmp_path: Path
) -> None:
    from lxcvirt.checks import run_checks

    with Host(remote_uri) as remote:
        assert not remote.is_local
        report = run_checks(remote, probe=False)
        unknown = [f for f in report.findings if f.level == "unknown"]
        assert unknown and any("remote" in f.what for f in unknown)
        assert remote.log_tail("anything") == ""  # no local log files for a remote host
        # apply with the host's checks on: "not checkable" does not refuse a start
        name = names("remchk")
        write_spec(tmp_path, name, busybox_root)
        result = A.apply(A.plan([tmp_path], hosts={"r": remote}), check=True, settle=0.2)
        assert result.ok, [r.error for r in result.failed]
        assert remote.status(name).running
        assert result.plan.hosts[0].local is False


def test_stop_and_reboot_over_a_remote_uri(
    remote_uri: str, there: Host, names: Callable[[str], str], busybox_root: Path,
) -> None:
    """Where /proc cannot show what the init listens for, stop asks the ways that do not
    disturb systemd first and SIGTERM after a grace; reboot stops and starts."""
    from conftest import busybox_spec

    name = names("rstop")
    with Host(remote_uri, preflight=lambda _h: None) as remote:
        assert not remote.is_local
        remote.create(busybox_spec(name, busybox_root), settle=0)
        rebooted = remote.reboot(name, timeout=30)
        assert (rebooted.how, rebooted.method) == ("restarted", "stop + start")
        assert there.status(name).running
        result = remote.stop(name, timeout=20)
        assert result.how == "shut down"
        assert result.method == "initctl+SIGRTMIN+3+SIGTERM later"
        # the TERM-only init went down with the later SIGTERM, not before the grace
        assert 4.5 < result.seconds < 15
    assert not there.status(name).running
