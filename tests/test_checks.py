"""Host checks: fixture trees with known verdicts, the probe's clean-up on the real cgroup
trees, the daemon's namespace on this machine, and enforcement before start."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from conftest import DATA, URI, busybox_spec

from lxcvirt import checks
from lxcvirt.checks import (
    Checker,
    Finding,
    Report,
    enforce,
    parse_mountinfo,
    parse_proc_cgroups,
    probe_hierarchy,
    run_checks,
)
from lxcvirt.errors import HostError

HOSTS = DATA / "hosts"
FIXTURES = sorted(p.name for p in HOSTS.iterdir() if (p / "expected.json").is_file())


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def _faulty_mkdir(root: Path, faults: dict[str, Any]) -> Callable[[Path], None]:
    """A mkdir that refuses the nested probe directory under the listed mount points."""
    refuse = [root / mp.lstrip("/") for mp in faults.get("refuse_nested", ())]
    code = getattr(errno, faults.get("errno", "EINVAL"))

    def mkdir(path: Path) -> None:
        if path.parent.parent in refuse:
            raise OSError(code, os.strerror(code), str(path))
        os.mkdir(path)

    return mkdir


def _check_fixture(name: str, tmp_path: Path) -> tuple[Report, dict[str, Any]]:
    root = tmp_path / name
    shutil.copytree(HOSTS / name, root, symlinks=True)
    expected = json.loads((root / "expected.json").read_text())
    faults_file = root / "faults.json"
    faults = json.loads(faults_file.read_text()) if faults_file.exists() else {}
    before = _tree(root)
    report = run_checks(root=root, mkdir=_faulty_mkdir(root, faults))
    assert _tree(root) == before, "the probe left something behind"
    return report, expected


def test_fixtures_cover_the_issue() -> None:
    wanted = {"v1-all", "v1-no-memory", "v1-blkio-nested", "v2-all", "v2-no-memory",
              "hybrid-unified"}
    assert wanted <= set(FIXTURES)


@pytest.mark.parametrize("name", FIXTURES)
def test_fixture_verdict(name: str, tmp_path: Path) -> None:
    report, expected = _check_fixture(name, tmp_path)
    assert report.layout == expected["layout"]
    levels = {f.check: f.level for f in report.findings}
    for check, level in expected["levels"].items():
        assert levels.get(check) == level, (check, report.get(check))
    assert report.verdict == expected["verdict"], [f.message for f in report.failed]
    assert report.exit_code == (1 if expected["verdict"] == "fail" else 0)
    if "message" in expected:
        assert any(expected["message"] in f.message for f in report.findings)
    for f in report.failed:
        assert f.why and f.fix, f"a failure must say why and what to do: {f}"


@pytest.mark.parametrize(("fixture", "weight", "check"), [
    ("v1-all", "sys/fs/cgroup/blkio/machine/blkio.bfq.weight", "spec.limits.blkio"),
    ("v2-all", "sys/fs/cgroup/system.slice/io.weight", "spec.limits.io"),
])
def test_a_host_without_io_weights_warns_and_fails_a_spec_that_sets_one(
    fixture: str, weight: str, check: str, tmp_path: Path
) -> None:
    from lxcvirt.spec import BlkioDevice

    root = tmp_path / fixture
    shutil.copytree(HOSTS / fixture, root, symlinks=True)
    with_weight = run_checks(root=root, probe=False, spec=_limits_spec(blkio_weight=500))
    found = with_weight.get("cgroup.io-weight")
    assert found is not None and found.level == "ok" and weight.split("/")[-1] in found.what
    assert with_weight.get(check).level == "ok"  # type: ignore[union-attr]
    (root / weight).unlink()  # a kernel whose disks use mq-deadline or none: no weights
    report = run_checks(root=root, probe=False)
    found = report.get("cgroup.io-weight")
    assert found is not None and found.level == "warn" and "BFQ" in found.why
    assert report.exit_code == 0  # a host without weights still runs containers
    for limits, said in (({"blkio_weight": 500}, "limits.blkio_weight"),
                         ({"blkio_devices": (BlkioDevice("/dev/vda", weight=200),)},
                          "limits.blkio_device weight")):
        failed = run_checks(root=root, probe=False, spec=_limits_spec(**limits)).get(check)
        assert failed is not None and failed.level == "fail" and failed.required, failed
        assert said in failed.what and failed.fix
    # throttles need no weights
    throttled = run_checks(root=root, probe=False, spec=_limits_spec(blkio_devices=(
        BlkioDevice("/dev/vda", read_iops_sec=100),)))
    assert throttled.get(check).level == "ok"  # type: ignore[union-attr]


def test_v2_without_devices_controller_passes(tmp_path: Path) -> None:
    report, _ = _check_fixture("v2-all", tmp_path)
    assert "devices" not in (HOSTS / "v2-all/sys/fs/cgroup/cgroup.controllers").read_text()
    devices = report.get("cgroup.devices")
    assert devices is not None and devices.level == "ok" and "BPF" in devices.what


def test_blkio_probe_failure_names_the_remedy(tmp_path: Path) -> None:
    report, _ = _check_fixture("v1-blkio-nested", tmp_path)
    probe = report.get("cgroup.probe.blkio")
    assert probe is not None and probe.required
    assert "umount /sys/fs/cgroup/blkio" in probe.fix
    assert "Invalid argument" in probe.what


def test_findings_are_frozen_and_ordered(tmp_path: Path) -> None:
    report, _ = _check_fixture("v1-no-memory", tmp_path)
    assert report.findings[0].level == "fail"
    with pytest.raises(AttributeError):
        report.findings[0].level = "ok"  # type: ignore[misc]
    d = report.to_dict()
    assert d["verdict"] == "fail" and d["counts"]["fail"] == 1  # type: ignore[index]


def test_parse_mountinfo_escapes_and_overmounts() -> None:
    text = (
        "1 0 0:1 / /mnt/a\\040b rw - tmpfs tmpfs rw\n"
        "2 0 0:2 / /sys/fs/cgroup/memory rw shared:3 - cgroup cgroup rw,memory\n"
        "3 0 0:3 / /sys/fs/cgroup/memory rw - tmpfs tmpfs rw\n"
    )
    mounts = {m.mount_point: m for m in parse_mountinfo(text)}
    assert "/mnt/a b" in mounts
    assert mounts["/sys/fs/cgroup/memory"].fstype == "tmpfs"  # the later mount hides it


def test_parse_proc_cgroups() -> None:
    subs = parse_proc_cgroups("#subsys_name\thierarchy\tnum_cgroups\tenabled\nmemory\t0\t1\t0\n")
    assert subs["memory"].hierarchy == 0 and not subs["memory"].enabled


def test_probe_cleans_up_after_a_failure(tmp_path: Path) -> None:
    def refuse_nested(path: Path) -> None:
        if path.name == "nested":
            raise OSError(errno.EINVAL, "Invalid argument")
        os.mkdir(path)

    problem = probe_hierarchy(tmp_path, mkdir=refuse_nested)
    assert problem is not None and "nested" in problem
    assert list(tmp_path.iterdir()) == []


def test_probe_sweeps_leftovers_of_dead_processes(tmp_path: Path) -> None:
    dead = tmp_path / f"{checks.PROBE_PREFIX}999999999-abc"
    (dead / "nested").mkdir(parents=True)
    assert probe_hierarchy(tmp_path) is None
    assert list(tmp_path.iterdir()) == []


# --- the real machine ------------------------------------------------------------------


def _probe_dirs() -> list[Path]:
    return list(Path("/sys/fs/cgroup").glob(f"*/{checks.PROBE_PREFIX}*")) + list(
        Path("/sys/fs/cgroup").glob(f"{checks.PROBE_PREFIX}*")
    )


@pytest.mark.skipif(os.geteuid() != 0, reason="probing real cgroups needs root")
def test_real_probe_leaves_nothing_in_the_cgroup_trees() -> None:
    before = _probe_dirs()
    report = run_checks()
    probes = [f for f in report.findings if f.check.startswith("cgroup.probe.")]
    assert probes and all(f.level == "ok" for f in probes), probes
    assert _probe_dirs() == before


@pytest.mark.skipif(os.geteuid() != 0, reason="probing real cgroups needs root")
def test_real_probe_failure_still_cleans_up() -> None:
    def refuse_nested(path: Path) -> None:
        if path.name == "nested" and path.parent.parent.name == "blkio":
            raise OSError(errno.EINVAL, "Invalid argument")
        os.mkdir(path)

    before = _probe_dirs()
    report = run_checks(mkdir=refuse_nested)
    blkio = [f for f in report.findings
             if f.check.startswith("cgroup.probe.") and "blkio" in f.check]
    if not blkio:
        pytest.skip("blkio is not a v1 hierarchy on this host")
    assert blkio[0].level == "fail"
    assert _probe_dirs() == before


@pytest.fixture
def fresh_cache() -> Iterator[None]:
    checks.forget()
    yield
    checks.forget()


def test_daemon_as_set_up_is_ok_and_a_container_starts(
    libvirt_conn: Any, names: Callable[[str], str], busybox_root: Path, fresh_cache: None
) -> None:
    from lxcvirt.host import Host

    with Host(URI) as host:  # the default preflight: lxcvirt.checks.enforce
        report = run_checks(host)
        assert report.verdict != "fail", [f.message for f in report.failed]
        daemon = report.get("daemon.cgroups")
        assert daemon is not None and daemon.level == "ok" and "libvirtd (pid" in daemon.what
        assert report.get("daemon.connect").level == "ok"  # type: ignore[union-attr]
        name = names("checked")
        host.define(busybox_spec(name, busybox_root))
        status = host.start(name)  # runs enforce() first
        assert status.running
        assert URI in checks._cache


def test_daemon_in_the_plain_host_namespace_fails(libvirt_conn: Any, host: Any) -> None:
    """Simulated from this process's mountinfo: what libvirtd would see started plainly."""
    own = Path("/proc/self/mountinfo").read_text()
    if not any(m.fstype == "cgroup2" for m in parse_mountinfo(own)) or not any(
        m.fstype == "cgroup" for m in parse_mountinfo(own)
    ):
        pytest.skip("this host is not hybrid: a plain libvirtd would be fine here")
    report = run_checks(host, daemon_mountinfo="/proc/self/mountinfo", probe=False)
    assert report.verdict == "fail"
    daemon = report.get("daemon.cgroups")
    assert daemon is not None and daemon.level == "fail" and daemon.required
    assert "Unable to create directory" in daemon.why and "unshare -m" in daemon.fix


