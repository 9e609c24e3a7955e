"""libvirt errors become lxcvirt's exception tree in one place (lxcvirt._libvirt).

The mapping itself is pure logic (a table keyed on the error code), checked with made-up
errors; the daemon part checks that what libvirt really raises lands where we expect.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import libvirt
import pytest
from conftest import busybox_spec

from lxcvirt import _libvirt
from lxcvirt.errors import (
    AlreadyExists,
    DaemonUnreachable,
    InvalidState,
    LibvirtError,
    NotFound,
    Refused,
)

DOM = libvirt.VIR_FROM_DOMAIN


def fake_error(code: int, domain: int = libvirt.VIR_FROM_LXC, msg: str = "boom") -> Any:
    exc = libvirt.libvirtError(msg)
    # The tuple libvirt-python keeps: code, domain, message, level, str1-3, int1-2.
    exc.err = (code, domain, msg, libvirt.VIR_ERR_ERROR, None, None, None, 0, 0)
    return exc


@pytest.mark.parametrize(
    ("code", "domain", "msg", "cls"),
    [
        pytest.param(libvirt.VIR_ERR_NO_DOMAIN, DOM, "", NotFound, id="no-domain"),
        pytest.param(libvirt.VIR_ERR_NO_NETWORK, DOM, "", NotFound, id="no-net"),
        pytest.param(libvirt.VIR_ERR_DOM_EXIST, DOM, "", AlreadyExists, id="exists"),
        pytest.param(
            libvirt.VIR_ERR_OPERATION_FAILED,
            libvirt.VIR_FROM_DOMAIN,
            "domain 'a' already exists with uuid 1234",
            AlreadyExists,
            id="name-taken",
        ),
        pytest.param(
            libvirt.VIR_ERR_OPERATION_FAILED,
            libvirt.VIR_FROM_DOMAIN,
            "domain 'a' is already defined with uuid 1234",
            AlreadyExists,
            id="uuid-taken",
        ),
        pytest.param(
            libvirt.VIR_ERR_OPERATION_INVALID, libvirt.VIR_FROM_DOMAIN, "", InvalidState, id="state"
        ),
        pytest.param(libvirt.VIR_ERR_XML_ERROR, libvirt.VIR_FROM_DOMAIN, "", Refused, id="xml"),
        pytest.param(
            libvirt.VIR_ERR_CONFIG_UNSUPPORTED, libvirt.VIR_FROM_LXC, "", Refused, id="unsupported"
        ),
        pytest.param(libvirt.VIR_ERR_NO_CONNECT, libvirt.VIR_FROM_NONE, "", DaemonUnreachable,
                     id="no-connect"),
        pytest.param(libvirt.VIR_ERR_SYSTEM_ERROR, libvirt.VIR_FROM_RPC, "", DaemonUnreachable,
                     id="rpc-gone"),
        pytest.param(libvirt.VIR_ERR_INTERNAL_ERROR, libvirt.VIR_FROM_LXC, "", LibvirtError,
                     id="internal"),
        pytest.param(libvirt.VIR_ERR_OPERATION_FAILED, libvirt.VIR_FROM_LXC, "other failure",
                     LibvirtError, id="failed"),
    ],
)
def test_mapping(code: int, domain: int, msg: str, cls: type[LibvirtError]) -> None:
    err = _libvirt.convert(fake_error(code, domain, msg or "boom"), "doing it")
    assert type(err) is cls
    assert err.code == code
    assert err.message.startswith("doing it: ")


def test_converted_chains_the_original() -> None:
    original = fake_error(libvirt.VIR_ERR_NO_DOMAIN)
    with pytest.raises(NotFound) as info, _libvirt.converted("looking"):
        raise original
    assert info.value.__cause__ is original


# --- what the real daemon raises --------------------------------------------------------

#: Well-formed, and valid but for the ``<bogus/>`` device.
UNKNOWN_ELEMENT_XML = """<domain type='lxc'><name>{name}</name><memory>65536</memory>
<os><type>exe</type><init>/bin/sh</init></os>
<devices><console type='pty'/><filesystem type='mount'><source dir='/'/>
<target dir='/'/></filesystem><bogus/></devices></domain>"""


def test_daemon_not_found(libvirt_conn: Any) -> None:
    with pytest.raises(NotFound) as info:
        _libvirt.call("looking up", libvirt_conn.lookupByName, "lxcvirt-test-no-such-thing")
    assert isinstance(info.value.__cause__, libvirt.libvirtError)


def test_daemon_invalid_state(host: Any, names: Any, busybox_root: Any) -> None:
    name = names("state")
    host.define(busybox_spec(name, busybox_root))
    dom = host.domain(name)
    with pytest.raises(InvalidState):
        _libvirt.call("destroying", dom.destroy)
    assert not dom.isActive()


def test_daemon_uuid_taken_is_already_exists(host: Any, names: Any, busybox_root: Any) -> None:
    first, second = names("uuid1"), names("uuid2")
    host.define(busybox_spec(first, busybox_root))
    uuid = host.domain(first).UUIDString()
    with pytest.raises(AlreadyExists) as info:
        host.define(replace(busybox_spec(second, busybox_root), uuid=uuid))
    assert first in str(info.value)
    assert not host.exists(second)


def test_daemon_name_taken_is_already_exists(host: Any, names: Any, busybox_root: Any) -> None:
    name = names("uuid3")
    host.define(busybox_spec(name, busybox_root))
    other = "0c4a3f1e-9d7b-4c55-8a51-3b6f2f6c2a10"
    with pytest.raises(AlreadyExists) as info:
        host.define(replace(busybox_spec(name, busybox_root), uuid=other))
    assert "unchanged" in str(info.value)
    assert host.domain(name).UUIDString() != other


def test_daemon_unknown_element_on_raw_define(libvirt_conn: Any, names: Any) -> None:
    # lxcvirt validates before defining; straight to libvirt, an unknown device is refused
    # when libvirt checks its schema (a plain defineXML drops unknown elements silently).
    name = names("rawxml")
    xml = UNKNOWN_ELEMENT_XML.format(name=name)
    validate = libvirt.VIR_DOMAIN_DEFINE_VALIDATE
    with pytest.raises(Refused) as info:
        _libvirt.call("defining", libvirt_conn.defineXMLFlags, xml, validate)
    # The schema refused it, not the XML parser (a malformed document is XML_DETAIL).
    assert info.value.code == libvirt.VIR_ERR_XML_INVALID_SCHEMA, info.value
    assert "failed to validate against schema" in str(info.value)
    assert name not in {d.name() for d in libvirt_conn.listAllDomains(0)}
    # Without <bogus/> the same document passes the same check: the element was the fault.
    dom = _libvirt.call("defining", libvirt_conn.defineXMLFlags,
                        xml.replace("<bogus/>", ""), validate)
    assert dom.name() == name


def test_unreachable_daemon() -> None:
    # Port 1 on loopback: nothing listens, the connection is refused at once.
    with pytest.raises(DaemonUnreachable) as info:
        _libvirt.open_connection("lxc+tcp://127.0.0.1:1/")
    assert "127.0.0.1" in str(info.value)
    assert "libvirtd" in str(info.value)


class _Raising:
    """A stand-in for a libvirt object whose every method fails as libvirt's do."""

    def __init__(self, code: int) -> None:
        self.code = code

    def name(self) -> str:
        return "web"

    def __getattr__(self, method: str) -> Any:
        def fail(*_args: Any) -> Any:
            raise fake_error(self.code, libvirt.VIR_FROM_RPC, "End of file while reading data")

        return fail


