"""``lxcvirt exec``: a command inside a running container, against the real daemon."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import busybox_spec

from lxcvirt.errors import ExecFailed, InvalidState, NotFound
from lxcvirt.exec import cgroup_procs_files, lookup_user

LXCVIRT = [sys.executable, "-m", "lxcvirt"]


def lxcvirt(*args: str, input: str | None = None, timeout: float = 30) -> Any:
    return subprocess.run(
        [*LXCVIRT, *args], input=input, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture
def running(host: Any, names: Callable[[str], str], busybox_root: Path) -> str:
    name = names("exec")
    host.define(busybox_spec(name, busybox_root))
    host.start(name, check=False)
    return name


# --- plain logic ---------------------------------------------------------------------


def test_lookup_user_reads_the_given_files(tmp_path: Path) -> None:
    passwd = tmp_path / "passwd"
    group = tmp_path / "group"
    passwd.write_text("root:x:0:0:root:/root:/bin/sh\nweb:x:1000:100:Web:/srv/web:/bin/sh\n")
    group.write_text("users:x:100:\nwww:x:33:web,other\nwheel:x:10:other\n")
    web = lookup_user("web", str(passwd), str(group))
    assert (web.uid, web.gid, web.home, web.groups) == (1000, 100, "/srv/web", (33, 100))
    assert lookup_user("1000", str(passwd), str(group)).name == "web"
    bare = lookup_user("4242", str(passwd), str(group))
    assert (bare.uid, bare.gid, bare.home, bare.groups) == (4242, 4242, "/", (4242,))
    with pytest.raises(LookupError, match="no user 'bob'"):
        lookup_user("bob", str(passwd), str(group))


MOUNTINFO = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
50 31 0:38 /sub /elsewhere rw,relatime - cgroup2 cgroup2 rw
"""
PROC_CGROUP = """\
9:name=systemd:/
4:memory:/machine/lxc-1-web.libvirt-lxc
2:cpu,cpuacct:/machine/lxc-1-web.libvirt-lxc
7:blkio:/machine/lxc-1-web.libvirt-lxc
0::/
"""


def test_cgroup_files_cover_every_mounted_hierarchy() -> None:
    files = cgroup_procs_files(1, mountinfo=MOUNTINFO, proc_cgroup=PROC_CGROUP)
    assert files == [
        "/sys/fs/cgroup/systemd/cgroup.procs",
        "/sys/fs/cgroup/memory/machine/lxc-1-web.libvirt-lxc/cgroup.procs",
        "/sys/fs/cgroup/cpu,cpuacct/machine/lxc-1-web.libvirt-lxc/cgroup.procs",
        # blkio is not mounted here: left out
        "/sys/fs/cgroup/unified/cgroup.procs",
    ]


# --- against the daemon ----------------------------------------------------------------

def test_exit_codes_env_cwd_and_stdin(running: str) -> None:
    r = lxcvirt("exec", running, "--", "sh", "-c", "exit 3")
    assert r.returncode == 3, r.stderr
    r = lxcvirt("exec", running, "--", "sh", "-c", "kill -9 $$")
    assert r.returncode == 128 + 9
    r = lxcvirt("exec", running, "--env", "GREETING=hi there", "--env", "EMPTY=", "--cwd", "/tmp",
                "--", "sh", "-c", 'echo "$GREETING|${EMPTY-unset}|$(pwd)|$container|$HOME"')
    assert r.returncode == 0, r.stderr
    assert r.stdout == "hi there||/tmp|lxc-libvirt|/root\n"
    r = lxcvirt("exec", running, "--", "pwd")
    assert r.stdout == "/\n"
    r = lxcvirt("exec", running, "--", "cat", input="through stdin\n")
    assert (r.returncode, r.stdout) == (0, "through stdin\n")
    r = lxcvirt("exec", running, "--", "sh", "-c", "echo out; echo err >&2")
    assert (r.stdout, r.stderr) == ("out\n", "err\n")


def test_ps_sees_only_the_container(running: str) -> None:
    r = lxcvirt("exec", running, "--", "ps", "-o", "pid,args")
    assert r.returncode == 0, r.stderr
    rows = [line.split(None, 1) for line in r.stdout.splitlines()[1:]]
    pids = {int(pid) for pid, _ in rows}
    assert 1 in pids and max(pids) < 100, r.stdout
    init = next(args for pid, args in rows if pid == "1")
    assert "trap 'exit 0' TERM" in init
    assert not any("pytest" in args or "lxcvirt" in args for _, args in rows), r.stdout


def test_same_cgroups_and_root_as_init(running: str) -> None:
    r = lxcvirt("exec", running, "--", "sh", "-c",
                "cat /proc/1/cgroup; echo ---; cat /proc/self/cgroup; echo ---; ls /")
    init, mine, root = r.stdout.split("---\n")
    assert init == mine
    assert "machine" in init  # really the container's cgroups, not the host's root
    assert set(root.split()) >= {"bin", "proc", "etc"}
    assert "usr" not in root.split()  # the busybox root, not the host's


