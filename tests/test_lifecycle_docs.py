"""The two example configurations of libvirt's LXC driver documentation, as a user would
write them, defined and started with the real `lxcvirt` command (a subprocess), and `ps`
inside shows only the container's own processes.

The examples name the network ``default`` and the emulator /usr/libexec/libvirt_lxc.  The
test points them at an isolated network of its own (no <forward>, no address: traffic
goes nowhere) and lets ``--host-emulator`` fix the emulator, as a user on Debian would.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import DATA, TEST_PREFIX, URI

LXCVIRT = [sys.executable, "-m", "lxcvirt", "-c", URI]


def lxcvirt(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*LXCVIRT, *args], capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def network(libvirt_conn: Any) -> Iterator[str]:
    """An isolated bridge network of the test's own (no forward, no address)."""
    name = f"{TEST_PREFIX}{os.getpid()}-net"
    bridge = f"lxvt{os.getpid() % 100000}"
    net = libvirt_conn.networkCreateXML(
        f"<network><name>{name}</name><bridge name='{bridge}' stp='off'/></network>"
    )
    yield name
    net.destroy()


def user_xml(example: str, name: str, network: str, tmp_path: Path, **replace: str) -> Path:
    text = (DATA / "xml" / example).read_text()
    text = text.replace("<name>vm1</name>", f"<name>{name}</name>")
    text = text.replace("network='default'", f"network='{network}'")
    for old, new in replace.items():
        text = text.replace(old, new)
    path = tmp_path / example
    path.write_text(text)
    return path


def processes(name: str) -> list[list[str]]:
    """``ps -o pid,ppid,args`` inside the container, as rows."""
    ps = lxcvirt("exec", name, "--", "ps", "-o", "pid,ppid,args")
    assert ps.returncode == 0, ps.stderr
    lines = ps.stdout.strip().splitlines()
    assert lines[0].split()[0] == "PID"
    return [ln.split(None, 2) for ln in lines[1:]]


def define_and_start(path: Path, name: str, host: Any) -> None:
    refused = lxcvirt("define", str(path))
    assert refused.returncode == 1
    assert host.emulator() in refused.stderr and "--host-emulator" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert not host.exists(name)

    defined = lxcvirt("define", "--host-emulator", "--json", str(path))
    assert defined.returncode == 0, defined.stderr
    assert json.loads(defined.stdout)["result"] == "created"
    again = lxcvirt("define", "--host-emulator", str(path))
    assert (again.returncode, again.stdout.strip()) == (0, f"{name}: unchanged")

    started = lxcvirt("start", "--no-check", "--json", name)
    assert started.returncode == 0, started.stderr
    status = json.loads(started.stdout)["containers"][0]["status"]
    assert status["state"] == "running" and status["max_memory_kib"] == 500000


def test_doc_application_container(
    host: Any, names: Any, network: str, tmp_path: Path
) -> None:
    name = names("doc-app")
    path = user_xml("libvirt-doc-app.xml", name, network, tmp_path)
    define_and_start(path, name, host)
    rows = processes(name)
    # No root filesystem of its own: it shares the host's files, yet its PID namespace
    # holds only its init (/bin/sh) and our ps.
    assert rows[0][:2] == ["1", "0"] and rows[0][2] == "/bin/sh"
    assert [r[2].split()[0] for r in rows[1:]] == ["ps"], rows
    # /bin/sh as PID 1 ignores SIGTERM: force it.
    assert lxcvirt("destroy", name).returncode == 0
    assert host.status(name).state == "shut off"


def test_doc_private_root_container(
    host: Any, names: Any, network: str, busybox_root: Path, tmp_path: Path
) -> None:
    name = names("doc-root")
    root = tmp_path / "root"
    shutil.copytree(busybox_root, root, symlinks=True)
    (root / "init").write_text("#!/bin/sh\ntrap 'exit 0' TERM\nwhile :; do sleep 1 & wait; done\n")
    (root / "init").chmod(0o755)
    path = user_xml(
        "libvirt-doc-rootfs.xml", name, network, tmp_path, **{"/opt/vm-1-root": str(root)}
    )
    define_and_start(path, name, host)
    rows = processes(name)
    assert rows[0][:2] == ["1", "0"] and "/init" in rows[0][2]
    others = sorted(r[2].split()[0] for r in rows[1:])
    assert set(others) <= {"ps", "sleep"} and "ps" in others, rows
    stopped = lxcvirt("stop", "--json", name)
    assert stopped.returncode == 0 and json.loads(stopped.stdout)["containers"][0]["result"] == \
        "shut down"
    assert host.status(name).state == "shut off"
