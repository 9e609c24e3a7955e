"""Taking over libvirt's own autostart flag (a symlink that stays behind on the host and
has no order) as lxcvirt settings inside the domain."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import libvirt

from .. import _libvirt
from ..spec import Autostart, check_name
from ._plan import settings_dict
from ._settings import get, write

if TYPE_CHECKING:
    from ..host import Host


# --- libvirt's own flag ---------------------------------------------------------------------


@dataclass(frozen=True)
class Imported:
    name: str
    settings: Autostart
    dry_run: bool

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "autostart": settings_dict(self.settings),
                "dry_run": self.dry_run}


def import_libvirt_autostart(
    host: Host, names: Sequence[str] | None = None, *, dry_run: bool = False
) -> list[Imported]:
    """Take over containers that have libvirt's autostart flag: set ``auto`` in our
    settings (keeping the rest), then clear the flag so libvirtd does not start them
    unordered at its own start.  ``names`` restricts it to those containers."""
    if names is not None:
        for n in names:
            check_name(n)
            host.domain(n)  # NotFound for a name that is not there
    doms = _libvirt.call("listing containers", host.conn.listAllDomains,
                         libvirt.VIR_CONNECT_LIST_DOMAINS_AUTOSTART)
    wanted = None if names is None else {*names}
    done = []
    for dom in sorted(doms, key=lambda d: str(d.name())):
        name = str(dom.name())
        if wanted is not None and name not in wanted:
            continue
        settings = replace(get(host, name), auto=True)
        if not dry_run:
            # Ours first: when clearing the flag fails, the container still starts.
            write(host, name, settings)
            _libvirt.call(f"clearing libvirt's autostart flag of {name}", dom.setAutostart, 0)
        done.append(Imported(name, settings, dry_run))
    return done
