"""The one place where libvirt-python is opened and its errors are converted.

``libvirt.libvirtError`` never leaves lxcvirt: :func:`convert` maps it by
``get_error_code()`` (and the RPC error domain, for a daemon that went away) onto the
tree in :mod:`lxcvirt.errors`, and every call site raises the result ``from`` the original.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Protocol, TypeVar

import libvirt

from .errors import (
    AlreadyExists,
    DaemonUnreachable,
    InvalidState,
    LibvirtError,
    LxcvirtError,
    NotFound,
    PermissionDenied,
    Refused,
)

DEFAULT_URI = "lxc:///"


class Domain(Protocol):
    """What lxcvirt uses of a ``libvirt.virDomain`` (libvirt-python has no type hints)."""

    def name(self) -> str: ...
    def UUIDString(self) -> str: ...
    def ID(self) -> int: ...
    def state(self) -> list[int]: ...
    def info(self) -> list[int]: ...
    def XMLDesc(self, flags: int = 0) -> str: ...
    def isActive(self) -> int: ...
    def isPersistent(self) -> int: ...
    def create(self) -> int: ...
    def destroy(self) -> int: ...
    def undefine(self) -> int: ...
    def shutdownFlags(self, flags: int = 0) -> int: ...
    def sendProcessSignal(self, pid_value: int, signum: int, flags: int = 0) -> int: ...
    def interfaceAddresses(self, source: int, flags: int = 0) -> dict[str, Any]: ...
    def metadata(self, type: int, uri: str | None, flags: int = 0) -> str: ...
    def setMetadata(self, type: int, metadata: str | None, key: str | None,
                    uri: str | None, flags: int = 0) -> int: ...
    def autostart(self) -> int: ...
    def setAutostart(self, autostart: int) -> int: ...
    def suspend(self) -> int: ...
    def resume(self) -> int: ...
    def memoryParameters(self, flags: int = 0) -> dict[str, Any]: ...
    def getCPUStats(self, total: bool, flags: int = 0) -> list[dict[str, Any]]: ...
    def interfaceStats(self, path: str) -> tuple[int, ...]: ...
    def schedulerParametersFlags(self, flags: int = 0) -> dict[str, Any]: ...
    def blkioParameters(self, flags: int = 0) -> dict[str, Any]: ...
    def setMemoryParameters(self, params: dict[str, Any], flags: int = 0) -> int: ...
    def setSchedulerParametersFlags(self, params: dict[str, Any], flags: int = 0) -> int: ...
    def setBlkioParameters(self, params: dict[str, Any], flags: int = 0) -> int: ...


class Connection(Protocol):
    """What lxcvirt uses of a ``libvirt.virConnect`` that it types (the rest stays Any)."""

    def lookupByName(self, name: str) -> Domain: ...
    def lookupByUUIDString(self, uuid: str) -> Domain: ...
    def listAllDomains(self, flags: int = 0) -> Sequence[Domain]: ...
    def close(self) -> int: ...

T = TypeVar("T")

# libvirt error codes (virterror.h) grouped by what they mean to a user.
_NOT_FOUND = {
    libvirt.VIR_ERR_NO_DOMAIN,
    libvirt.VIR_ERR_NO_NETWORK,
    getattr(libvirt, "VIR_ERR_NO_DOMAIN_METADATA", 80),
}
_EXISTS = {libvirt.VIR_ERR_DOM_EXIST, getattr(libvirt, "VIR_ERR_NETWORK_EXIST", 89)}
_STATE = {libvirt.VIR_ERR_OPERATION_INVALID}
_REFUSED = {
    libvirt.VIR_ERR_XML_ERROR,
    libvirt.VIR_ERR_XML_DETAIL,
    libvirt.VIR_ERR_CONFIG_UNSUPPORTED,
    libvirt.VIR_ERR_INVALID_ARG,
    libvirt.VIR_ERR_NO_SUPPORT,
    libvirt.VIR_ERR_OPERATION_UNSUPPORTED,
    libvirt.VIR_ERR_OPERATION_DENIED,
    libvirt.VIR_ERR_ARGUMENT_UNSUPPORTED,
    # A definition libvirt's own schema check refused (VIR_DOMAIN_DEFINE_VALIDATE).
    getattr(libvirt, "VIR_ERR_XML_INVALID_SCHEMA", 92),
}
_UNREACHABLE_CODES = {libvirt.VIR_ERR_NO_CONNECT, libvirt.VIR_ERR_INVALID_CONN}
_UNREACHABLE_DOMAINS = {libvirt.VIR_FROM_RPC, libvirt.VIR_FROM_REMOTE}
_UUID_CLASH = re.compile(r"already (exists|defined) with uuid")


def default_uri() -> str:
    return os.environ.get("LIBVIRT_DEFAULT_URI") or DEFAULT_URI


def convert(exc: libvirt.libvirtError, doing: str = "") -> LibvirtError:
    """Map a libvirt error onto lxcvirt's tree.  ``doing`` prefixes the message."""
    code = exc.get_error_code()
    domain = exc.get_error_domain()
    msg = (exc.get_error_message() or str(exc)).strip()
    if code in _UNREACHABLE_CODES or domain in _UNREACHABLE_DOMAINS:
        # libvirt's words for it vary ("client socket is closed", "End of file while
        # reading data", "internal error: ..."): say what happened first.
        msg = f"lost the connection to libvirtd ({msg})"
    text = f"{doing}: {msg}" if doing else msg
    cls: type[LibvirtError]
    if code in _NOT_FOUND:
        cls = NotFound
    elif code in _EXISTS:
        cls = AlreadyExists
    elif code in _STATE:
        cls = InvalidState
    elif code in _UNREACHABLE_CODES or domain in _UNREACHABLE_DOMAINS:
        cls = DaemonUnreachable
    elif code in _REFUSED:
        cls = Refused
    elif code == libvirt.VIR_ERR_OPERATION_FAILED and _UUID_CLASH.search(msg):
        # virDomainObjListAdd reports a name/uuid clash as a plain operation failure:
        # "already exists with uuid" (name taken) or "is already defined with uuid"
        # (uuid taken by another name).
        cls = AlreadyExists
    else:
        cls = LibvirtError
    return cls(text, code=code, detail=msg)


