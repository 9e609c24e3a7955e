"""Scale benchmark: lxcvirt with 25 to 400 containers on one host.

    .venv/bin/python bench/scale_bench.py [-c URI] [--counts 25,50,100,200,400] [--rounds R]

For each COUNT, busybox containers (init stops on SIGTERM, three priorities, one group),
written as spec files into a folder, then with the CLI as a user runs it:

1. ``apply DIR`` (defines them, stopped), 2. ``list --all --json`` (and ``virsh list
--all`` as the peer), 3. ``start --all``, 4. ``stop --all``, 5. ``apply DIR`` again
(nothing to change).  ``--rounds R`` repeats 3 and 4.

Printed per COUNT: the wall time of each step and per container, the growth of the time
per container against the smallest COUNT of 50 or more (goal: within 1.3x up to 400),
failed starts and forced stops (goal: 0 over 10 rounds at 200), starts that libvirtd lost
the monitor of (made again by start), and lxcvirt's peak memory
(max RSS of the command; goal: at most 100 KiB more per container).

Not a test: no assertions.  Everything it makes is removed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import TERM_INIT, lxcvirt_argv

SPEC = """name = "{name}"
memory = "64MiB"
state = "stopped"
[init]
path = "{init}"
args = {args}
[[filesystem]]
source = "{root}"
target = "/"
[autostart]
auto = true
priority = {priority}
groups = ["{group}"]
"""


def run_rss(argv: list[str], env: dict[str, str]) -> tuple[float, int, str, int]:
    """Run ``argv``: its wall time, its peak RSS in KiB (wait4), stdout and exit code."""
    out_path = Path(tempfile.mkstemp(prefix="lxcvirt-scale-out-")[1])
    try:
        with out_path.open("w") as out_f:
            began = time.perf_counter()
            pid = os.posix_spawn(argv[0], argv, env, file_actions=[
                (os.POSIX_SPAWN_DUP2, out_f.fileno(), 1),
                (os.POSIX_SPAWN_OPEN, 2, "/dev/null", os.O_WRONLY, 0)])
            _, status, usage = os.wait4(pid, 0)
            elapsed = time.perf_counter() - began
        code = os.waitstatus_to_exitcode(status)
        out = out_path.read_text()
    finally:
        out_path.unlink()
    if code not in (0, 2):
        print(f"   ! {' '.join(argv[-4:])}: exit {code}")
    return elapsed, int(usage.ru_maxrss), out, code


def bench(uri: str, counts: list[int], rounds: int) -> None:
    from lxcvirt._busybox import make_rootfs
    from lxcvirt.host import Host

    tmp = Path(tempfile.mkdtemp(prefix="lxcvirt-scale-"))
    env = {**os.environ, "LXCVIRT_AUTOSTART_LOCK": str(tmp / "autostart.lock")}
    root = make_rootfs(tmp / "root")
    ours = [*lxcvirt_argv(), "-c", uri]
    virsh = shutil.which("virsh") or "/usr/bin/virsh"
    host = Host(uri, preflight=lambda _h: None)
    rows: list[dict[str, Any]] = []
    made: list[str] = []
    try:
        for count in counts:
            group = f"scale{os.getpid()}n{count}"
            specs = tmp / f"specs{count}"
            specs.mkdir()
            names = [f"lxcvirt-scale-{os.getpid()}-{count}-{i:03d}" for i in range(count)]
            made += names
            for i, name in enumerate(names):
                (specs / f"{name}.toml").write_text(SPEC.format(
                    name=name, init=TERM_INIT[0], args=json.dumps(list(TERM_INIT[1:])),
                    root=root, priority=(i % 3) * 10, group=group))
            row: dict[str, Any] = {"count": count, "failed": 0, "forced": 0, "again": 0,
                                   "rss": 0}
            t, rss, _, _ = run_rss([*ours, "apply", str(specs), "--json"], env)
            row["define"], row["rss"] = t, max(row["rss"], rss)
            t, rss, out, _ = run_rss([*ours, "list", "--all", "--json"], env)
            row["list"], row["rss"] = t, max(row["rss"], rss)
            row["virsh list"] = run_rss([virsh, "-q", "-c", uri, "list", "--all"],
                                        env)[0]
            starts, stops = [], []
            for _ in range(rounds):
                t, rss, out, _ = run_rss([*ours, "start", "--all", "--group", group,
                                          "--no-check", "--json"], env)
                starts.append(t)
                row["rss"] = max(row["rss"], rss)
                report = json.loads(out)
                row["failed"] += sum(1 for c in report["containers"] if not c["ok"])
                row["again"] += sum(1 for c in report["containers"]
                                    if "started again" in (c["message"] or ""))
                t, rss, out, _ = run_rss([*ours, "stop", "--all", "--group", group,
                                          "--json"], env)
                stops.append(t)
                row["rss"] = max(row["rss"], rss)
                report = json.loads(out)
                forced = [c for c in report["containers"]
                          if c["result"].startswith("destroyed") or not c["ok"]]
                row["forced"] += len(forced)
                for c in forced[:3]:
                    print(f"   forced: {c['name']}: {c['result']} in {c['seconds']:.2f} s "
                          f"({c.get('method')}) {c['message'] or ''}")
            row["start --all"] = min(starts)
            row["stop --all"] = min(stops)
            t, rss, out, _ = run_rss([*ours, "apply", str(specs), "--json"], env)
            row["apply (unchanged)"], row["rss"] = t, max(row["rss"], rss)
            if json.loads(out)["counts"]["changed"]:
                print(f"   ! the second apply of {count} changed something")
            rows.append(row)
            _print(rows)
            _remove(host, names)
    finally:
        _remove(host, [n for n in made if host.exists(n)])
        host.close()
        shutil.rmtree(tmp, ignore_errors=True)


STEPS = ("define", "list", "start --all", "stop --all", "apply (unchanged)")


def _print(rows: list[dict[str, Any]]) -> None:
    base = next((r for r in rows if r["count"] >= 50), rows[0])
    last = rows[-1]
    n = last["count"]
    print(f"== {n} containers (best of the rounds; per container in ms; growth against "
          f"{base['count']})")
    for step in STEPS:
        per = last[step] / n * 1000
        growth = per / (base[step] / base["count"] * 1000)
        print(f"   {step:18} {last[step]:7.2f} s  {per:7.2f} ms/container  growth "
              f"{growth:4.2f}x")
    print(f"   list vs virsh list --all: {last['list']:.2f} s vs {last['virsh list']:.2f} s "
          f"= {last['list'] / last['virsh list']:.2f}x")
    print(f"   failed starts {last['failed']}, forced stops {last['forced']}, starts made "
          f"again after a lost monitor {last['again']}")
    first = rows[0]
    extra = ""
    if len(rows) > 1 and n > first["count"]:
        per_kib = (last["rss"] - first["rss"]) / (n - first["count"])
        extra = f"; {per_kib:+.1f} KiB per container more than with {first['count']}"
    print(f"   lxcvirt peak memory {last['rss'] / 1024:.1f} MiB{extra}")


def _remove(host: Any, names: list[str]) -> None:
    from concurrent.futures import ThreadPoolExecutor

    def one(name: str) -> None:
        try:
            dom = host.domain(name)
            if dom.isActive():
                dom.destroy()
            dom.undefine()
        except Exception:  # noqa: BLE001 - gone already
            pass

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(one, names))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-c", "--connect", default=os.environ.get("LIBVIRT_DEFAULT_URI", "lxc:///"))
    ap.add_argument("--counts", default="25,50,100,200,400")
    ap.add_argument("--rounds", type=int, default=1)
    args = ap.parse_args()
    bench(args.connect, [int(c) for c in args.counts.split(",")], max(1, args.rounds))


if __name__ == "__main__":
    main()
