"""Whole Debian systems with systemd as init, against the real daemon: boot, DHCP on the NAT
network ``default``, a graceful stop that runs the services' ExecStop, reboot; and the
network a container gets (private by default, checked before start)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from conftest import TEST_PREFIX, busybox_spec

from lxcvirt import _initsignals as sig
from lxcvirt.errors import SpecError, StartFailed
from lxcvirt.spec import Container, Filesystem, Init, Interface

LXCVIRT = [sys.executable, "-m", "lxcvirt"]

# A unit whose ExecStop writes into a folder bind-mounted from the host: proof that a
# stop was a real shutdown, not a kill.
STOP_UNIT = """\
[Unit]
Description=lxcvirt test: write a mark when stopped
RequiresMountsFor=/mnt/host

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/sh -c 'echo started > /mnt/host/mark'
ExecStop=/bin/sh -c 'echo stopped > /mnt/host/mark'

[Install]
WantedBy=multi-user.target
"""


def lxcvirt(*args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*LXCVIRT, *args], capture_output=True, text=True, timeout=timeout)


def wait_running(name: str, timeout: float = 60) -> str:
    """``systemctl is-system-running --wait`` inside: running or degraded once booted."""
    proc = lxcvirt("exec", name, "--", "timeout", str(int(timeout)),
                   "systemctl", "is-system-running", "--wait", timeout=timeout + 10)
    return proc.stdout.strip()


@pytest.fixture
def system(host: Any, names: Callable[[str], str], debian_root: Callable[..., Path],
           tmp_path: Path) -> Iterator[tuple[str, Path, Path]]:
    """A running Debian container on the network ``default`` with the stop-mark unit and
    a persistent journal; yields its name, its root and the host folder at /mnt/host."""
    name = names("deb")
    root = debian_root(name)
    unit = root / "etc/systemd/system/lxcvirt-stopmark.service"
    unit.write_text(STOP_UNIT)
    wants = root / "etc/systemd/system/multi-user.target.wants"
    wants.mkdir(parents=True, exist_ok=True)
    (wants / unit.name).symlink_to(f"/etc/systemd/system/{unit.name}")
    (root / "mnt/host").mkdir(parents=True, exist_ok=True)
    (root / "var/log/journal").mkdir(parents=True, exist_ok=True)  # a persistent journal
    shared = tmp_path / "shared"
    shared.mkdir()
    spec = Container(
        name=name,
        init=Init("/sbin/init"),
        memory="512MiB",
        filesystems=(Filesystem(target="/", source=str(root)),
                     Filesystem(target="/mnt/host", source=str(shared))),
        interfaces=(Interface(type="network", source="default"),),
    )
    host.create(spec, check=False)
    assert wait_running(name) in ("running", "degraded")
    yield name, root, shared


def journal(root: Path) -> list[str]:
    """The messages of the container's persistent journal, read from the host."""
    proc = subprocess.run(["journalctl", "-D", str(root / "var/log/journal"), "-o", "cat",
                           "--no-pager"], capture_output=True, text=True, check=True)
    return proc.stdout.splitlines()


