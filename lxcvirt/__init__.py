"""lxcvirt: Linux containers through libvirt's LXC driver.

The public API: specs (:class:`Container` and its parts), loading and rendering them,
validating domain XML, and the :class:`Host` controller.  Heavy modules (libvirt, lxml,
jinja2) load on first use of a name that needs them, so ``import lxcvirt`` stays cheap.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from .errors import (
    AlreadyExists,
    ConfigError,
    ConsoleError,
    DaemonUnreachable,
    HostError,
    InvalidState,
    LibvirtError,
    LockHeld,
    LxcvirtError,
    NotFound,
    PartialFailure,
    Problem,
    Refused,
    SpecError,
    StartFailed,
    ValidationError,
    XMLError,
)
from .spec import Autostart, Console, Container, Filesystem, IdMap, IdRange, Init, Interface

__version__ = "0.1.0"

_LAZY = {
    "load_spec": "load",
    "load_spec_text": "load",
    "spec_from_dict": "load",
    "render": "rendering",
    "check_domain_xml": "validate",
    "check_file": "validate",
    "parse_xml": "validate",
    "Host": "host",
    "Status": "host",
    "DefineResult": "host",
    "StopResult": "host",
}

__all__ = [
    "AlreadyExists",
    "Autostart",
    "ConfigError",
    "Console",
    "ConsoleError",
    "Container",
    "DaemonUnreachable",
    "DefineResult",
    "Filesystem",
    "Host",
    "HostError",
    "IdMap",
    "IdRange",
    "Init",
    "Interface",
    "InvalidState",
    "LibvirtError",
    "LockHeld",
    "LxcvirtError",
    "NotFound",
    "PartialFailure",
    "Problem",
    "Refused",
    "SpecError",
    "StartFailed",
    "Status",
    "StopResult",
    "ValidationError",
    "XMLError",
    "check_domain_xml",
    "check_file",
    "load_spec",
    "load_spec_text",
    "parse_xml",
    "render",
    "spec_from_dict",
]

if TYPE_CHECKING:
    from .host import DefineResult, Host, Status, StopResult
    from .load import load_spec, load_spec_text, spec_from_dict
    from .rendering import render
    from .validate import check_domain_xml, check_file, parse_xml


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'lxcvirt' has no attribute {name!r}")
    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
