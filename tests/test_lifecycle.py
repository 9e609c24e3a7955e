"""The controller (lxcvirt.host.Host) against the real libvirtd: define, start, stop,
destroy, undefine, status, list — and the ways a start fails."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from conftest import STUBBORN_INIT, URI, busybox_spec

from lxcvirt.errors import (
    AlreadyExists,
    InvalidState,
    NotFound,
    Refused,
    StartFailed,
    ValidationError,
)
from lxcvirt.host import DEFAULT_SETTLE
from lxcvirt.spec import Autostart

# Containers that are stopped gracefully start with the default settle: it also gives
# TERM_INIT's shell time to install its SIGTERM trap (a stop sent before that is ignored
# by PID 1 and ends in a destroy after the timeout).  settle=0 only where we destroy.


def leftovers(name: str) -> list[str]:
    """What a container leaves on the host while it runs: its libvirt_lxc controller
    process and its cgroups.  Empty once it is properly shut off."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(a.endswith(b"libvirt_lxc") for a in argv[:1]) and name.encode() in argv:
            found.append(f"controller pid {proc.name}")
    found += [str(d) for d in Path("/sys/fs/cgroup").glob(f"*/machine/*-{name}.libvirt-lxc")]
    found += [str(d) for d in Path("/sys/fs/cgroup").glob(f"*/machine.slice/*-{name}.scope")]
    return found


# --- start / stop / destroy / undefine --------------------------------------------------


def test_start_then_graceful_stop(host: Any, names: Any, busybox_root: Path) -> None:
    name = names("graceful")
    assert host.define(busybox_spec(name, busybox_root)).action == "created"
    status = host.start(name)
    assert status.running and status.reason == "booted"
    assert status.id is not None and status.id > 0
    assert leftovers(name)  # the check sees a running container
    result = host.stop(name)
    assert result.how == "shut down"
    after = host.status(name)
    assert (after.state, after.reason, after.id) == ("shut off", "shutdown", None)
    assert leftovers(name) == []


def test_stop_destroys_after_timeout(host: Any, names: Any, busybox_root: Path) -> None:
    name = names("stubborn")
    host.define(busybox_spec(name, busybox_root, init=STUBBORN_INIT))
    host.start(name, settle=0)
    result = host.stop(name, timeout=0.3)
    assert result.how == "destroyed after timeout"
    assert host.status(name).state == "shut off"
    assert leftovers(name) == []


def test_stop_of_stopped_is_success(host: Any, names: Any, busybox_root: Path) -> None:
    name = names("stopped")
    host.define(busybox_spec(name, busybox_root))
    assert host.stop(name).how == "already stopped"


def test_destroy_forces_and_refuses_a_stopped_one(
    host: Any, names: Any, busybox_root: Path
) -> None:
    name = names("destroy")
    host.define(busybox_spec(name, busybox_root))
    host.start(name, settle=0)
    assert host.destroy(name).how == "destroyed"
    status = host.status(name)
    assert (status.state, status.reason) == ("shut off", "destroyed")
    with pytest.raises(InvalidState, match="not running"):
        host.destroy(name)


def test_start_twice_is_invalid_state(host: Any, names: Any, busybox_root: Path) -> None:
    name = names("twice")
    host.define(busybox_spec(name, busybox_root))
    host.start(name)
    with pytest.raises(InvalidState, match="already running"):
        host.start(name)
    host.stop(name)


def test_undefine_refuses_running_unless_forced(
    host: Any, names: Any, busybox_root: Path
) -> None:
    name = names("undef")
    host.define(busybox_spec(name, busybox_root))
    host.start(name)
    # The library says what is wrong; the CLI's advice travels apart, in the hint.
    with pytest.raises(InvalidState, match="is running; stop it first$") as refused:
        host.undefine(name)
    assert "--force" in refused.value.hint and "--force" not in str(refused.value)
    assert host.status(name).running
    host.undefine(name, force=True)
    assert not host.exists(name)
    assert leftovers(name) == []
    with pytest.raises(NotFound) as missing:
        host.undefine(name)
    assert "list --all" in missing.value.hint and "list --all" not in str(missing.value)


