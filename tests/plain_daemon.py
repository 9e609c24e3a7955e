"""A throw-away second libvirtd that sees the host's cgroup mounts as they are.

The shared libvirtd runs in a private mount namespace without the hybrid cgroup2 mount
(scripts/host-setup).  To see what a libvirtd started plainly would do, this starts a
second one in a mount namespace that keeps every cgroup mount and hides only libvirt's
own state behind private folders, so it shares nothing with the first daemon:

- /run/libvirt is bound to a folder of ours (its socket is reachable from here through
  ``lxc:///system?socket=...``), /var/log/libvirt likewise (container logs);
- /etc/libvirt/lxc, /var/lib/libvirt and /var/cache/libvirt are empty tmpfs mounts, so it
  neither loads nor autostarts the shared daemon's containers (and /etc/libvirt/hooks on
  request, for a daemon without lxcvirt's hook).

It is stopped (by its own pid) and its folder removed on exit.  Used by tests/test_checks.py
and bench/compare_checks.py.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

INNER = """set -e
dir="$1"
mode="$2"
hooks="$3"
shift 3
mount --bind "$dir/run" /run/libvirt
mount -t tmpfs tmpfs /etc/libvirt/lxc
mount -t tmpfs tmpfs /var/lib/libvirt
if [ -d /var/cache/libvirt ]; then mount -t tmpfs tmpfs /var/cache/libvirt; fi
if [ -d /etc/libvirt/qemu ]; then mount -t tmpfs tmpfs /etc/libvirt/qemu; fi
mount --bind "$dir/log" /var/log/libvirt
if [ "$mode" = hide-unified ] && grep -q ' /sys/fs/cgroup/unified cgroup2 ' /proc/self/mounts; then
    umount /sys/fs/cgroup/unified
fi
if [ "$hooks" = hide-hooks ] && [ -d /etc/libvirt/hooks ]; then
    mount -t tmpfs tmpfs /etc/libvirt/hooks
