"""Start-up cost of the CLI: where a short command's time goes before it does anything.

    .venv/bin/python bench/startup_bench.py [-c URI] [-n RUNS]

1. ``lxcvirt list --json`` against a bare libvirt-python script that lists the same
   domains as JSON (goal <= 1.5x), and ``python -c pass`` (the interpreter's floor).
2. The top import costs of ``lxcvirt list --json`` and ``lxcvirt render --offline SPEC``
   (``python -X importtime``, cumulative microseconds), to see what to make lazy.

Not a test: no assertions.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import like_installed, lxcvirt_argv, paired, run

RAW = """
import json, libvirt
conn = libvirt.open({uri!r})
print(json.dumps([d.name() for d in conn.listAllDomains(0)]))
"""
SPEC = 'name = "startup"\n[init]\npath = "/bin/sh"\n'


def median_wall(argv: list[str], runs: int) -> float:
    run(argv)  # warm the page cache
    return statistics.median(run(argv) for _ in range(runs))


def top_imports(argv: list[str], count: int = 10) -> list[tuple[int, str]]:
    proc = subprocess.run([sys.executable, "-X", "importtime", *argv], capture_output=True,
                          text=True, check=False)
    rows = []
    for line in proc.stderr.splitlines():
        # "import time:  self [us] | cumulative | imported package"
        parts = line.removeprefix("import time:").split("|")
        if not line.startswith("import time:") or len(parts) != 3 or "cumulative" in line:
            continue
        rows.append((int(parts[1]), parts[2].strip()))
    return sorted(rows, reverse=True)[:count]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-c", "--connect", default="lxc:///")
    ap.add_argument("-n", "--runs", type=int, default=9)
    args = ap.parse_args()
    like_installed()
    lx = lxcvirt_argv()
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw_list.py"
        raw.write_text(RAW.format(uri=args.connect))
        spec = Path(tmp) / "startup.toml"
        spec.write_text(SPEC)
        ours, theirs, ratio = paired([*lx, "-c", args.connect, "list", "--json"],
                                     [sys.executable, str(raw)], args.runs)
        floor = median_wall([sys.executable, "-c", "pass"], args.runs)
        print(f"1. list --json {ours * 1000:6.1f} ms   raw libvirt-python {theirs * 1000:6.1f} ms"
              f"   ratio {ratio:4.2f}x (goal <= 1.5x)   python floor {floor * 1000:5.1f} ms")
        print("2. top cumulative import costs (ms)")
        for label, argv in (
            ("list --json", ["-m", "lxcvirt", "-c", args.connect, "list", "--json"]),
            ("render --offline", ["-m", "lxcvirt", "render", "--offline", str(spec)]),
        ):
            print(f"   {label}:")
            for micros, name in top_imports(argv):
                print(f"     {micros / 1000:6.1f}  {name.strip()}")


if __name__ == "__main__":
    main()
