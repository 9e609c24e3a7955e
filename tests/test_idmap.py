"""Unprivileged containers (``[idmap]``) against the real daemon: ``exec`` runs as the
container's root, and every ``check --spec`` verdict agrees with a real start.

The busybox roots are shifted to the mapped ids here (each file's uid and gid + 100000);
they live in a world-searchable folder under /var/tmp, because pytest's own folders are
0700 and the container's root could not reach them (a case tested on its own below).
Containers get a veth (``type = "ethernet"``): an ``<idmap>`` container needs a network
namespace of its own.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from conftest import DATA, busybox_spec

from lxcvirt.checks import Report, run_checks
from lxcvirt.errors import StartFailed
from lxcvirt.spec import Container, Filesystem, IdMap, IdRange, Init, Interface

TARGET = 100000
IDMAP = IdMap(uid=(IdRange(0, TARGET, 65536),), gid=(IdRange(0, TARGET, 65536),))
VETH = (Interface(type="ethernet"),)
LXCVIRT = [sys.executable, "-m", "lxcvirt"]
NAME_CGROUP = Path("/sys/fs/cgroup/systemd")


def shift(root: Path) -> None:
    """Hand ``root`` to the test's mapped ids (lxcvirt's own shift: symlinks themselves,
    setuid bits kept)."""
    from lxcvirt.rootfs import shift as shift_tree

    shift_tree(root, IDMAP)


@pytest.fixture
def scratch() -> Iterator[Path]:
    """A world-searchable folder for roots, removed afterwards whatever happened."""
    base = Path(tempfile.mkdtemp(prefix=f"lxcvirt-test-{os.getpid()}-idmap-", dir="/var/tmp"))
    base.chmod(0o755)
    yield base
    shutil.rmtree(base, ignore_errors=True)


def busybox_root(base: Path, *, shifted: bool = True) -> Path:
    from lxcvirt._busybox import make_rootfs

    root = make_rootfs(base / "root")
    (root / "tmp").chmod(0o1777)
    if shifted:
        shift(root)
    return root


def idmap_spec(name: str, root: Path, **kw: Any) -> Container:
    kw.setdefault("interfaces", VETH)
    return busybox_spec(name, root, idmap=IDMAP, **kw)  # type: ignore[no-any-return]


def idmap_findings(report: Report) -> dict[str, str]:
    return {f.check: f.level for f in report.findings if f.check.startswith("idmap.")}


def lxcvirt(*args: str, timeout: float = 30) -> Any:
    return subprocess.run([*LXCVIRT, *args], capture_output=True, text=True, timeout=timeout)


def status_ids(pid: int) -> tuple[int, int]:
    """The real uid and gid of a host process."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.split()
    return int(fields["Uid"][0]), int(fields["Gid"][0])


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except (FileNotFoundError, ProcessLookupError):
        return ""  # ended meanwhile


def descendants(pid: int) -> list[int]:
    """The processes under ``pid``; one that ends while we look (lxcvirt's start-up runs
    short-lived helpers) is left out, not an error."""
    out = []
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except FileNotFoundError:
        return out
    for task in tasks:
        try:
            children = (task / "children").read_text().split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        for child in children:
            out += [int(child), *descendants(int(child))]
    return out


def container_init(dom: Any) -> int:
    """The host pid of a running container's init (the child of its controller)."""
    children = descendants(dom.ID())
    assert children, "the controller has no child"
    return children[0]


# --- exec as the container's root --------------------------------------------------------


@pytest.fixture
def running(host: Any, names: Callable[[str], str], scratch: Path) -> str:
    name = names("idmap")
    host.create(idmap_spec(name, busybox_root(scratch)), check=False)
    return name


def test_exec_runs_as_the_containers_root(host: Any, running: str, scratch: Path) -> None:
    r = lxcvirt("exec", running, "--", "sh", "-c", "id -u; id -g; touch /tmp/made-by-exec")
    assert (r.returncode, r.stdout) == (0, "0\n0\n"), r.stderr
    made = (scratch / "root/tmp/made-by-exec").stat()
    assert (made.st_uid, made.st_gid) == (TARGET, TARGET)
    # The host sees the mapped ids: the init, and a command exec started.
    assert status_ids(container_init(host.domain(running))) == (TARGET, TARGET)
    proc = subprocess.Popen([*LXCVIRT, "exec", running, "--", "sleep", "30"])
    try:
        deadline = time.monotonic() + 10
        while True:
            sleeps = [p for p in descendants(proc.pid) if _comm(p) == "sleep"]
            if sleeps or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert sleeps, "the exec'd command did not show up"
        assert status_ids(sleeps[0]) == (TARGET, TARGET)
    finally:
        proc.kill()
        proc.wait()


