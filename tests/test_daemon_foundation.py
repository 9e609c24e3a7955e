"""Foundation against the real libvirtd: what we render, libvirt takes and keeps; a
private-root container and an application container both start and reach RUNNING."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import DATA, TERM_INIT, busybox_spec
from lxml import etree

from lxcvirt.metadata import read_autostart
from lxcvirt.spec import Container, Init

GOLDEN = sorted((DATA / "xml").glob("*.xml"))


def _retarget(xml: str, name: str) -> str:
    """The golden XML under a unique test name, without its fixed uuid."""
    root = etree.fromstring(xml.encode())
    root.find("name").text = name
    uuid = root.find("uuid")
    if uuid is not None:
        root.remove(uuid)
    return etree.tostring(root, encoding="unicode")


def _facts(root: Any) -> dict[str, object]:
    """What must survive libvirt's round trip."""
    return {
        "name": root.findtext("name"),
        "init": [root.findtext("os/init")] + [a.text or "" for a in root.findall("os/initarg")],
        "env": sorted((e.get("name"), e.text or "") for e in root.findall("os/initenv")),
        "mounts": [
            (
                fs.get("type") or "mount",
                fs.find("source").get("dir") if fs.find("source") is not None else None,
                fs.find("target").get("dir"),
                fs.find("readonly") is not None,
            )
            for fs in root.findall("devices/filesystem")
        ],
        "interfaces": [
            (
                itf.get("type"),
                itf.find("mac").get("address") if itf.find("mac") is not None else None,
                itf.find("source").attrib.get("network") or itf.find("source").attrib.get("bridge")
                if itf.find("source") is not None
                else None,
                itf.find("guest").get("dev") if itf.find("guest") is not None else None,
            )
            for itf in root.findall("devices/interface")
        ],
        "consoles": [c.get("type") for c in root.findall("devices/console")],
        "autostart": read_autostart(root),
    }


@pytest.mark.parametrize("path", GOLDEN, ids=[p.stem for p in GOLDEN])
def test_golden_xml_defines_and_reads_back(
    path: Path, host: Any, names: Callable[[str], str]
) -> None:
    name = names(path.stem)
    xml = _retarget(path.read_text(), name)
    result = host.define(xml, host_emulator=True)
    assert result.action == "created"
    ours = etree.fromstring(xml.encode())
    back = etree.fromstring(host.dumpxml(name, inactive=True).encode())
    expected = _facts(ours)
    got = _facts(back)
    # libvirt gives an interface without a MAC one of its own.
    pairs = zip(got["interfaces"], expected["interfaces"], strict=True)  # type: ignore[call-overload]
    got["interfaces"] = [
        (t, mac if want[1] else None, src, dev) for (t, mac, src, dev), want in pairs
    ]
    assert got == expected
    assert back.findtext("devices/emulator") == host.emulator()


def test_private_root_busybox_container_runs(
    host: Any, names: Callable[[str], str], busybox_root: Path
) -> None:
    name = names("rootfs")
    host.define(busybox_spec(name, busybox_root))
    status = host.start(name, settle=0.2)
    assert status.state == "running" and status.reason == "booted"
    ps = subprocess.run(
        [sys.executable, "-m", "lxcvirt", "exec", name, "--", "ps", "-o", "pid,comm"],
        capture_output=True, text=True, check=False, timeout=60,
    )
    assert ps.returncode == 0, ps.stderr
    pids = [int(line.split()[0]) for line in ps.stdout.splitlines()[1:]]
    assert 1 in pids and max(pids) < 50  # a fresh pid namespace: only its own processes
    assert "libvirtd" not in ps.stdout
    host.undefine(name, force=True)
    assert not host.exists(name)


def test_application_container_shares_host_root_and_runs(
    host: Any, names: Callable[[str], str]
) -> None:
    name = names("app")
    spec = Container(name=name, init=Init(TERM_INIT[0], args=TERM_INIT[1:]), memory="64MiB")
    _, status = host.create(spec, settle=0.2)
    assert status.running
    # Its init is a host binary (no root filesystem of its own) in its own pid namespace.
    init_pid = int(
        subprocess.run(["pgrep", "-P", str(status.id)], capture_output=True, text=True,
                       check=True).stdout.split()[0]
    )
    ns = Path(f"/proc/{init_pid}/ns/pid").readlink()
    assert ns != Path("/proc/self/ns/pid").readlink()
    assert re.search(r"sh", Path(f"/proc/{init_pid}/comm").read_text())
    assert host.stop(name, timeout=10).how == "shut down"
    host.undefine(name)
    assert not host.exists(name)
