"""libvirtd loses its monitor connection to a container's controller (issue 17), provoked
for real on a private daemon: while it is down, the controller's monitor socket is
replaced by one of ours that accepts and stays silent, so the restarted libvirtd is
connected to nothing.  It then never hears that the container's init exited, and (with
its saved init pid removed) cannot deliver a shutdown.  ``status`` must say so, and
``stop`` must end at once instead of waiting its whole timeout."""

from __future__ import annotations

import os
import re
import signal
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import plain_daemon
import pytest
from conftest import busybox_spec

from lxcvirt._proc import init_pid
from lxcvirt.host import Host

STOP_TIMEOUT = 30.0
#: Above any pid this machine hands out (pid_max is at most 2**22).
NO_SUCH_PID = 2**22 + 7


@contextmanager
def _silent_monitors(daemon: Any, names: list[str], *, forget_init: tuple[str, ...] = (),
                     wrong_init: tuple[str, ...] = ()) -> Iterator[None]:
    """Restart ``daemon`` with each container's monitor socket answered by a listener of
    ours that says nothing; ``forget_init``: their saved init pid removed as well;
    ``wrong_init`` (monitor left as it is): their saved init pid one that names no
    process, as libvirtd keeps an earlier instance's when it never hears the new one's."""
    run = daemon.folder / "run" / "lxc"
    daemon.kill()
    for name in wrong_init:
        status = run / f"{name}.xml"
        text, n = re.subn(r"<init pid='\d+'/>", f"<init pid='{NO_SUCH_PID}'/>",
                          status.read_text())
        assert n == 1
        status.write_text(text)
    servers = []
    held: list[socket.socket] = []
    for name in names:
        sock = run / f"{name}.sock"
        os.rename(sock, run / f"{name}.sock.real")
        srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        srv.bind(str(sock))
        srv.listen(4)
        servers.append(srv)

        def accept(s: socket.socket = srv) -> None:
            while True:
                try:
                    held.append(s.accept()[0])
                except OSError:
                    return

        threading.Thread(target=accept, daemon=True).start()
        if name in forget_init:
            status = run / f"{name}.xml"
            text, n = re.subn(r"\s*<init pid='\d+'/>", "", status.read_text())
            assert n == 1
            status.write_text(text)
    daemon.start()
    try:
        yield
    finally:
        for s in servers + held:
            s.close()


def _init_of(host: Host, name: str) -> int:
    pid = init_pid(host.domain(name).ID())
    assert pid is not None
    return pid


def test_a_lost_monitor_is_shown_and_stop_does_not_wait_for_it(
    libvirt_conn: Any, busybox_root: Path
) -> None:
    why_not = plain_daemon.available()  # a failure under CI, never a skip
    if why_not:
        pytest.fail(f"cannot start a second libvirtd: {why_not}")
    with plain_daemon.restartable_daemon() as daemon:
        host = Host(daemon.uri, preflight=lambda _h: None)
        asked, exited, forgot, wrong = "lost-asked", "lost-exited", "lost-noinit", "lost-wrong"
        for name in (asked, exited, forgot, wrong):
            host.create(busybox_spec(name, busybox_root), check=False)
        host.close()
        with _silent_monitors(daemon, [asked, exited, forgot], forget_init=(forgot,),
                              wrong_init=(wrong,)):
            host = Host(daemon.uri, preflight=lambda _h: None)
            try:
                _check(host, asked, exited, forgot)
                _check_wrong_init(host, wrong)
            finally:
                host.close()


def _check_wrong_init(host: Host, wrong: str) -> None:
    # libvirt's signal would go to a pid that names no process: status says so, and the
    # host signals the real init; libvirtd's own monitor still sees it end.
    assert "wrong init pid" in (host.status(wrong, monitor=True).monitor_lost or "")
    result = host.stop(wrong, timeout=STOP_TIMEOUT)
    assert result.how == "shut down", result
    assert "sent from the host" in result.method and result.seconds < 5, result
    assert host.status(wrong).state == "shut off"


def _check(host: Host, asked: str, exited: str, forgot: str) -> None:
    # Connected to nothing, libvirt still knows the init pid: nothing shows yet.
    assert host.status(asked).monitor_lost is None
    # A restarted libvirtd reads the stored definition without the <resource> partition
    # it had added at the start: that is no redefinition.
    assert not host.status(asked).restart_needed

    # The init exits (as after a shutdown libvirt could not see): status says it.
    os.kill(_init_of(host, exited), signal.SIGTERM)
    deadline = time.monotonic() + 10
    while host.status(exited).monitor_lost is None:
        assert time.monotonic() < deadline, "the lost monitor was never seen"
        time.sleep(0.1)
    st = host.status(exited)
    assert st.state == "running" and "has exited" in (st.monitor_lost or "")
    assert any(s.name == exited and s.monitor_lost for s in host.list())
    result = host.stop(exited, timeout=STOP_TIMEOUT)
    assert result.how == "destroyed" and "nothing left to ask" in result.method
    assert result.seconds < 5 and host.status(exited).state == "shut off"

    # libvirt delivers the shutdown, never hears the end: the stop sees it and clears.
    result = host.stop(asked, timeout=STOP_TIMEOUT)
    assert result.how == "shut down", result
    assert "lost its monitor" in result.method and result.seconds < 5, result
    assert host.status(asked).state == "shut off"

    # libvirt never learned the init pid: status says so, the host delivers the stop.
    from lxcvirt.host._domain import LOST_AFTER

    time.sleep(max(0.0, LOST_AFTER - 1))
    deadline = time.monotonic() + 10
    while host.status(forgot, monitor=True).monitor_lost is None:
        assert time.monotonic() < deadline, "the unknown init pid was never seen"
        time.sleep(0.2)
    assert "never learned its init pid" in (host.status(forgot, monitor=True).monitor_lost
                                            or "")
    assert host.status(forgot).monitor_lost is None  # without asking libvirt: not seen
    result = host.stop(forgot, timeout=STOP_TIMEOUT)
    assert result.how == "shut down", result
    assert "sent from the host" in result.method and result.seconds < 5, result
    assert host.status(forgot).state == "shut off"