@contextmanager
def converted(doing: str) -> Iterator[None]:
    """``with converted("starting web"):`` turns libvirt errors into ours.

    An error a wrapped object (:class:`Dom`, :class:`Conn`) converted already is said
    again with this ``doing``, which knows better what the call was for.
    """
    try:
        yield
    except libvirt.libvirtError as exc:
        raise convert(exc, doing) from exc
    except LibvirtError as exc:
        if exc.detail is None:
            raise
        text = f"{doing}: {exc.detail}" if doing else exc.detail
        raise type(exc)(text, code=exc.code, detail=exc.detail) from exc.__cause__


#: ``lxcvirt -v`` (``--debug``) turns this logger on: each libvirt call and its duration.
log = logging.getLogger("lxcvirt.libvirt")


def _timed(what: str, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
    if not log.isEnabledFor(logging.DEBUG):
        return fn(*args)
    began = time.perf_counter()
    try:
        return fn(*args)
    finally:
        log.debug("%s %.1f ms", what, (time.perf_counter() - began) * 1000)


def call(doing: str, fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` with libvirt's errors converted; wrapped domains and connections in
    ``args`` are handed over as libvirt's own objects (``libvirt_lxc`` functions take
    those)."""
    args = tuple(map(_unwrap, args))
    with converted(doing):
        if isinstance(getattr(fn, "__self__", None), (Dom, Conn)):
            return fn(*args)  # a wrapper's method: it logs the call itself
        return _timed(getattr(fn, "__qualname__", repr(fn)), fn, args)


def ignored() -> contextlib.suppress:
    """For best-effort calls (clean-up, optional registrations, state read while a domain
    may be going away): a libvirt error is dropped, anything else still raised."""
    return contextlib.suppress(libvirt.libvirtError, LibvirtError)


# --- converting wrappers ----------------------------------------------------------------
# Every domain and connection object lxcvirt holds is wrapped, so that no method call on
# one can let a libvirtError out (a daemon that dies mid-command makes *any* call fail,
# dom.isActive() included).  The wrappers pass the raw object (``.raw``) where libvirt
# needs its own (event registration); callbacks libvirt calls get raw objects and must
# use ignored() / converted().

#: What a domain method does, for the error message ("reading the state of web: ...").
_DOM_DOING = {
    "state": "reading the state of", "info": "reading the state of",
    "isActive": "reading the state of", "isPersistent": "reading the state of",
    "XMLDesc": "reading the XML of", "create": "starting", "createWithFlags": "starting",
    "destroy": "destroying", "destroyFlags": "destroying", "undefine": "undefining",
    "undefineFlags": "undefining", "shutdown": "asking the init of",
    "shutdownFlags": "asking the init of", "sendProcessSignal": "asking the init of",
    "metadata": "reading the metadata of", "setMetadata": "writing the metadata of",
    "autostart": "reading the autostart flag of", "setAutostart": "setting the autostart flag of",
    "interfaceAddresses": "reading the addresses of", "suspend": "suspending",
    "resume": "resuming", "openConsole": "opening the console of",
    "memoryParameters": "reading the memory limits of",
    "getCPUStats": "reading the CPU time of", "interfaceStats": "reading the traffic of",
    "schedulerParametersFlags": "reading the CPU limits of",
    "blkioParameters": "reading the block I/O limits of",
    "setMemoryParameters": "setting the memory limits of",
    "setSchedulerParametersFlags": "setting the CPU limits of",
    "setBlkioParameters": "setting the block I/O limits of",
}


def _unwrap(value: Any) -> Any:
    return value.raw if isinstance(value, (Dom, Conn)) else value


class Dom:
    """A ``libvirt.virDomain`` whose every method converts libvirt's errors."""

    __slots__ = ("raw", "_name")

    def __init__(self, raw: Any) -> None:
        self.raw = raw
        self._name: str = raw.name()  # kept by libvirt-python: no daemon call

    def __repr__(self) -> str:
        return f"<Dom {self._name}>"

    def _call(self, method: str, *args: Any) -> Any:
        doing = f"{_DOM_DOING.get(method, method)} {self._name}"
        with converted(doing):
            return _timed(f"{method} {self._name}", getattr(self.raw, method),
                          tuple(map(_unwrap, args)))

    def name(self) -> str:
        return self._name

    def UUIDString(self) -> str:
        return str(self._call("UUIDString"))

    def ID(self) -> int:
        return int(self._call("ID"))

    def state(self) -> list[int]:
        return list(self._call("state"))

    def info(self) -> list[int]:
        return list(self._call("info"))

    def XMLDesc(self, flags: int = 0) -> str:
        return str(self._call("XMLDesc", flags))

    def isActive(self) -> int:
        return int(self._call("isActive"))

    def isPersistent(self) -> int:
        return int(self._call("isPersistent"))

    def create(self) -> int:
        return int(self._call("create"))

    def destroy(self) -> int:
        return int(self._call("destroy"))

    def undefine(self) -> int:
        return int(self._call("undefine"))

    def shutdownFlags(self, flags: int = 0) -> int:
        return int(self._call("shutdownFlags", flags))

    def sendProcessSignal(self, pid_value: int, signum: int, flags: int = 0) -> int:
        return int(self._call("sendProcessSignal", pid_value, signum, flags))

    def interfaceAddresses(self, source: int, flags: int = 0) -> dict[str, Any]:
        return dict(self._call("interfaceAddresses", source, flags) or {})

    def metadata(self, type: int, uri: str | None, flags: int = 0) -> str:
        return str(self._call("metadata", type, uri, flags))

    def setMetadata(self, type: int, metadata: str | None, key: str | None,
                    uri: str | None, flags: int = 0) -> int:
        return int(self._call("setMetadata", type, metadata, key, uri, flags))

    def autostart(self) -> int:
        return int(self._call("autostart"))

    def setAutostart(self, autostart: int) -> int:
        return int(self._call("setAutostart", autostart))

    def suspend(self) -> int:
        return int(self._call("suspend"))

    def resume(self) -> int:
        return int(self._call("resume"))

    def memoryParameters(self, flags: int = 0) -> dict[str, Any]:
        return dict(self._call("memoryParameters", flags) or {})

    def getCPUStats(self, total: bool, flags: int = 0) -> list[dict[str, Any]]:
        return list(self._call("getCPUStats", total, flags) or [])

    def interfaceStats(self, path: str) -> tuple[int, ...]:
        return tuple(self._call("interfaceStats", path))

    def schedulerParametersFlags(self, flags: int = 0) -> dict[str, Any]:
        return dict(self._call("schedulerParametersFlags", flags) or {})

    def blkioParameters(self, flags: int = 0) -> dict[str, Any]:
        return dict(self._call("blkioParameters", flags) or {})

    def setMemoryParameters(self, params: dict[str, Any], flags: int = 0) -> int:
        return int(self._call("setMemoryParameters", params, flags))

    def setSchedulerParametersFlags(self, params: dict[str, Any], flags: int = 0) -> int:
        return int(self._call("setSchedulerParametersFlags", params, flags))

    def setBlkioParameters(self, params: dict[str, Any], flags: int = 0) -> int:
        return int(self._call("setBlkioParameters", params, flags))

    def __getattr__(self, method: str) -> Any:
        # Methods lxcvirt calls rarely (openConsole, suspend...): converted the same way.
        attr = getattr(self.raw, method)
        if not callable(attr):
            return attr
        return lambda *args: self._call(method, *args)


def _wrap(value: Any) -> Any:
    if isinstance(value, libvirt.virDomain):
        return Dom(value)
    if isinstance(value, list) and value and isinstance(value[0], libvirt.virDomain):
        return [Dom(v) for v in value]
    return value


class Conn:
    """A ``libvirt.virConnect`` whose every method converts libvirt's errors and returns
    domains as :class:`Dom`."""

    __slots__ = ("raw", "uri")

    def __init__(self, raw: Any, uri: str) -> None:
        self.raw = raw
        self.uri = uri

    def __repr__(self) -> str:
        return f"<Conn {self.uri}>"

    def _call(self, doing: str, method: str, *args: Any) -> Any:
        with converted(doing):
            return _wrap(_timed(f"{method} ({self.uri})", getattr(self.raw, method),
                                tuple(map(_unwrap, args))))

    def lookupByName(self, name: str) -> Dom:
        return self._call(f"looking up {name} on {self.uri}", "lookupByName", name)  # type: ignore[no-any-return]

    def lookupByUUIDString(self, uuid: str) -> Dom:
        return self._call(f"looking up {uuid} on {self.uri}", "lookupByUUIDString", uuid)  # type: ignore[no-any-return]

    def listAllDomains(self, flags: int = 0) -> list[Dom]:
        return list(self._call(f"listing containers on {self.uri}", "listAllDomains", flags))

    def close(self) -> int:
        with ignored():
            return int(self.raw.close())
        return -1

    def alive(self) -> bool:
        """False once the daemon closed the connection (a local check, no round trip)."""
        with ignored():
            return bool(self.raw.isAlive())
        return False

    def __getattr__(self, method: str) -> Any:
        attr = getattr(self.raw, method)
        if not callable(attr):
            return attr
        return lambda *args: self._call(f"{method} on {self.uri}", method, *args)


# libvirt reports errors on stderr through its default handler as well as raising them;
# a CLI that prints one clean line must silence the former.
def _quiet(_ctx: object, _err: object) -> None:
    return None


libvirt.registerErrorHandler(_quiet, None)

_loop_lock = threading.Lock()
_loop_started = False


def ensure_event_loop() -> None:
    """Start libvirt's default event loop in a daemon thread, once per process.

    Lifecycle events and console streams need it, and it must be registered before the
    connection is opened (libvirt binds a connection to the loop at open time).
    """
    global _loop_started
    with _loop_lock:
        if _loop_started:
            return
        libvirt.virEventRegisterDefaultImpl()

        def run() -> None:
            while True:
                libvirt.virEventRunDefaultImpl()

        threading.Thread(target=run, name="libvirt-events", daemon=True).start()
        _loop_started = True


#: How libvirt says that this user may not use the daemon's socket (EACCES on connect,
#: polkit or SASL refusing).
_NO_PERMISSION = re.compile(r"Permission denied|authentication (failed|unavailable)|"
                            r"not authorized|access denied", re.IGNORECASE)


def connect_error(uri: str, exc: libvirt.libvirtError) -> LxcvirtError:
    """What a failed ``libvirt.open`` means: not allowed (say how to be), or no daemon."""
    msg = (exc.get_error_message() or str(exc)).strip()
    code = exc.get_error_code()
    if _NO_PERMISSION.search(msg) or code in (libvirt.VIR_ERR_AUTH_FAILED,
                                              getattr(libvirt, "VIR_ERR_AUTH_UNAVAILABLE", 94),
                                              libvirt.VIR_ERR_ACCESS_DENIED):
        return PermissionDenied(
            f"cannot connect to {uri}: this user may not use the daemon ({msg})",
            hint="run as root, or be in the group libvirtd gives its socket to "
                 "(unix_sock_group) and use lxc:///system",
        )
    return DaemonUnreachable(
        f"cannot connect to {uri}: {msg} (is libvirtd running?)",
        code=code,
        hint="start libvirtd: `systemctl start libvirtd`, or `libvirtd -d` where there is "
             "no systemd (lxcvirt's source, sdist included, has scripts/host-setup for a "
             "whole host)",
    )


def open_connection(uri: str | None = None, *, events: bool = True) -> Conn:
    """Open a read-write connection to ``uri`` (default: $LIBVIRT_DEFAULT_URI, lxc:///).

    ``events=False`` skips libvirt's event loop (no lifecycle events or console streams on
    this connection) for one-shot questions such as the emulator path.
    """
    if events:
        ensure_event_loop()
    uri = uri or default_uri()
    try:
        conn = _timed(f"open {uri}", libvirt.open, (uri,))
    except libvirt.libvirtError as exc:
        raise connect_error(uri, exc) from exc
    if conn is None:  # older bindings return None instead of raising
        raise DaemonUnreachable(f"cannot connect to {uri}")
    return Conn(conn, uri)


def lxc_guests(conn: Any) -> dict[str, str]:
    """The LXC guests (``<os_type>exe</os_type>``) the host's capabilities offer: each
    architecture with its emulator."""
    from ._xml import parse_xml

    caps = call("reading host capabilities", conn.getCapabilities)
    guests: dict[str, str] = {}
    for guest in parse_xml(caps, "capabilities").findall("guest"):
        if (guest.findtext("os_type") or "").strip() == "exe":
            arch = guest.find("arch")
            path = (guest.findtext("arch/emulator") or "").strip()
            if arch is not None and path:
                guests.setdefault(arch.get("name") or "", path)
    return guests


def lxc_emulator(conn: Any, uri: str) -> str:
    """The LXC emulator (``<os_type>exe</os_type>``) the host's capabilities name."""
    guests = lxc_guests(conn)
    if not guests:
        raise Refused(f"{uri} offers no LXC guest (no os_type exe in its capabilities)")
    return next(iter(guests.values()))
