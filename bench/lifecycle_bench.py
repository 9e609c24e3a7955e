"""Lifecycle benchmark: lxcvirt against its peers on the real daemon.  Prints ratios.

    .venv/bin/python bench/lifecycle_bench.py [-c URI] [-n ROUNDS]

1. ``lxcvirt list --json`` (a whole process) vs a bare libvirt-python listAllDomains()
   process (goal <= 1.3x) and vs ``virsh list --all``.
2. Starting a container in-process: ``Host.start`` vs libvirt-python's ``create()``
   (goal <= 10 % overhead).  ``Host.start`` watches ``settle`` seconds more by default for
   an init that exits at once; the mechanism is measured with settle=0 and the default
   reported beside it.
3. Stopping a container whose init ignores SIGTERM: ``lxcvirt stop --timeout T`` vs
   ``virsh shutdown; sleep T; virsh destroy`` (what a script without lxcvirt does).

Not a test: no assertions.  Everything it makes is removed at the end.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from _common import STUBBORN_INIT, TERM_INIT, lxcvirt_argv
from _common import run as _run


def run(argv: Sequence[str]) -> float:
    return _run(argv, check=True)


def median_of(fn: Callable[[], float], rounds: int) -> float:
    fn()  # warm the page cache and the daemon
    return statistics.median(fn() for _ in range(rounds))


def ms(seconds: float) -> str:
    return f"{seconds * 1000:8.1f} ms"


def bench_list(uri: str, rounds: int) -> None:
    import libvirt

    conn = libvirt.open(uri)
    count = len(conn.listAllDomains(0))
    conn.close()
    print(f"== list ({rounds} rounds, median wall time of a whole process; {count} domains "
          "on the daemon)")
    raw = [sys.executable, "-c", f"import libvirt; libvirt.open({uri!r}).listAllDomains()"]
    ours = [*lxcvirt_argv(), "-c", uri, "list", "--json"]
    ours_all = [*lxcvirt_argv(), "-c", uri, "list", "--all", "--json"]
    virsh = ["virsh", "-c", uri, "list", "--all"]
    t_raw = median_of(lambda: run(raw), rounds)
    t_ours = median_of(lambda: run(ours), rounds)
    t_all = median_of(lambda: run(ours_all), rounds)
    have_virsh = shutil.which("virsh") is not None
    t_virsh = median_of(lambda: run(virsh), rounds) if have_virsh else float("nan")
    print(f"  python -c listAllDomains()  {ms(t_raw)}")
    print(f"  lxcvirt list --json         {ms(t_ours)}   {t_ours / t_raw:5.2f}x raw "
          "(goal <= 1.30x)")
    print(f"  lxcvirt list --all --json   {ms(t_all)}   {t_all / t_raw:5.2f}x raw")
    print(f"  virsh list --all            {ms(t_virsh)}   "
          f"lxcvirt is {t_ours / t_virsh:5.2f}x virsh")


def bench_start(host: Any, name: str, rounds: int) -> None:
    from lxcvirt.host import DEFAULT_SETTLE

    print(f"== start ({rounds} rounds each, in-process, median)")
    dom = host.domain(name)

    def raw() -> float:
        began = time.perf_counter()
        dom.create()
        took = time.perf_counter() - began
        host.stop(name)
        return took

    def ours(settle: float) -> Callable[[], float]:
        def once() -> float:
            began = time.perf_counter()
            host.start(name, check=False, settle=settle)
            took = time.perf_counter() - began
            host.stop(name)
            return took

        return once

    # Interleave, so drift in the daemon's speed hits both alike.
    raw()
    ours(0)()
    t_raw, t_ours = [], []
    for _ in range(rounds):
        t_raw.append(raw())
        t_ours.append(ours(0)())
    r, o = statistics.median(t_raw), statistics.median(t_ours)
    d = median_of(ours(DEFAULT_SETTLE), max(3, rounds // 3))
    print(f"  libvirt-python dom.create()       {ms(r)}")
    print(f"  Host.start(settle=0)              {ms(o)}   overhead {100 * (o / r - 1):+5.1f} % "
          "(goal <= 10 %)")
    print(f"  Host.start() (settle {DEFAULT_SETTLE:g} s)      {ms(d)}   "
          "(the CLI default: watches for an init that exits at once)")


def bench_stop(host: Any, name: str, uri: str, timeout: float, rounds: int) -> None:
    print(f"== stop of a SIGTERM-ignoring init, timeout {timeout:g} s ({rounds} rounds, median)")

    def ours() -> float:
        host.start(name, check=False, settle=0)
        return run([*lxcvirt_argv(), "-c", uri, "stop", "--timeout", str(timeout), name])

    def virsh() -> float:
        host.start(name, check=False, settle=0)
        began = time.perf_counter()
        subprocess.run(["virsh", "-c", uri, "shutdown", name], check=True,
                       stdout=subprocess.DEVNULL)
        time.sleep(timeout)
        subprocess.run(["virsh", "-c", uri, "destroy", name], check=True,
                       stdout=subprocess.DEVNULL)
        return time.perf_counter() - began

    def ours_destroy() -> float:
        host.start(name, check=False, settle=0)
        return run([*lxcvirt_argv(), "-c", uri, "destroy", name])

    def virsh_destroy() -> float:
        host.start(name, check=False, settle=0)
        return run(["virsh", "-c", uri, "destroy", name])

    t_ours = statistics.median(ours() for _ in range(rounds))
    t_virsh = statistics.median(virsh() for _ in range(rounds))
    t_od = statistics.median(ours_destroy() for _ in range(rounds))
    t_vd = statistics.median(virsh_destroy() for _ in range(rounds))
    print(f"  lxcvirt stop --timeout {timeout:g}         {ms(t_ours)}   "
          f"{t_ours / t_virsh:5.2f}x the virsh sequence")
    print(f"  virsh shutdown; sleep; destroy  {ms(t_virsh)}")
    print(f"  lxcvirt destroy                 {ms(t_od)}   {t_od / t_vd:5.2f}x virsh destroy")
    print(f"  virsh destroy                   {ms(t_vd)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-c", "--connect", default="lxc:///")
    parser.add_argument("-n", "--rounds", type=int, default=10)
    parser.add_argument("--stop-timeout", type=float, default=1.0)
    args = parser.parse_args()

    from lxcvirt._busybox import make_rootfs
    from lxcvirt.host import Host
    from lxcvirt.spec import Container, Filesystem, Init

    host = Host(args.connect, preflight=lambda _h: None)
    tmp = Path(tempfile.mkdtemp(prefix="lxcvirt-bench-"))
    root = make_rootfs(tmp / "root")
    made: list[str] = []

    def define(label: str, init: tuple[str, ...]) -> str:
        name = f"lxcvirt-bench-{os.getpid()}-{label}"
        host.define(Container(name=name, init=Init(init[0], args=init[1:]), memory="64MiB",
                              filesystems=(Filesystem(target="/", source=str(root)),)))
        made.append(name)
        return name

    try:
        bench_list(args.connect, args.rounds)
        bench_start(host, define("start", TERM_INIT), args.rounds)
        bench_stop(host, define("stubborn", STUBBORN_INIT), args.connect, args.stop_timeout,
                   max(2, args.rounds // 3))
    finally:
        for name in made:
            try:
                host.undefine(name, force=True, timeout=0)
            except Exception as exc:  # noqa: BLE001 - report and go on cleaning
                print(f"cleanup of {name}: {exc}", file=sys.stderr)
        host.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
