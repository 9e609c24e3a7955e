"""Real OS containers: a Debian system with systemd, from nothing to running, and its stop.

    .venv/bin/python bench/os_bench.py [-c URI] [-n ROUNDS] [--no-cold]

1. From nothing to a running container: ``lxcvirt rootfs create debian/bookworm DIR``
   (cold: ``--refresh`` rebuilds the cached image with mmdebstrap; warm: from the cache)
   then ``lxcvirt create`` (define + start, RUNNING).  Goal from the cache: <= 3 s.
   The time until systemd inside says running/degraded is printed beside it.
2. Stopping the booted system: ``lxcvirt stop`` vs ``virsh shutdown --mode initctl`` and
   polling ``virsh domstate`` until shut off (the fastest graceful way with virsh; its
   default mode and ``--mode signal`` leave a systemd container running).  Goal <= 1.2x.

Not a test: no assertions.  Everything it makes is removed at the end; the image cache
stays (it is the point of the warm figure).
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
    ap.add_argument("-n", "--rounds", type=int, default=3)
    ap.add_argument("--no-cold", action="store_true", help="skip the cold image build")
    args = ap.parse_args()
    uri, lx = args.connect, lxcvirt_argv()
    work = Path(tempfile.mkdtemp(prefix="lxcvirt-osbench-", dir="/var/tmp"))
    name = f"lxcvirt-osbench-{os.getpid()}"
    spec = work / "spec.toml"
    root = work / "root"
    spec.write_text(spec_text(name, root))

    def fresh(refresh: bool) -> tuple[float, float, float]:
        subprocess.run([*lx, "-c", uri, "undefine", "--force", name],
                       capture_output=True, check=False)
        shutil.rmtree(root, ignore_errors=True)
        t_root = run([*lx, "rootfs", "create", IMAGE, str(root), "--hostname", name,
                      *(["--refresh"] if refresh else [])])
        t_create = run([*lx, "-c", uri, "create", str(spec)])
        return t_root, t_create, booted(lx, uri, name)

    try:
        print(f"1. {IMAGE} from nothing to running on {uri}")
        if not args.no_cold:
            r, c, b = fresh(refresh=True)
            print(f"   cold (image built): rootfs {r:6.2f} s + create {c:5.2f} s "
                  f"= {r + c:6.2f} s to RUNNING; systemd running {b:5.2f} s later")
        warm = [fresh(refresh=False) for _ in range(args.rounds)]
        r = statistics.median(w[0] for w in warm)
        c = statistics.median(w[1] for w in warm)
        b = statistics.median(w[2] for w in warm)
        print(f"   from the cache:     rootfs {r:6.2f} s + create {c:5.2f} s "
              f"= {r + c:6.2f} s to RUNNING (goal <= 3 s); systemd running {b:5.2f} s later")

        print("2. stop of the booted system (median of rounds)")
        ours, theirs = [], []
        for _ in range(args.rounds):
            for measure, into in ((lambda: run([*lx, "-c", uri, "stop", name])), ours), (
                (lambda: virsh_stop(uri, name)), theirs
            ):
                run([*lx, "-c", uri, "start", name])
                booted(lx, uri, name)
                into.append(measure())
        a, v = statistics.median(ours), statistics.median(theirs)
        print(f"   lxcvirt stop {a:5.2f} s   virsh shutdown --mode initctl + wait {v:5.2f} s   "
              f"ratio {a / v:4.2f}x (goal <= 1.2x)")
    finally:
        subprocess.run([*lx, "-c", uri, "undefine", "--force", name],
                       capture_output=True, check=False)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