@pytest.mark.slow
def test_a_plain_second_daemon_fails_as_predicted(
    libvirt_conn: Any, busybox_root: Path, fresh_cache: None
) -> None:
    """A real throw-away libvirtd in the host's plain mount namespace: the verdict must
    predict the start's outcome (fail on this hybrid host; both ok elsewhere)."""
    import plain_daemon

    from lxcvirt.errors import StartFailed
    from lxcvirt.host import Host

    why_not = plain_daemon.available()
    if why_not:
        pytest.fail(f"cannot start a second libvirtd: {why_not}")
    hybrid = checks.Reader("/").layout(
        parse_mountinfo(Path("/proc/self/mountinfo").read_text()), {}
    ).kind == "hybrid"
    name = f"lxcvirt-test-{os.getpid()}-plain"  # lives only in the throw-away daemon
    with plain_daemon.plain_daemon() as daemon:
        host = Host(daemon.uri)  # default preflight: enforce()
        try:
            report = run_checks(host, probe=False)
            finding = report.get("daemon.cgroups")
            assert finding is not None and f"(pid {daemon.pid})" in finding.what
            host.define(busybox_spec(name, busybox_root))
            if hybrid:
                assert finding.level == "fail" and report.exit_code == 1
                with pytest.raises(HostError, match="sees cgroup2 at"):
                    host.start(name)
                with pytest.raises(StartFailed, match="Unable to create directory"):
                    host.start(name, check=False)  # and indeed libvirt fails there
            else:
                assert finding.level == "ok"
                assert host.start(name).running
                host.destroy(name)
            host.undefine(name)
        finally:
            # A container left running here would outlive the throw-away daemon (its
            # libvirt_lxc controller does not die with it).
            with contextlib.suppress(Exception):
                host.destroy(name)
            host.close()


