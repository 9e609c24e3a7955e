"""Console throughput and keystroke echo: ``lxcvirt console`` against ``virsh console``.

A busybox container waits on its console; each "go" line makes it print ~20 MB and a
marker.  Both clients run in a pseudo-terminal of ours (virsh needs one), attached in
interactive (raw) mode, and we read the pty as fast as we can: bytes/s from "go" to the
marker.  Then 50 single keystrokes, each timed until the container's echo of it comes
back.  Prints the figures and lxcvirt/virsh ratios.  Runs in one go; removes its container.

    .venv/bin/python bench/console_throughput.py [--mb 20] [--runs 3]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import pty
import select
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from lxcvirt._busybox import make_rootfs
from lxcvirt.host import Host
from lxcvirt.spec import Container, Filesystem, Init

MARK = b"DONE-MARK"
LINE = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789abcdefghijklmnop"


def init_script() -> tuple[str, ...]:
    # A file, not `yes | head`: the container's init starts with SIGPIPE ignored (from
    # libvirt_lxc), so `yes` would never stop.
    return (
        "/bin/sh", "-c",
        'trap "exit 0" TERM; exec </dev/console >/dev/console 2>&1; echo ready; '
        "while read go; do cat /big.txt; echo DONE-MARK; done; while :; do sleep 1 & wait; done",
    )


class PtyClient:
    """A console client running on a pty of ours."""

    def __init__(self, argv: list[str]) -> None:
        pid, fd = pty.fork()
        if pid == 0:
            os.execvp(argv[0], argv)
        self.pid, self.fd, self.argv = pid, fd, argv
        self.seen = b""

    def read_until(self, wanted: bytes, timeout: float = 120) -> int:
        """Read until ``wanted`` shows up; the number of bytes read on the way."""
        deadline = time.monotonic() + timeout
        total = 0
        tail = self.seen
        while wanted not in tail:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{wanted!r} not seen; last: {tail[-300:]!r}")
            r, _, _ = select.select([self.fd], [], [], left)
            if r:
                chunk = os.read(self.fd, 1 << 16)
                if not chunk:
                    raise EOFError(tail[-300:])
                total += len(chunk)
                tail = tail[-64:] + chunk
        self.seen = tail[tail.index(wanted) + len(wanted):]
        return total

    def send(self, data: bytes) -> None:
        os.write(self.fd, data)

    def close(self) -> None:
        # virsh detaches only on a read of the escape byte alone: let the ^U go first.
        time.sleep(0.2)
        self.send(b"\x1d")  # ^]: both detach on it
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            done, _ = os.waitpid(self.pid, os.WNOHANG)
            if done:
                break
            r, _, _ = select.select([self.fd], [], [], 0.05)
            if r:
                with contextlib.suppress(OSError):
                    os.read(self.fd, 1 << 16)
        else:
            print(f"  ({self.argv[0]} did not detach on ^]; killed)", file=sys.stderr)
            os.kill(self.pid, 9)
            os.waitpid(self.pid, 0)
        os.close(self.fd)


def measure(argv: list[str], ready: bytes, size: int, runs: int, keys: int) -> tuple[float, float]:
    """(best bytes/s over ``runs``, median keystroke echo in ms)."""
    client = PtyClient(argv)
    try:
        client.read_until(ready, timeout=20)
        time.sleep(0.2)  # let anything the container printed before arrive
        best = 0.0
        for _ in range(runs):
            began = time.perf_counter()
            client.send(b"go\r")
            got = client.read_until(MARK)
            best = max(best, got / (time.perf_counter() - began))
            client.read_until(b"\n")
        echoes = []
        for _ in range(keys):
            began = time.perf_counter()
            client.send(b"x")
            client.read_until(b"x", timeout=10)
            echoes.append((time.perf_counter() - began) * 1000)
        client.send(b"\x15")  # ^U: forget the x's typed
        return best, statistics.median(echoes)
    finally:
        client.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=float, default=20.0, help="MB per run (default 20)")
    ap.add_argument("--runs", type=int, default=3, help="runs per client, best kept")
    ap.add_argument("--keys", type=int, default=50, help="keystrokes timed")
    args = ap.parse_args()
    size = int(args.mb * 1_000_000)
    name = f"lxcvirt-bench-console-{os.getpid()}"
    host = Host(preflight=lambda _h: None)
    with tempfile.TemporaryDirectory(prefix="lxcvirt-bench-") as tmp:
        root = make_rootfs(Path(tmp) / "rootfs")
        line = (LINE + "\n").encode()
        (root / "big.txt").write_bytes(line * (size // len(line)))
        script = init_script()
        spec = Container(name=name, init=Init(script[0], args=script[1:]), memory="64MiB",
                         filesystems=(Filesystem(target="/", source=str(root)),))
        host.define(spec)
        try:
            host.start(name, check=False)
            lx = [sys.executable, "-m", "lxcvirt", "console", name]
            vs = ["virsh", "-c", host.uri, "console", name]
            results = {}
            for label, argv, ready in (("lxcvirt", lx, b"detach with"),
                                       ("virsh", vs, b"Escape character")):
                results[label] = measure(argv, ready, size, args.runs, args.keys)
        finally:
            subprocess.run(["virsh", "-c", host.uri, "destroy", name], capture_output=True)
            subprocess.run(["virsh", "-c", host.uri, "undefine", name], capture_output=True)
    (lt, le), (vt, ve) = results["lxcvirt"], results["virsh"]
    print(f"console throughput, {args.mb:g} MB through a pty, best of {args.runs}:")
    print(f"  lxcvirt console  {lt / 1e6:8.1f} MB/s")
    print(f"  virsh console    {vt / 1e6:8.1f} MB/s")
    print(f"  ratio lxcvirt/virsh: {lt / vt:.2f}x (goal >= 0.9x)")
    print(f"keystroke echo round trip, median of {args.keys}:")
    print(f"  lxcvirt console  {le:8.3f} ms")
    print(f"  virsh console    {ve:8.3f} ms")
    print(f"  ratio lxcvirt/virsh: {le / ve:.2f}x (lower is faster)")


if __name__ == "__main__":
    main()
