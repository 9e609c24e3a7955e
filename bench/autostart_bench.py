"""Autostart benchmark: ``lxcvirt start --all`` / ``stop --all`` against serial virsh loops.

    .venv/bin/python bench/autostart_bench.py [-c URI] [-n COUNT] [--no-stubborn]

COUNT containers (default 30) in 3 priority levels, time 0, in a group of their own:

1. ``lxcvirt start --all --group G`` (a whole process) vs ``virsh start`` of each in a
   row (goal <= 0.5x); the default watches 0.5 s more for inits that exit at once, so it
   is also measured with ``--settle 0``.
2. ``lxcvirt stop --all --group G`` vs ``virsh destroy`` of each in a row, for containers
   whose init stops on SIGTERM, and for ones that ignore it (libvirt waits ~1.8 s before
   SIGKILL; goal <= 0.2x).  ``--timeout 0``: destroy at once, like the virsh loop.

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


def ratio(ours: float, peer: float) -> str:
    return f"{ours / peer:5.2f}x" if peer > 0 else "  n/a"


def bench(uri: str, count: int, stubborn: bool) -> None:
    from lxcvirt._busybox import make_rootfs
    from lxcvirt.host import Host

    tmp = Path(tempfile.mkdtemp(prefix="lxcvirt-bench-"))
    env = {**os.environ, "LXCVIRT_AUTOSTART_LOCK": str(tmp / "autostart.lock")}
    root = make_rootfs(tmp / "root")
    host = Host(uri, preflight=lambda _h: None)
    group = f"bench{os.getpid()}"
    names = [f"lxcvirt-bench-{os.getpid()}-{i:02d}" for i in range(count)]
    ours = [*lxcvirt_argv(), "-c", uri]
    try:
        define_all(host, root, names, group, TERM_INIT)
        print(f"== {count} containers, priorities 0/10/20, time 0 (wall time, one run each)")

        serial = sum(run(["virsh", "-q", "-c", uri, "start", n]) for n in names)
        destroy_all(host, names)
        lx = run([*ours, "start", "--all", "--group", group, "--no-check"], env)
        print(f"start  serial virsh start   {serial:7.2f} s")
        print(f"       lxcvirt start --all  {lx:7.2f} s   {ratio(lx, serial)}   (goal <= 0.5x)")
        lx0 = run([*ours, "start", "--all", "--group", group, "--no-check"], env)
        print(f"       (again, all running: {lx0:.2f} s)")
        destroy_all(host, names)
        lx = run([*ours, "start", "--all", "--group", group, "--no-check", "--settle", "0"], env)
        print(f"       ... --settle 0       {lx:7.2f} s   {ratio(lx, serial)}   (no watch for "
              "inits that exit at once)")

        serial = sum(run(["virsh", "-q", "-c", uri, "destroy", n]) for n in names)
        run([*ours, "start", "--all", "--group", group, "--no-check", "--settle", "0"], env)
        lx = run([*ours, "stop", "--all", "--group", group], env)
        print("stop   (init stops on SIGTERM)")
        print(f"       serial virsh destroy {serial:7.2f} s")
        print(f"       lxcvirt stop --all   {lx:7.2f} s   {ratio(lx, serial)}")

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
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-c", "--connect", default=os.environ.get("LIBVIRT_DEFAULT_URI", "lxc:///"))
    ap.add_argument("-n", "--count", type=int, default=30)
    ap.add_argument("--no-stubborn", action="store_true",
                    help="Skip the SIGTERM-ignoring round (~1 minute of serial destroys).")
    args = ap.parse_args()
    bench(args.connect, args.count, not args.no_stubborn)


if __name__ == "__main__":
    main()