@pytest.mark.parametrize(
    "method",
    ["state", "info", "XMLDesc", "isActive", "isPersistent", "create", "destroy", "undefine",
     "shutdownFlags", "UUIDString", "ID", "autostart", "suspend", "openConsole"],
)
def test_every_domain_method_converts(method: str) -> None:
    # A daemon that dies makes any call fail: none may let libvirtError out.
    dom = _libvirt.Dom(_Raising(libvirt.VIR_ERR_SYSTEM_ERROR))
    args = {"shutdownFlags": (0,), "openConsole": (None, None, 0)}.get(method, ())
    with pytest.raises(DaemonUnreachable) as info:
        getattr(dom, method)(*args)
    assert "web" in str(info.value)
    assert "End of file" in str(info.value)


def test_connection_methods_convert_and_wrap(libvirt_conn: Any) -> None:
    conn = _libvirt.Conn(libvirt_conn, "lxc:///")
    with pytest.raises(NotFound) as info:
        conn.lookupByName("lxcvirt-test-no-such-thing")
    assert "lxcvirt-test-no-such-thing" in str(info.value)
    # Methods without a typed wrapper go through the same conversion.
    with pytest.raises(NotFound):
        conn.networkLookupByName("lxcvirt-test-no-such-net")
    assert all(isinstance(d, _libvirt.Dom) for d in conn.listAllDomains(0))