def test_create_defines_and_starts(host: Any, names: Any, busybox_root: Path) -> None:
    name = names("create")
    result, status = host.create(busybox_spec(name, busybox_root))
    assert result.action == "created" and status.running
    host.stop(name)


# --- define: validation first, idempotency, refusals ------------------------------------


def test_define_twice_is_unchanged(host: Any, names: Any, busybox_root: Path) -> None:
    name = names("idem")
    spec = busybox_spec(name, busybox_root)
    assert host.define(spec).action == "created"
    before = host.dumpxml(name, inactive=True)
    again = host.define(spec)
    assert (again.action, again.diff) == ("unchanged", "")
    assert host.dumpxml(name, inactive=True) == before


def test_define_changed_memory_shows_diff(host: Any, names: Any, busybox_root: Path) -> None:
    name = names("memory")
    host.define(busybox_spec(name, busybox_root, memory="64MiB"))
    result = host.define(busybox_spec(name, busybox_root, memory="96MiB"))
    assert result.action == "redefined"
    assert not result.restart_needed
    removed = [ln for ln in result.diff.splitlines() if ln.startswith("-  ")]
    added = [ln for ln in result.diff.splitlines() if ln.startswith("+  ")]
    assert any("65536" in ln for ln in removed), result.diff
    assert any("98304" in ln for ln in added), result.diff
    assert host.status(name).max_memory_kib == 98304


def test_redefine_running_says_restart_needed(
    host: Any, names: Any, busybox_root: Path
) -> None:
    name = names("live")
    host.define(busybox_spec(name, busybox_root))
    host.start(name)
    result = host.define(busybox_spec(name, busybox_root, memory="80MiB"))
    assert result.action == "redefined" and result.restart_needed
    assert host.status(name).running
    host.stop(name)


def test_define_xml_file_twice_is_unchanged(
    host: Any, names: Any, busybox_root: Path, tmp_path: Path
) -> None:
    name = names("xmlfile")
    xml = host.prepare(busybox_spec(name, busybox_root)).xml
    path = tmp_path / "c.xml"
    path.write_text(xml)
    assert host.define(path).action == "created"
    assert host.define(str(path)).action == "unchanged"


def test_refused_redefinition_leaves_old_definition(
    host: Any, names: Any, busybox_root: Path
) -> None:
    name = names("refused")
    host.define(busybox_spec(name, busybox_root))
    before = host.dumpxml(name, inactive=True)
    # Same name, another uuid: libvirt refuses it.
    clash = replace(
        busybox_spec(name, busybox_root, memory="128MiB"),
        uuid="6b0c3a5e-2f1d-4c7e-9a8b-1d2e3f4a5b6c",
    )
    with pytest.raises(AlreadyExists, match="unchanged"):
        host.define(clash)
    assert host.dumpxml(name, inactive=True) == before


def test_invalid_xml_sends_nothing(host: Any, names: Any, tmp_path: Path) -> None:
    name = names("invalid")
    path = tmp_path / "bad.xml"
    path.write_text(
        f"<domain type='kvm'><name>{name}</name><memory>65536</memory>"
        "<os><type>hvm</type></os><devices><console type='pty'/></devices></domain>"
    )
    with pytest.raises(ValidationError, match="type='lxc'"):
        host.define(path)
    assert not host.exists(name)


def test_foreign_emulator_refused_or_rewritten(
    host: Any, names: Any, busybox_root: Path, tmp_path: Path
) -> None:
    name = names("emulator")
    xml = host.prepare(busybox_spec(name, busybox_root)).xml
    path = tmp_path / "c.xml"
    path.write_text(xml.replace(host.emulator(), "/usr/libexec/libvirt_lxc"))
    with pytest.raises(Refused) as info:
        host.define(path)
    assert host.emulator() in str(info.value) and "--host-emulator" in info.value.hint
    assert not host.exists(name)
    assert host.define(path, host_emulator=True).action == "created"
    assert f"<emulator>{host.emulator()}</emulator>" in host.dumpxml(name, inactive=True)
    assert host.define(path, host_emulator=True).action == "unchanged"