def test_exec_user_inside_an_idmap_container(running: str, scratch: Path) -> None:
    r = lxcvirt("exec", running, "--user", "nobody", "--", "sh", "-c", "id -u; id -g; echo $HOME")
    assert (r.returncode, r.stdout) == (0, "65534\n65534\n/\n"), r.stderr
    r = lxcvirt("exec", running, "--user", "1000", "--", "touch", "/tmp/by-1000")
    assert r.returncode == 0, r.stderr
    assert (scratch / "root/tmp/by-1000").stat().st_uid == TARGET + 1000
    r = lxcvirt("exec", running, "--user", "bob", "--", "true")
    assert r.returncode == 1 and "no user 'bob'" in r.stderr


def test_the_hosts_name_systemd_root_stays_the_hosts(host: Any, running: str) -> None:
    """With the libvirt hook (scripts/host-setup) the container has a name=systemd cgroup of
    its own, handed to its mapped root; without it libvirt 9.0 chowned the hierarchy's root."""
    if not NAME_CGROUP.is_dir():
        pytest.skip("no name=systemd hierarchy on this host")
    own = NAME_CGROUP / "machine" / f"{running}.libvirt-lxc"
    assert own.stat().st_uid == TARGET, "the libvirt hook is not installed (scripts/host-setup)"
    assert NAME_CGROUP.stat().st_uid == 0
    assert (NAME_CGROUP / "release_agent").stat().st_uid == 0
    host.destroy(running)
    assert_cgroup_gone(running)


def assert_cgroup_gone(name: str) -> None:
    """The hook removes a container's name=systemd folder after it stopped (or failed)."""
    own = NAME_CGROUP / "machine" / f"{name}.libvirt-lxc"
    deadline = time.monotonic() + 5
    while own.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not own.exists(), "the hook's release step did not remove the folder"


# --- check --spec against real starts ------------------------------------------------------


def check_then_start(host: Any, spec: Container) -> tuple[dict[str, str], StartFailed | None]:
    """The idmap findings of ``check --spec`` and what a real start of the same spec did."""
    report = run_checks(host, spec=spec, probe=False)
    host.define(spec)
    try:
        host.start(spec.name, check=False)
    except StartFailed as exc:
        return idmap_findings(report), exc
    return idmap_findings(report), None


def test_check_ok_and_it_starts(host: Any, names: Callable[[str], str], scratch: Path) -> None:
    levels, failed = check_then_start(host, idmap_spec(names("ok"), busybox_root(scratch)))
    assert levels == {"idmap.network": "ok", "idmap.userns": "ok", "idmap.root": "ok",
                      "idmap.cgroup": "ok"}
    assert failed is None


def test_shared_host_network_fails_as_predicted(
    host: Any, names: Callable[[str], str], scratch: Path
) -> None:
    name = names("sharednet")
    root = busybox_root(scratch)
    spec_file = scratch / "shared.toml"
    spec_file.write_text(
        f'name = "{name}"\nhost_network = true\n'
        f'[init]\npath = "/bin/sh"\nargs = ["-c", "sleep 1000"]\n'
        f'[[filesystem]]\nsource = "{root}"\ntarget = "/"\n'
        f"[idmap]\nuid = [{{ start = 0, target = {TARGET}, count = 65536 }}]\n"
        f"gid = [{{ start = 0, target = {TARGET}, count = 65536 }}]\n"
    )
    from lxcvirt.cli import cli

    result = CliRunner().invoke(cli, ["check", "--no-probe", "--spec", str(spec_file), "--json"],
                                standalone_mode=False)
    assert result.return_value == 1, result.output
    finding = next(f for f in json.loads(result.output)["findings"]
                   if f["check"] == "idmap.network")
    assert finding["level"] == "fail"
    assert "host_network" in finding["fix"] and "interface" in finding["fix"]
    host.define(spec_file)
    with pytest.raises(StartFailed, match="Unable to create directory /sys/fs/cgroup"):
        host.start(name, check=False)


