"""The controller: a :class:`Host` bound to one libvirt URI defines, starts, stops, reboots
and undefines containers, and says what state they are in.

Everything goes through libvirt-python and its errors through :mod:`lxcvirt._libvirt`;
waits use lifecycle events (:mod:`._events`), never fixed sleeps.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import libvirt

from .. import _libvirt
from .._libvirt import Domain
from .._proc import init_ipv4, oom_kills
from .._xml import parse_xml
from ..errors import (
    AlreadyExists,
    DaemonUnreachable,
    InvalidState,
    NotFound,
    Refused,
    StartFailed,
    XMLError,
)
from ..metadata import is_managed, read_autostart, read_project
from . import _starting, _stopping
from ._domain import destroy_domain, leased_ipv4, lost_monitor, resume_domain
from ._events import LifecycleWatch
from ._status import (
    DefineResult,
    RebootResult,
    Status,
    StopResult,
    reason_name,
    state_name,
)
from ._tuning import read_config_limits

#: Seconds :meth:`Host.start` keeps watching after RUNNING (the CLI's ``--settle`` default).
#: libvirt's create() returns once init is exec'd; an init that exits at once is reaped
#: ~0.2 s later here, so without this window a dead container would be reported running.
DEFAULT_SETTLE = 0.5
LOCAL_HOSTS = {"", "localhost", "127.0.0.1", "::1", "[::1]"}
#: How often :meth:`Host.start` starts a container again whose controller libvirtd lost.
MONITOR_RETRIES = 1
#: Seconds a command that lost libvirtd waits for it to answer again (it restarts) before
#: it says a container's state is unknown (:func:`running_when_back`).
RECONNECT_WAIT = 10.0

if TYPE_CHECKING:
    # Defining needs these; listing and status do not, so they load on first define.
    from ..spec import Container
    from ..validate import Checked

PreflightHook = Callable[["Host"], None]


class Host:
    """Containers on one libvirt URI.

    ``preflight`` runs before the first start in this object's life (host checks hook in
    there); pass ``check=False`` to :meth:`start` to skip it.
    """

    def __init__(
        self,
        uri: str | None = None,
        *,
        conn: Any = None,
        preflight: PreflightHook | None = None,
    ) -> None:
        self.uri = uri or _libvirt.default_uri()
        # A connection given by the caller is wrapped like ours: no libvirtError gets out.
        if conn is not None and not isinstance(conn, _libvirt.Conn):
            conn = _libvirt.Conn(conn, self.uri)
        self._conn: _libvirt.Conn | None = conn
        # Resolved at the first start: the checks module is not needed to list or define.
        self._preflight = preflight
        self._preflight_done = False
        self._lock = threading.Lock()
        self._emulator: str | None = None
        self._arches: set[str] | None = None

    # --- connection -----------------------------------------------------------------

    @property
    def conn(self) -> _libvirt.Conn:
        """The connection, opened on first use, and opened again when the daemon went
        away since (a restarted libvirtd answers a new connection)."""
        with self._lock:
            if self._conn is not None and not self._conn.alive():
                self._conn.close()
                self._conn = None
            if self._conn is None:
                self._conn = _libvirt.open_connection(self.uri)
            return self._conn

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                with _libvirt.ignored():
                    self._conn.close()
                self._conn = None

    def __enter__(self) -> Host:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def is_local(self) -> bool:
        """True when the daemon runs on this machine (its log files are readable here)."""
        return (urlparse(self.uri).hostname or "") in LOCAL_HOSTS

    @property
    def passes_fds(self) -> bool:
        """True when the connection is a unix socket, which alone can pass the file
        descriptors lxcOpenNamespace returns (over TCP/TLS/SSH the call fails, and libvirt
        then closes the connection)."""
        parsed = urlparse(self.uri)
        transport = parsed.scheme.partition("+")[2]
        return transport == "unix" or (not transport and not parsed.hostname)

    def emulator(self) -> str:
        """The LXC emulator the host's capabilities name."""
        if self._emulator is None:
            self._emulator = _libvirt.lxc_emulator(self.conn, self.uri)
        assert self._emulator is not None
        return self._emulator

    def arches(self) -> set[str]:
        """The architectures the host runs containers of (its capabilities' LXC guests)."""
        if self._arches is None:
            self._arches = set(_libvirt.lxc_guests(self.conn))
        return self._arches

    # --- lookups --------------------------------------------------------------------

    def domain(self, name: str) -> Domain:
        """The libvirt domain called ``name`` (or with that UUID)."""
        conn: _libvirt.Connection = self.conn
        with contextlib.suppress(NotFound):
            return _libvirt.call(f"looking up {name}", conn.lookupByName, name)
        if re.fullmatch(r"[0-9a-fA-F-]{32,36}", name):
            with _libvirt.ignored():
                return conn.lookupByUUIDString(name)
        raise NotFound(f"no container named {name!r} on {self.uri}",
                       hint="`lxcvirt list --all` shows the defined ones")

    def exists(self, name: str) -> bool:
        try:
            self.domain(name)
        except NotFound:
            return False
        return True

    def status_of(self, dom: Domain, persistent: bool | None = None) -> Status:
        # Three calls to the daemon per container (state, info, XML); the id is kept in the
        # domain handle and "active" follows from the state.  list() passes ``persistent``.
        with _libvirt.converted(f"reading the state of {dom.name()}"):
            state, reason = dom.state()
            info = dom.info()
            xml = dom.XMLDesc(0)
            if persistent is None:
                persistent = bool(dom.isPersistent())
        dom_id = dom.ID()
        # Another tool's (or a hand-made) definition may be unreadable for us: it is
        # reported as such, never an error for the whole listing.
        problem = None
        autostart = None
        project = None
        try:
            root = parse_xml(xml, dom.name())
        except XMLError as exc:
            root, problem = None, f"its domain XML cannot be read: {exc}"
        if root is not None:
            try:
                autostart = read_autostart(root)
            except XMLError as exc:
                problem = str(exc)
            project = read_project(root)
        ipv4: tuple[str, ...] = ()
        if state == libvirt.VIR_DOMAIN_RUNNING and root is not None and root.find(
            "devices/interface[@type='network']"
        ) is not None:
            ipv4 = leased_ipv4(dom)
            # dnsmasq keeps a lease (an hour) across restarts of the same MAC: on a local
            # daemon show only what the container has really configured by now.
            configured = init_ipv4(dom_id) if self.is_local and dom_id > 0 else None
            if configured is not None:
                ipv4 = tuple(ip for ip in ipv4 if ip in configured)
        return Status(
            name=dom.name(),
            uuid=dom.UUIDString(),
            state=state_name(state),
            reason=reason_name(state, reason),
            id=dom_id if state != libvirt.VIR_DOMAIN_SHUTOFF and dom_id >= 0 else None,
            memory_kib=int(info[2]),
            max_memory_kib=int(info[1]),
            vcpus=int(info[3]),
            persistent=persistent,
            managed=root is not None and is_managed(root),
            autostart=autostart,
            ipv4=ipv4,
            problem=problem,
            restart_needed=self._restart_needed(dom, xml, state, persistent, root),
            project=project,
            limits={} if root is None else {
                k: v for k, v in read_config_limits(root).items() if v is not None},
            cpuset=None if root is None or root.find("vcpu") is None
            else root.find("vcpu").get("cpuset"),
            cpu_time_ns=int(info[4]),
            libvirt_autostart=self._libvirt_autostart(dom, persistent),
            monitor_lost=self._lost(dom, dom_id, state, ask=False),
        )

    def _lost(self, dom: Domain, dom_id: int, state: int, *, ask: bool) -> str | None:
        if not self.is_local or dom_id <= 0 or state not in (libvirt.VIR_DOMAIN_RUNNING,
                                                              libvirt.VIR_DOMAIN_PAUSED):
            return None
        # Asking libvirt means lxcOpenNamespace: over TCP/TLS/SSH it closes the connection.
        lost = lost_monitor(dom, ask=ask and self.passes_fds)
        return None if lost is None else lost[1]

    @staticmethod
    def _libvirt_autostart(dom: Domain, persistent: bool) -> bool | None:
        if not persistent:
            return False  # a transient domain has no autostart flag
        with _libvirt.ignored():
            return bool(dom.autostart())
        return None

    def _restart_needed(self, dom: Domain, live: str, state: int, persistent: bool,
                        root: Any) -> bool:
        """Redefined since it started: the stored definition is not the running one."""
        if root is None or not persistent or state not in (libvirt.VIR_DOMAIN_RUNNING,
                                                          libvirt.VIR_DOMAIN_PAUSED):
            return False
        from ._definitions import runs_old_definition

        try:
            stored = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
            return runs_old_definition(live, stored)
        except (XMLError, NotFound):
            return False

    def status(self, name: str, *, monitor: bool = False) -> Status:
        """One container's status; on a local daemon also its OOM kills, and with
        ``monitor`` whether libvirtd has lost its monitor even while the controller runs
        (asked of libvirt: one call more; list() sees only a controller that exited)."""
        dom = self.domain(name)
        st = self.status_of(dom)
        if st.id is not None and self.is_local:
            lost = st.monitor_lost
            if lost is None and monitor:
                with _libvirt.converted(f"reading the state of {name}"):
                    lost = self._lost(dom, st.id, dom.state()[0], ask=True)
            st = replace(st, oom_kills=oom_kills(st.id), monitor_lost=lost)
        return st

    def list(self, *, all: bool = True) -> list[Status]:
        flags = 0 if all else libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE
        doms = _libvirt.call("listing containers", self.conn.listAllDomains, flags)
        # One call for every container's persistence instead of one per container.
        persistent = {
            d.UUIDString()
            for d in _libvirt.call(
                "listing containers",
                self.conn.listAllDomains,
                flags | libvirt.VIR_CONNECT_LIST_DOMAINS_PERSISTENT,
            )
        }
        out = []
        for dom in doms:
            try:
                out.append(self.status_of(dom, dom.UUIDString() in persistent))
            except NotFound:
                continue  # undefined while we looked
        return sorted(out, key=lambda s: s.name)

    def dumpxml(self, name: str, *, inactive: bool = False) -> str:
        flags = libvirt.VIR_DOMAIN_XML_INACTIVE if inactive else 0
        return str(_libvirt.call(f"reading the XML of {name}", self.domain(name).XMLDesc, flags))

    # --- define ---------------------------------------------------------------------

    def prepare(self, source: Container | str | Path, *, host_emulator: bool = False) -> Checked:
        """Turn a spec, a spec/XML file or XML text into validated domain XML for this host.

        Nothing is sent to libvirt; an emulator the host does not have is refused here
        (or rewritten to the host's with ``host_emulator``).
        """
        from ..spec import Container
        from ..validate import is_spec_path, read_xml_file

        if isinstance(source, Path) or (
            isinstance(source, str) and not source.lstrip().startswith("<")
        ):
            path = Path(source)
            if is_spec_path(path):
                from ..load import load_spec

                return self.prepare(load_spec(path), host_emulator=host_emulator)
            return self._prepare_xml(read_xml_file(path), str(path), host_emulator)
        if isinstance(source, Container):
            from ..rendering import render

            spec = source
            if spec.uuid is None:
                # A container defined before (by hand, or by another spec) keeps its UUID:
                # libvirt refuses a redefinition under the same name with another one.
                with contextlib.suppress(NotFound):
                    spec = replace(spec, uuid=self.domain(spec.name).UUIDString())
            return self._prepare_xml(
                render(spec, emulator=self.emulator()), f"spec {spec.name}", host_emulator
            )
        return self._prepare_xml(source, "<xml>", host_emulator)

    def _prepare_xml(self, data: str | bytes, source: str, host_emulator: bool) -> Checked:
        from ..validate import check_domain_xml

        checked = check_domain_xml(data, source)
        os_type = checked.root.find("os/type")
        arch = os_type.get("arch") if os_type is not None else None
        if arch and arch not in self.arches():
            raise Refused(f"{source}: <type arch='{arch}'>: {self.uri} runs containers of "
                          f"{', '.join(sorted(self.arches())) or 'no architecture'} only "
                          "(drop arch, or define it on a host of that architecture)")
        emu = checked.root.find("devices/emulator")
        if emu is not None and (emu.text or "").strip() != self.emulator():
            given = (emu.text or "").strip()
            if not host_emulator:
                raise Refused(
                    f"{source}: emulator {given} is not this host's; the LXC emulator on "
                    f"{self.uri} is {self.emulator()} (fix <emulator>)",
                    hint="or pass --host-emulator to rewrite it",
                )
            from lxml import etree

            emu.text = self.emulator()
            xml = etree.tostring(checked.root, encoding="unicode")
            checked = check_domain_xml(xml, source)
        return checked

    def define(
        self, source: Container | str | Path, *, host_emulator: bool = False
    ) -> DefineResult:
        """Define (or redefine) a container; validate first, report what changed.

        A definition libvirt refuses leaves the previous one as it was: libvirt replaces
        the stored config only once the new one is accepted.
        """
        return self._define(self.prepare(source, host_emulator=host_emulator))

    def _define(self, checked: Checked) -> DefineResult:
        """Define what :meth:`prepare` made of a source."""
        from ..validate import check_domain_xml
        from ._definitions import definition_diff, keep_generated

        name = checked.name
        before: str | None = None
        active = False
        try:
            dom = self.domain(name)
            before = self.dumpxml(name, inactive=True)
            active = bool(dom.isActive())
        except NotFound:
            pass
        if before is not None and keep_generated(checked.root, before):
            from lxml import etree

            checked = check_domain_xml(
                etree.tostring(checked.root, encoding="unicode"), checked.source
            )
        try:
            dom = _libvirt.call(f"defining {name}", self.conn.defineXML, checked.xml)
        except AlreadyExists as exc:
            # libvirt refuses a definition whose name or uuid belongs to another domain
            # (or to this one under another uuid); the stored one is untouched.
            raise AlreadyExists(
                f"{exc}; the existing definition is unchanged (drop <uuid> from the XML, or "
                "use the stored one)",
                code=exc.code,
                hint=f"`lxcvirt dumpxml {name}` shows it",
            ) from exc
        except Refused as exc:
            raise Refused(
                f"{exc}; the existing definition is unchanged", code=exc.code
            ) from exc
        after = str(
            _libvirt.call(f"reading back {name}", dom.XMLDesc, libvirt.VIR_DOMAIN_XML_INACTIVE)
        )
        if before is None:
            return DefineResult(name, "created")
        if before == after:
            return DefineResult(name, "unchanged")
        return DefineResult(
            name, "redefined", definition_diff(name, before, after), restart_needed=active
        )

    # --- start / stop ---------------------------------------------------------------

    def preflight(self) -> None:
        """Run the host's required checks, once per Host."""
        if not self._preflight_done:
            if self._preflight is None:
                self._preflight = default_preflight()
            self._preflight(self)
            self._preflight_done = True

    def _monitor_lost(self, name: str) -> bool:
        return _starting.monitor_lost(self, name)

    def log_tail(self, name: str, lines: int = 15) -> str:
        """The end of the container's libvirt log from its last start (local daemons)."""
        return _starting.log_tail(self, name, lines)

    def start_blocker(self, root: Any, name: str) -> str | None:
        """Why the domain ``root`` (parsed XML) cannot start, seen before libvirt is
        asked; None when nothing is (see :func:`._starting.start_blocker`)."""
        return _starting.start_blocker(self, root, name)

    def start(self, name: str, *, check: bool = True, settle: float = DEFAULT_SETTLE,
              timeout: float = 30.0) -> Status:
        """Start a defined container and wait until it is RUNNING.

        ``settle`` seconds more are watched for an init that exits at once (libvirt's
        create() returns as soon as init is exec'd); pass 0 to return at RUNNING.  A
        container that dies during start raises :class:`StartFailed` with the tail of its
        log; it is left shut off.
        """
        if check:
            self.preflight()
        dom = self.domain(name)
        if _libvirt.call(f"reading the state of {name}", dom.isActive):
            if dom.state()[0] == libvirt.VIR_DOMAIN_PAUSED:
                # Suspended (frozen): starting it means letting it run again, as lxc-start
                # does not but users expect (virsh start refuses; virsh resume it is).
                resume_domain(self.conn, dom, name, timeout)
                return self.status_of(dom)
            raise InvalidState(f"{name} is already running", hint=f"`lxcvirt stop {name}` first")
        with _libvirt.converted(f"reading the XML of {name}"):
            xml = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
        blocker = self.start_blocker(parse_xml(xml, name), name)
        if blocker is not None:
            raise StartFailed(f"{name} cannot start: {blocker}")
        tries = MONITOR_RETRIES + 1
        with _RESTARTED_LOCK:
            RETRIES[(self.uri, name)] = 0
        for _ in range(tries):
            if self._start_once(dom, name, settle, timeout):
                return self.status_of(dom)
            # Destroyed to be started again: its death so far is not the new one's.
            with _RESTARTED_LOCK:
                RESTARTED[(self.uri, name)] = time.monotonic()
                RETRIES[(self.uri, name)] += 1
        raise StartFailed(
            f"{name} started, but libvirt did not learn its init pid (its monitor lost the "
            f"container's controller, {tries} times), so it could not be stopped "
            "gracefully nor entered; destroyed it: start it again",
            log_tail=self.log_tail(name),
        )

    def _start_once(self, dom: Domain, name: str, settle: float, timeout: float) -> bool:
        return _starting.start_once(self, dom, name, settle, timeout)

    def create(
        self, source: Container | str | Path, *, host_emulator: bool = False, **start: Any
    ) -> tuple[DefineResult, Status]:
        """Define, then start.  What would stop the start (a missing root or network) is
        refused before anything is defined."""
        checked = self.prepare(source, host_emulator=host_emulator)
        blocker = self.start_blocker(checked.root, checked.name)
        if blocker is not None:
            raise StartFailed(f"{checked.name} cannot start: {blocker}; nothing was defined")
        result = self._define(checked)
        return result, self.start(result.name, **start)

    def stop(self, name: str, *, timeout: float = 30.0, mode: str | None = None,
             before_asking: Callable[[], None] | None = None) -> StopResult:
        """Graceful shutdown; destroy when the container is still up after ``timeout``.

        How init is asked (``mode``, else the spec's ``init.halt``, else "auto") is
        explained in :mod:`lxcvirt._initsignals`: SIGRTMIN+3 for systemd, initctl and
        SIGTERM for other inits.  ``before_asking`` is called once everything is ready,
        right before init is asked (``stop --all`` lines up the stops of a level there).
        """
        return _stopping.stop(self, name, timeout=timeout, mode=mode,
                              before_asking=before_asking)

    def reboot(self, name: str, *, timeout: float = 60.0, mode: str | None = None) -> RebootResult:
        """Reboot the system inside: a new init, the container running again.

        systemd is asked with SIGRTMIN+5 and libvirt restarts the container when it has
        gone down (``on_reboot = restart``); an init that knows no reboot request is
        stopped gracefully and started again (method ``restart``).
        """
        return _stopping.reboot(self, name, timeout=timeout, mode=mode)

    def restart(self, name: str, *, timeout: float = 30.0, mode: str | None = None,
                check: bool = True, settle: float = DEFAULT_SETTLE) -> RebootResult:
        """Stop gracefully (destroy after ``timeout``), then start: a new instance that
        runs the stored definition (what "restart needed" asks for)."""
        began = time.monotonic()
        dom = self.domain(name)
        if not dom.isActive():
            raise InvalidState(f"{name} is not running (nothing to restart)",
                               hint=f"`lxcvirt start {name}`")
        stopped = self.stop(name, timeout=timeout, mode=mode)
        status = self.start(name, check=check, settle=settle)
        how = "restarted" if stopped.how == "shut down" else f"restarted ({stopped.how})"
        return RebootResult(name, how, time.monotonic() - began, stopped.method, status)

    def suspend(self, name: str, *, timeout: float = 10.0) -> Status:
        """Freeze every process of a running container (the freezer cgroup); it keeps its
        memory and stays "paused" until :meth:`resume`.  Already paused: nothing to do."""
        dom = self.domain(name)
        state = dom.state()[0]
        if state == libvirt.VIR_DOMAIN_PAUSED:
            return self.status_of(dom)
        if state != libvirt.VIR_DOMAIN_RUNNING:
            raise InvalidState(f"{name} is not running (nothing to suspend)")
        with LifecycleWatch(self.conn, dom) as watch:
            _libvirt.call(f"suspending {name}", dom.suspend)
            watch.wait_for({libvirt.VIR_DOMAIN_EVENT_SUSPENDED}, timeout,
                           lambda: dom.state()[0] == libvirt.VIR_DOMAIN_PAUSED)
        return self.status_of(dom)

    def resume(self, name: str, *, timeout: float = 10.0) -> Status:
        """Thaw a suspended container.  Already running: nothing to do."""
        dom = self.domain(name)
        state = dom.state()[0]
        if state == libvirt.VIR_DOMAIN_RUNNING:
            return self.status_of(dom)
        if state != libvirt.VIR_DOMAIN_PAUSED:
            raise InvalidState(f"{name} is not suspended (it is {state_name(state)})")
        resume_domain(self.conn, dom, name, timeout)
        return self.status_of(dom)

    def _destroy(self, dom: Domain, name: str) -> None:
        destroy_domain(dom, name)

    def destroy(self, name: str) -> StopResult:
        """Stop at once (libvirt sends SIGTERM, then SIGKILL)."""
        began = time.monotonic()
        dom = self.domain(name)
        if not dom.isActive():
            raise InvalidState(f"{name} is not running (nothing to destroy)")
        self._destroy(dom, name)
        return StopResult(name, "destroyed", time.monotonic() - began)

    def undefine(self, name: str, *, force: bool = False, timeout: float = 30.0) -> None:
        """Remove a container's definition; a running one only with ``force`` (stopped first)."""
        dom = self.domain(name)
        if dom.isActive():
            if not force:
                raise InvalidState(f"{name} is running; stop it first",
                                   hint="or undefine with --force")
            self.stop(name, timeout=timeout)
        if dom.isPersistent():
            _libvirt.call(f"undefining {name}", dom.undefine)


