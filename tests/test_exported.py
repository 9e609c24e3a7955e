"""The public API is what lxcvirt.__all__ says, and every name in it resolves."""

from __future__ import annotations

import lxcvirt

EXPECTED = {
    # spec
    "Container", "Init", "Filesystem", "Interface", "Console", "IdMap", "IdRange", "Autostart",
    "Limits", "BlkioDevice", "Security", "Route", "HostDevice",
    # loading, rendering, validating
    "load_spec", "load_spec_text", "spec_from_dict", "render", "check_domain_xml", "check_file",
    "parse_xml",
    # controller, host checks, autostart, apply
    "Host", "Status", "DefineResult", "StopResult", "RebootResult", "run_checks", "Finding",
    "start_all", "stop_all", "plan", "ApplyResult", "set_limits", "TuneResult",
    # errors
    "LxcvirtError", "SpecError", "XMLError", "ValidationError", "Problem", "HostError",
    "ConfigError", "LibvirtError", "DaemonUnreachable", "NotFound", "AlreadyExists",
    "InvalidState", "Refused", "StartFailed", "ConsoleError", "LockHeld", "PartialFailure",
    "PermissionDenied",
    "ExecFailed", "RootfsError", "CommandFailed",
}


def test_exported_names() -> None:
    assert set(lxcvirt.__all__) == EXPECTED
    for name in lxcvirt.__all__:
        assert getattr(lxcvirt, name) is not None, name


def test_errors_share_one_base() -> None:
    for name in lxcvirt.__all__:
        obj = getattr(lxcvirt, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, lxcvirt.LxcvirtError), name
