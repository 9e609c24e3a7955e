"""The typed container spec: frozen dataclasses, one per libvirt element, checked when built.

A spec comes from a TOML file (:func:`lxcvirt.load_spec`), from Python, or from CLI flags;
the templates in ``templates/`` only loop and branch over it.  Every check here raises
:class:`~lxcvirt.errors.SpecError` naming the key, so a bad value never reaches libvirt.
"""

from __future__ import annotations

import ipaddress
import re
import uuid as _uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Literal

from ._images import parse_image
from ._initsignals import check_method
from ._units import UnitError, parse_kib
from .errors import SpecError

#: The XML namespace of lxcvirt's own ``<metadata>`` element.  libvirt keys metadata by
#: namespace URI (virDomainSetMetadata), never by prefix.
METADATA_NS = "https://lxcvirt.dev/xmlns/container/1"
METADATA_PREFIX = "lxcvirt"

LIFECYCLE_ACTIONS = ("destroy", "restart", "preserve", "rename-restart")
CRASH_ACTIONS = (*LIFECYCLE_ACTIONS, "coredump-destroy", "coredump-restart")
STATES = ("running", "stopped", "defined")

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_MAC = re.compile(r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$")
_DEVNAME = re.compile(r"^[A-Za-z0-9_.:-]{1,15}$")
_GROUP = re.compile(r"^[A-Za-z0-9_.:@+-]+$")


def _check_path(key: str, value: object) -> str:
    if not isinstance(value, str) or not value:
        raise SpecError(key, "expected a non-empty absolute path")
    if "\0" in value or "\n" in value:
        raise SpecError(key, "path contains a NUL or newline character")
    if not value.startswith("/"):
        raise SpecError(key, f"path must be absolute (start with /), got {value!r}")
    if ".." in value.split("/"):
        raise SpecError(key, f"path must not contain '..' components, got {value!r}")
    return value


def _check_str(key: str, value: object, *, allow_empty: bool = False) -> str:
    if not isinstance(value, str):
        raise SpecError(key, f"expected a string, got {type(value).__name__}")
    if not allow_empty and not value:
        raise SpecError(key, "must not be empty")
    if "\0" in value:
        raise SpecError(key, "contains a NUL character")
    bad = _NOT_XML.search(value)
    if bad:
        raise SpecError(key, f"contains U+{ord(bad.group()):04X}, which a domain XML cannot "
                             "hold (control characters other than tab and newline, lone "
                             "surrogates)")
    return value


#: Characters XML 1.0 has no place for, even escaped: a value with one renders to XML
#: that no parser (libvirt's included) reads.
_NOT_XML = re.compile("[\x01-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


#: libvirt (seen with 9.0) writes the text of <initenv>, <inituser> and <initgroup> into its
#: saved configuration without escaping it.  Such text reads back as itself only when it
#: has none of what XML character data cannot hold as it is: '&', '<' and the sequence
#: ']]>' (tried: '>', quotes and '<![CDATA[' alone are fine once escaped the rest).  One
#: rule, here and for hand-written XML (lxcvirt.validate): a value with any of them would
#: leave the stored definition unreadable for every lxcvirt and virsh command.
UNESCAPED_BY_LIBVIRT = ("&", "<", "]]>")
UNESCAPED_HINT = (
    "libvirt saves this value without XML escaping, so it must not contain '&', '<' or "
    "']]>' (they would corrupt the stored definition)"
)


def check_unescaped(key: str, value: str) -> str:
    if any(c in value for c in UNESCAPED_BY_LIBVIRT):
        raise SpecError(key, UNESCAPED_HINT)
    return value


def _check_int(key: str, value: object, *, minimum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise SpecError(key, f"expected an integer, got {type(value).__name__}")
    if minimum is not None and value < minimum:
        raise SpecError(key, f"must be at least {minimum}, got {value}")
    return value


def _check_bool(key: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise SpecError(key, f"expected true or false, got {type(value).__name__}")
    return value


def _check_choice(key: str, value: object, choices: Iterable[str]) -> str:
    choices = tuple(choices)
    if value not in choices:
        raise SpecError(key, f"expected one of {', '.join(choices)}; got {value!r}")
    return str(value)


def _size(key: str, value: object, *, minimum: int = 0) -> int:
    try:
        kib = parse_kib(value)
    except UnitError as exc:
        raise SpecError(key, str(exc)) from exc
    if kib < minimum:
        raise SpecError(key, f"must be at least {minimum} KiB, got {kib} KiB")
    return kib


def _tuple(key: str, value: object) -> tuple[Any, ...]:
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise SpecError(key, f"expected a list, got {type(value).__name__}")
    return tuple(value)


def check_name(value: object, key: str = "name") -> str:
    """A container name libvirt will take and that is safe in file and cgroup paths."""
    name = _check_str(key, value)
    if "/" in name:
        raise SpecError(key, f"{name!r}: a container name must not contain '/'")
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise SpecError(key, f"{name!r}: a container name must not contain control characters")
    if name in (".", ".."):
        raise SpecError(key, f"{name!r} is not a usable container name")
    if len(name.encode()) > 200:
        raise SpecError(key, "a container name must be at most 200 bytes long")
    return name


_PROJECT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:@+-]{0,99}")


def check_project(value: object, key: str = "project") -> str:
    """A project name: letters, digits and ``_.:@+-``, at most 100 characters."""
    name = _check_str(key, value)
    if not _PROJECT.fullmatch(name):
        raise SpecError(key, f"{name!r}: a project name is letters, digits and _.:@+- "
                             "(at most 100, starting with a letter or digit)")
    return name


@dataclass(frozen=True)
class Init:
    """``<os><init>`` and friends: what runs as PID 1 inside the container."""

    path: str
    args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    workdir: str | None = None
    user: str | None = None
    group: str | None = None
    #: How ``stop`` asks init to halt and ``reboot`` to reboot (see lxcvirt._initsignals):
    #: "auto", "initctl", a signal name such as "SIGRTMIN+3"; reboot also "restart".
    halt: str = "auto"
    reboot: str = "auto"

    def __post_init__(self) -> None:
        _check_path("init.path", self.path)
        for key, is_reboot in (("halt", False), ("reboot", True)):
            value = _check_str(f"init.{key}", getattr(self, key))
            try:
                object.__setattr__(self, key, check_method(value, reboot=is_reboot))
            except ValueError as exc:
                raise SpecError(f"init.{key}", str(exc)) from None
        # libvirt refuses an empty <initarg> ("No data supplied").
        args = tuple(
            _check_str(f"init.args[{i}]", a) for i, a in enumerate(_tuple("init.args", self.args))
        )
        object.__setattr__(self, "args", args)
        raw_env: Iterable[Any]
        if isinstance(self.env, Mapping):
            raw_env = self.env.items()
        else:
            raw_env = _tuple("init.env", self.env)
        env: list[tuple[str, str]] = []
        for item in raw_env:
            if not (isinstance(item, tuple | list) and len(item) == 2):
                raise SpecError("init.env", "expected NAME = value pairs")
            k, v = item
            if not isinstance(k, str) or not _ENV_NAME.match(k):
                raise SpecError(f"init.env.{k}", "not a valid environment variable name")
            env.append(
                (k, check_unescaped(f"init.env.{k}", _check_str(f"init.env.{k}", v)))
            )
        # libvirt refuses an <initenv> without a value ("No value supplied").
        if len({k for k, _ in env}) != len(env):
            raise SpecError("init.env", "a variable is set twice")
        object.__setattr__(self, "env", tuple(env))
        if self.workdir is not None:
            _check_path("init.workdir", self.workdir)
            # libvirt's schema takes no trailing '/' in <initdir> (so not "/" either,
            # which is where init starts anyway).
            workdir = self.workdir.rstrip("/") or None
            object.__setattr__(self, "workdir", workdir)
        if self.user is not None:
            check_unescaped("init.user", _check_str("init.user", self.user))
        if self.group is not None:
            check_unescaped("init.group", _check_str("init.group", self.group))
        if (self.user is None) != (self.group is None):
            given, missing = ("user", "group") if self.group is None else ("group", "user")
            raise SpecError(f"init.{missing}", f"missing: libvirt takes <inituser> and "
                            f"<initgroup> together; init.{given} needs init.{missing} too")


@dataclass(frozen=True)
class Filesystem:
    """``<filesystem>``: ``type="mount"`` binds a host dir (target ``/`` is the private
    root); ``type="ram"`` is a tmpfs of ``usage`` KiB.

    ``image`` (TOML key ``from``) names the image the root is built from when its source
    folder does not exist yet (``lxcvirt create``/``apply``, through lxcvirt.rootfs); it
    is not part of the XML."""

    target: str
    type: Literal["mount", "ram"] = "mount"
    source: str | None = None
    readonly: bool = False
    usage: int | str | None = None
    image: str | None = None

    def __post_init__(self) -> None:
        key = f"filesystem[{self.target}]"
        _check_path(f"{key}.target", self.target)
        _check_choice(f"{key}.type", self.type, ("mount", "ram"))
        _check_bool(f"{key}.readonly", self.readonly)
        if self.type == "mount":
            if self.source is None:
                raise SpecError(f"{key}.source", "a mount needs the host directory as source")
            _check_path(f"{key}.source", self.source)
            if self.usage is not None:
                raise SpecError(f"{key}.usage", "usage is for type = 'ram' only")
        else:
            if self.source is not None:
                raise SpecError(f"{key}.source", "a ram filesystem has no source")
            if self.usage is None:
                raise SpecError(f"{key}.usage", "a ram filesystem needs a usage (e.g. 64MiB)")
            object.__setattr__(self, "usage", _size(f"{key}.usage", self.usage, minimum=1))
        if self.image is not None:
            if self.type != "mount" or self.target.rstrip("/") != "":
                raise SpecError(
                    f"{key}.from", "only the root filesystem (target = '/') can come from an image"
                )
            try:
                object.__setattr__(self, "image", parse_image(self.image).name)
            except ValueError as exc:
                raise SpecError(f"{key}.from", str(exc)) from exc

    @property
    def usage_kib(self) -> int:
        return int(self.usage or 0)


@dataclass(frozen=True)
class Route:
    """One ``<route>`` of an interface: to a network (``to``, CIDR; ``default`` is
    ``0.0.0.0/0`` or ``::/0`` by ``via``'s family) through a gateway (``via``)."""

    to: str
    via: str

    def __post_init__(self) -> None:
        key = f"route[{self.to}]"
        try:
            via = ipaddress.ip_address(_check_str(f"{key}.via", self.via))
        except ValueError:
            raise SpecError(f"{key}.via", f"not an IP address: {self.via!r}") from None
        to = _check_str(f"{key}.to", self.to)
        if to == "default":
            to = "0.0.0.0/0" if via.version == 4 else "::/0"
        try:
            net = ipaddress.ip_network(to)
        except ValueError:
            raise SpecError(f"{key}.to", f"not a network (e.g. 10.1.0.0/16, default): "
                                         f"{self.to!r}") from None
        if net.version != via.version:
            raise SpecError(f"{key}.via", f"{via} is IPv{via.version}, {net} IPv{net.version}")
        object.__setattr__(self, "to", str(net))
        object.__setattr__(self, "via", str(via))

    @property
    def family(self) -> str:
        return f"ipv{ipaddress.ip_network(self.to).version}"

    @property
    def address(self) -> str:
        return str(ipaddress.ip_network(self.to).network_address)

    @property
    def prefix(self) -> int:
        return ipaddress.ip_network(self.to).prefixlen


@dataclass(frozen=True)
class Interface:
    """``<interface>``: on a libvirt network, a host bridge, or a plain ethernet veth.

    ``addresses`` (``10.0.3.5/24``, ``fd00::5/64``) and ``routes`` are configured inside
    the container by libvirt (``<ip>``, ``<route>``), for roots without a DHCP client;
    ``gateway`` is a default route through that address."""

    type: Literal["network", "bridge", "ethernet"] = "network"
    source: str | None = None
    mac: str | None = None
    guest: str | None = None
    addresses: tuple[str, ...] = ()
    gateway: str | None = None
    routes: tuple[Route, ...] = ()

    def __post_init__(self) -> None:
        key = f"interface[{self.source or self.type}]"
        addresses = []
        for a in _tuple(f"{key}.addresses", self.addresses):
            text = _check_str(f"{key}.addresses", a)
            try:
                iface = ipaddress.ip_interface(text)
            except ValueError:
                raise SpecError(f"{key}.addresses", f"not an address with its prefix (e.g. "
                                                    f"10.0.3.5/24): {text!r}") from None
            if "/" not in text:
                raise SpecError(f"{key}.addresses", f"{text!r} needs its prefix length "
                                                    "(10.0.3.5/24)")
            addresses.append(str(iface))
        if len(set(addresses)) != len(addresses):
            raise SpecError(f"{key}.addresses", "an address is listed twice")
        object.__setattr__(self, "addresses", tuple(addresses))
        routes = list(_tuple(f"{key}.routes", self.routes))
        for r in routes:
            if not isinstance(r, Route):
                raise SpecError(f"{key}.routes", "expected Route items")
        object.__setattr__(self, "routes", tuple(routes))
        if self.gateway is not None:
            try:
                Route("default", self.gateway)
            except SpecError as exc:
                raise SpecError(f"{key}.gateway", exc.detail) from None
        every = self.all_routes
        if len({r.to for r in every}) != len(every):
            raise SpecError(f"{key}.routes", "two routes to the same network")
        _check_choice(f"{key}.type", self.type, ("network", "bridge", "ethernet"))
        if self.type in ("network", "bridge"):
            if self.source is None:
                what = "network name" if self.type == "network" else "bridge name"
                raise SpecError(f"{key}.source", f"type = '{self.type}' needs the {what}")
            _check_str(f"{key}.source", self.source)
        elif self.source is not None:
            raise SpecError(f"{key}.source", "type = 'ethernet' takes no source")
        if self.mac is not None:
            if not isinstance(self.mac, str) or not _MAC.match(self.mac):
                raise SpecError(f"{key}.mac", f"not a MAC address: {self.mac!r}")
            if int(self.mac[:2], 16) & 1:
                raise SpecError(f"{key}.mac", f"{self.mac} is a multicast address")
            object.__setattr__(self, "mac", self.mac.lower())
        if self.guest is not None and (
            not isinstance(self.guest, str) or not _DEVNAME.match(self.guest)
        ):
            raise SpecError(f"{key}.guest", f"not a network device name: {self.guest!r}")

    @property
    def all_routes(self) -> tuple[Route, ...]:
        """``routes``, and the default route through ``gateway``."""
        if self.gateway is None:
            return self.routes
        return (*self.routes, Route("default", self.gateway))


@dataclass(frozen=True)
class Console:
    """``<console type='pty'>``: libvirt's LXC driver needs exactly this."""

    type: Literal["pty"] = "pty"

    def __post_init__(self) -> None:
        _check_choice("console.type", self.type, ("pty",))


@dataclass(frozen=True)
class IdRange:
    """One ``<uid>`` / ``<gid>`` line of an ``<idmap>``."""

    start: int
    target: int
    count: int

    def __post_init__(self) -> None:
        _check_int("idmap.start", self.start, minimum=0)
        _check_int("idmap.target", self.target, minimum=0)
        _check_int("idmap.count", self.count, minimum=1)


@dataclass(frozen=True)
class IdMap:
    """``<idmap>``: user namespace uid and gid ranges (both are needed)."""

    uid: tuple[IdRange, ...]
    gid: tuple[IdRange, ...]

    def __post_init__(self) -> None:
        for kind in ("uid", "gid"):
            items = _tuple(f"idmap.{kind}", getattr(self, kind))
            if not items:
                raise SpecError(f"idmap.{kind}", "an idmap needs at least one range")
            for i, r in enumerate(items):
                if not isinstance(r, IdRange):
                    raise SpecError(f"idmap.{kind}[{i}]", "expected an IdRange")
            object.__setattr__(self, kind, items)


@dataclass(frozen=True)
class Autostart:
    """lxcvirt's autostart settings, stored in the domain's ``<metadata>``."""

    auto: bool = False
    priority: int = 0
    time: int = 0
    groups: tuple[str, ...] = ()
    after: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_bool("autostart.auto", self.auto)
        _check_int("autostart.priority", self.priority)
        _check_int("autostart.time", self.time, minimum=0)
        groups = _tuple("autostart.groups", self.groups)
        for g in groups:
            if not isinstance(g, str) or not _GROUP.match(g):
                raise SpecError(
                    "autostart.groups", f"{g!r}: group names are letters, digits and _.:@+-"
                )
        if len(set(groups)) != len(groups):
            raise SpecError("autostart.groups", "a group is listed twice")
        object.__setattr__(self, "groups", groups)
        after = tuple(
            check_name(a, "autostart.after") for a in _tuple("autostart.after", self.after)
        )
        object.__setattr__(self, "after", after)


#: The capabilities libvirt's LXC driver can turn on or off (domain.rng's list, 9.0).
CAPABILITIES = (
    "audit_control", "audit_write", "block_suspend", "chown", "dac_override",
    "dac_read_search", "fowner", "fsetid", "ipc_lock", "ipc_owner", "kill", "lease",
    "linux_immutable", "mac_admin", "mac_override", "mknod", "net_admin", "net_bind_service",
    "net_broadcast", "net_raw", "setgid", "setfcap", "setpcap", "setuid", "sys_admin",
    "sys_boot", "sys_chroot", "sys_module", "sys_nice", "sys_pacct", "sys_ptrace",
    "sys_rawio", "sys_resource", "sys_time", "sys_tty_config", "syslog", "wake_alarm",
)
CAP_POLICIES = ("default", "allow", "deny")
_CPUSET = re.compile(r"\^?\d+(-\d+)?(,\^?\d+(-\d+)?)*")
#: The largest value libvirt takes for a byte or KiB tunable (an unsigned long long that
#: must also fit the kernel's cgroup files, which are in bytes).
_MAX_BYTES = 2**63 - 1


def check_cpuset(key: str, value: object) -> str:
    """A CPU list as libvirt writes it: ``0-3``, ``1,3``, ``0-7,^2``."""
    text = _check_str(key, value)
    if not _CPUSET.fullmatch(text):
        raise SpecError(key, f"{text!r} is not a CPU list (e.g. '0-3', '1,3', '0-7,^2')")
    for part in text.replace("^", "").split(","):
        lo, _, hi = part.partition("-")
        if hi and int(hi) < int(lo):
            raise SpecError(key, f"{part!r}: a range goes from the lower CPU to the higher")
        if int(hi or lo) >= 4096:
            raise SpecError(key, f"{part!r}: CPU numbers go up to 4095")
    cpus: set[int] = set()
    for part in sorted(text.split(","), key=lambda p: p.startswith("^")):  # exclusions last
        lo, _, hi = part.lstrip("^").partition("-")
        span = set(range(int(lo), int(hi or lo) + 1))
        cpus = cpus - span if part.startswith("^") else cpus | span
    if not cpus:
        raise SpecError(key, f"{text!r} leaves no CPU; name the ones it may use")
    # As libvirt writes it back ("0-1,^1" is stored as "0"): a spec compares equal to
    # what was defined from it.
    runs: list[str] = []
    for cpu in sorted(cpus):
        if runs and cpu - 1 in cpus:
            runs[-1] = f"{runs[-1].split('-')[0]}-{cpu}"
        else:
            runs.append(str(cpu))
    return ",".join(runs)


def _opt_size(key: str, value: object, *, minimum: int = 0) -> int | None:
    if value is None:
        return None
    kib = _size(key, value, minimum=minimum)
    if kib * 1024 > _MAX_BYTES:
        raise SpecError(key, f"{kib} KiB is more than the kernel can take")
    return kib


def _opt_int(key: str, value: object, lo: int, hi: int) -> int | None:
    if value is None:
        return None
    n = _check_int(key, value)
    if not lo <= n <= hi:
        raise SpecError(key, f"must be between {lo} and {hi}, got {n}")
    return n


@dataclass(frozen=True)
class BlkioDevice:
    """One ``<blkiotune><device>``: a weight and throttles for one host block device.

    ``read_bytes_sec``/``write_bytes_sec`` take sizes ("10MiB" is 10 MiB per second) and
    are kept in bytes, as libvirt writes them."""

    path: str
    weight: int | None = None
    read_bytes_sec: int | str | None = None
    write_bytes_sec: int | str | None = None
    read_iops_sec: int | None = None
    write_iops_sec: int | None = None

    def __post_init__(self) -> None:
        key = f"limits.blkio_device[{self.path}]"
        _check_path(f"{key}.path", self.path)
        _opt_int(f"{key}.weight", self.weight, 100, 1000)
        for name in ("read_bytes_sec", "write_bytes_sec"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, int):
                kib = _opt_size(f"{key}.{name}", value, minimum=1)
                object.__setattr__(self, name, None if kib is None else kib * 1024)
            elif value is not None:
                _opt_int(f"{key}.{name}", value, 1, _MAX_BYTES)
        for name in ("read_iops_sec", "write_iops_sec"):
            _opt_int(f"{key}.{name}", getattr(self, name), 1, _MAX_BYTES)
        if all(getattr(self, n) is None for n in (
            "weight", "read_bytes_sec", "write_bytes_sec", "read_iops_sec", "write_iops_sec"
        )):
            raise SpecError(key, "a device entry needs a weight or a throttle")


@dataclass(frozen=True)
class Limits:
    """Resource limits: ``<memtune>``, ``<cputune>``, the ``<vcpu cpuset>`` and
    ``<blkiotune>``, in the words of libvirt's elements (lxc: ``lxc.cgroup.*``)."""

    #: <memtune>: sizes, kept in KiB.
    memory_hard_limit: int | str | None = None
    memory_soft_limit: int | str | None = None
    swap_hard_limit: int | str | None = None
    #: <cputune>: relative weight; period and quota in microseconds (quota -1: none).
    cpu_shares: int | None = None
    cpu_period: int | None = None
    cpu_quota: int | None = None
    #: The host CPUs the container may run on (``0-3``, ``1,3``).
    cpuset: str | None = None
    #: <blkiotune>: relative weight (100-1000) and per-device settings.
    blkio_weight: int | None = None
    blkio_devices: tuple[BlkioDevice, ...] = ()

    def __post_init__(self) -> None:
        for name in ("memory_hard_limit", "memory_soft_limit", "swap_hard_limit"):
            object.__setattr__(self, name,
                               _opt_size(f"limits.{name}", getattr(self, name), minimum=1024))
        hard, soft, swap = self.memory_hard_limit, self.memory_soft_limit, self.swap_hard_limit
        if hard is not None and soft is not None and int(soft) > int(hard):
            raise SpecError("limits.memory_soft_limit", "must not be above memory_hard_limit")
        if swap is not None and hard is not None and int(swap) < int(hard):
            raise SpecError("limits.swap_hard_limit",
                            "must be at least memory_hard_limit (it counts memory plus swap)")
        _opt_int("limits.cpu_shares", self.cpu_shares, 2, 262144)
        _opt_int("limits.cpu_period", self.cpu_period, 1000, 1000000)
        if self.cpu_quota is not None and self.cpu_quota != -1:
            _opt_int("limits.cpu_quota", self.cpu_quota, 1000, 17592186044415)
        if self.cpuset is not None:
            object.__setattr__(self, "cpuset", check_cpuset("limits.cpuset", self.cpuset))
        _opt_int("limits.blkio_weight", self.blkio_weight, 100, 1000)
        devices = _tuple("limits.blkio_devices", self.blkio_devices)
        for d in devices:
            if not isinstance(d, BlkioDevice):
                raise SpecError("limits.blkio_devices", "expected BlkioDevice items")
        if len({d.path for d in devices}) != len(devices):
            raise SpecError("limits.blkio_devices", "a device is listed twice")
        object.__setattr__(self, "blkio_devices", devices)

    @property
    def memtune(self) -> bool:
        return any(v is not None for v in (
            self.memory_hard_limit, self.memory_soft_limit, self.swap_hard_limit))

    @property
    def cputune(self) -> bool:
        return any(v is not None for v in (self.cpu_shares, self.cpu_period, self.cpu_quota))

    @property
    def blkiotune(self) -> bool:
        return self.blkio_weight is not None or bool(self.blkio_devices)


@dataclass(frozen=True)
class Security:
    """``<features><capabilities>``: the policy (``default``: libvirt's own set, which
    drops what a container should not have; ``allow``: all; ``deny``: none) and the
    capabilities turned off (``cap_drop``, lxc.cap.drop) or on (``cap_add``)."""

    capabilities: str = "default"
    cap_drop: tuple[str, ...] = ()
    cap_add: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_choice("security.capabilities", self.capabilities, CAP_POLICIES)
        for key in ("cap_drop", "cap_add"):
            caps = []
            for c in _tuple(f"security.{key}", getattr(self, key)):
                name = c.lower().removeprefix("cap_") if isinstance(c, str) else c
                if name not in CAPABILITIES:
                    raise SpecError(f"security.{key}",
                                    f"{c!r} is not a capability libvirt knows (e.g. mknod, "
                                    "sys_admin, net_raw)")
                caps.append(name)
            if len(set(caps)) != len(caps):
                raise SpecError(f"security.{key}", "a capability is listed twice")
            object.__setattr__(self, key, tuple(caps))
        both = sorted(set(self.cap_drop) & set(self.cap_add))
        if both:
            raise SpecError("security.cap_add", f"{both[0]} is both dropped and added")

    @property
    def any(self) -> bool:
        return self.capabilities != "default" or bool(self.cap_drop or self.cap_add)


@dataclass(frozen=True)
class HostDevice:
    """A host block or character device passed into the container (``<hostdev
    mode='capabilities'>``, storage or misc): it appears at the same path inside, and
    the container's device access list allows it."""

    path: str
    type: Literal["block", "char"] = "block"

    def __post_init__(self) -> None:
        key = f"device[{self.path}]"
        _check_path(f"{key}.path", self.path)
        if not self.path.startswith("/dev/"):
            raise SpecError(f"{key}.path", f"a host device lives under /dev, got {self.path!r}")
        check_unescaped(f"{key}.path", self.path)
        _check_choice(f"{key}.type", self.type, ("block", "char"))


@dataclass(frozen=True)
class Container:
    """A whole container: the ``<domain type='lxc'>``."""

    name: str
    init: Init
    memory: int | str = 262144
    vcpu: int = 1
    uuid: str | None = None
    description: str | None = None
    emulator: str | None = None
    on_poweroff: str = "destroy"
    on_reboot: str = "restart"
    on_crash: str = "destroy"
    filesystems: tuple[Filesystem, ...] = ()
    interfaces: tuple[Interface, ...] = ()
    console: Console = field(default_factory=Console)
    idmap: IdMap | None = None
    #: Share the host's network namespace.  Off, a container without interfaces still gets
    #: a namespace of its own with only ``lo`` (``<features><privnet/>``), as lxc does.
    host_network: bool = False
    autostart: Autostart = field(default_factory=Autostart)
    limits: Limits = field(default_factory=Limits)
    security: Security = field(default_factory=Security)
    devices: tuple[HostDevice, ...] = ()
    #: The state ``lxcvirt apply`` brings the container to; not part of the XML.
    state: str = "running"
    #: The inventory hosts ``lxcvirt apply`` puts the container on (empty: every selected
    #: host); not part of the XML.
    hosts: tuple[str, ...] = ()
    #: The project the container belongs to, written into lxcvirt's metadata by ``apply``
    #: (which sets it); ``apply --prune`` removes only containers of its own project.
    project: str | None = None

    def __post_init__(self) -> None:
        check_name(self.name)
        if not isinstance(self.init, Init):
            raise SpecError("init", "expected an Init")
        object.__setattr__(self, "memory", _size("memory", self.memory, minimum=1024))
        _check_int("vcpu", self.vcpu, minimum=1)
        if self.uuid is not None:
            try:
                object.__setattr__(self, "uuid", str(_uuid.UUID(str(self.uuid))))
            except ValueError as exc:
                raise SpecError("uuid", f"not a UUID: {self.uuid!r}") from exc
        if self.description is not None:
            _check_str("description", self.description, allow_empty=True)
        if self.emulator is not None:
            _check_path("emulator", self.emulator)
        _check_choice("on_poweroff", self.on_poweroff, LIFECYCLE_ACTIONS)
        _check_choice("on_reboot", self.on_reboot, LIFECYCLE_ACTIONS)
        _check_choice("on_crash", self.on_crash, CRASH_ACTIONS)
        _check_choice("state", self.state, STATES)
        hosts = _tuple("hosts", self.hosts)
        for h in hosts:
            if not isinstance(h, str) or not _GROUP.match(h):
                raise SpecError("hosts", f"{h!r}: host names are letters, digits and _.:@+-")
        if len(set(hosts)) != len(hosts):
            raise SpecError("hosts", "a host is listed twice")
        object.__setattr__(self, "hosts", hosts)
        if self.project is not None:
            check_project(self.project)
        fss = _tuple("filesystems", self.filesystems)
        seen: set[str] = set()
        for fs in fss:
            if not isinstance(fs, Filesystem):
                raise SpecError("filesystems", "expected Filesystem items")
            target = fs.target.rstrip("/") or "/"
            if target in seen:
                raise SpecError(
                    f"filesystem[{fs.target}].target",
                    f"two filesystems mount on {target}; each target may be used once",
                )
            seen.add(target)
        object.__setattr__(self, "filesystems", fss)
        ifs = _tuple("interfaces", self.interfaces)
        for itf in ifs:
            if not isinstance(itf, Interface):
                raise SpecError("interfaces", "expected Interface items")
        macs = [i.mac for i in ifs if i.mac]
        if len(set(macs)) != len(macs):
            raise SpecError("interfaces", "two interfaces have the same MAC address")
        guests = [i.guest for i in ifs if i.guest]
        if len(set(guests)) != len(guests):
            raise SpecError("interfaces", "two interfaces have the same guest device name")
        object.__setattr__(self, "interfaces", ifs)
        _check_bool("host_network", self.host_network)
        if self.host_network and ifs:
            raise SpecError(
                "host_network", "a container sharing the host's network has no interfaces of "
                "its own; remove the [[interface]] tables or host_network"
            )
        if not isinstance(self.console, Console):
            raise SpecError("console", "expected a Console")
        if self.idmap is not None and not isinstance(self.idmap, IdMap):
            raise SpecError("idmap", "expected an IdMap")
        if not isinstance(self.autostart, Autostart):
            raise SpecError("autostart", "expected an Autostart")
        devices = _tuple("devices", self.devices)
        for d in devices:
            if not isinstance(d, HostDevice):
                raise SpecError("devices", "expected HostDevice items")
        if len({d.path for d in devices}) != len(devices):
            raise SpecError("devices", "a device is listed twice")
        object.__setattr__(self, "devices", devices)
        if not isinstance(self.limits, Limits):
            raise SpecError("limits", "expected a Limits")
        if not isinstance(self.security, Security):
            raise SpecError("security", "expected a Security")

    @property
    def memory_kib(self) -> int:
        return int(self.memory)

    @property
    def privnet(self) -> bool:
        """True when the domain needs ``<features><privnet/>``: no interface gives it a
        network namespace, and it does not share the host's."""
        return not self.interfaces and not self.host_network

    @property
    def root(self) -> Filesystem | None:
        """The private root filesystem (the mount whose target is ``/``), if any."""
        return next((f for f in self.filesystems if f.target == "/"), None)


def spec_fields(cls: type) -> list[str]:
    """Names of the dataclass fields of ``cls`` (used by the coverage test of golden files)."""
    return [f.name for f in fields(cls)]
