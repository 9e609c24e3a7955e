"""What the benchmark scripts share: the test inits and the one way to run a command."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

#: An init that exits on SIGTERM at once (graceful stops are fast).
TERM_INIT = ("/bin/sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1 & wait; done")
#: An init that ignores SIGTERM: only destroy stops it (~1.8 s in libvirt).
STUBBORN_INIT = ("/bin/sh", "-c", "trap '' TERM; while :; do sleep 1; done")


def lxcvirt_argv() -> list[str]:
    """The installed ``lxcvirt`` next to this Python, else ``python -m lxcvirt``."""
    script = Path(sys.executable).with_name("lxcvirt")
    return [str(script)] if script.exists() else [sys.executable, "-m", "lxcvirt"]


def like_installed() -> None:
    """Compile lxcvirt's modules to bytecode, as ``pip install`` does for a wheel.

    An editable checkout under ``PYTHONDONTWRITEBYTECODE=1`` (set on some machines)
    otherwise compiles every module from source at each start, which is not what users
    run and would dominate a start-up measurement.
    """
    import compileall

    import lxcvirt

    compileall.compile_dir(str(Path(lxcvirt.__file__).parent), quiet=1)


def paired(a: Sequence[str], b: Sequence[str], runs: int) -> tuple[float, float, float]:
    """Run ``a`` and ``b`` in turn ``runs`` times (after one warm-up each): the median
    wall time of each and the median of the pairwise ratios a/b, which a machine whose
    speed drifts during the measurement moves least."""
    import statistics

    run(a)
    run(b)
    ta, tb = [], []
    for _ in range(runs):
        ta.append(run(a))
        tb.append(run(b))
    ratio = statistics.median(x / y for x, y in zip(ta, tb, strict=True))
    return statistics.median(ta), statistics.median(tb), ratio


def run(argv: Sequence[str], env: dict[str, str] | None = None, *, check: bool = False) -> float:
    """Run argv, return its wall time.  A non-zero exit is printed (exit 2 of a command
    acting on several is a partial run, worth seeing), or raised with ``check``."""
    began = time.perf_counter()
    proc = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                          env=env, check=False)
    if proc.returncode != 0:
        if check:
            raise RuntimeError(f"{argv[0]} exited {proc.returncode}: {proc.stderr.strip()}")
        print(f"   ! {' '.join(argv[:4])}... exited {proc.returncode}: {proc.stderr.strip()}")
    return time.perf_counter() - began
