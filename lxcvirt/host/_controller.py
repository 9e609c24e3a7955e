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
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import libvirt

from .. import _libvirt
from .._initsignals import Plan, check_method, halt_plan, listens, reboot_plan
from .._libvirt import Domain
from .._proc import init_ipv4, init_listens
from .._xml import parse_xml
from ..errors import (
    AlreadyExists,
    DaemonUnreachable,
    InvalidState,
    LibvirtError,
    LxcvirtError,
    NotFound,
    Refused,
    SpecError,
    StartFailed,
    XMLError,
)
from ..metadata import is_managed, read_autostart, read_init_methods
from ._domain import dom_init, leased_ipv4, wait_init_known
from ._events import LifecycleWatch
from ._status import (
    DefineResult,
    RebootResult,
    Status,
    StopResult,
    reason_name,
    state_name,
)

LXC_LOG_DIR = Path("/var/log/libvirt/lxc")
#: Seconds :meth:`Host.start` keeps watching after RUNNING (the CLI's ``--settle`` default).
#: libvirt's create() returns once init is exec'd; an init that exits at once is reaped
#: ~0.2 s later here, so without this window a dead container would be reported running.
DEFAULT_SETTLE = 0.5
LOCAL_HOSTS = {"", "localhost", "127.0.0.1", "::1", "[::1]"}
#: Seconds a halt whose init kind was not knowable (remote daemons) waits for the requests
#: that do not disturb systemd before SIGTERM follows.
LATER_GRACE = 5.0
#: How often :meth:`Host.stop` looks whether an init now listens for a signal it missed.
UNHEARD_POLL = 0.1
#: How often :meth:`Host.start` starts a container again whose controller libvirtd lost.
MONITOR_RETRIES = 1

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

    def _status_of(self, dom: Domain, persistent: bool | None = None) -> Status:
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
        try:
            root = parse_xml(xml, dom.name())
        except XMLError as exc:
            root, problem = None, f"its domain XML cannot be read: {exc}"
        if root is not None:
            try:
                autostart = read_autostart(root)
            except XMLError as exc:
                problem = str(exc)
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
        )

    def status(self, name: str) -> Status:
        return self._status_of(self.domain(name))

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
                out.append(self._status_of(dom, dom.UUIDString() in persistent))
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
        """libvirtd dropped its monitor connection to the controller of this start: the
        controller logs "End of file while reading data" (local daemons only)."""
        return "End of file while reading data" in self.log_tail(name, lines=50)

    def log_tail(self, name: str, lines: int = 15) -> str:
        """The end of the container's libvirt log from its last start (local daemons)."""
        if not self.is_local:
            return ""
        try:
            text = (LXC_LOG_DIR / f"{name}.log").read_text(errors="replace")
        except OSError:
            return ""
        # Each start appends; keep only what the last one wrote.
        last = text.rfind(": starting up")
        if last >= 0:
            text = text[text.rfind("\n", 0, last) + 1 :]
        tail = [ln for ln in text.splitlines() if ln.strip() and " info : " not in ln][-lines:]
        return "\n".join(tail)

    def start_blocker(self, root: Any, name: str) -> str | None:
        """Why the domain ``root`` (parsed XML) cannot start, seen before libvirt is
        asked; None when nothing is.

        libvirt would create a missing root directory on the host (with dev/, proc/, sys/,
        .oldroot/ in it) and then fail to find init there; a missing or inactive network
        fails the start with a message that does not say what to do.
        """
        for fs in root.findall("devices/filesystem") if self.is_local else ():
            src, tgt = fs.find("source"), fs.find("target")
            if src is None or tgt is None or (fs.get("type") or "mount") != "mount":
                continue
            sdir = src.get("dir")
            if sdir and not Path(sdir).exists():
                tdir = tgt.get("dir") or "?"
                what = "root filesystem" if tdir.rstrip("/") == "" else f"mount for {tdir}"
                return (f"the {what} source {sdir} does not exist on the host (create it, "
                        "or fix <source dir> and redefine)")
        for iface in root.findall("devices/interface"):
            src = iface.find("source")
            if src is None:
                continue
            if iface.get("type") == "network" and src.get("network"):
                net = src.get("network")
                try:
                    active = _libvirt.call(
                        f"reading network {net}",
                        lambda n=net: self.conn.networkLookupByName(n).isActive(),
                    )
                except NotFound:
                    return (f"its interface is on the libvirt network {net!r}, which is not "
                            f"defined on {self.uri}: define it (virsh net-define), or "
                            "change the interface's source")
                if not active:
                    return (f"its interface is on the libvirt network {net!r}, which is not "
                            f"active: `virsh -c {self.uri} net-start {net}` (and "
                            f"`net-autostart {net}` to keep it so)")
            elif iface.get("type") == "bridge" and src.get("bridge") and self.is_local:
                bridge = src.get("bridge")
                if not Path(f"/sys/class/net/{bridge}/bridge").is_dir():
                    return (f"its interface is on the host bridge {bridge!r}, which does not "
                            f"exist on this host: create it (ip link add {bridge} type bridge)")
        return None

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
            raise InvalidState(f"{name} is already running", hint=f"`lxcvirt stop {name}` first")
        with _libvirt.converted(f"reading the XML of {name}"):
            xml = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
        blocker = self.start_blocker(parse_xml(xml, name), name)
        if blocker is not None:
            raise StartFailed(f"{name} cannot start: {blocker}")
        tries = MONITOR_RETRIES + 1
        for _ in range(tries):
            if self._start_once(dom, name, settle, timeout):
                return self._status_of(dom)
        raise StartFailed(
            f"{name} started, but libvirt did not learn its init pid (its monitor lost the "
            f"container's controller, {tries} times), so it could not be stopped "
            "gracefully nor entered; destroyed it: start it again",
            log_tail=self.log_tail(name),
        )

    def _start_once(self, dom: Domain, name: str, settle: float, timeout: float) -> bool:
        """One create() and the waits after it; False when libvirtd lost the container's
        controller (it was destroyed again), StartFailed for every other failure."""
        with LifecycleWatch(self.conn, dom) as watch:
            try:
                _libvirt.call("", dom.create)
            except (NotFound, InvalidState, DaemonUnreachable):
                raise
            except LibvirtError as exc:
                msg = re.sub(r"^internal error: (Timed out while reading log output: )?", "",
                             exc.message).strip()
                msg = re.sub(r"^Failure in libvirt_lxc startup: ", "", msg)
                hint = ""
                if "cannot find init path" in msg:
                    hint = " (the path is inside the container's root; fix <init>, then redefine)"
                raise StartFailed(
                    f"{name} failed to start: {msg}{hint}",
                    log_tail=self.log_tail(name),
                    code=exc.code,
                ) from exc

            def running() -> bool:
                return bool(dom.state()[0] == libvirt.VIR_DOMAIN_RUNNING)

            def stopped() -> bool:
                return not dom.isActive()

            stopped_events = {libvirt.VIR_DOMAIN_EVENT_STOPPED, libvirt.VIR_DOMAIN_EVENT_CRASHED}
            began = time.monotonic()
            if not stopped():
                watch.wait_for({libvirt.VIR_DOMAIN_EVENT_STARTED}, timeout, running)
            if settle > 0 and not stopped():
                watch.wait_for(stopped_events, settle, stopped)
            if running() and self.passes_fds and not wait_init_known(
                dom, began + timeout, lambda: self._monitor_lost(name)
            ):
                # Seen with 20 starts in parallel (now and then in a test run): libvirtd
                # dropped its monitor connection to the controller ("End of file while
                # reading data" in the container's log) and never learns the init pid.
                # Such a container cannot be shut down gracefully nor entered: destroy
                # it (start() starts it once more).
                self._destroy(dom, name)
                return False
            if stopped():
                init = dom_init(dom)
                raise StartFailed(
                    f"{name} stopped right after it started: its init{init} exited "
                    f"(shut off: {reason_name(*dom.state())}); an init must keep running "
                    "for the container to stay up",
                    log_tail=self.log_tail(name),
                )
            if not running():
                # Leave it shut off, as a failed start should.
                self._destroy(dom, name)
                raise StartFailed(
                    f"{name} did not reach RUNNING within {timeout:g} s; destroyed it",
                    log_tail=self.log_tail(name),
                )
        return True

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

    def _init_plan(self, dom: Domain, method: str | None, *, reboot: bool) -> Plan:
        """How to ask this container's init to halt (or reboot): the ``method`` given, or
        the one its definition stores, resolved against what the running init listens for
        (readable on a local daemon only)."""
        if method is None:
            with _libvirt.converted(f"reading the XML of {dom.name()}"):
                xml = dom.XMLDesc(0)
            halt, rebooting = read_init_methods(parse_xml(xml, dom.name()))
            method = rebooting if reboot else halt
        else:
            try:
                method = check_method(method, reboot=reboot)
            except ValueError as exc:
                raise SpecError("mode", str(exc)) from None
        listened = None
        if self.is_local:
            controller = dom.ID()
            if controller > 0:
                listened = init_listens(controller)
        return (reboot_plan if reboot else halt_plan)(method, listened)

    def _ask_init(self, dom: Domain, name: str, plan: Plan, signals: Sequence[int],
                  deadline: float) -> LxcvirtError | None:
        """Send ``plan``'s initctl request (when it has one) and ``signals`` to init.

        None when at least one went through; otherwise libvirt's refusal.  libvirt learns
        the init's pid from its controller after create() has returned ("Init process ID
        is not yet known"); under load that takes a while and no event says so: ask again.
        """
        while True:
            failures: list[LibvirtError] = []
            sent = 0
            doing = f"asking the init of {name}"
            if plan.initctl:
                try:
                    _libvirt.call(doing, dom.shutdownFlags, libvirt.VIR_DOMAIN_SHUTDOWN_INITCTL)
                    sent += 1
                except LibvirtError as exc:
                    failures.append(exc)
            for number in signals:
                try:
                    # libvirt's signal numbers are Linux's (RT0 is signal 32).
                    _libvirt.call(doing, dom.sendProcessSignal, 1, number, 0)
                    sent += 1
                except LibvirtError as exc:
                    failures.append(exc)
            if sent or not failures or not _libvirt.call(doing, dom.isActive):
                return None
            refused = failures[-1]
            if not isinstance(refused, (InvalidState, Refused)):
                raise refused
            if "not yet" not in refused.message or time.monotonic() >= deadline:
                return refused
            time.sleep(0.02)

    def stop(self, name: str, *, timeout: float = 30.0, mode: str | None = None) -> StopResult:
        """Graceful shutdown; destroy when the container is still up after ``timeout``.

        How init is asked (``mode``, else the spec's ``init.halt``, else "auto") is
        explained in :mod:`lxcvirt._initsignals`: SIGRTMIN+3 for systemd, initctl and
        SIGTERM for other inits.
        """
        began = time.monotonic()
        dom = self.domain(name)
        if not _libvirt.call(f"reading the state of {name}", dom.isActive):
            return StopResult(name, "already stopped")
        plan = self._init_plan(dom, mode, reboot=False)
        method = plan.describe()
        with LifecycleWatch(self.conn, dom) as watch:

            def stopped() -> bool:
                return not dom.isActive()

            # A signal the init does not handle yet is dropped by the kernel (a PID
            # namespace's init ignores unhandled signals from outside): a shell init
            # stopped right after it started may not have run its `trap` yet.  On a local
            # daemon, such signals are sent again once the init listens for them.
            unheard: list[int] = []

            def listening() -> int | None:
                return init_listens(dom.ID()) if self.is_local else None

            def resend_heard() -> bool:
                mask = listening()
                for number in [s for s in unheard if listens(mask, s)]:
                    unheard.remove(number)
                    with _libvirt.ignored():
                        dom.sendProcessSignal(1, number, 0)
                return stopped()

            def wait(seconds: float) -> bool:
                until = time.monotonic() + seconds
                events = {libvirt.VIR_DOMAIN_EVENT_STOPPED}
                while unheard:
                    left = until - time.monotonic()
                    if left <= 0:
                        return stopped()
                    if watch.wait_for(events, min(left, UNHEARD_POLL), resend_heard):
                        return True
                return watch.wait_for(events, max(0.0, until - time.monotonic()), stopped)

            def ask(signals: Sequence[int], initctl: bool) -> LxcvirtError | None:
                mask = listening()
                if mask is not None:
                    unheard.extend(s for s in signals if not listens(mask, s))
                return self._ask_init(dom, name, replace(plan, initctl=initctl), signals,
                                      deadline)

            deadline = began + timeout
            refused = ask(plan.signals, plan.initctl)
            if refused is None and plan.later:
                # The init's kind was not knowable: give the requests that do not disturb
                # systemd a while before SIGTERM, which would (it re-executes on SIGTERM).
                if wait(min(LATER_GRACE, timeout / 2)):
                    return StopResult(name, "shut down", time.monotonic() - began, method)
                ask(plan.later, False)
            if refused is None and wait(max(0.0, deadline - time.monotonic())):
                return StopResult(name, "shut down", time.monotonic() - began, method)
            if stopped():
                return StopResult(name, "shut down", time.monotonic() - began, method)
            self._destroy(dom, name)
            # "destroyed": libvirt refused the shutdown itself, so there was nothing to wait for.
            how = "destroyed" if refused is not None else "destroyed after timeout"
            return StopResult(name, how, time.monotonic() - began, method)

    def reboot(self, name: str, *, timeout: float = 60.0, mode: str | None = None) -> RebootResult:
        """Reboot the system inside: a new init, the container running again.

        systemd is asked with SIGRTMIN+5 and libvirt restarts the container when it has
        gone down (``on_reboot = restart``); an init that knows no reboot request is
        stopped gracefully and started again (method ``restart``).
        """
        began = time.monotonic()
        dom = self.domain(name)
        if not _libvirt.call(f"reading the state of {name}", dom.isActive):
            raise InvalidState(f"{name} is not running", hint=f"`lxcvirt start {name}`")
        plan = self._init_plan(dom, mode, reboot=True)
        if plan.restart:
            self.stop(name, timeout=timeout)
            self.start(name, check=False, timeout=timeout)
            return RebootResult(name, "restarted", time.monotonic() - began, plan.describe(),
                                self.status(name))
        old_id = dom.ID()
        uuid = dom.UUIDString()
        deadline = began + timeout

        conn: _libvirt.Connection = self.conn

        def current() -> Domain:
            # A domain handle caches its id: look it up again to see the new one.
            return conn.lookupByUUIDString(uuid)

        def back() -> bool:
            with _libvirt.ignored():  # not found for a moment while libvirt restarts it
                fresh = current()
                return bool(fresh.state()[0] == libvirt.VIR_DOMAIN_RUNNING
                            and fresh.ID() not in (-1, old_id))
            return False

        with LifecycleWatch(self.conn, dom) as watch:
            refused = self._ask_init(dom, name, plan, plan.signals, deadline)
            if refused is not None:
                raise refused
            if not watch.wait_for(set(), max(0.0, deadline - time.monotonic()), back):
                state = reason_name(*dom.state()) if dom.isActive() else "shut off"
                raise InvalidState(
                    f"{name} did not come back from its reboot within {timeout:g} s "
                    f"(now: {state}; on_reboot must be 'restart' for libvirt to start it again)"
                )
        fresh = current()
        if self.passes_fds:
            wait_init_known(fresh, deadline)
        return RebootResult(name, "rebooted", time.monotonic() - began, plan.describe(),
                            self._status_of(fresh))

    def _destroy(self, dom: Domain, name: str) -> None:
        try:
            _libvirt.call(f"destroying {name}", dom.destroy)
        except LibvirtError:
            if _libvirt.call(f"reading the state of {name}", dom.isActive):
                raise

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


def default_preflight() -> PreflightHook:
    """The required host checks (:func:`lxcvirt.checks.enforce`).

    Imported here, at the first start, not with this module: the checks sit below the
    controller (they know :class:`Host` only as a type), and listing or defining
    containers does not need them.
    """
    from ..checks import enforce

    return enforce
