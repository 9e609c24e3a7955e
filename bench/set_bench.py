"""``lxcvirt set`` against ``virsh schedinfo`` / ``virsh memtune`` and raw libvirt-python:
changing a running container's limits live, and its definition (issue 14).

    .venv/bin/python bench/set_bench.py [--runs N]

lxcvirt reads every value before and after (to report old -> new) and, for the
definition, validates and redefines the edited XML; virsh sets one group per command
without reading back.  Not a test.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))

from _common import TERM_INIT, like_installed, lxcvirt_argv, paired  # noqa: E402

URI = "lxc:///"


def _raw_live(name: str, shares: int) -> float:
    """One libvirt-python call, in a fresh interpreter (as the commands are)."""
    code = ("import libvirt,sys; c=libvirt.open(sys.argv[1]); d=c.lookupByName(sys.argv[2]); "
            "d.setSchedulerParametersFlags({'cpu_shares': int(sys.argv[3])}, "
            "libvirt.VIR_DOMAIN_AFFECT_LIVE); d.setMemoryParameters({'hard_limit': "
            "int(sys.argv[4])}, libvirt.VIR_DOMAIN_AFFECT_LIVE)")
    began = time.perf_counter()
    subprocess.run([sys.executable, "-c", code, URI, name, str(shares), str(96 * 1024)],
                   check=True)
    return time.perf_counter() - began


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=7)
    args = ap.parse_args()
    like_installed()
    from lxcvirt._busybox import make_rootfs
    from lxcvirt.host import Host
    from lxcvirt.spec import Container, Filesystem, Init

    lx = lxcvirt_argv()
    name = "bench-set"
    with tempfile.TemporaryDirectory() as tmp, Host(URI) as host:
        root = make_rootfs(Path(tmp) / "rootfs")
        if host.exists(name):
            host.undefine(name, force=True)
        host.create(Container(name=name, init=Init(TERM_INIT[0], args=TERM_INIT[1:]),
                              memory="128MiB",
                              filesystems=(Filesystem(target="/", source=str(root)),)),
                    check=False)
        try:
            print(f"changing a running container's limits ({args.runs} runs, median):")
            a, b, r = paired(
                [*lx, "-c", URI, "set", name, "--live", "--cpu-shares", "300",
                 "--memory-limit", "96MiB"],
                ["sh", "-c", f"virsh -q -c {URI} schedinfo {name} --live cpu_shares=300 "
                 f">/dev/null && virsh -q -c {URI} memtune {name} --live "
                 "--hard-limit 98304"], args.runs)
            print(f"  live:   lxcvirt set {a:.3f} s, virsh schedinfo+memtune {b:.3f} s, "
                  f"ratio {r:.2f}x")
            raw = statistics.median(_raw_live(name, 300) for _ in range(args.runs))
            print(f"          raw libvirt-python (two calls, fresh interpreter) {raw:.3f} s; "
                  f"lxcvirt {a / raw:.2f}x")
            a, b, r = paired(
                [*lx, "-c", URI, "set", name, "--config", "--cpu-shares", "400"],
                ["virsh", "-q", "-c", URI, "schedinfo", name, "--config", "cpu_shares=400"],
                args.runs)
            print(f"  config: lxcvirt set {a:.3f} s, virsh schedinfo {b:.3f} s, "
                  f"ratio {r:.2f}x")
        finally:
            host.undefine(name, force=True)


if __name__ == "__main__":
    main()