# --- failures during start ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("init", "message", "logged"),
    [
        pytest.param(("/bin/no-such-init",), "cannot find init path '/bin/no-such-init'",
                     "lxcContainerChild", id="init-missing"),
        pytest.param(("/bin/true",), "init /bin/true exited", "/bin/true", id="init-exits-0"),
        pytest.param(("/bin/sh", "-c", "echo giving up; exit 3"), "exited", "giving up",
                     id="init-exits-3"),
    ],
)
def test_start_failure_reports_log_and_leaves_nothing(
    host: Any,
    names: Any,
    busybox_root: Path,
    init: tuple[str, ...],
    message: str,
    logged: str,
) -> None:
    name = names("fail")
    host.define(busybox_spec(name, busybox_root, init=init))
    # The library's default settle is the CLI's: what a user of `lxcvirt start` gets.
    assert DEFAULT_SETTLE == 0.5
    with pytest.raises(StartFailed) as info:
        host.start(name)
    err = info.value
    assert message in str(err)
    assert logged in err.log_tail
    assert "container log" in str(err)
    status = host.status(name)
    assert (status.state, status.id) == ("shut off", None)
    assert leftovers(name) == []


def test_missing_root_dir_is_refused_before_libvirt_creates_it(
    host: Any, names: Any, tmp_path: Path
) -> None:
    name = names("noroot")
    root = tmp_path / "no-such-root"
    host.define(busybox_spec(name, root))
    with pytest.raises(StartFailed) as info:
        host.start(name)
    assert f"root filesystem source {root} does not exist" in str(info.value)
    assert not root.exists()  # libvirt would have made it, with dev/ proc/ sys/ inside
    assert host.status(name).state == "shut off"
    assert leftovers(name) == []


# --- status and list ---------------------------------------------------------------------


def test_status_and_list(host: Any, names: Any, busybox_root: Path) -> None:
    up, down = names("up"), names("down")
    auto = Autostart(auto=True, priority=7, groups=("web",))
    host.define(busybox_spec(up, busybox_root, autostart=auto))
    host.define(busybox_spec(down, busybox_root))
    host.start(up)
    status = host.status(up)
    assert status.managed and status.autostart == auto
    data = status.to_dict()
    assert data["autostart"] == {
        "auto": True, "priority": 7, "time": 0, "groups": ["web"], "after": [],
    }
    assert data["max_memory_kib"] == 65536 and data["state"] == "running"
    running = {s.name for s in host.list(all=False)}
    everything = {s.name: s for s in host.list(all=True)}
    assert up in running and down not in running
    assert everything[down].state == "shut off" and everything[down].autostart == Autostart()
    host.stop(up)


def test_not_found_names_the_uri(host: Any) -> None:
    missing = "lxcvirt-test-never-defined"
    with pytest.raises(NotFound) as info:
        host.status(missing)
    # The name itself starts with "lxc": the URI must be found in the rest of the message.
    assert URI in str(info.value).replace(missing, "")


def test_xml_without_uuid_or_mac_defined_twice_is_unchanged(
    host: Any, names: Any, busybox_root: Path, tmp_path: Path
) -> None:
    # libvirt invents a uuid and a MAC for XML that has none; the second define must
    # neither be refused (new uuid under a taken name) nor report a MAC change.
    name = names("nouuid")
    path = tmp_path / "c.xml"
    path.write_text(
        f"<domain type='lxc'><name>{name}</name><memory>65536</memory>"
        "<os><type>exe</type><init>/bin/sh</init></os><devices>"
        f"<filesystem type='mount'><source dir='{busybox_root}'/><target dir='/'/></filesystem>"
        "<interface type='network'><source network='lxcvirt-test-nowhere'/></interface>"
        "<console type='pty'/></devices></domain>"
    )
    assert host.define(path).action == "created"
    first = host.dumpxml(name, inactive=True)
    assert "<mac address=" in first
    assert host.define(path).action == "unchanged"
    assert host.dumpxml(name, inactive=True) == first


