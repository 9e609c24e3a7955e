"""The system switch (``autostart = false`` in lxcvirt's configuration) and the lock that
keeps two start-all / stop-all runs apart."""

from __future__ import annotations

import hashlib
import os
import time
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


#: The local system daemon, however it is written: its runs use the lock file itself.
_SYSTEM_URIS = frozenset({"lxc:", "lxc:///system", "lxc://localhost", "lxc://localhost/system"})


def lock_path(path: str | Path | None = None, uri: str | None = None) -> Path:
    """The lock of runs against the host at ``uri``: one per host, so that runs against
    two hosts go on together.  The local system daemon's (and ``uri=None``) is the file
    itself: ``path``, else $LXCVIRT_AUTOSTART_LOCK, else /run/lxcvirt/autostart.lock;
    any other URI has a file next to it named by a digest of the URI."""
    base = Path(path or os.environ.get(LOCK_ENV) or DEFAULT_LOCK)
    if uri is None or uri.rstrip("/") in _SYSTEM_URIS:
        return base
    digest = hashlib.sha256(uri.encode()).hexdigest()[:12]
    return base.with_name(f"{base.stem}-{digest}{base.suffix}")


@contextmanager
def run_lock(path: str | Path | None = None, *, uri: str | None = None, wait: float = 0.0,
             what: str = "") -> Iterator[Path]:
    """Hold the lock that keeps start-all, stop-all and apply runs against one host (the
    daemon at ``uri``, see :func:`lock_path`) one at a time (flock: released by the kernel
    if we die).  ``wait`` seconds for a holder to finish before refusing; ``what`` is our
    own run, as the holder's note says it to the next."""
    where = lock_path(path, uri)
    lock = PidLock(where, mode=0o644)
    deadline = time.monotonic() + max(0.0, wait)
    try:
        taken = lock.try_acquire(what)
        while not taken and time.monotonic() < deadline:
            time.sleep(0.1)
            taken = lock.try_acquire(what)
    except PermissionError as exc:
        raise PermissionDenied(
            f"cannot open the autostart lock {where}: permission denied",
            hint=f"run as root, or set {LOCK_ENV} to a file this user may write",
        ) from exc
    except OSError as exc:
        raise ConfigError(f"cannot use the autostart lock {where}: {exc.strerror or exc}",
                          hint=f"{LOCK_ENV} chooses another file") from exc
    if not taken:
        pid, note = lock.holder()
        running = f" ({note})" if note else ""
        waited = f" after waiting {wait:g} s" if wait > 0 else ""
        against = f" against {uri}" if uri is not None else ""
        raise LockHeld(
            f"another run{against} holds the lock{waited}: pid {pid}{running}, lock {where}",
            hint="another `lxcvirt apply`, `start --all` or `stop --all` is running; wait "
                 "for it, or give --wait SECONDS",
        )
    try:
        yield where
    finally:
        lock.release()
