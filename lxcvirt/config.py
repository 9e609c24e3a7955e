"""lxcvirt's own configuration file (TOML), today only the system-level autostart switch.

The file is ``/etc/lxcvirt/lxcvirt.conf`` unless ``$LXCVIRT_CONFIG`` or an explicit path
(the CLI's ``--config``) says otherwise.  A missing default file means the defaults; a file
named explicitly must exist.  ::

    # /etc/lxcvirt/lxcvirt.conf
    autostart = true      # false: `lxcvirt start --all --boot` starts nothing
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

from ._files import read_capped
from .errors import ConfigError

DEFAULT_PATH = Path("/etc/lxcvirt/lxcvirt.conf")
ENV_VAR = "LXCVIRT_CONFIG"


@dataclass(frozen=True)
class Config:
    """The settings, and where they came from (``None``: built-in defaults)."""

    autostart: bool = True
    path: Path | None = None
    #: Keys the file has that this version does not know (reported, not fatal: a typo
    #: must not stop every container from starting at boot).
    unknown: tuple[str, ...] = ()


_KNOWN = {"autostart"}


def config_path(path: str | Path | None = None) -> tuple[Path, bool]:
    """The file to read and whether it was asked for explicitly (then it must exist)."""
    if path is not None:
        return Path(path), True
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env), True
    return DEFAULT_PATH, False


def load_config(path: str | Path | None = None) -> Config:
    """Read the configuration; raise :class:`ConfigError` naming the file and key."""
    file, explicit = config_path(path)
    try:
        raw = read_capped(file)
    except FileNotFoundError:
        if explicit:
            raise ConfigError(f"{file}: no such configuration file") from None
        return Config()
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read: {exc.strerror or exc}") from exc
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{file}: not valid TOML: {exc}") from exc
    autostart = data.get("autostart", True)
    if not isinstance(autostart, bool):
        raise ConfigError(
            f"{file}: autostart: expected true or false, got {autostart!r}"
        )
    unknown = tuple(sorted(k for k in data if k not in _KNOWN))
    return Config(autostart=autostart, path=file, unknown=unknown)
