"""lxcvirt: Linux containers through libvirt's LXC driver.

The public API: specs (:class:`Container` and its parts), loading and rendering them,
validating domain XML, the :class:`Host` controller, host checks, ordered autostart and
declarative apply.  Each feature's module (``lxcvirt.checks``, ``lxcvirt.autostart``,
``lxcvirt.apply``, ``lxcvirt.console``, ``lxcvirt.exec``, ``lxcvirt.rootfs``) has the rest
of its API; the
function ``apply`` stays in ``lxcvirt.apply`` (a package attribute of that name would be
the module).  Heavy modules (libvirt, lxml,
jinja2) load on first use of a name that needs them, so ``import lxcvirt`` stays cheap.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from .errors import (
    AlreadyExists,
    CommandFailed,
    ConfigError,
    ConsoleError,
    DaemonUnreachable,
    ExecFailed,
    HostError,
    InvalidState,
    LibvirtError,
    LockHeld,
    LxcvirtError,
    NotFound,
    PartialFailure,
    PermissionDenied,
    Problem,
    Refused,
    RootfsError,
    SpecError,
    StartFailed,
    ValidationError,
    XMLError,
)

__version__ = "0.1.0"

_LAZY = {
    "Autostart": "spec",
    "Console": "spec",
    "Container": "spec",
    "Filesystem": "spec",
    "IdMap": "spec",
    "IdRange": "spec",
    "Init": "spec",
    "Interface": "spec",
    "Limits": "spec",
    "HostDevice": "spec",
    "Route": "spec",
    "BlkioDevice": "spec",
    "Security": "spec",
    "set_limits": "host",
    "TuneResult": "host",
    "load_spec": "load",
    "load_spec_text": "load",
    "spec_from_dict": "load",
    "render": "rendering",
    "check_domain_xml": "validate",
    "check_file": "rendering",
    "parse_xml": "_xml",
    "Host": "host",
    "Status": "host",
    "DefineResult": "host",
    "StopResult": "host",
    "RebootResult": "host",
    "run_checks": "checks",
    "Finding": "checks",
    "start_all": "autostart",
    "stop_all": "autostart",
    "plan": "apply",
    "ApplyResult": "apply",
}

__all__ = [
    "AlreadyExists",
    "ApplyResult",
    "Autostart",
    "BlkioDevice",
    "CommandFailed",
    "ConfigError",
    "Console",
    "ConsoleError",
    "Container",
    "DaemonUnreachable",
    "DefineResult",
    "ExecFailed",
    "Filesystem",
    "Finding",
    "Host",
    "HostError",
    "IdMap",
    "IdRange",
    "Init",
    "Interface",
    "Limits",
    "HostDevice",
    "Route",
    "InvalidState",
    "LibvirtError",
    "LockHeld",
    "LxcvirtError",
    "NotFound",
    "PartialFailure",
    "PermissionDenied",
    "Problem",
    "Refused",
    "RootfsError",
    "Security",
    "SpecError",
    "StartFailed",
    "Status",
    "StopResult",
    "TuneResult",
    "RebootResult",
    "ValidationError",
    "XMLError",
    "check_domain_xml",
    "check_file",
    "load_spec",
    "load_spec_text",
    "parse_xml",
    "plan",
    "render",
    "run_checks",
    "set_limits",
    "spec_from_dict",
    "start_all",
    "stop_all",
]

if TYPE_CHECKING:
    from ._xml import parse_xml
    from .apply import ApplyResult, plan
    from .autostart import start_all, stop_all
    from .checks import Finding, run_checks
    from .host import DefineResult, Host, RebootResult, Status, StopResult, TuneResult, set_limits
    from .load import load_spec, load_spec_text, spec_from_dict
    from .rendering import check_file, render
    from .spec import (
        Autostart,
        BlkioDevice,
        Console,
        Container,
        Filesystem,
        HostDevice,
        IdMap,
        IdRange,
        Init,
        Interface,
        Limits,
        Route,
        Security,
    )
    from .validate import check_domain_xml


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'lxcvirt' has no attribute {name!r}")
    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