fi
exec libvirtd -p "$dir/libvirtd.pid" "$@"
"""

#: libvirtd's own TCP listener: loopback only, no authentication (tests only).
TCP_CONF = """listen_tls = 0
listen_tcp = 1
listen_addr = "127.0.0.1"
tcp_port = "{port}"
auth_tcp = "none"
"""


@dataclass(frozen=True)
class PlainDaemon:
    uri: str
    pid: int
    folder: Path

    def log(self, name: str) -> str:
        try:
            return (self.folder / "log" / "lxc" / f"{name}.log").read_text(errors="replace")
        except OSError:
            return ""


def available() -> str | None:
    """Why a second daemon cannot be started here, or None when it can."""
    if os.geteuid() != 0:
        return "needs root"
    for tool in ("unshare", "libvirtd", "mount"):
        if shutil.which(tool) is None:
            return f"no {tool}"
    for d in ("/run/libvirt", "/etc/libvirt/lxc", "/var/lib/libvirt", "/var/log/libvirt"):
        if not os.path.isdir(d):
            return f"no {d}"
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def plain_daemon(
    timeout: float = 20.0, *, hide_unified: bool = False, tcp_port: int | None = None,
    hide_hooks: bool = False,
) -> Iterator[PlainDaemon]:
    """``hide_unified``: unmount the hybrid cgroup2 mount in its namespace, as
    scripts/host-setup does for the shared daemon, so containers really start there.
    ``tcp_port``: also listen with libvirtd's own TCP transport on 127.0.0.1:PORT.
    ``hide_hooks``: an empty /etc/libvirt/hooks (a daemon without lxcvirt's hook)."""
    folder = Path(tempfile.mkdtemp(prefix="lxcvirt-plain-"))
    (folder / "run").mkdir()
    (folder / "log" / "lxc").mkdir(parents=True)
    (folder / "inner.sh").write_text(INNER)
    extra: list[str] = []
    if tcp_port is not None:
        (folder / "libvirtd.conf").write_text(TCP_CONF.format(port=tcp_port))
        extra = ["--listen", "-f", str(folder / "libvirtd.conf")]
    out = (folder / "daemon.out").open("wb")
    proc = subprocess.Popen(
        ["unshare", "-m", "--propagation", "private", "sh", str(folder / "inner.sh"),
         str(folder), "hide-unified" if hide_unified else "keep",
         "hide-hooks" if hide_hooks else "keep", *extra],
        stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
    )
    sock = folder / "run" / "libvirt-sock"
    uri = f"lxc:///system?socket={sock}"
    try:
        deadline = time.monotonic() + timeout
        while not sock.exists() or not _answers(uri):
            if proc.poll() is not None:
                raise RuntimeError(
                    f"the second libvirtd exited: {(folder / 'daemon.out').read_text()[-800:]}"
                )
            if time.monotonic() > deadline:
                raise RuntimeError("the second libvirtd did not answer in time")
            time.sleep(0.1)
        yield PlainDaemon(uri, proc.pid, folder)
    finally:
        # unshare and sh exec into libvirtd, so proc.pid is the daemon itself.
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        out.close()
        shutil.rmtree(folder, ignore_errors=True)


def _answers(uri: str) -> bool:
    import libvirt

    try:
        conn = libvirt.open(uri)
    except libvirt.libvirtError:
        return False
    conn.close()
    return True


# --- a daemon that can be killed and started again, its state kept ---------------------

HOLDER = """set -e
dir="$1"
mount --bind "$dir/run" /run/libvirt
mount -t tmpfs tmpfs /etc/libvirt/lxc
mount -t tmpfs tmpfs /var/lib/libvirt
if [ -d /var/cache/libvirt ]; then mount -t tmpfs tmpfs /var/cache/libvirt; fi
if [ -d /etc/libvirt/qemu ]; then mount -t tmpfs tmpfs /etc/libvirt/qemu; fi
mount --bind "$dir/log" /var/log/libvirt
if grep -q ' /sys/fs/cgroup/unified cgroup2 ' /proc/self/mounts; then
    umount /sys/fs/cgroup/unified
fi
touch "$dir/ready"
exec sleep infinity
"""


class RestartableDaemon:
    """A private libvirtd whose mount namespace (and so its definitions, state and the
    containers it runs) outlives the daemon: :meth:`kill` it at any moment, then
    :meth:`start` it again and it finds everything as a restarted libvirtd does.

    The namespace is held by a sleeping process; libvirtd is started inside it with
    nsenter, so the pid we hold is the daemon's own.  Cgroup layout as the shared daemon
    sees it (the hybrid cgroup2 mount hidden), so containers really start.
    """

    def __init__(self, folder: Path, holder: subprocess.Popen[bytes]) -> None:
        self.folder = folder
        self.holder = holder
        self.daemon: subprocess.Popen[bytes] | None = None
        self.uri = f"lxc:///system?socket={folder / 'run' / 'libvirt-sock'}"
        self._known: set[str] = set()

    @property
    def pid(self) -> int | None:
        return None if self.daemon is None or self.daemon.poll() is not None else self.daemon.pid

    def start(self, timeout: float = 20.0) -> None:
        assert self.pid is None, "already running"
        sock = self.folder / "run" / "libvirt-sock"
        with contextlib.suppress(FileNotFoundError):
            sock.unlink()
        out = (self.folder / "daemon.out").open("ab")
        self.daemon = subprocess.Popen(
            ["nsenter", "-t", str(self.holder.pid), "-m", "--",
             "libvirtd", "-p", str(self.folder / "libvirtd.pid")],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
        out.close()
        deadline = time.monotonic() + timeout
        while not sock.exists() or not _answers(self.uri):
            if self.daemon.poll() is not None:
                said = (self.folder / "daemon.out").read_text()[-800:]
                raise RuntimeError(f"the private libvirtd exited: {said}")
            if time.monotonic() > deadline:
                raise RuntimeError("the private libvirtd did not answer in time")
            time.sleep(0.05)
        # libvirtd answers before its drivers have loaded their domains: the harness
        # waits for the ones it had, so a test's own steps do not race that.
        while not self._known <= _domain_names(self.uri):
            if time.monotonic() > deadline:
                raise RuntimeError("the private libvirtd did not load its domains in time")
            time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL the daemon (its containers keep running, as with a crashed libvirtd)."""
        self._known = _domain_names(self.uri)
        if self.daemon is not None and self.daemon.poll() is None:
            self.daemon.kill()
            self.daemon.wait()

    def stop(self) -> None:
        if self.daemon is not None and self.daemon.poll() is None:
            self.daemon.terminate()
            try:
                self.daemon.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.daemon.kill()
                self.daemon.wait()


@contextmanager
def restartable_daemon() -> Iterator[RestartableDaemon]:
    """A running :class:`RestartableDaemon`; on exit its containers are destroyed, the
    daemon stopped, the namespace released and its folder removed."""
    folder = Path(tempfile.mkdtemp(prefix="lxcvirt-restartable-"))
    (folder / "run").mkdir()
    (folder / "log" / "lxc").mkdir(parents=True)
    (folder / "holder.sh").write_text(HOLDER)
    holder = subprocess.Popen(
        ["unshare", "-m", "--propagation", "private", "sh", str(folder / "holder.sh"),
         str(folder)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    daemon = RestartableDaemon(folder, holder)
    try:
        deadline = time.monotonic() + 10
        while not (folder / "ready").exists():
            if holder.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the namespace holder did not come up")
            time.sleep(0.02)
        daemon.start()
        yield daemon
    finally:
        try:
            if daemon.pid is None:
                with contextlib.suppress(RuntimeError):
                    daemon.start()
            if daemon.pid is not None:
                _destroy_all(daemon.uri)
        finally:
            daemon.stop()
            holder.kill()
            holder.wait()
            shutil.rmtree(folder, ignore_errors=True)


def _destroy_all(uri: str) -> None:
    import libvirt

    try:
        conn = libvirt.open(uri)
    except libvirt.libvirtError:
        return
    try:
        for dom in conn.listAllDomains(0):
            with contextlib.suppress(libvirt.libvirtError):
                if dom.isActive():
                    dom.destroy()
            with contextlib.suppress(libvirt.libvirtError):
                dom.undefine()
    finally:
        conn.close()


def _domain_names(uri: str) -> set[str]:
    import libvirt

    try:
        conn = libvirt.open(uri)
    except libvirt.libvirtError:
        return set()
    try:
        return {d.name() for d in conn.listAllDomains(0)}
    except libvirt.libvirtError:
        return set()
    finally:
        conn.close()