def test_systemd_boots_gets_an_address_and_stops_gracefully(
    host: Any, system: tuple[str, Path, Path]
) -> None:
    name, root, shared = system
    pid1 = lxcvirt("exec", name, "--", "cat", "/proc/1/comm")
    assert pid1.stdout.strip() == "systemd"
    assert (shared / "mark").read_text().strip() == "started"

    # DHCP through systemd-networkd; libvirt's lease file names the address.
    deadline = time.monotonic() + 45
    status: dict[str, Any] = {}
    while time.monotonic() < deadline:
        status = json.loads(lxcvirt("status", "--json", name).stdout)
        if status["ipv4"]:
            break
        time.sleep(0.5)
    assert status["ipv4"] and status["ipv4"][0].startswith("192.168.122."), status
    # Nothing libvirt adds at run time (network port, pty, aliases) reads as a redefinition.
    assert status["restart_needed"] is False, status
    inside = lxcvirt("exec", name, "--", "ip", "-4", "-o", "addr", "show", "eth0").stdout
    assert status["ipv4"][0] in inside
    listed = json.loads(lxcvirt("list", "--json").stdout)
    assert [s["ipv4"] for s in listed if s["name"] == name] == [status["ipv4"]]
    # info: the DHCP address on its interface, traffic, the init, a CPU time that rises
    first = json.loads(lxcvirt("info", "--json", name).stdout)
    itf = first["interfaces"][0]
    assert f"{status['ipv4'][0]}/24" in itf["addresses"] and itf["rx_bytes"] > 0, itf
    assert first["init_pid"] > 1 and first["uptime_s"] >= 0
    assert first["memory"]["peak_kib"] >= first["memory"]["used_kib"] > 0
    assert [m["target"] for m in first["mounts"]][0] == "/"
    lxcvirt("exec", name, "--", "sh", "-c", "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done")
    later = json.loads(lxcvirt("info", "--json", name).stdout)
    assert later["cpu"]["total_ns"] > first["cpu"]["total_ns"]
    assert later["cpu"]["user_ns"] >= first["cpu"]["user_ns"]
    # The lease outlives the address (dnsmasq keeps it across restarts): status shows only
    # what the container has configured.
    address = status["ipv4"][0]
    assert lxcvirt("exec", name, "--", "ip", "addr", "del", f"{address}/24",
                   "dev", "eth0").returncode == 0
    leases = subprocess.run(["virsh", "-q", "-c", "lxc:///", "domifaddr", name, "--source",
                             "lease"], capture_output=True, text=True).stdout
    assert address in leases
    assert json.loads(lxcvirt("status", "--json", name).stdout)["ipv4"] == []

    stop = lxcvirt("stop", "--json", "--timeout", "30", name)
    result = json.loads(stop.stdout)["containers"][0]
    assert result["result"] == "shut down" and result["method"] == "SIGRTMIN+3", result
    assert result["seconds"] < 20
    assert (shared / "mark").read_text().strip() == "stopped"  # ExecStop ran
    messages = journal(root)
    assert any(m.startswith("Stopped lxcvirt-stopmark.service") for m in messages)
    assert messages[-1] == "Journal stopped"  # journald flushed and closed its files
    st = host.status(name)
    assert (st.state, st.reason) == ("shut off", "shutdown")


def test_reboot_runs_a_new_init(host: Any, system: tuple[str, Path, Path]) -> None:
    name, _root, shared = system
    before = host.status(name).id
    result = host.reboot(name, timeout=60)
    assert (result.how, result.method) == ("rebooted", "SIGRTMIN+5")
    assert result.status.running and result.status.id not in (None, before)
    assert wait_running(name) in ("running", "degraded")
    # The old system went down properly: its ExecStop ran, then the new boot's ExecStart.
    assert (shared / "mark").read_text().strip() == "started"
    assert host.stop(name, timeout=30).how == "shut down"


def test_sigterm_inits_keep_working(host: Any, names: Callable[[str], str],
                                    busybox_root: Path) -> None:
    name = names("term")
    host.create(busybox_spec(name, busybox_root), check=False, settle=0)
    result = host.stop(name, timeout=10)
    # No sysvinit pipe in a busybox root: initctl is not asked for (libvirt would look
    # inside for nothing).
    assert (result.how, result.method) == ("shut down", "SIGTERM")
    # reboot of an init that knows no reboot request: a graceful stop, then a start.
    host.start(name, check=False, settle=0)
    before = host.status(name).id
    rebooted = host.reboot(name, timeout=20)
    assert (rebooted.how, rebooted.method) == ("restarted", "stop + start")
    assert rebooted.status.running and rebooted.status.id != before