def test_start_refuses_when_a_required_check_fails(
    libvirt_conn: Any, names: Callable[[str], str], busybox_root: Path, fresh_cache: None
) -> None:
    from lxcvirt.host import Host

    bad = Finding("daemon.cgroups", "fail", "libvirtd sees cgroup2 at /x", "it breaks",
                  "do y", required=True)
    checks._cache[URI] = Report("hybrid", (bad,))
    name = names("refused")
    with Host(URI) as host:
        host.define(busybox_spec(name, busybox_root))
        with pytest.raises(HostError, match="libvirtd sees cgroup2 at /x.*fix: do y"):
            host.start(name)
        assert not host.status(name).running
        assert host.start(name, check=False).running  # --no-check


def test_enforce_runs_once_per_process(fresh_cache: None, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    class FakeHost:  # pure logic: enforce's caching, no daemon involved
        uri = "lxc+tcp://fake/"

    def fake_run(host: Any) -> Report:
        calls.append(host.uri)
        return Report("v1", (Finding("x", "warn", "w"),))

    monkeypatch.setattr(checks, "run_checks", fake_run)
    enforce(FakeHost())  # type: ignore[arg-type]
    enforce(FakeHost())  # type: ignore[arg-type]
    assert calls == ["lxc+tcp://fake/"]


def test_remote_uri_file_checks_are_not_checkable(libvirt_conn: Any) -> None:
    from lxcvirt.host import Host

    # A remote URI in name, answered by the real daemon's connection (never closed here).
    host = Host("lxc+ssh://remote.invalid/", conn=libvirt_conn, preflight=lambda _h: None)
    report = Checker("/", host).run()
    assert not host.is_local
    for check in ("cgroup.layout", "daemon.cgroups", "daemon.emulator"):
        finding = report.get(check)
        assert finding is not None and finding.level == "unknown", finding
    assert not any(f.check.startswith(("cgroup.probe", "cgroup.memory")) for f in report.findings)
    assert report.get("daemon.connect").level == "ok"  # type: ignore[union-attr]
    assert report.verdict == "unknown" and report.exit_code == 0


def test_spec_networks_are_checked(libvirt_conn: Any, host: Any, busybox_root: Path) -> None:
    from lxcvirt.spec import Interface

    spec = busybox_spec("lxcvirt-test-unused", busybox_root,
                        interfaces=(Interface(type="network", source="lxcvirt-test-no-such-net"),
                                    Interface(type="bridge", source="lxcvirt-nobr0")))
    report = run_checks(host, spec=spec, probe=False)
    net = report.get("network.lxcvirt-test-no-such-net")
    assert net is not None and net.level == "fail" and "not defined" in net.what
    br = report.get("bridge.lxcvirt-nobr0")
    assert br is not None and br.level == "fail"


# --- the command -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "code"), [("v1-all", 0), ("hybrid-unified", 1), ("v2-all", 0)], ids=str
)
def test_cli_check_root(name: str, code: int, tmp_path: Path) -> None:
    from lxcvirt.cli import cli

    root = tmp_path / name
    shutil.copytree(HOSTS / name, root)
    result = CliRunner().invoke(cli, ["check", "--root", str(root), "--json"],
                                standalone_mode=False)
    assert result.exception is None, result.output
    assert result.return_value == code
    data = json.loads(result.output)
    assert data["verdict"] == json.loads((root / "expected.json").read_text())["verdict"]


