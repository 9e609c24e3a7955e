"""Reading specs: TOML files into :class:`~lxcvirt.spec.Container`, with every unknown key,
wrong type and bad value reported by its dotted name and the file it came from.

The TOML layout mirrors the domain XML::

    name = "web"
    memory = "256MiB"
    [init]
    path = "/sbin/init"
    [[filesystem]]      # repeated; the root's may say from = "debian/bookworm"
    [[interface]]       # repeated
    [idmap]             # uid = [{start, target, count}], gid = [...]
    [autostart]         # auto, priority, time, groups, after
    [limits]            # memory_hard_limit, cpu_shares, cpuset, blkio_weight, ...
    [[limits.blkio_device]]  # path, weight, read/write_bytes_sec, read/write_iops_sec
    [security]          # capabilities = "default"|"allow"|"deny", cap_drop, cap_add
    [[device]]          # path = "/dev/...", type = "block"|"char": passed in
"""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from ._files import read_capped
from .errors import SpecError
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

_TOP = {
    "name", "uuid", "description", "memory", "vcpu", "emulator", "on_poweroff", "on_reboot",
    "on_crash", "state", "hosts", "host_network", "init", "filesystem", "interface", "console",
    "idmap", "autostart", "limits", "security", "device",
}
_DEVICE = {"path", "type"}
_INIT = {"path", "args", "env", "workdir", "user", "group", "halt", "reboot"}
_FS = {"type", "source", "target", "readonly", "usage", "from"}
_IF = {"type", "source", "mac", "guest", "addresses", "gateway", "routes"}
_ROUTE = {"to", "via"}
_CONSOLE = {"type"}
_IDMAP = {"uid", "gid"}
_RANGE = {"start", "target", "count"}
_AUTO = {"auto", "priority", "time", "groups", "after"}
_LIMITS = {
    "memory_hard_limit", "memory_soft_limit", "swap_hard_limit", "cpu_shares", "cpu_period",
    "cpu_quota", "cpuset", "blkio_weight", "blkio_device",
}
_BLKIO_DEV = {"path", "weight", "read_bytes_sec", "write_bytes_sec", "read_iops_sec",
              "write_iops_sec"}
_SECURITY = {"capabilities", "cap_drop", "cap_add"}


def _table(key: str, value: object) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise SpecError(key, f"expected a table, got {type(value).__name__}")
    return value


def _known(key: str, table: Mapping[str, Any], allowed: set[str]) -> dict[str, Any]:
    unknown = sorted(set(table) - allowed)
    if unknown:
        where = f"{key}." if key else ""
        raise SpecError(
            f"{where}{unknown[0]}",
            f"unknown key (known here: {', '.join(sorted(allowed))})",
        )
    return dict(table)


def _array_of_tables(key: str, value: object) -> list[Mapping[str, Any]]:
    if not isinstance(value, list):
        raise SpecError(key, f"expected an array of tables ([[{key}]]), got {type(value).__name__}")
    return [_table(f"{key}[{i}]", v) for i, v in enumerate(value)]