def test_unshifted_root_fails_as_predicted(
    host: Any, names: Callable[[str], str], scratch: Path
) -> None:
    root = busybox_root(scratch, shifted=False)
    name = names("unshifted")
    levels, failed = check_then_start(host, idmap_spec(name, root))
    assert levels["idmap.root"] == "fail"
    assert failed is not None and ".oldroot: Permission denied" in str(failed)
    if NAME_CGROUP.is_dir():
        assert_cgroup_gone(name)
    # Shifted, the same root starts.
    shift(root)
    levels, failed = check_then_start(host, idmap_spec(names("shifted"), root))
    assert levels["idmap.root"] == "ok" and failed is None


def test_root_behind_a_private_folder_fails_as_predicted(
    host: Any, names: Callable[[str], str], scratch: Path
) -> None:
    private = scratch / "private"
    private.mkdir(mode=0o700)
    root = busybox_root(private)
    spec = idmap_spec(names("private"), root)
    report = run_checks(host, spec=spec, probe=False)
    finding = report.get("idmap.root")
    assert finding is not None and finding.level == "fail"
    assert f"{private} (mode 700" in finding.what and "chmod o+x" in finding.fix
    _, failed = check_then_start(host, spec)
    assert failed is not None and "Permission denied" in str(failed)


def test_a_root_partly_unshifted_is_a_warning_and_starts(
    host: Any, names: Callable[[str], str], scratch: Path
) -> None:
    root = busybox_root(scratch)
    os.lchown(root / "etc", 0, 0)
    levels, failed = check_then_start(host, idmap_spec(names("partly"), root))
    assert levels["idmap.root"] == "warn"
    assert failed is None


# --- user namespaces off, and systemd's cgroup: fixture trees -----------------------------


def host_tree(tmp_path: Path, *, userns: str = "15000") -> Path:
    root = tmp_path / "host"
    shutil.copytree(DATA / "hosts" / "v1-all", root, symlinks=True)
    (root / "proc/sys/user/max_user_namespaces").write_text(f"{userns}\n")
    return root


def fixture_spec(tree: Path, init: str = "/bin/sh") -> Container:
    """A spec whose root folder lives in the fixture tree, owned by the mapped root."""
    rootfs = tree / "srv/root"
    rootfs.mkdir(parents=True)
    rootfs.chmod(0o755)
    shift(rootfs)
    return Container(name="fixture", init=Init(init),
                     filesystems=(Filesystem(target="/", source="/srv/root"),),
                     interfaces=VETH, idmap=IDMAP)


def test_user_namespaces_off_fails(tmp_path: Path) -> None:
    tree = host_tree(tmp_path, userns="0")
    report = run_checks(root=tree, spec=fixture_spec(tree), probe=False)
    finding = report.get("idmap.userns")
    assert finding is not None and finding.level == "fail"
    assert "max_user_namespaces = 0" in finding.what and "sysctl" in finding.fix
    assert report.exit_code == 1
    # The same host with them on: no idmap finding fails.
    tree = host_tree(tmp_path / "on")
    report = run_checks(root=tree, spec=fixture_spec(tree), probe=False)
    # (no libvirt hook in this tree: the host's name=systemd root would be handed over)
    assert idmap_findings(report) == {"idmap.network": "ok", "idmap.userns": "ok",
                                      "idmap.root": "ok", "idmap.cgroup": "warn"}


def test_kernel_without_user_namespaces_fails(tmp_path: Path) -> None:
    tree = host_tree(tmp_path)
    (tree / "proc/self/ns/user").unlink()
    report = run_checks(root=tree, spec=fixture_spec(tree), probe=False)
    assert report.get("idmap.userns").level == "fail"  # type: ignore[union-attr]


