"""The one way lxcvirt runs a program: an argv list (never a shell), logged, checked.

A failure becomes :class:`~lxcvirt.errors.CommandFailed` with the last lines of the
program's stderr, so the CLI can say in one line what went wrong.
"""

from __future__ import annotations

import logging
import shlex
import subprocess
from collections.abc import Mapping, Sequence

from .errors import CommandFailed

log = logging.getLogger("lxcvirt.run")

#: Lines of stderr kept in the error: enough to see why, short enough for a terminal.
TAIL_LINES = 12


def _tail(text: str) -> str:
    return "\n".join(text.strip().splitlines()[-TAIL_LINES:])


def run(
    argv: Sequence[str],
    *,
    what: str,
    timeout: float | None = None,
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` to completion, capturing its output; ``what`` names it in errors.

    Raises CommandFailed when the program is missing, times out or exits non-zero.
    """
    args = [str(a) for a in argv]
    log.info("run: %s", shlex.join(args))
    try:
        proc = subprocess.run(
            args,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout,
            env=None if env is None else dict(env),
            check=False,
        )
    except FileNotFoundError as exc:
        raise CommandFailed(f"{what}: {args[0]} is not installed", argv=args) from exc
    except subprocess.TimeoutExpired as exc:
        raise CommandFailed(f"{what}: {args[0]} took longer than {timeout:g} s", argv=args) from exc
    if proc.returncode != 0:
        raise CommandFailed(
            f"{what}: {args[0]} failed (exit {proc.returncode})",
            argv=args,
            output=_tail(proc.stderr or proc.stdout),
        )
    return proc