def spec_from_dict(data: Mapping[str, Any]) -> Container:
    """Build a :class:`Container` from plain data (parsed TOML or JSON)."""
    top = _known("", _table("", data), _TOP)
    for required in ("name", "init"):
        if required not in top:
            raise SpecError(required, "missing (a spec needs at least name and [init] path)")
    init = _known("init", _table("init", top.pop("init")), _INIT)
    if "path" not in init:
        raise SpecError("init.path", "missing: the program to run as the container's init")
    top["init"] = _make("init", Init, init)
    top["filesystems"] = tuple(
        _filesystem(f"filesystem[{i}]", _known(f"filesystem[{i}]", fs, _FS))
        for i, fs in enumerate(_array_of_tables("filesystem", top.pop("filesystem", [])))
    )
    top["interfaces"] = tuple(
        _interface(f"interface[{i}]", _known(f"interface[{i}]", itf, _IF))
        for i, itf in enumerate(_array_of_tables("interface", top.pop("interface", [])))
    )
    if "console" in top:
        top["console"] = _make("console", Console,
                               _known("console", _table("console", top["console"]), _CONSOLE))
    if "idmap" in top:
        idm = _known("idmap", _table("idmap", top["idmap"]), _IDMAP)
        ranges: dict[str, tuple[IdRange, ...]] = {}
        for kind in ("uid", "gid"):
            if kind not in idm:
                raise SpecError(f"idmap.{kind}", "missing: an idmap needs both uid and gid")
            ranges[kind] = tuple(
                _range(f"idmap.{kind}[{i}]", r)
                for i, r in enumerate(_array_of_tables(f"idmap.{kind}", idm[kind]))
            )
        top["idmap"] = IdMap(uid=ranges["uid"], gid=ranges["gid"])
    if "autostart" in top:
        table = _known("autostart", _table("autostart", top["autostart"]), _AUTO)
        top["autostart"] = _make("autostart", Autostart, table)
    top["devices"] = tuple(
        _make(f"device[{i}]", HostDevice, _known(f"device[{i}]", d, _DEVICE))
        for i, d in enumerate(_array_of_tables("device", top.pop("device", [])))
    )
    if "limits" in top:
        lim = _known("limits", _table("limits", top["limits"]), _LIMITS)
        lim["blkio_devices"] = tuple(
            _make(f"limits.blkio_device[{i}]", BlkioDevice,
                  _known(f"limits.blkio_device[{i}]", d, _BLKIO_DEV))
            for i, d in enumerate(_array_of_tables("limits.blkio_device",
                                                   lim.pop("blkio_device", [])))
        )
        top["limits"] = _make("limits", Limits, lim)
    if "security" in top:
        sec = _known("security", _table("security", top["security"]), _SECURITY)
        top["security"] = _make("security", Security, sec)
    return Container(**top)


T = TypeVar("T")


def _make(key: str, cls: type[T], table: dict[str, Any]) -> T:
    """``cls(**table)``, a missing required key said as such (not a TypeError)."""
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if (f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
                and f.init and f.name not in table):
            raise SpecError(f"{key}.{f.name}" if key else f.name, "missing")
    return cls(**table)


def _interface(key: str, table: dict[str, Any]) -> Interface:
    if "routes" in table:
        routes = []
        for i, r in enumerate(_array_of_tables(f"{key}.routes", table["routes"])):
            where = f"{key}.routes[{i}]"
            try:
                routes.append(_make(where, Route, _known(where, r, _ROUTE)))
            except SpecError as exc:  # "route[TO].via": say where it is in the file
                field = exc.key.rpartition("]")[2] if exc.key.startswith("route[") else ""
                raise SpecError(where + field if field else exc.key, exc.detail) from None
        table["routes"] = tuple(routes)
    return _make(key, Interface, table)


def _filesystem(key: str, table: dict[str, Any]) -> Filesystem:
    # `from` is a Python keyword: the field is called image.
    if "from" in table:
        table["image"] = table.pop("from")
    return _make(key, Filesystem, table)


def _range(key: str, table: Mapping[str, Any]) -> IdRange:
    values = _known(key, table, _RANGE)
    missing = sorted(_RANGE - set(values))
    if missing:
        raise SpecError(f"{key}.{missing[0]}", "missing")
    return IdRange(**values)


