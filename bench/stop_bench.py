"""Stopping a booted Debian system with systemd as init: ``lxcvirt stop`` against
``virsh shutdown --mode initctl`` followed by polling ``virsh domstate`` until shut off
(the fastest graceful way with virsh; its ``--mode signal`` leaves a systemd container
running).  Goal <= 1.2x.  (``bench/rootfs_bench.py`` times getting such a system running.)

    .venv/bin/python bench/stop_bench.py [-c URI] [-n ROUNDS]

Each round boots the container until systemd says running, then stops it one way, boots
it again and stops it the other way.  Not a test: no assertions.  Everything it makes is
removed at the end.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from _common import lxcvirt_argv
from _common import run as _run

IMAGE = "debian/bookworm"


def run(argv: list[str]) -> float:
    return _run(argv, check=True)


def spec_text(name: str, root: Path) -> str:
    return (f'name = "{name}"\nmemory = "512MiB"\n[init]\npath = "/sbin/init"\n'
            f'[[filesystem]]\nsource = "{root}"\ntarget = "/"\n'
            '[[interface]]\ntype = "network"\nsource = "default"\n')


def booted(lx: list[str], uri: str, name: str) -> float:
    """Seconds until systemd inside answers running/degraded."""
    began = time.perf_counter()
    subprocess.run([*lx, "-c", uri, "exec", name, "--", "systemctl", "is-system-running",
                    "--wait"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   timeout=120, check=False)
    return time.perf_counter() - began


def virsh_stop(uri: str, name: str) -> float:
    began = time.perf_counter()
    subprocess.run(["virsh", "-q", "-c", uri, "shutdown", "--mode", "initctl", name],
                   stdout=subprocess.DEVNULL, check=True)
    while True:
        state = subprocess.run(["virsh", "-q", "-c", uri, "domstate", name],
                               capture_output=True, text=True, check=True).stdout.strip()
        if state == "shut off":
            return time.perf_counter() - began
        if time.perf_counter() - began > 60:
            raise RuntimeError("virsh shutdown --mode initctl did not stop it within 60 s")
        time.sleep(0.05)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-c", "--connect", default="lxc:///")
    ap.add_argument("-n", "--rounds", type=int, default=5)
    args = ap.parse_args()
    uri, lx = args.connect, lxcvirt_argv()
    work = Path(tempfile.mkdtemp(prefix="lxcvirt-stopbench-", dir="/var/tmp"))
    name = f"lxcvirt-stopbench-{os.getpid()}"
    spec = work / "spec.toml"
    root = work / "root"
    spec.write_text(spec_text(name, root))

    try:
        run([*lx, "rootfs", "create", IMAGE, str(root), "--hostname", name])
        run([*lx, "-c", uri, "define", str(spec)])
        print(f"stop of a booted {IMAGE} system with systemd (median of {args.rounds})")
        ours, theirs = [], []

        def boot() -> None:
            run([*lx, "-c", uri, "start", name])
            booted(lx, uri, name)

        for _ in range(args.rounds):
            boot()
            ours.append(run([*lx, "-c", uri, "stop", name]))
            boot()
            theirs.append(virsh_stop(uri, name))
        a, v = statistics.median(ours), statistics.median(theirs)
        print(f"   lxcvirt stop {a:5.2f} s   virsh shutdown --mode initctl + wait {v:5.2f} s   "
              f"ratio {a / v:4.2f}x (goal <= 1.2x)")
    finally:
        subprocess.run([*lx, "-c", uri, "undefine", "--force", name],
                       capture_output=True, check=False)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