def test_spec_halt_method_is_used(host: Any, names: Callable[[str], str],
                                  busybox_root: Path) -> None:
    # This init ignores SIGTERM and exits on SIGUSR1; the spec says so.
    name = names("usr1")
    script = "trap '' TERM; trap 'exit 0' USR1; while :; do sleep 1 & wait; done"
    spec = busybox_spec(name, busybox_root, init=("/bin/sh", "-c", script))
    spec = replace(spec, init=replace(spec.init, halt="SIGUSR1"))
    host.create(spec, check=False, settle=0)
    result = host.stop(name, timeout=10)
    assert (result.how, result.method) == ("shut down", "SIGUSR1")
    assert result.seconds < 5
    # --mode overrides the spec: SIGTERM is ignored here, so it ends in a destroy.
    host.start(name, check=False, settle=0)
    assert host.stop(name, timeout=1, mode="SIGTERM").how == "destroyed after timeout"


def test_a_signal_sent_before_init_listens_is_sent_again(
    host: Any, names: Callable[[str], str], busybox_root: Path
) -> None:
    """The kernel drops a signal a PID namespace's init does not handle yet; stop sends it
    again once the init listens (here its trap comes 2 s after it started)."""
    name = names("late")
    script = "sleep 2; trap 'exit 0' TERM; while :; do sleep 1 & wait; done"
    host.create(busybox_spec(name, busybox_root, init=("/bin/sh", "-c", script)),
                check=False, settle=0)
    result = host.stop(name, timeout=15)
    assert (result.how, result.method) == ("shut down", "SIGTERM")
    assert 1.0 < result.seconds < 8


def test_a_root_with_a_sysvinit_pipe_is_asked_through_initctl_too(
    host: Any, names: Callable[[str], str], tmp_path: Path
) -> None:
    from lxcvirt._busybox import make_rootfs

    root = make_rootfs(tmp_path / "root")
    (root / "run").mkdir(exist_ok=True)
    os.mkfifo(root / "run" / "initctl")  # nobody reads it: libvirt's write fails, SIGTERM works
    name = names("initctl")
    host.create(busybox_spec(name, root), check=False, settle=0)
    result = host.stop(name, timeout=10)
    assert (result.how, result.method) == ("shut down", "initctl+SIGTERM")
    assert result.seconds < 5


def test_the_initctl_pipe_is_looked_up_inside_the_root_only(tmp_path: Path) -> None:
    from lxcvirt._proc import has_initctl_pipe

    outside = tmp_path / "host"
    outside.mkdir()
    os.mkfifo(outside / "initctl")
    root = tmp_path / "root"
    for folder in ("run", "dev", "etc"):
        (root / folder).mkdir(parents=True)
    assert not has_initctl_pipe(root)
    # Planted links that would reach the host's FIFO if followed from the host's root.
    (root / "dev" / "initctl").symlink_to(outside / "initctl")
    (root / "run" / "initctl").symlink_to("../../../host/initctl")
    assert not has_initctl_pipe(root)
    (root / "run" / "initctl").unlink()
    (root / "run" / "initctl").symlink_to("initctl")  # a loop
    assert not has_initctl_pipe(root)
    # A link to a pipe inside the root is followed; a regular file is no pipe.
    (root / "dev" / "initctl").unlink()
    (root / "dev" / "initctl").symlink_to("/etc/initctl")
    (root / "etc" / "initctl").write_text("")
    assert not has_initctl_pipe(root)
    (root / "etc" / "initctl").unlink()
    os.mkfifo(root / "etc" / "initctl")
    assert has_initctl_pipe(root)
    (root / "dev" / "initctl").unlink()
    (root / "run" / "initctl").unlink()
    os.mkfifo(root / "run" / "initctl")
    assert has_initctl_pipe(root)