def load_spec_text(text: str, source: str = "<spec>") -> Container:
    """Parse TOML text into a spec; errors name ``source``."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SpecError("", f"not valid TOML: {exc}", source=source) from exc
    except RecursionError:
        # tomllib reads nested arrays and inline tables recursively.
        raise SpecError("", "not valid here: values nested hundreds deep", source=source) from None
    try:
        return spec_from_dict(data)
    except SpecError as exc:
        raise exc.at(source) from exc
    except TypeError as exc:  # a dataclass refused a missing argument
        raise SpecError("", str(exc), source=source) from exc


def load_spec(path: str | Path) -> Container:
    """Read a spec from a TOML file."""
    p = Path(path)
    try:
        text = read_capped(p).decode("utf-8")
    except OSError as exc:
        raise SpecError("", f"cannot read spec: {exc.strerror or exc}", source=str(p)) from exc
    except UnicodeDecodeError as exc:
        raise SpecError("", "spec is not UTF-8 text", source=str(p)) from exc
    return load_spec_text(text, source=str(p))


def _split(flag: str, value: str, parts: tuple[int, int], form: str) -> list[str]:
    fields = value.split(":")
    if not parts[0] <= len(fields) <= parts[1] or not all(fields):
        raise SpecError(flag, f"write {form}, got {value!r}")
    return fields


def spec_from_flags(
    *,
    name: str,
    init: str,
    args: Sequence[str] = (),
    env: Sequence[str] = (),
    root: str | None = None,
    image: str | None = None,
    mounts: Sequence[str] = (),
    rams: Sequence[str] = (),
    networks: Sequence[str] = (),
    bridges: Sequence[str] = (),
    memory: str | None = None,
    vcpu: int | None = None,
    devices: Sequence[str] = (),
    addresses: Sequence[str] = (),
    gateway: str | None = None,
    **tuning: Any,
) -> Container:
    """Build a spec from command-line flags (``lxcvirt render|define|create --name ...``),
    with the checks of a TOML spec.

    ``mounts``: ``SRC:DST`` or ``SRC:DST:ro``; ``rams``: ``DST:SIZE``; ``env``: ``K=V``;
    ``image``: what the root is built from (``--from``, with ``--root``); ``tuning``:
    the keys of ``[limits]`` and ``[security]`` (``--memory-limit`` is
    ``memory_hard_limit``, ``--cap-drop`` ``cap_drop``, ...); ``devices``: ``PATH`` or
    ``PATH:char``; ``addresses`` and ``gateway``: of the first interface.
    """
    data: dict[str, Any] = {"name": name, "init": {"path": init, "args": list(args)}}
    variables: dict[str, str] = {}
    for item in env:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SpecError("--env", f"write NAME=VALUE, got {item!r}")
        variables[key] = value
    if variables:
        data["init"]["env"] = variables
    filesystems: list[dict[str, Any]] = []
    if image is not None and root is None:
        raise SpecError("--from", "needs --root DIR: the folder the image is built into")
    if root is not None:
        filesystems.append({"source": root, "target": "/"} | ({} if image is None else
                                                               {"from": image}))
    for item in mounts:
        fields = _split("--mount", item, (2, 3), "SRC:DST, SRC:DST:ro or SRC:DST:rw")
        if len(fields) == 3 and fields[2] not in ("ro", "rw"):
            raise SpecError("--mount", f"the third field is 'ro' or 'rw', got {item!r}")
        filesystems.append(
            {"source": fields[0], "target": fields[1],
             "readonly": len(fields) == 3 and fields[2] == "ro"}
        )
    for item in rams:
        target, size = _split("--ram", item, (2, 2), "DST:SIZE (e.g. /tmp:64MiB)")
        filesystems.append({"type": "ram", "target": target, "usage": size})
    if filesystems:
        data["filesystem"] = filesystems
    interfaces: list[dict[str, Any]] = [{"type": "network", "source": n} for n in networks]
    interfaces += [{"type": "bridge", "source": b} for b in bridges]
    if addresses or gateway is not None:
        if not interfaces:
            raise SpecError("--address" if addresses else "--gateway",
                            "needs an interface: --network NET or --bridge BR")
        if addresses:
            interfaces[0]["addresses"] = list(addresses)
        if gateway is not None:
            interfaces[0]["gateway"] = gateway
    if interfaces:
        data["interface"] = interfaces
    if devices:
        data["device"] = []
        for item in devices:
            path, sep, kind = item.partition(":")
            if sep and kind not in ("block", "char"):
                raise SpecError("--device", f"write PATH or PATH:char, got {item!r}")
            data["device"].append({"path": path} | ({"type": kind} if sep else {}))
    if memory is not None:
        data["memory"] = memory
    if vcpu is not None:
        data["vcpu"] = vcpu
    for key, value in tuning.items():
        if value in (None, ()):
            continue
        if key in _SECURITY:
            data.setdefault("security", {})[key] = list(value) if key != "capabilities" \
                else value
        elif key in _LIMITS - {"blkio_device"}:
            data.setdefault("limits", {})[key] = value
        else:
            raise SpecError(key, "not a spec flag")
    try:
        return spec_from_dict(data)
    except SpecError as exc:
        # Say the flag the user typed, not the spec key it fills.
        section, _, key = exc.key.partition(".")
        if section in ("limits", "security") and key in tuning:
            flag = _FLAG_NAMES.get(key, "--" + key.replace("_", "-"))
            raise SpecError(flag, exc.detail, hint=exc.hint) from None
        if section.startswith("interface[") and key in ("addresses", "gateway"):
            raise SpecError("--address" if key == "addresses" else "--gateway",
                            exc.detail) from None
        if section.startswith("device[") or exc.key == "devices":
            raise SpecError("--device", exc.detail) from None
        raise


#: Flags whose name is not their spec key with dashes.
_FLAG_NAMES = {"memory_hard_limit": "--memory-limit", "swap_hard_limit": "--swap-limit"}