def test_cli_check_text_shows_the_remedy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from lxcvirt.cli import main

    root = tmp_path / "h"
    shutil.copytree(HOSTS / "hybrid-unified", root)
    code = main(["check", "--root", str(root), "--problems"])
    text = capsys.readouterr().out
    assert code == 1
    assert text.startswith("FAIL    daemon.cgroups")
    assert "fix: run libvirtd in a private mount namespace" in text
    assert "verdict: fail" in text
    assert "OK " not in text


def _limits_spec(**limits: Any) -> Any:
    from lxcvirt.spec import Container, Filesystem, Init, Limits

    return Container(name="limits", init=Init("/sbin/init"),
                     filesystems=(Filesystem(target="/", source="/srv/limits"),),
                     limits=Limits(**limits))


@pytest.mark.parametrize(("fixture", "limits", "check", "level", "words"), [
    ("v1-blkio-nested", {"blkio_weight": 500}, "spec.limits.blkio", "fail",
     "refuses them (cgroup.probe.blkio)"),
    ("v1-all", {"blkio_weight": 500}, "spec.limits.blkio", "ok", "blkio controller at"),
    ("v1-all", {"cpu_shares": 512, "cpuset": "0"}, "spec.limits.cpu", "ok",
     "limits.cpu_shares: cpu controller at"),
    ("v1-no-memory", {"memory_hard_limit": "64MiB"}, "spec.limits.memory", "fail",
     "needs the memory controller"),
    ("v2-all", {"blkio_weight": 500}, "spec.limits.io", "ok", "io controller at"),
    ("v2-all", {"cpu_quota": 20000}, "spec.limits.cpu", "ok", "cpu controller at"),
])
def test_check_spec_names_the_controller_each_limit_needs(
    fixture: str, limits: dict[str, Any], check: str, level: str, words: str, tmp_path: Path
) -> None:
    root = tmp_path / fixture
    shutil.copytree(HOSTS / fixture, root, symlinks=True)
    faults_file = root / "faults.json"
    faults = json.loads(faults_file.read_text()) if faults_file.exists() else {}
    report = run_checks(root=root, mkdir=_faulty_mkdir(root, faults),
                        spec=_limits_spec(**limits))
    found = report.get(check)
    assert found is not None and found.level == level, (found, [f.check for f in report.findings])
    assert words in found.what
    if level == "fail":
        assert found.required and found.why and found.fix
    # a spec that asks no limit adds no such check
    plain = run_checks(root=root, mkdir=_faulty_mkdir(root, faults), spec=_limits_spec())
    assert plain.get(check) is None


@pytest.mark.parametrize(("limit", "level"), [(128, "warn"), (699, "warn"), (700, "ok"),
                                              (8192, "ok")])
def test_the_inotify_budget_of_systemd_containers(tmp_path: Path, limit: int,
                                                  level: str) -> None:
    # With 128 the 19th Debian container's systemd exited at once (bench/density_bench.py).
    root = tmp_path / "h"
    shutil.copytree(HOSTS / "v2-all", root, symlinks=True)
    sysctl = root / "proc/sys/fs/inotify"
    sysctl.mkdir(parents=True, exist_ok=True)
    (sysctl / "max_user_instances").write_text(f"{limit}\n")
    found = {f.check: f for f in run_checks(root=root, probe=False).findings}
    assert found["host.inotify"].level == level
    assert f"room for about {limit // 7} systemd containers" in found["host.inotify"].what
    if level == "warn":
        assert "fs.inotify.max_user_instances=8192" in found["host.inotify"].fix
    (sysctl / "max_user_instances").unlink()
    assert "host.inotify" not in {f.check for f in run_checks(root=root, probe=False).findings}
