"""The inventory: a TOML file that names libvirt hosts, for ``lxcvirt apply`` across hosts.

::

    [hosts]
    local = "lxc:///"
    web1 = "lxc+ssh://root@web1.example/"
    web2 = { uri = "lxc+tcp://10.0.0.12/" }

A spec names the hosts it belongs on with a top-level ``hosts = ["web1", "web2"]`` key;
a spec without it goes to every selected host.  ``--host NAME`` on the command line selects
hosts (default: all of the inventory); a ``--host`` value that is itself a libvirt URI
(``lxc+tcp://...``) needs no inventory.  libvirt's remote driver does the travelling:
lxcvirt runs no agent of its own on the hosts.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._files import read_capped
from .errors import ConfigError, SpecError

_HOST_NAME = re.compile(r"^[A-Za-z0-9_.@+-]+$")


def check_host_name(value: object, where: str) -> str:
    if not isinstance(value, str) or not _HOST_NAME.match(value):
        raise ConfigError(
            f"{where}: {value!r} is not a host name (letters, digits and _.@+- only)"
        )
    return value


def is_uri(value: str) -> bool:
    return "://" in value or value.endswith(":///")


@dataclass(frozen=True)
class Inventory:
    """Host names mapped to libvirt URIs, in the order the file gives them."""

    hosts: tuple[tuple[str, str], ...]
    source: str = "<inventory>"
    #: The project ``apply`` gives the containers it makes from this inventory.
    project: str | None = None

    def uri(self, name: str) -> str:
        for host, uri in self.hosts:
            if host == name:
                return uri
        raise ConfigError(
            f"{self.source}: no host named {name!r} (known: {', '.join(self.names) or 'none'})"
        )

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(h for h, _ in self.hosts)

    def __contains__(self, name: object) -> bool:
        return name in self.names

    def select(self, names: Iterable[str] = ()) -> list[tuple[str, str]]:
        """The hosts ``names`` (all when empty) as (name, URI); a URI stands for itself."""
        wanted = list(dict.fromkeys(names))
        if not wanted:
            return list(self.hosts)
        return [(n, n) if is_uri(n) and n not in self else (n, self.uri(n)) for n in wanted]

    def to_dict(self) -> dict[str, object]:
        return {"source": self.source, "hosts": dict(self.hosts), "project": self.project}


def inventory_from_dict(data: Mapping[str, Any], source: str = "<inventory>") -> Inventory:
    unknown = sorted(set(data) - {"hosts", "project"})
    if unknown:
        raise ConfigError(f"{source}: {unknown[0]}: unknown key (known here: hosts, project)")
    project = data.get("project")
    if project is not None:
        from .spec import check_project

        try:
            check_project(project)
        except SpecError as exc:
            raise ConfigError(f"{source}: project: {exc.message}") from None
    table = data.get("hosts")
    if not isinstance(table, Mapping) or not table:
        raise ConfigError(f"{source}: hosts: missing; write a [hosts] table of name = \"URI\"")
    hosts: list[tuple[str, str]] = []
    for name, value in table.items():
        check_host_name(name, f"{source}: hosts")
        if isinstance(value, Mapping):
            extra = sorted(set(value) - {"uri"})
            if extra:
                raise ConfigError(f"{source}: hosts.{name}.{extra[0]}: unknown key (known: uri)")
            value = value.get("uri")
        if not isinstance(value, str) or not is_uri(value):
            raise ConfigError(
                f"{source}: hosts.{name}: expected a libvirt URI such as "
                f"\"lxc+ssh://{name}/\", got {value!r}"
            )
        hosts.append((name, value))
    return Inventory(tuple(hosts), source, project)


def load_inventory(path: str | Path) -> Inventory:
    p = Path(path)
    try:
        text = read_capped(p).decode("utf-8")
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read the inventory: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{p}: the inventory is not UTF-8 text") from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: not valid TOML: {exc}") from exc
    return inventory_from_dict(data, str(p))
