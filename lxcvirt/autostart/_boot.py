"""The system switch (``autostart = false`` in lxcvirt's configuration) and the lock that
keeps two start-all / stop-all runs apart."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .._pidlock import PidLock
from ..errors import (
    ConfigError,
    LockHeld,
    PermissionDenied,
)

if TYPE_CHECKING:
    pass


DEFAULT_LOCK = Path("/run/lxcvirt/autostart.lock")
LOCK_ENV = "LXCVIRT_AUTOSTART_LOCK"


# --- the system switch -----------------------------------------------------------------


@dataclass(frozen=True)
class BootSwitch:
    """Whether ``start --all --boot`` may start anything (lxcvirt's configuration file)."""

    allowed: bool
    #: Why nothing starts, when it is not allowed.
    reason: str = ""
    #: Things worth telling about the file (unknown settings, which are ignored).
    notes: tuple[str, ...] = ()


def boot_switch(config: str | Path | None = None) -> BootSwitch:
    """Read the system switch from ``config`` (default: $LXCVIRT_CONFIG, then
    /etc/lxcvirt/lxcvirt.conf; a missing default file means on).  ConfigError for a file
    that is wrong."""
    from ..config import load_config

    cfg = load_config(config)
    notes = tuple(f"{cfg.path}: unknown setting {key!r} ignored" for key in cfg.unknown)
    if cfg.autostart:
        return BootSwitch(True, notes=notes)
    where = cfg.path or "the configuration"
    return BootSwitch(False, f"autostart is off in {where} (autostart = false); not "
                      "starting anything", notes)


# --- the lock ------------------------------------------------------------------------------


def lock_path(path: str | Path | None = None) -> Path:
    return Path(path or os.environ.get(LOCK_ENV) or DEFAULT_LOCK)


@contextmanager
def run_lock(path: str | Path | None = None) -> Iterator[Path]:
    """Hold the start-all/stop-all lock (flock: released by the kernel if we die)."""
    where = lock_path(path)
    lock = PidLock(where, mode=0o644)
    try:
        taken = lock.try_acquire()
    except PermissionError as exc:
        raise PermissionDenied(
            f"cannot open the autostart lock {where}: permission denied",
            hint=f"run as root, or set {LOCK_ENV} to a file this user may write",
        ) from exc
    except OSError as exc:
        raise ConfigError(f"cannot use the autostart lock {where}: {exc.strerror or exc}",
                          hint=f"{LOCK_ENV} chooses another file") from exc
    if not taken:
        raise LockHeld(
            f"another run of start_all or stop_all holds the lock (pid "
            f"{lock.holder()[0]}, lock {where})",
            hint="another `lxcvirt start --all` or `stop --all` is running; wait for it to finish",
        )
    try:
        yield where
    finally:
        lock.release()