def test_start_runs_the_host_checks_first(names: Any, busybox_root: Path) -> None:
    from conftest import URI

    from lxcvirt.errors import HostError
    from lxcvirt.host import Host

    calls: list[Any] = []
    failing = Host(URI, preflight=lambda _h: (_ for _ in ()).throw(HostError("no cgroups")))
    checked = Host(URI, preflight=calls.append)
    name = names("preflight")
    checked.define(busybox_spec(name, busybox_root))
    with pytest.raises(HostError, match="no cgroups"):
        failing.start(name)
    assert checked.status(name).state == "shut off"  # refused before create()
    checked.start(name, check=False)
    assert calls == []
    checked.stop(name)
    checked.start(name)
    checked.stop(name)
    checked.start(name)
    assert calls == [checked]  # once per Host
    checked.stop(name)
    failing.close()
    checked.close()


@pytest.mark.parametrize(
    ("uri", "passes"),
    [
        ("lxc:///", True),
        ("lxc:///system", True),
        ("lxc+unix:///system", True),
        ("lxc+tcp://127.0.0.1/", False),
        ("lxc+ssh://root@web1/", False),
        ("lxc://web1/", False),
    ],
)
def test_only_unix_sockets_pass_namespace_fds(uri: str, passes: bool) -> None:
    from lxcvirt.host import Host

    assert Host(uri).passes_fds is passes


def test_a_start_whose_controller_libvirt_lost_is_made_again(
    host: Any, names: Any, busybox_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """libvirtd now and then drops its monitor of a controller among many parallel starts
    (the init pid is then never known): start destroys it and starts it once more."""
    from lxcvirt.host import LXC_LOG_DIR, Host

    name = names("lost")
    host.define(busybox_spec(name, busybox_root))
    real = Host._start_once
    calls: list[int] = []

    def lose_first(self: Host, dom: Any, n: str, settle: float, timeout: float) -> bool:
        calls.append(dom.ID())
        ok = real(self, dom, n, settle, timeout)
        if len(calls) == 1:  # as the lost-monitor branch does: destroy, report it
            self._destroy(dom, n)
            return False
        return ok

    monkeypatch.setattr(Host, "_start_once", lose_first)
    assert host.start(name, check=False, settle=0).running
    assert len(calls) == 2
    from lxcvirt.host import start_retries

    assert start_retries(host.uri, name).startswith("started again (1 time): libvirtd")

    monkeypatch.setattr(Host, "_start_once", lambda *a: False)
    host.destroy(name)
    with pytest.raises(StartFailed, match="lost the container's controller, 2 times"):
        host.start(name, check=False)

    # What tells a lost monitor apart, in the controller's log of this start only.
    assert not host._monitor_lost(name)
    with open(LXC_LOG_DIR / f"{name}.log", "a") as log:
        log.write("2026-01-01 00:00:00.000+0000: 1: error : virNetSocketReadWire:1793 : "
                  "End of file while reading data: Input/output error\n")
    assert host._monitor_lost(name)


def test_a_paused_container_is_stopped_gracefully_and_started_by_resuming(
    host: Any, names: Any, busybox_root: Path, libvirt_conn: Any
) -> None:
    """Suspended with virsh (the freezer): stop thaws it and asks init, instead of waiting
    its whole timeout and destroying it; start of a paused one resumes it (issue 13)."""
    name = names("paused")
    host.create(busybox_spec(name, busybox_root), settle=0)
    libvirt_conn.lookupByName(name).suspend()
    assert host.status(name).state == "paused"
    status = host.start(name, check=False)
    assert status.state == "running"
    libvirt_conn.lookupByName(name).suspend()
    result = host.stop(name, timeout=20)
    assert result.how == "shut down", result
    assert result.method.startswith("resumed, then "), result
    assert result.seconds < 10
    assert not host.status(name).running