def test_user(running: str, busybox_root: Path) -> None:
    # make_rootfs leaves the root searchable by every uid (pytest's folders are 0700).
    assert busybox_root.stat().st_mode & 0o777 == 0o755
    r = lxcvirt("exec", running, "--user", "nobody", "--", "sh", "-c",
                'id -u; id -g; echo "$HOME $USER"; pwd')
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\n")[:4] == ["65534", "65534", "/ nobody", "/"]
    r = lxcvirt("exec", running, "--user", "4242", "--", "id", "-u")
    assert r.stdout == "4242\n"
    r = lxcvirt("exec", running, "--user", "bob", "--", "true")
    assert r.returncode == 1
    assert r.stderr.strip() == "lxcvirt: error: no user 'bob' in the container's /etc/passwd"


def test_failures_are_one_clear_line(running: str, host: Any, names: Callable[[str], str],
                                     busybox_root: Path) -> None:
    r = lxcvirt("exec", running, "--", "no-such-command")
    assert r.returncode == 127
    assert r.stderr == (
        f"lxcvirt: error: cannot run no-such-command in {running}: command not found\n"
    )
    r = lxcvirt("exec", running, "--", "/etc/passwd")
    assert r.returncode == 126 and "Permission denied" in r.stderr
    r = lxcvirt("exec", running, "--cwd", "/nowhere", "--", "true")
    assert r.returncode == 1 and "cannot change to /nowhere" in r.stderr
    stopped = names("stopped")
    host.define(busybox_spec(stopped, busybox_root))
    r = lxcvirt("exec", stopped, "--", "true")
    assert r.returncode == 1
    assert r.stderr == f"lxcvirt: error: {stopped} is not running; start it first\n"
    r = lxcvirt("exec", names("unknown"), "--", "true")
    assert r.returncode == 1 and "no container named" in r.stderr
    assert "Traceback" not in r.stderr


def test_library_errors(host: Any, running: str, names: Callable[[str], str],
                        busybox_root: Path) -> None:
    from lxcvirt.exec import run

    with pytest.raises(ExecFailed) as info:
        run(host, running, ["no-such-command"])
    assert info.value.exit_code == 127
    stopped = names("stopped")
    host.define(busybox_spec(stopped, busybox_root))
    with pytest.raises(InvalidState, match="not running"):
        run(host, stopped, ["true"])
    with pytest.raises(NotFound):
        run(host, names("unknown"), ["true"])
    with pytest.raises(ExecFailed, match="needs a command"):
        run(host, running, [])


def test_library_call_returns_the_status(host: Any, running: str,
                                         capfd: pytest.CaptureFixture[str]) -> None:
    from lxcvirt.exec import run

    # This test process runs libvirt's event loop thread: the fork must cope with it.
    codes = [run(host, running, ["sh", "-c", f"echo run-{i}; exit {i}"]) for i in range(5)]
    assert codes == [0, 1, 2, 3, 4]
    assert capfd.readouterr().out.split() == [f"run-{i}" for i in range(5)]


def test_sigterm_is_passed_on(running: str) -> None:
    proc = subprocess.Popen(
        [*LXCVIRT, "exec", running, "--", "sh", "-c",
         'trap "echo got-term; exit 5" TERM; echo ready; while :; do sleep 0.1; done'],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "ready\n"
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 5
    assert out == "got-term\n"


def test_sigpipe_is_default_in_the_command(running: str) -> None:
    # Python ignores SIGPIPE; a command started from it must not inherit that.
    r = lxcvirt("exec", running, "--", "sh", "-c", "grep SigIgn /proc/self/status")
    ignored = int(r.stdout.split()[1], 16)
    assert not ignored & (1 << (signal.SIGPIPE - 1))
    assert not ignored & (1 << (signal.SIGINT - 1))


@pytest.mark.parametrize("uri", ["lxc+tcp://127.0.0.1/", "lxc+ssh://root@web1/"])
def test_exec_refuses_uris_that_cannot_pass_fds(uri: str) -> None:
    from lxcvirt.errors import ExecFailed
    from lxcvirt.exec import run
    from lxcvirt.host import Host

    with pytest.raises(ExecFailed, match="unix socket"):
        run(Host(uri), "web", ["true"])


@pytest.mark.parametrize("kind", ["fifo", "huge", "directory"])
def test_a_hostile_passwd_is_refused_not_waited_on(tmp_path: Path, kind: str) -> None:
    """The container's /etc/passwd is its own: a FIFO there must not hang exec, a huge
    file must not exhaust our memory (issue 12, item 8)."""
    from lxcvirt.exec import MAX_TABLE_BYTES, lookup_user

    passwd = tmp_path / "passwd"
    if kind == "fifo":
        os.mkfifo(passwd)
    elif kind == "huge":
        with open(passwd, "wb") as f:
            f.truncate(MAX_TABLE_BYTES + 10)
    else:
        passwd.mkdir()
    words = {"fifo": "not a regular file", "huge": "larger than",
             "directory": "not a regular file"}[kind]
    with pytest.raises(LookupError, match=words):
        lookup_user("daemon", passwd=str(passwd), group=str(tmp_path / "group"))