def test_no_interface_means_only_lo(host: Any, names: Callable[[str], str],
                                    busybox_root: Path) -> None:
    private = names("privnet")
    host.create(busybox_spec(private, busybox_root), check=False, settle=0)
    devs = lxcvirt("exec", private, "--", "cat", "/proc/net/dev").stdout
    ifaces = sorted(line.split(":")[0].strip() for line in devs.splitlines()[2:])
    assert ifaces == ["lo"]

    shared = names("hostnet")
    host.create(busybox_spec(shared, busybox_root, host_network=True), check=False, settle=0)
    devs = lxcvirt("exec", shared, "--", "cat", "/proc/net/dev").stdout
    host_ifaces = sorted(os.listdir("/sys/class/net"))
    assert sorted(line.split(":")[0].strip() for line in devs.splitlines()[2:]) == host_ifaces


def test_configured_ipv4_from_fib_trie() -> None:
    from lxcvirt._proc import local_ipv4

    trie = """Main:
  +-- 0.0.0.0/0 3 0 5
     |-- 0.0.0.0
        /0 universe UNICAST
     +-- 192.168.122.0/24 2 0 2
        |-- 192.168.122.0
           /24 link UNICAST
        |-- 192.168.122.67
           /32 host LOCAL
        |-- 192.168.122.255
           /32 link BROADCAST
     |-- 127.0.0.1
        /32 host LOCAL
"""
    assert local_ipv4(trie) == {"192.168.122.67", "127.0.0.1"}
    assert local_ipv4("") == set()


def test_validate_warns_about_a_shared_network(tmp_path: Path) -> None:
    spec = tmp_path / "shared.toml"
    spec.write_text('name = "shared"\nhost_network = true\n[init]\npath = "/bin/sh"\n')
    xml = tmp_path / "shared.xml"
    xml.write_text("<domain type='lxc'><name>x</name><memory>65536</memory><os><type>exe"
                   "</type><init>/bin/sh</init></os><devices><console type='pty'/></devices>"
                   "</domain>")
    private = tmp_path / "private.toml"
    private.write_text('name = "private"\n[init]\npath = "/bin/sh"\n')
    proc = lxcvirt("validate", str(spec), str(xml), str(private))
    assert proc.returncode == 0
    warned = [ln.split(":")[0] for ln in proc.stderr.splitlines() if "warning:" in ln]
    assert warned == [str(spec), str(xml)]
    assert "host's network namespace" in proc.stderr
    report = json.loads(lxcvirt("validate", "--json", str(private), str(xml)).stdout)
    assert [len(r["warnings"]) for r in report["files"]] == [0, 1]


@pytest.fixture
def inactive_network(libvirt_conn: Any) -> Iterator[str]:
    """An isolated network of the test's own, defined but not started."""
    name = f"{TEST_PREFIX}{os.getpid()}-idle"
    bridge = f"lxvi{os.getpid() % 100000}"
    net = libvirt_conn.networkDefineXML(
        f"<network><name>{name}</name><bridge name='{bridge}' stp='off'/></network>"
    )
    yield name
    if net.isActive():
        net.destroy()
    net.undefine()


def test_networks_are_checked_before_start(host: Any, names: Callable[[str], str],
                                           busybox_root: Path, libvirt_conn: Any,
                                           inactive_network: str) -> None:
    name = names("net")
    spec = busybox_spec(name, busybox_root,
                        interfaces=(Interface(type="network", source=inactive_network),))
    with pytest.raises(StartFailed, match="not active: `virsh .* net-start"):
        host.create(spec, check=False)
    assert not host.exists(name)  # create refused before defining anything
    host.define(spec)
    with pytest.raises(StartFailed, match="not active"):
        host.start(name, check=False)
    libvirt_conn.networkLookupByName(inactive_network).create()
    assert host.start(name, check=False, settle=0).running
    host.destroy(name)

    missing = names("nonet")
    spec = busybox_spec(missing, busybox_root,
                        interfaces=(Interface(type="network", source=f"{missing}-none"),))
    proc = lxcvirt("create", "--json", "--no-check", _write_spec(spec, busybox_root))
    assert proc.returncode == 1
    assert "is not defined" in json.loads(proc.stdout)["message"]