#: (uri, name) -> when start() last destroyed a container whose monitor libvirtd lost, to
#: start it again (monotonic): a watch of its start counts deaths from then on only.
RESTARTED: dict[tuple[str, str], float] = {}
_RESTARTED_LOCK = threading.Lock()


#: (uri, name) -> how many times the last start() started it again after a lost monitor.
RETRIES: dict[tuple[str, str], int] = {}


def start_retries(uri: str, name: str) -> str:
    """What to say of the last start of ``name`` when it was started again after libvirtd
    lost its monitor ("" when it was not)."""
    with _RESTARTED_LOCK:
        n = RETRIES.get((uri, name), 0)
    if not n:
        return ""
    return (f"started again ({n} time{'s' if n > 1 else ''}): libvirtd had lost its monitor "
            "connection to the first one's controller")


def deaths_since(uri: str, name: str, since: float) -> float:
    """``since``, or later when start() restarted ``name`` after it (see RESTARTED)."""
    with _RESTARTED_LOCK:
        return max(since, RESTARTED.get((uri, name), since))


def running_when_back(uri: str, name: str, deadline: float) -> bool | None:
    """Whether ``name`` runs, asked on a new connection once the daemon at ``uri`` answers
    again (a libvirtd that died mid-command and was restarted); None when it does not
    answer before ``deadline`` (time.monotonic())."""
    while True:
        try:
            with Host(uri, preflight=lambda _h: None) as fresh:
                return fresh.status(name).running
        except NotFound:
            # A libvirtd that has just started answers before it has loaded its domains:
            # "no such container" is only believed at the deadline.
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.2)
        except DaemonUnreachable:
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.2)


def default_preflight() -> PreflightHook:
    """The required host checks (:func:`lxcvirt.checks.enforce`).

    Imported here, at the first start, not with this module: the checks sit below the
    controller (they know :class:`Host` only as a type), and listing or defining
    containers does not need them.
    """
    from ..checks import enforce

    return enforce
