"""``lxcvirt apply`` of 20 specs to each of 4 hosts: hosts in parallel against one after
another (issue 13; goal: parallel <= 0.4x serial).

    .venv/bin/python bench/apply_hosts_bench.py [-n SPECS] [--hosts H] [--runs R]

The hosts are private libvirtd daemons on this machine (tests/plain_daemon.py), so they
share its CPUs: remote hosts, each with CPUs of its own, gain more.  Each run applies the
folder to fresh hosts (every container of the last run removed).  Not a test.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "bench"))

import plain_daemon  # noqa: E402
from _common import TERM_INIT, lxcvirt_argv  # noqa: E402

LOST = "End of file while reading data"
SPEC = """name = "{name}"
memory = "32MiB"
state = "{state}"
[init]
path = "{init}"
args = {args}
[[filesystem]]
source = "{root}"
target = "/"
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", "--specs", type=int, default=20)
    ap.add_argument("--hosts", type=int, default=4)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--state", choices=("running", "defined"), default="running",
                    help="defined: only define (what the daemons do is cheap; the cost is "
                         "lxcvirt's and the round trips')")
    args = ap.parse_args()
    from lxcvirt._busybox import make_rootfs

    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        root = make_rootfs(Path(tmp) / "rootfs")
        specs = Path(tmp) / "specs"
        specs.mkdir()
        for i in range(args.specs):
            (specs / f"c{i}.toml").write_text(SPEC.format(
                name=f"bench-hosts-{i}", init=TERM_INIT[0], state=args.state,
                args="[" + ", ".join(f'"{a}"' for a in TERM_INIT[1:]).replace("'", "'") + "]",
                root=root))
        daemons = [stack.enter_context(plain_daemon.restartable_daemon())
                   for _ in range(args.hosts)]
        inventory = Path(tmp) / "hosts.toml"
        inventory.write_text("[hosts]\n" + "".join(
            f'h{i} = "{d.uri}"\n' for i, d in enumerate(daemons)))
        lx = lxcvirt_argv()

        def lost_monitors() -> int:
            # libvirtd's monitor of a container lost at its start (a race inside libvirtd;
            # lxcvirt destroys and starts such a container again, after 3 s): the
            # controller logs it in the container's log, in each daemon's own log folder.
            return sum(f.read_text(errors="replace").count(LOST)
                       for d in daemons for f in (d.folder / "log" / "lxc").glob("*.log"))

        lost = {1: 0, args.hosts: 0}

        def once(parallel: int) -> float:
            for d in daemons:
                plain_daemon._destroy_all(d.uri)
            before = lost_monitors()
            began = time.perf_counter()
            proc = subprocess.run([*lx, "apply", "-i", str(inventory), "--no-check",
                                   "--settle", "0", "--parallel-hosts", str(parallel),
                                   str(specs)], capture_output=True, text=True, check=False)
            took = time.perf_counter() - began
            if proc.returncode != 0:
                raise SystemExit(f"apply failed ({proc.returncode}): "
                                 f"{(proc.stderr or proc.stdout)[-1500:]}")
            lost[parallel] += lost_monitors() - before
            return took

        serial, parallel = [], []
        for _ in range(args.runs):
            serial.append(once(1))
            parallel.append(once(args.hosts))
        s, p = statistics.median(serial), statistics.median(parallel)
        print(f"apply of {args.specs} specs to each of {args.hosts} hosts "
              f"({args.specs * args.hosts} containers, state {args.state}):")
        print(f"  hosts one after another   {s:6.2f} s   ({lost[1]} lost monitors "
              f"in {args.runs} runs)")
        print(f"  hosts in parallel         {p:6.2f} s   ({lost[args.hosts]} lost monitors "
              f"in {args.runs} runs)   ratio {p / s:.2f}x (goal <= 0.4x)")


if __name__ == "__main__":
    main()
