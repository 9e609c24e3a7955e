"""Density: how many idle Debian systemd containers this machine keeps running.

    .venv/bin/python bench/density_bench.py [-c URI] [-n 100] [--memory 256MiB] [--network default]

Containers are added ten at a time, each a copy of the cached Debian bookworm root
(``lxcvirt rootfs``), systemd as init, on libvirt's NAT network ``default`` with DHCP
(``--network ''``: none).  After each ten: every container is reached with ``exec``
(``systemctl is-system-running --wait``, running or degraded is booted), and the host's
available memory, load and lxcvirt's ``list`` time are printed, until N run or something
runs out (the first failure is named).  A ``virsh list`` time is printed beside ``list``.

Not a test: no assertions.  Everything it makes is removed at the end (roots under
/var/tmp/lxcvirt-density-PID).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from _common import lxcvirt_argv


def meminfo() -> dict[str, int]:
    out = {}
    for line in Path("/proc/meminfo").read_text().splitlines():
        key, _, rest = line.partition(":")
        out[key] = int(rest.split()[0])
    return out


def booted(ours: list[str], name: str) -> str:
    proc = subprocess.run([*ours, "exec", name, "--", "timeout", "120", "systemctl",
                           "is-system-running", "--wait"], capture_output=True, text=True,
                          timeout=180, check=False)
    said = proc.stdout.strip()
    if said:
        return said
    err = proc.stderr.strip().splitlines()
    return err[-1] if err else f"exit {proc.returncode}"


def bench(uri: str, count: int, memory: str, network: str) -> None:
    from lxcvirt.errors import LxcvirtError
    from lxcvirt.host import Host
    from lxcvirt.rootfs import create
    from lxcvirt.spec import Container, Filesystem, Init, Interface

    base = Path(f"/var/tmp/lxcvirt-density-{os.getpid()}")
    base.mkdir(parents=True)
    base.chmod(0o755)
    ours = [*lxcvirt_argv(), "-c", uri]
    host = Host(uri, preflight=lambda _h: None)
    names: list[str] = []
    before = meminfo()["MemAvailable"]
    print(f"== up to {count} Debian bookworm containers, systemd, {memory} each, "
          f"network {network or 'none'}; {before // 1024} MiB available at first")
    bad: list[tuple[str, str]] = []
    try:
        while len(names) < count:
            batch = [f"lxcvirt-dens-{os.getpid()}-{len(names) + i:03d}"
                     for i in range(min(10, count - len(names)))]
            t0 = time.monotonic()
            for name in batch:
                root = create("debian/bookworm", base / name, hostname=name[-12:]).dest
                names.append(name)
                try:
                    host.create(Container(
                        name=name, init=Init("/sbin/init"), memory=memory,
                        filesystems=(Filesystem(target="/", source=str(root)),),
                        interfaces=((Interface(type="network", source=network),)
                                    if network else ()),
                    ), check=False)
                except LxcvirtError as exc:
                    bad.append((name, str(exc).splitlines()[0]))
                    break
            up = [n for n in batch if n in names and not any(n == b for b, _ in bad)]
            with ThreadPoolExecutor(4) as pool:
                states = list(pool.map(lambda n: booted(ours, n), up))
            bad += [(n, s) for n, s in zip(up, states, strict=True)
                    if s not in ("running", "degraded")]
            t_list = _timed([*ours, "list"])
            t_virsh = _timed(["virsh", "-q", "-c", uri, "list"])
            m = meminfo()
            load = os.getloadavg()[0]
            print(f"{len(names) - len(bad):4d} running  batch booted in "
                  f"{time.monotonic() - t0:5.1f} s  "
                  f"available {m['MemAvailable'] // 1024:6d} MiB  "
                  f"({(before - m['MemAvailable']) / len(names) / 1024:5.1f} MiB each)  "
                  f"load {load:5.2f}  list {t_list:.2f} s (virsh {t_virsh:.2f} s)")
            if bad:
                print(f"   first failure: {bad[0][0]}: {bad[0][1]}")
                break
            if m["MemAvailable"] < 512 * 1024:
                print("   stopped: less than 512 MiB of memory left")
                break
        print(f"result: {len(names) - len(bad)} containers booted and reached with exec")
    finally:
        _remove(host, names)
        host.close()
        shutil.rmtree(base, ignore_errors=True)


def _timed(argv: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run(argv, capture_output=True, check=False)
    return time.perf_counter() - t


def _remove(host: Any, names: list[str]) -> None:
    def one(name: str) -> None:
        try:
            dom = host.domain(name)
            if dom.isActive():
                dom.destroy()
            dom.undefine()
        except Exception:  # noqa: BLE001 - gone already
            pass

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one, names))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-c", "--connect", default=os.environ.get("LIBVIRT_DEFAULT_URI", "lxc:///"))
    ap.add_argument("-n", "--count", type=int, default=100)
    ap.add_argument("--memory", default="256MiB")
    ap.add_argument("--network", default="default")
    args = ap.parse_args()
    bench(args.connect, args.count, args.memory, args.network)


if __name__ == "__main__":
    main()
