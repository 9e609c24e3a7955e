"""Autostart benchmark: ``lxcvirt start --all`` / ``stop --all`` against serial virsh loops.

    .venv/bin/python bench/autostart_bench.py [-c URI] [-n COUNT] [-r RUNS] [--no-stubborn]

COUNT containers (default 30) in 3 priority levels, time 0, in a group of their own:

1. ``lxcvirt start --all --group G`` (a whole process) vs ``virsh start`` of each in a
   row (goal <= 0.5x); the default watches 0.5 s more for inits that exit at once, so it
   is also measured with ``--settle 0``.
2. ``lxcvirt stop --all --group G`` vs ``virsh destroy`` of each in a row, for containers
   whose init stops on SIGTERM, and for ones that ignore it (libvirt waits ~1.8 s before
   SIGKILL; goal <= 0.2x).  ``--timeout 0``: destroy at once, like the virsh loop.

Beside each, the floor: raw libvirt-python doing the same in the same order in 10 threads
(every create handed out in plan order; the stops a priority level at a time, each level
done before the next, as ``stop --all`` keeps the reverse order), with no process start,
no settle window and no checks.  Each lxcvirt figure is the median of ``-r`` runs.

Not a test: no assertions.  Everything it makes is removed at the end.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from _common import STUBBORN_INIT, TERM_INIT, lxcvirt_argv, run


def define_all(host: Any, root: Path, names: list[str], group: str,
               init: tuple[str, ...]) -> None:
    from lxcvirt.spec import Autostart, Container, Filesystem, Init

    for i, name in enumerate(names):
        host.define(Container(
            name=name, init=Init(init[0], args=init[1:]), memory="64MiB",
            filesystems=(Filesystem(target="/", source=str(root)),),
            autostart=Autostart(auto=True, priority=(i % 3) * 10, groups=(group,)),
        ))


def destroy_all(host: Any, names: list[str]) -> None:
    from concurrent.futures import ThreadPoolExecutor

    def one(name: str) -> None:
        dom = host.domain(name)
        if dom.isActive():
            dom.destroy()

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(one, names))


def raw_start(conn: Any, names: list[str]) -> float:
    """Every create in plan order (highest priority first) through 10 threads."""
    import time
    from concurrent.futures import ThreadPoolExecutor

    began = time.perf_counter()
    with ThreadPoolExecutor(10) as pool:
        list(pool.map(lambda n: conn.lookupByName(n).create(), plan_order(names)))
    return time.perf_counter() - began


def raw_stop(conn: Any, names: list[str]) -> float:
    """Graceful stops (SIGTERM to init), a priority level at a time, lowest first."""
    import time
    from concurrent.futures import ThreadPoolExecutor

    import libvirt

    def one(name: str) -> None:
        dom = conn.lookupByName(name)
        dom.shutdownFlags(libvirt.VIR_DOMAIN_SHUTDOWN_SIGNAL)
        while dom.isActive():
            time.sleep(0.01)

    began = time.perf_counter()
    with ThreadPoolExecutor(10) as pool:
        for level in (0, 1, 2):
            list(pool.map(one, [n for i, n in enumerate(names) if i % 3 == level]))
    return time.perf_counter() - began


def plan_order(names: list[str]) -> list[str]:
    """The start order of define_all's priorities ((i % 3) * 10, highest first)."""
    return sorted(names, key=lambda n: (-(names.index(n) % 3), n))


def median_of(reps: int, prepare: Any, measure: Any) -> float:
    import statistics

    times = []
    for _ in range(reps):
        prepare()
        times.append(measure())
    return statistics.median(times)


def ratio(ours: float, peer: float) -> str:
    return f"{ours / peer:5.2f}x" if peer > 0 else "  n/a"


