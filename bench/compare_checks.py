"""Side by side on this host: ``virt-host-validate lxc``, ``lxc-checkconfig`` and
``lxcvirt check``, against what really happens when a container starts.

Two daemons are compared: the shared libvirtd as scripts/host-setup starts it (a private
mount namespace without the hybrid cgroup2 mount), and a throw-away libvirtd started in
the plain host mount namespace (tests/plain_daemon.py; it shares no state with the first).
A peer that is not installed is reported as such.  Run as root:

    .venv/bin/python bench/compare_checks.py
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from lxcvirt import _libvirt  # noqa: E402,F401 - silences libvirt's stderr error printing
from lxcvirt.checks import forget, run_checks  # noqa: E402
from lxcvirt.errors import LxcvirtError  # noqa: E402
from lxcvirt.host import Host  # noqa: E402
from lxcvirt.spec import Container, Filesystem, Init  # noqa: E402

ANSI = re.compile(r"\x1b\[[0-9;]*m")
RUNS = 5


@dataclass
class Outcome:
    verdict: str
    detail: str
    ms: float | None = None


def run(argv: list[str]) -> tuple[int, str, float]:
    """One subprocess: argv list, output captured, never raises for a non-zero exit."""
    began = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, check=False,
                          stdin=subprocess.DEVNULL)
    return proc.returncode, ANSI.sub("", proc.stdout + proc.stderr), time.perf_counter() - began


def best(argv: list[str]) -> tuple[int, str, float]:
    results = [run(argv) for _ in range(RUNS)]
    return results[0][0], results[0][1], min(r[2] for r in results)


def virt_host_validate() -> Outcome:
    if shutil.which("virt-host-validate") is None:
        return Outcome("-", "not installed (libvirt-clients)")
    code, out, secs = best(["virt-host-validate", "lxc"])
    counts = {w: len(re.findall(rf":\s*{w}\b", out)) for w in ("PASS", "WARN", "FAIL")}
    verdict = "FAIL" if code or counts["FAIL"] else ("WARN" if counts["WARN"] else "PASS")
    unified = "mentions" if "unified" in out else "does not mention"
    return Outcome(verdict, f"exit {code}, {counts['PASS']} pass, {counts['WARN']} warn, "
                   f"{counts['FAIL']} fail; {unified} the cgroup2 mount", secs * 1000)


def lxc_checkconfig() -> Outcome:
    if shutil.which("lxc-checkconfig") is None:
        return Outcome("-", "not installed (apt-get install lxc)")
    code, out, secs = best(["lxc-checkconfig"])
    missing = [ln.split(":")[0].strip() for ln in out.splitlines()
               if re.search(r":\s*(missing|disabled)\b", ln)]
    unified = "lists it as a v2 mount point" if "/unified" in out else "does not list it"
    verdict = "missing " + ", ".join(missing) if missing else "all enabled"
    return Outcome("ok" if not missing else "warn", f"exit {code}, {verdict}; cgroup2 mount: "
                   f"{unified}, no warning", secs * 1000)


def lxcvirt_check(uri: str) -> Outcome:
    secs = []
    report = None
    for _ in range(RUNS):
        forget()
        with Host(uri, preflight=lambda _h: None) as host:
            began = time.perf_counter()
            report = run_checks(host)
            secs.append(time.perf_counter() - began)
    assert report is not None
    failed = ", ".join(f"{f.check}: {f.what}" for f in report.failed) or "nothing fails"
    return Outcome(report.verdict, f"exit {report.exit_code}; {failed}", min(secs) * 1000)


def lxcvirt_cli(uri: str) -> float:
    exe = Path(sys.executable).with_name("lxcvirt")
    argv = [str(exe) if exe.exists() else "lxcvirt", "-c", uri, "check", "--json"]
    return best(argv)[2] * 1000


def really_starts(uri: str, rootfs: Path) -> Outcome:
    name = f"lxcvirt-bench-check-{os.getpid()}"
    spec = Container(
        name=name,
        init=Init("/bin/sh", args=("-c", "trap 'exit 0' TERM; while :; do sleep 1 & wait; done")),
        memory="64MiB",
        filesystems=(Filesystem(target="/", source=str(rootfs)),),
    )
    with Host(uri, preflight=lambda _h: None) as host:
        host.define(spec)
        try:
            began = time.perf_counter()
            host.start(name, check=False)
            ms = (time.perf_counter() - began) * 1000
            host.stop(name, timeout=10)
            return Outcome("yes", "the container ran", ms)
        except LxcvirtError as exc:
            return Outcome("no", str(exc).splitlines()[0])
        finally:
            host.undefine(name, force=True, timeout=10)


def main() -> int:
    if os.geteuid() != 0:
        print("run as root: the checks probe cgroups and the comparison starts a libvirtd")
        return 1
    import plain_daemon

    from lxcvirt._busybox import make_rootfs

    rootfs = make_rootfs(Path(tempfile.mkdtemp(prefix="lxcvirt-bench-root-")))
    columns: dict[str, dict[str, Outcome]] = {}
    try:
        vhv, lcc = virt_host_validate(), lxc_checkconfig()
        shared = "lxc:///"
        columns["shared libvirtd (host-setup: private ns)"] = {
            "virt-host-validate lxc": vhv,
            "lxc-checkconfig": lcc,
            "lxcvirt check": lxcvirt_check(shared),
            "a container really starts": really_starts(shared, rootfs),
        }
        cli_ms = lxcvirt_cli(shared)
        why_not = plain_daemon.available()
        if why_not is None:
            with plain_daemon.plain_daemon() as daemon:
                columns["throw-away libvirtd (plain host ns)"] = {
                    # Both peers read only the host: the daemon changes nothing for them.
                    "virt-host-validate lxc": vhv,
                    "lxc-checkconfig": lcc,
                    "lxcvirt check": lxcvirt_check(daemon.uri),
                    "a container really starts": really_starts(daemon.uri, rootfs),
                }
        else:
            print(f"(no second daemon: {why_not})")
    finally:
        shutil.rmtree(rootfs, ignore_errors=True)

    rows = ["virt-host-validate lxc", "lxc-checkconfig", "lxcvirt check",
            "a container really starts"]
    print("Verdicts (details below):\n")
    w0 = max(len(r) for r in rows)
    heads = list(columns)
    widths = [max(len(h), 8) for h in heads]
    print(" " * w0 + "  " + "  ".join(h.ljust(w) for h, w in zip(heads, widths, strict=True)))
    for r in rows:
        cells = [columns[h][r].verdict for h in heads]
        print(r.ljust(w0) + "  " + "  ".join(c.ljust(w) for c, w in zip(cells, widths,
                                                                         strict=True)))
    print()
    for h in heads:
        print(f"{h}:")
        for r in rows:
            o = columns[h][r]
            print(f"  {r:<{w0}}  {o.verdict:<5} {o.detail}")
        truth = columns[h]["a container really starts"].verdict == "yes"
        for r in rows[:3]:
            said_ok = columns[h][r].verdict.lower() not in ("fail", "-")
            if columns[h][r].verdict != "-":
                right = "right" if said_ok == truth else "WRONG"
                print(f"  -> {r} predicted {'a start' if said_ok else 'a failure'}: {right}")
        print()

    print(f"Time (best of {RUNS}):")
    lx = columns[heads[0]]["lxcvirt check"].ms or 0.0
    print(f"  lxcvirt check (library, with nested-cgroup probe): {lx:8.1f} ms")
    print(f"  lxcvirt check --json (CLI process)               : {cli_ms:8.1f} ms")
    for r, key in (("virt-host-validate lxc", vhv), ("lxc-checkconfig", lcc)):
        if key.ms is not None:
            print(f"  {r:<49}: {key.ms:8.1f} ms  ({key.ms / cli_ms:.2f}x the lxcvirt CLI)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
