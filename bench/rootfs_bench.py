"""From nothing to a running Debian container: root from the cache, define, start, systemd
up; against the peer way of doing the same by hand (``cp -a`` of the cached tree,
``virsh define`` + ``virsh start``).

    python bench/rootfs_bench.py [--cold] [--rounds N]

``--cold`` also times a build into an empty cache folder of its own (~20 s; the shared
cache is left alone).  Needs the local daemon and the network ``default``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from _common import lxcvirt_argv, run

from lxcvirt import rootfs
from lxcvirt.rootfs import _cache

IMAGE = "debian/bookworm"
VIRSH = ["virsh", "-q", "-c", "lxc:///"]


def _spec(name: str, root: Path, folder: Path) -> Path:
    path = folder / f"{name}.toml"
    path.write_text(
        f'name = "{name}"\nmemory = "512MiB"\n[init]\npath = "/sbin/init"\n'
        f'[[filesystem]]\nsource = "{root}"\ntarget = "/"\n'
        '[[interface]]\ntype = "network"\nsource = "default"\n'
    )
    return path


def _wait_running(name: str) -> None:
    for _ in range(300):
        out = subprocess.run([*lxcvirt_argv(), "exec", name, "--", "systemctl",
                              "is-system-running", "--wait"], capture_output=True, text=True)
        if out.stdout.strip() in ("running", "degraded"):
            return
        time.sleep(0.2)
    raise RuntimeError(f"{name} did not finish booting")


def _remove(name: str) -> None:
    subprocess.run([*VIRSH, "destroy", name], capture_output=True)
    subprocess.run([*VIRSH, "undefine", name], capture_output=True)


def lxcvirt_round(folder: Path, i: int) -> tuple[float, float]:
    """(create from the cache + define + start, then until systemd is up)."""
    name = f"bench-rootfs-{os.getpid()}-{i}"
    root = folder / name
    spec = folder / f"{name}.toml"
    spec.write_text(
        f'name = "{name}"\nmemory = "512MiB"\n[init]\npath = "/sbin/init"\n'
        f'[[filesystem]]\nsource = "{root}"\ntarget = "/"\nfrom = "{IMAGE}"\n'
        '[[interface]]\ntype = "network"\nsource = "default"\n'
    )
    try:
        began = time.perf_counter()
        run([*lxcvirt_argv(), "create", "--no-check", str(spec)], check=True)
        created = time.perf_counter() - began
        _wait_running(name)
        return created, time.perf_counter() - began
    finally:
        _remove(name)


def peer_round(folder: Path, tree: Path, i: int) -> tuple[float, float]:
    """The same by hand: cp -a of the cached tree, hostname, virsh define + start."""
    name = f"bench-rootfs-peer-{os.getpid()}-{i}"
    root = folder / name
    xml = folder / f"{name}.xml"
    rendered = subprocess.run([*lxcvirt_argv(), "render", str(_spec(name, root, folder))],
                              capture_output=True, text=True, check=True).stdout
    xml.write_text(rendered)
    try:
        began = time.perf_counter()
        root.mkdir()
        run(["cp", "-a", f"{tree}/.", str(root)], check=True)
        (root / "etc" / "hostname").write_text(f"{name}\n")
        run([*VIRSH, "define", str(xml)], check=True)
        run([*VIRSH, "start", name], check=True)
        created = time.perf_counter() - began
        _wait_running(name)
        return created, time.perf_counter() - began
    finally:
        _remove(name)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cold", action="store_true", help="also time a build into an empty cache")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    base = Path(tempfile.mkdtemp(prefix="lxcvirt-bench-", dir="/var/tmp"))
    base.chmod(0o755)
    try:
        if args.cold:
            os.environ[_cache.ENV] = str(base / "cache")
            r = rootfs.create(IMAGE, base / "cold")
            print(f"cold build ({IMAGE}, own cache): {r.seconds:.1f} s")
            del os.environ[_cache.ENV]
            shutil.rmtree(base / "cold")
        key = rootfs.create(IMAGE, base / "warm").cache_key  # the shared cache is warm now
        shutil.rmtree(base / "warm")
        assert key is not None
        tree = _cache.cache_root() / key / "tree"
        ours = [lxcvirt_round(base, i) for i in range(args.rounds)]
        peer = [peer_round(base, tree, i) for i in range(args.rounds)]
        for what, k in (("root copy + define + start", 0), ("... + systemd running", 1)):
            a = min(o[k] for o in ours)
            b = min(p[k] for p in peer)
            print(f"{what:30s} lxcvirt {a:6.2f} s   by hand (cp -a, virsh) {b:6.2f} s   "
                  f"ratio {a / b:.2f}")
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