def bench(uri: str, count: int, stubborn: bool, reps: int) -> None:
    import libvirt

    from lxcvirt._busybox import make_rootfs
    from lxcvirt.host import Host

    tmp = Path(tempfile.mkdtemp(prefix="lxcvirt-bench-"))
    env = {**os.environ, "LXCVIRT_AUTOSTART_LOCK": str(tmp / "autostart.lock")}
    root = make_rootfs(tmp / "root")
    host = Host(uri, preflight=lambda _h: None)
    conn = libvirt.open(uri)
    group = f"bench{os.getpid()}"
    names = [f"lxcvirt-bench-{os.getpid()}-{i:02d}" for i in range(count)]
    ours = [*lxcvirt_argv(), "-c", uri]
    start_all = [*ours, "start", "--all", "--group", group, "--no-check"]

    def none_running() -> None:
        destroy_all(host, names)

    def all_running() -> None:
        destroy_all(host, names)
        run([*start_all, "--settle", "0"], env)

    try:
        define_all(host, root, names, group, TERM_INIT)
        print(f"== {count} containers, priorities 0/10/20, time 0 (wall time; lxcvirt: "
              f"median of {reps})")

        serial = sum(run(["virsh", "-q", "-c", uri, "start", n]) for n in names)
        floor = median_of(reps, none_running, lambda: raw_start(conn, names))
        lx = median_of(reps, none_running, lambda: run(start_all, env))
        print(f"start  serial virsh start   {serial:7.2f} s")
        print(f"       raw libvirt-python   {floor:7.2f} s   {ratio(floor, serial)}   (the "
              "floor: creates in 10 threads, nothing else)")
        print(f"       lxcvirt start --all  {lx:7.2f} s   {ratio(lx, serial)}   (goal <= 0.5x; "
              f"{ratio(lx, floor).strip()} the floor)")
        lx0 = run(start_all, env)
        print(f"       (again, all running: {lx0:.2f} s)")
        lx = median_of(reps, none_running, lambda: run([*start_all, "--settle", "0"], env))
        print(f"       ... --settle 0       {lx:7.2f} s   {ratio(lx, serial)}   (no watch for "
              f"inits that exit at once; {ratio(lx, floor).strip()} the floor)")

        all_running()
        serial = sum(run(["virsh", "-q", "-c", uri, "destroy", n]) for n in names)
        floor = median_of(reps, all_running, lambda: raw_stop(conn, names))
        lx = median_of(reps, all_running,
                       lambda: run([*ours, "stop", "--all", "--group", group], env))
        print("stop   (init stops on SIGTERM)")
        print(f"       serial virsh destroy {serial:7.2f} s")
        print(f"       raw libvirt-python   {floor:7.2f} s   {ratio(floor, serial)}   (the "
              "floor: graceful stops, a level at a time, 10 threads)")
        print(f"       lxcvirt stop --all   {lx:7.2f} s   {ratio(lx, serial)}   (goal <= 0.2x; "
              f"{ratio(lx, floor).strip()} the floor)")

        if stubborn:
            define_all(host, root, names, group, STUBBORN_INIT)
            run([*ours, "start", "--all", "--group", group, "--no-check", "--settle", "0"], env)
            serial = sum(run(["virsh", "-q", "-c", uri, "destroy", n]) for n in names)
            print("stop   (init ignores SIGTERM)")
            print(f"       serial virsh destroy {serial:7.2f} s")
            for parallel in (None, 16):
                run([*ours, "start", "--all", "--group", group, "--no-check", "--settle", "0"],
                    env)
                extra = [] if parallel is None else ["--parallel", str(parallel)]
                lx = run([*ours, "stop", "--all", "--group", group, "--timeout", "0", *extra],
                         env)
                label = f"--parallel {parallel}" if parallel else "default parallel"
                print(f"       lxcvirt stop --all   {lx:7.2f} s   {ratio(lx, serial)}   "
                      f"(--timeout 0, {label}; goal <= 0.2x)")
    finally:
        destroy_all(host, [n for n in names if host.exists(n)])
        for n in names:
            if host.exists(n):
                host.undefine(n)
        host.close()
        conn.close()
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-c", "--connect", default=os.environ.get("LIBVIRT_DEFAULT_URI", "lxc:///"))
    ap.add_argument("-n", "--count", type=int, default=30)
    ap.add_argument("-r", "--runs", type=int, default=3, help="Runs of each lxcvirt command.")
    ap.add_argument("--no-stubborn", action="store_true",
                    help="Skip the SIGTERM-ignoring round (~1 minute of serial destroys).")
    args = ap.parse_args()
    bench(args.connect, args.count, not args.no_stubborn, max(1, args.runs))


if __name__ == "__main__":
    main()
