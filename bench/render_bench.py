"""Render + validate speed (issue 2).  Prints figures and ratios; not a test.

1. In-process: specs rendered and validated (both RelaxNG layers) per second.
   Goal: >= 2,000 domains/s.
2. CLI wall time: `lxcvirt render SPEC` vs `virt-install --connect lxc:/// --container
   --print-xml` for an equivalent container.  Goal: <= 0.6x.

Run: .venv/bin/python bench/render_bench.py
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from _common import like_installed, lxcvirt_argv, paired  # noqa: E402

from lxcvirt.load import load_spec  # noqa: E402
from lxcvirt.rendering import render  # noqa: E402
from lxcvirt.validate import check_domain_xml  # noqa: E402

SPEC_TEXT = """
name = "bench"
memory = "256MiB"
vcpu = 1
[init]
path = "/bin/sh"
[[filesystem]]
source = "/var/lib/lxcvirt/rootfs/bench"
target = "/"
[[interface]]
type = "network"
source = "default"
"""
VIRT_INSTALL = [
    "virt-install", "--connect", "lxc:///", "--container", "--name", "bench",
    "--memory", "256", "--vcpus", "1", "--filesystem", "/var/lib/lxcvirt/rootfs/bench,/",
    "--network", "network=default", "--init", "/bin/sh", "--print-xml", "--noautoconsole",
]


def in_process(n: int = 3000) -> float:
    spec = load_spec(SPEC_PATH)
    check_domain_xml(render(spec, emulator="/usr/lib/libvirt/libvirt_lxc"))  # warm caches
    began = time.perf_counter()
    for _ in range(n):
        check_domain_xml(render(spec, emulator="/usr/lib/libvirt/libvirt_lxc"))
    return n / (time.perf_counter() - began)


def wall(argv: list[str], runs: int = 7) -> float:
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        proc = subprocess.run(argv, capture_output=True, text=True, check=False)
        times.append(time.perf_counter() - began)
        if proc.returncode != 0:
            raise RuntimeError(f"{argv[0]} failed: {proc.stderr.strip()}")
    return statistics.median(times)


if __name__ == "__main__":
    tmp = Path(tempfile.mkdtemp())
    SPEC_PATH = tmp / "bench.toml"
    SPEC_PATH.write_text(SPEC_TEXT)
    rate = in_process()
    print(f"render+validate in-process: {rate:,.0f} domains/s (goal >= 2,000)")
    like_installed()
    lx = lxcvirt_argv()
    forms = {
        "spec, connects for the emulator": [*lx, "render", str(SPEC_PATH)],
        "spec, --offline": [*lx, "render", "--offline", str(SPEC_PATH)],
        "flags, --offline": [*lx, "render", "--offline", "--name", "bench", "--init", "/bin/sh",
                             "--root", "/var/lib/lxcvirt/rootfs/bench", "--memory", "256MiB",
                             "--network", "default"],
    }
    if not shutil.which("virt-install"):
        print("virt-install not installed (apt-get install virtinst): no ratio")
    for what, argv in forms.items():
        if not shutil.which("virt-install"):
            print(f"lxcvirt render ({what}): {wall(argv) * 1000:.0f} ms")
            continue
        ours, peer, ratio = paired(argv, VIRT_INSTALL, 11)
        print(f"lxcvirt render ({what}): {ours * 1000:.0f} ms   virt-install --print-xml "
              f"{peer * 1000:.0f} ms   ratio {ratio:.2f}x (goal <= 0.6x)")
    shutil.rmtree(tmp)