def test_outer_doing_relabels_a_wrapped_error(host: Any, names: Any, busybox_root: Any) -> None:
    name = names("relabel")
    host.define(busybox_spec(name, busybox_root))
    dom = host.domain(name)
    assert isinstance(dom, _libvirt.Dom)
    with pytest.raises(InvalidState) as info:
        _libvirt.call(f"stopping {name} now", dom.destroy)
    assert str(info.value).startswith(f"stopping {name} now: ")
    assert info.value.detail is not None and info.value.detail in str(info.value)


def test_domain_gone_under_a_handle_is_not_found(host: Any, names: Any, busybox_root: Any,
                                                 libvirt_conn: Any) -> None:
    name = names("gone")
    host.define(busybox_spec(name, busybox_root))
    dom = host.domain(name)
    libvirt_conn.lookupByName(name).undefine()
    with pytest.raises(NotFound):
        dom.isActive()


def test_a_daemon_that_dies_gives_our_error_and_one_cli_line(
    libvirt_conn: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """Kill a private libvirtd under an open Host: every call after is DaemonUnreachable
    (never libvirtError), the CLI prints one line, and a Host opens a new connection
    once the old one is dead."""
    import os
    import signal
    import time

    import plain_daemon

    from lxcvirt.cli import main
    from lxcvirt.host import Host

    why_not = plain_daemon.available()
    if why_not:
        pytest.fail(f"cannot start a second libvirtd: {why_not}")
    with plain_daemon.plain_daemon() as daemon:
        host = Host(daemon.uri, preflight=lambda _h: None)
        assert host.list() == []
        first = host.conn
        os.kill(daemon.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while first.alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        with pytest.raises(DaemonUnreachable) as info:
            host.list()  # the dead connection is dropped, and a new one cannot be made
        assert str(info.value).startswith(f"cannot connect to {daemon.uri}"), info.value
        capsys.readouterr()
        assert main(["-c", daemon.uri, "list", "--all"]) == 1
        out, err = capsys.readouterr()
        lines = [ln for ln in err.splitlines() if ln.strip()]
        assert out == ""
        assert len(lines) == 1 and lines[0].startswith("lxcvirt: error: cannot connect"), lines


@pytest.mark.parametrize(
    ("code", "msg", "cls"),
    [
        pytest.param(libvirt.VIR_ERR_SYSTEM_ERROR,
                     "Failed to connect socket to '/var/run/libvirt/libvirt-sock': "
                     "Permission denied", "PermissionDenied", id="socket-eacces"),
        pytest.param(libvirt.VIR_ERR_AUTH_FAILED, "authentication failed: polkit",
                     "PermissionDenied", id="polkit"),
        pytest.param(libvirt.VIR_ERR_SYSTEM_ERROR,
                     "Failed to connect socket to '/var/run/libvirt/libvirt-sock': "
                     "No such file or directory", "DaemonUnreachable", id="no-daemon"),
    ],
)
def test_connect_errors_say_permission_or_no_daemon(code: int, msg: str, cls: str) -> None:
    err = _libvirt.connect_error("lxc:///", fake_error(code, libvirt.VIR_FROM_RPC, msg))
    assert type(err).__name__ == cls
    if cls == "PermissionDenied":
        assert "may not use the daemon" in str(err) and "root" in err.hint
        assert "is libvirtd running" not in str(err)
    else:
        assert "is libvirtd running" in str(err)