def _systemd_tree(tmp_path: Path) -> tuple[Path, Container]:
    tree = host_tree(tmp_path)
    spec = fixture_spec(tree, init="/sbin/init")
    rootfs = tree / "srv/root"
    (rootfs / "sbin").mkdir()
    (rootfs / "lib/systemd").mkdir(parents=True)
    (rootfs / "lib/systemd/systemd").touch()
    (rootfs / "sbin/init").symlink_to("/lib/systemd/systemd")  # absolute: inside the root
    # What a privileged container's systemd leaves in the host's name=systemd root.
    scope = tree / "sys/fs/cgroup/systemd/init.scope"
    scope.mkdir()
    (scope / "cgroup.procs").touch()
    return tree, spec


def test_systemd_init_without_the_hook_fails(tmp_path: Path) -> None:
    tree, spec = _systemd_tree(tmp_path)
    report = run_checks(root=tree, spec=spec, probe=False)
    finding = report.get("idmap.cgroup")
    assert finding is not None and finding.level == "fail"
    assert "/lib/systemd/systemd" in finding.what
    assert "Failed to create /init.scope control group" in finding.why
    assert "busybox" in finding.why and "host-setup" in finding.fix
    # Without another systemd's /init.scope there it boots, in the host's name=systemd root.
    shutil.rmtree(tree / "sys/fs/cgroup/systemd/init.scope")
    finding = run_checks(root=tree, spec=spec, probe=False).get("idmap.cgroup")
    assert finding is not None and finding.level == "warn"
    assert "shares with every container" in finding.what
    # A shell init starts, but hands the host's name=systemd root to the mapped root.
    report = run_checks(root=tree, spec=fixture_spec(host_tree(tmp_path / "sh")), probe=False)
    finding = report.get("idmap.cgroup")
    assert finding is not None and finding.level == "warn"
    assert f"name=systemd root to its mapped root {TARGET}" in finding.what


def test_systemd_init_with_the_hook(tmp_path: Path) -> None:
    tree, spec = _systemd_tree(tmp_path)
    hook = tree / "etc/libvirt/hooks/lxc.d/lxcvirt-cgroup"
    hook.parent.mkdir(parents=True)
    shutil.copy(Path(__file__).parents[1] / "contrib/libvirt-hooks/lxcvirt-cgroup", hook)
    hook.chmod(0o755)
    # A libvirtd that started after the hook was installed runs it ...
    (tree / "proc/stat").write_text("cpu 0 0 0 0\nbtime 1000000000\n")
    (tree / "run").mkdir(exist_ok=True)
    (tree / "run/libvirtd.pid").write_text("4242\n")
    (tree / "proc/4242").mkdir()
    (tree / "proc/4242/comm").write_text("libvirtd\n")
    ticks = os.sysconf("SC_CLK_TCK")
    stat = "4242 (libvirtd) S " + " ".join(["0"] * 18)
    started_at = 1000000000 + 100
    (tree / "proc/4242/stat").write_text(f"{stat} {100 * ticks} 0 0\n")
    os.utime(hook, (started_at - 50, started_at - 50))
    finding = run_checks(root=tree, spec=spec, probe=False).get("idmap.cgroup")
    assert finding is not None and finding.level == "ok", finding
    # ... one that started before it does not.
    os.utime(hook, (started_at + 50, started_at + 50))
    finding = run_checks(root=tree, spec=spec, probe=False).get("idmap.cgroup")
    assert finding is not None and finding.level == "fail"
    assert "started before the hook" in finding.what and "restart libvirtd" in finding.fix


# --- systemd in an idmap container, for real ------------------------------------------------


def systemd_spec(name: str, root: Path) -> Container:
    return Container(name=name, init=Init("/sbin/init"), memory="512MiB",
                     filesystems=(Filesystem(target="/", source=str(root)),),
                     interfaces=VETH, idmap=IDMAP)