def _write_spec(spec: Container, root: Path) -> str:
    path = root.parent / f"{spec.name}.toml"
    iface = spec.interfaces[0]
    path.write_text(
        f'name = "{spec.name}"\n[init]\npath = "/bin/sh"\n'
        f'[[filesystem]]\nsource = "{root}"\ntarget = "/"\n'
        f'[[interface]]\ntype = "network"\nsource = "{iface.source}"\n'
    )
    return str(path)


# --- the pure part: which requests an init gets -------------------------------------------


def test_signal_names() -> None:
    assert sig.signal_number("SIGRTMIN+3") == signal.SIGRTMIN + 3
    assert sig.signal_number("rtmax-1") == signal.SIGRTMAX - 1
    assert sig.signal_number("term") == signal.SIGTERM == sig.signal_number("15")
    assert sig.signal_name(signal.SIGRTMIN + 5) == "SIGRTMIN+5"
    for bad in ("SIGKILL", "SIGNOPE", "0", "99", "SIGRTMIN+99", ""):
        with pytest.raises(ValueError):
            sig.signal_number(bad)
    assert sig.check_method(" SIGpwr", reboot=False) == "SIGPWR"
    assert sig.check_method("Restart", reboot=True) == "restart"
    with pytest.raises(ValueError, match="auto, initctl$"):
        sig.check_method("restart", reboot=False)


def _mask(*signals: int) -> int:
    return sum(1 << (s - 1) for s in signals)


@pytest.mark.parametrize(
    ("method", "listened", "expected"),
    [
        ("auto", _mask(signal.SIGRTMIN + 3, signal.SIGTERM), "SIGRTMIN+3"),
        ("auto", _mask(signal.SIGTERM), "initctl+SIGTERM"),
        ("auto", 0, "initctl+SIGTERM"),
        ("auto", None, "initctl+SIGRTMIN+3+SIGTERM later"),
        ("initctl", _mask(signal.SIGRTMIN + 3), "initctl"),
        ("SIGPWR", None, "SIGPWR"),
    ],
    ids=["systemd", "shell", "deaf", "unknown", "initctl", "spec-signal"],
)
def test_halt_plan(method: str, listened: int | None, expected: str) -> None:
    assert sig.halt_plan(method, listened).describe() == expected


@pytest.mark.parametrize(
    ("method", "listened", "expected"),
    [
        ("auto", _mask(signal.SIGRTMIN + 5), "SIGRTMIN+5"),
        ("auto", _mask(signal.SIGTERM), "stop + start"),
        ("auto", None, "stop + start"),
        ("initctl", None, "initctl"),
        ("SIGINT", None, "SIGINT"),
    ],
    ids=["systemd", "shell", "unknown", "initctl", "spec-signal"],
)
def test_reboot_plan(method: str, listened: int | None, expected: str) -> None:
    assert sig.reboot_plan(method, listened).describe() == expected


def test_listened_mask_reads_blocked_and_caught() -> None:
    status = "Name:\tsystemd\nSigBlk:\t7be3c0fe28014a03\nSigIgn:\t0000000000001000\n" \
             "SigCgt:\t00000001000004ec\n"
    mask = sig.listened_mask(status)
    assert mask == 0x7BE3C0FE28014A03 | 0x1000004EC
    assert mask is not None and mask >> (signal.SIGRTMIN + 3 - 1) & 1
    assert sig.listened_mask("Name:\tx\n") is None


def test_spec_checks_methods_and_host_network() -> None:
    with pytest.raises(SpecError, match="init.halt"):
        Init("/sbin/init", halt="SIGKILL")
    with pytest.raises(SpecError, match="init.reboot"):
        Init("/sbin/init", reboot="sometimes")
    with pytest.raises(SpecError, match="host_network"):
        Container(name="x", init=Init("/bin/sh"), host_network=True,
                  interfaces=(Interface(type="network", source="default"),))
    assert Init("/sbin/init", halt="rtmin+3").halt == "SIGRTMIN+3"