def test_systemd_without_the_hook_as_predicted(
    libvirt_conn: Any, debian_root: Callable[..., Path]
) -> None:
    """A throw-away libvirtd that has no hooks: what check --spec says of a systemd
    container, a real start there does.  Without the hook libvirt chowns the host's
    name=systemd root to the mapped root; the test puts the owners back and removes any
    cgroup the container's systemd made there."""
    import plain_daemon

    from lxcvirt.host import Host

    why_not = plain_daemon.available()
    if why_not:
        pytest.fail(f"cannot start a second libvirtd: {why_not}")
    if not NAME_CGROUP.is_dir():
        pytest.skip("no name=systemd hierarchy on this host")
    name = f"lxcvirt-test-{os.getpid()}-nohook"  # lives only in the throw-away daemon
    spec = systemd_spec(name, debian_root(name, idmap_base=TARGET))
    owners = {p: (p.stat().st_uid, p.stat().st_gid) for p in [NAME_CGROUP, *NAME_CGROUP.iterdir()]}
    with plain_daemon.plain_daemon(hide_unified=True, hide_hooks=True) as daemon:
        other = Host(daemon.uri, preflight=lambda _h: None)
        try:
            finding = run_checks(other, spec=spec, probe=False).get("idmap.cgroup")
            assert finding is not None and "libvirtd has no lxcvirt hook" in finding.what
            other.define(spec)
            if finding.level == "fail":
                # systemd says why on the console ("Failed to create /init.scope control
                # group: Permission denied") and exits; on a loaded machine that took more
                # than the 3 s a settle window would watch, so wait for it to go down.
                with contextlib.suppress(StartFailed):
                    other.start(name, check=False, settle=0)
                deadline = time.monotonic() + 60
                while other.status(name).running and time.monotonic() < deadline:
                    time.sleep(0.2)
                assert not other.status(name).running, "systemd kept running without the hook"
            else:
                assert finding.level == "warn", finding
                other.start(name, check=False, settle=3.0)
        finally:
            with contextlib.suppress(Exception):
                other.destroy(name)
            with contextlib.suppress(Exception):
                other.undefine(name)
            other.close()
            for path, (uid, gid) in owners.items():
                with contextlib.suppress(OSError):
                    if (path.stat().st_uid, path.stat().st_gid) != (uid, gid):
                        os.chown(path, uid, gid)
            for path in set(NAME_CGROUP.iterdir()) - set(owners):
                if path.is_dir():
                    subprocess.run(["find", str(path), "-depth", "-type", "d", "-exec",
                                    "rmdir", "{}", ";"], check=False, capture_output=True)
    assert NAME_CGROUP.stat().st_uid == 0


def test_systemd_boots_in_an_idmap_container(
    host: Any, names: Callable[[str], str], debian_root: Callable[..., Path]
) -> None:
    name = names("systemd")
    spec = systemd_spec(name, debian_root(name, idmap_base=TARGET))
    levels = idmap_findings(run_checks(host, spec=spec, probe=False))
    assert levels["idmap.cgroup"] == "ok", levels
    host.create(spec, check=False)
    deadline = time.monotonic() + 60
    state = ""
    while time.monotonic() < deadline:
        r = lxcvirt("exec", name, "--", "systemctl", "is-system-running")
        state = r.stdout.strip()
        if state in ("running", "degraded"):
            break
        time.sleep(0.5)
    # degraded: debugfs and tracefs cannot be mounted by an unprivileged container.
    assert state in ("running", "degraded"), state
    r = lxcvirt("exec", name, "--", "sh", "-c", "id -u; cat /proc/1/comm")
    assert r.stdout == "0\nsystemd\n", r.stderr
    assert status_ids(container_init(host.domain(name))) == (TARGET, TARGET)
    assert not host.status(name).restart_needed  # what libvirt adds for an idmap is its own



@pytest.mark.slow
def test_idmap_containers_started_at_once(
    host: Any, names: Callable[[str], str], scratch: Path
) -> None:
    """The hook moves the starting libvirtd thread; starts in parallel threads each land in
    their own name=systemd cgroup and come up."""
    from concurrent.futures import ThreadPoolExecutor

    root = busybox_root(scratch)
    wanted = [names(f"at-once{i}") for i in range(10)]
    for name in wanted:
        host.define(idmap_spec(name, root))
    with ThreadPoolExecutor(len(wanted)) as pool:
        states = list(pool.map(lambda n: host.start(n, check=False, settle=0).state, wanted))
    assert states == ["running"] * len(wanted)
    if NAME_CGROUP.is_dir():
        for name in wanted:
            init = container_init(host.domain(name))
            assert f"name=systemd:/machine/{name}.libvirt-lxc\n" in Path(
                f"/proc/{init}/cgroup").read_text()
