"""Root filesystems (lxcvirt.rootfs, ``lxcvirt rootfs``, ``from`` in specs): real Debian
builds from the machine's cache, booted on the real daemon; the cache's own mechanics with
a stand-in builder in a private cache folder."""

from __future__ import annotations

import json
import os
import stat
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import DEBIAN_IMAGE, ROOTS_DIR

from lxcvirt import rootfs
from lxcvirt.errors import RootfsError, SpecError
from lxcvirt.load import load_spec_text
from lxcvirt.rootfs import _cache, _debian
from lxcvirt.spec import Container, Filesystem, Init, Interface

LXCVIRT = [sys.executable, "-m", "lxcvirt"]
VIRSH = ["virsh", "-q", "-c", "lxc:///"]


def lxcvirt(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*LXCVIRT, *args], capture_output=True, text=True, timeout=timeout)


def _wait(cond: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


# --- names, specs and plain checks -------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "name"),
    [("debian/bookworm", "debian/bookworm"), ("debian/12", "debian/bookworm"),
     ("Debian/Trixie", "debian/trixie"), ("busybox", "busybox")],
)
def test_image_names(text: str, name: str) -> None:
    assert rootfs.parse_image(text).name == name


@pytest.mark.parametrize("text", ["ubuntu/noble", "debian", "debian/", "debian/../x", "alpine"])
def test_unknown_images_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="unknown image"):
        rootfs.parse_image(text)


def test_spec_from_on_the_root() -> None:
    spec = load_spec_text(
        'name = "web"\n[init]\npath = "/sbin/init"\n'
        '[[filesystem]]\nsource = "/srv/web"\ntarget = "/"\nfrom = "debian/12"\n'
    )
    assert spec.root is not None and spec.root.image == "debian/bookworm"


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('source = "/srv/data"\ntarget = "/data"\nfrom = "debian/bookworm"', "only the root"),
        ('source = "/srv/web"\ntarget = "/"\nfrom = "ubuntu/noble"', "unknown image"),
    ],
    ids=["not-the-root", "unknown-image"],
)
def test_spec_from_is_checked(table: str, message: str) -> None:
    with pytest.raises(SpecError, match=message) as info:
        load_spec_text(f'name = "web"\n[init]\npath = "/sbin/init"\n[[filesystem]]\n{table}\n')
    assert ".from" in str(info.value)


def test_spec_flags_from() -> None:
    from lxcvirt.load import spec_from_flags

    spec = spec_from_flags(name="web", init="/sbin/init", root="/srv/web", image="debian/13")
    assert spec.root is not None and spec.root.image == "debian/trixie"
    with pytest.raises(SpecError, match="needs --root"):
        spec_from_flags(name="web", init="/sbin/init", image="debian/bookworm")


def test_remote_hosts_are_told_where_to_build() -> None:
    spec = Container(
        name="web", init=Init("/sbin/init"),
        filesystems=(Filesystem(target="/", source="/srv/x", image="debian/bookworm"),),
    )
    assert rootfs.needs_root(spec, local=False)
    with pytest.raises(RootfsError, match="build it on that host"):
        rootfs.ensure_roots(spec, local=False)


def test_packages_are_checked_and_sorted() -> None:
    assert _debian.packages(["vim", "curl", "dbus"]) == tuple(
        sorted({*_debian.BASE_PACKAGES, "vim", "curl"})
    )
    with pytest.raises(RootfsError, match="not a Debian package name"):
        _debian.check_packages(["--root=/"])


def test_keys_follow_the_package_set_not_its_order() -> None:
    a = _cache.key_for("debian", "bookworm", ("b", "a"), 1)
    assert a == _cache.key_for("debian", "bookworm", ("a", "b"), 1)
    assert a.startswith("debian-bookworm-")
    assert a != _cache.key_for("debian", "bookworm", ("a", "b", "c"), 1)
    assert a != _cache.key_for("debian", "bookworm", ("a", "b"), 2)


def test_mirrors_come_from_the_host_apt_sources(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LXCVIRT_DEBIAN_MIRROR", raising=False)
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list").write_text(
        "# deb http://commented.example/debian bookworm main\n"
        "deb [arch=amd64 signed-by=/k.gpg] http://mirror.example/debian/ bookworm main\n"
    )
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\n"
    )
    (tmp_path / "sources.list.d" / "other.list").write_text(
        "deb cdrom:[Debian]/ bookworm main\ndeb https://vendor.example/apt stable main\n"
    )
    assert _debian.mirrors(tmp_path) == (
        "http://mirror.example/debian", "http://mirror.example/debian-security"
    )
    assert _debian.mirrors(tmp_path / "none") == (
        _debian.DEFAULT_MIRROR, _debian.DEFAULT_MIRROR + "-security"
    )
    monkeypatch.setenv("LXCVIRT_DEBIAN_MIRROR", "http://proxy:3142/deb.debian.org/debian/")
    assert _debian.mirrors(tmp_path) == (
        "http://proxy:3142/deb.debian.org/debian",
        "http://proxy:3142/deb.debian.org/debian-security",
    )


def test_sources_of_a_rolling_release_have_no_updates(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LXCVIRT_DEBIAN_MIRROR", "http://m.example/debian")
    assert _debian.sources("sid") == ["deb http://m.example/debian sid main"]
    assert _debian.sources("trixie") == [
        "deb http://m.example/debian trixie main",
        "deb http://m.example/debian trixie-updates main",
        "deb http://m.example/debian-security trixie-security main",
    ]


# --- the cache's mechanics, with a stand-in builder ------------------------------------


@pytest.fixture
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Path]]:
    """A cache folder of the test's own, and a builder that makes a small tree (the real
    mmdebstrap build is exercised by the machine's shared cache); yields the build list."""
    monkeypatch.setenv(_cache.ENV, str(tmp_path / "cache"))
    builds: list[Path] = []

    def fake_build(release: str, extra: Any, dest: Path) -> None:
        time.sleep(0.2)  # long enough for concurrent callers to meet at the lock
        (dest / "etc").mkdir(parents=True)
        (dest / "etc" / "build").write_text(f"{release} {len(builds)}\n")
        builds.append(dest)

    monkeypatch.setattr(_debian, "build", fake_build)
    monkeypatch.setattr(_debian, "customise", lambda tree: None)
    yield builds


def test_second_create_hits_the_cache_and_refresh_rebuilds(
    private_cache: list[Path], tmp_path: Path
) -> None:
    told: list[str] = []
    first = rootfs.create("debian/bookworm", tmp_path / "one", on_build=told.append)
    second = rootfs.create("debian/bookworm", tmp_path / "two", on_build=told.append)
    assert (first.cache_hit, second.cache_hit) == (False, True)
    assert told == ["debian/bookworm"], "told of the build only"
    assert first.cache_key == second.cache_key
    assert len(private_cache) == 1
    again = rootfs.create("debian/bookworm", tmp_path / "three", refresh=True)
    assert not again.cache_hit and len(private_cache) == 2
    assert (tmp_path / "three/etc/build").read_text() == "bookworm 1\n"
    assert (tmp_path / "one/etc/hostname").read_text() == "one\n"
    entries = [p.name for p in _cache.cache_root().iterdir() if p.is_dir()]
    assert entries == [first.cache_key], "the old entry and the build folder are gone"


def test_ensure_cached_builds_without_copying(private_cache: list[Path]) -> None:
    key, hit = rootfs.ensure_cached("debian/bookworm")
    assert not hit and len(private_cache) == 1
    assert rootfs.ensure_cached("debian/bookworm") == (key, True)
    assert rootfs.ensure_cached("debian/bookworm", refresh=True) == (key, False)
    assert len(private_cache) == 2
    other, _ = rootfs.ensure_cached("debian/bookworm", include=["vim"])
    assert other != key
    with pytest.raises(RootfsError, match="not cached"):
        rootfs.ensure_cached("busybox")


def test_concurrent_creates_build_once(private_cache: list[Path], tmp_path: Path) -> None:
    results: list[rootfs.RootfsResult] = []
    threads = [
        threading.Thread(
            target=lambda i=i: results.append(rootfs.create("debian/bookworm", tmp_path / f"r{i}"))
        )
        for i in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(private_cache) == 1
    assert sorted(r.cache_hit for r in results) == [False, True, True, True]


def test_a_failed_build_leaves_no_entry_and_no_dest(
    private_cache: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(release: str, extra: Any, dest: Path) -> None:
        (dest / "half").mkdir(parents=True)
        raise RootfsError("the mirror went away")

    monkeypatch.setattr(_debian, "build", broken)
    with pytest.raises(RootfsError, match="mirror went away"):
        rootfs.create("debian/bookworm", tmp_path / "web")
    assert not (tmp_path / "web").exists()
    assert list(_cache.cache_root().glob("*/tree")) == []
    assert list(_cache.cache_root().glob(".tmp-*")) == []


def test_a_half_built_entry_is_never_used(private_cache: list[Path], tmp_path: Path) -> None:
    key = rootfs.create("debian/bookworm", tmp_path / "one").cache_key
    assert key is not None
    # What a build killed halfway leaves: a .tmp- folder, never the entry itself.
    stale = _cache.cache_root() / f".tmp-{key}-dead"
    (stale / "tree").mkdir(parents=True)
    rootfs.create("debian/bookworm", tmp_path / "two", refresh=True)
    assert not stale.exists()


@pytest.mark.parametrize("kind", ["file-inside", "a-file", "a-symlink"])
def test_dest_must_be_new_or_empty(tmp_path: Path, kind: str) -> None:
    dest = tmp_path / "dest"
    if kind == "file-inside":
        dest.mkdir()
        (dest / "precious").write_text("keep me")
    elif kind == "a-file":
        dest.write_text("keep me")
    else:
        (tmp_path / "real").mkdir()
        dest.symlink_to(tmp_path / "real")
    before = sorted(p.name for p in tmp_path.rglob("*"))
    with pytest.raises(RootfsError):
        rootfs.create("busybox", dest)
    assert sorted(p.name for p in tmp_path.rglob("*")) == before
    if kind == "file-inside":
        assert (dest / "precious").read_text() == "keep me"


def test_empty_dest_folder_is_used(tmp_path: Path) -> None:
    dest = tmp_path / "web"
    dest.mkdir()
    result = rootfs.create("busybox", dest)
    assert result.hostname == "web" and (dest / "bin" / "busybox").exists()
    assert (dest / "etc" / "hostname").read_text() == "web\n"


def test_bad_hostname_is_refused(tmp_path: Path) -> None:
    with pytest.raises(RootfsError, match="not a usable hostname"):
        rootfs.create("busybox", tmp_path / "web", hostname="bad name")
    assert not (tmp_path / "web").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(["create", "ubuntu/noble", "{d}/web"], "unknown image", id="unknown-image"),
        pytest.param(["create", "debian/bookworm", "{d}/web", "--include", "a b"],
                     "not a Debian package name", id="bad-package"),
        pytest.param(["create", "busybox", "{d}/web", "--include", "vim"],
                     "takes no extra packages", id="busybox-packages"),
        pytest.param(["create", "busybox", "{d}/full"], "is not empty", id="not-empty"),
        pytest.param(["create", "busybox", "{d}/web", "--hostname", "a b"],
                     "not a usable hostname", id="bad-hostname"),
        pytest.param(["shift", "{d}/missing", "--idmap-base", "100000"], "does not exist",
                     id="shift-missing"),
        pytest.param(["shift", "{d}/full", "--idmap-base", "0"], "0 is not in the range",
                     id="shift-base-0"),
    ],
)
def test_cli_errors_are_one_line(
    args: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from lxcvirt.cli import main

    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep").write_text("x")
    assert main(["rootfs", *(a.format(d=tmp_path) for a in args)]) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    # lxcvirt's own errors are one line; click's usage errors come with the usage
    assert err.count("\n") == 1 or err.startswith("Usage:")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["full"]


def test_cli_create_busybox(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from lxcvirt.cli import main

    assert main(["rootfs", "create", "busybox", str(tmp_path / "web"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["image"] == "busybox" and out["hostname"] == "web" and out["cache_key"] is None


# --- hostile roots ---------------------------------------------------------------------


def _plant_entry(key_of: str, tree: Callable[[Path], None]) -> None:
    """A cache entry whose tree ``tree`` fills (as if it came from somewhere else)."""
    entry = _cache.cache_root() / key_of
    (entry / "tree").mkdir(parents=True)
    tree(entry / "tree")
    (entry / "info.json").write_text(json.dumps({"image": DEBIAN_IMAGE}))


def _bookworm_key() -> str:
    return _cache.key_for("debian", "bookworm", _debian.packages(()), _debian.CUSTOMISATION)


def test_planted_symlinks_are_not_followed(private_cache: list[Path], tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("host data\n")

    def hostile(tree: Path) -> None:
        (tree / "etc").mkdir()
        (tree / "etc" / "hostname").symlink_to(victim)
        (tree / "etc" / "hosts").symlink_to(victim)

    _plant_entry(_bookworm_key(), hostile)
    result = rootfs.create("debian/bookworm", tmp_path / "web")
    assert result.cache_hit and not private_cache
    assert victim.read_text() == "host data\n"
    hostname = tmp_path / "web" / "etc" / "hostname"
    assert not hostname.is_symlink() and hostname.read_text() == "web\n"
    assert not (tmp_path / "web" / "etc" / "hosts").is_symlink()


def test_a_symlinked_folder_is_refused(private_cache: list[Path], tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "hostname").write_text("host data\n")
    _plant_entry(_bookworm_key(), lambda tree: (tree / "etc").symlink_to(outside))
    with pytest.raises(RootfsError, match="symlink"):
        rootfs.create("debian/bookworm", tmp_path / "web")
    assert (outside / "hostname").read_text() == "host data\n"
    assert sorted(p.name for p in outside.iterdir()) == ["hostname"]
    assert not (tmp_path / "web").exists()


# --- shifting ownership ---------------------------------------------------------------

BASE = 200000


def test_shift_keeps_setuid_bits_and_capabilities(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "bin").mkdir(parents=True)
    suid = root / "bin" / "su"
    suid.write_text("#!/bin/sh\n")
    suid.chmod(0o4755)
    sgid = root / "bin" / "wall"
    sgid.write_text("#!/bin/sh\n")
    os.chown(sgid, 0, 5)
    sgid.chmod(0o2755)
    capped = root / "bin" / "ping"
    capped.write_text("#!/bin/sh\n")
    # cap_net_raw (bit 13) permitted + effective, version 2: valid for the host's root only
    v2 = struct.pack("<IIIII", 0x02000001, 1 << 13, 0, 0, 0)
    os.setxattr(capped, "security.capability", v2)
    victim = tmp_path / "victim"
    victim.write_text("host\n")
    (root / "escape").symlink_to(victim)
    os.link(suid, root / "bin" / "su-again")

    result = rootfs.shift(root, rootfs.idmap_from_base(BASE))

    assert os.lstat(victim).st_uid == 0, "a symlink's target is never chowned"
    assert os.lstat(root / "escape").st_uid == BASE
    assert os.stat(root).st_uid == BASE
    st = os.stat(suid)
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (BASE, BASE, 0o4755)
    st = os.stat(sgid)
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (BASE, BASE + 5, 0o2755)
    cap = os.getxattr(capped, "security.capability")
    magic, permitted = struct.unpack_from("<II", cap)
    assert magic == 0x03000001 and permitted == 1 << 13
    assert struct.unpack_from("<I", cap, 20)[0] == BASE, "version 3, rooted at the mapped root"
    assert result.caps_kept == 1 and result.caps_dropped == 0
    again = rootfs.shift(root, rootfs.idmap_from_base(BASE))
    assert again.entries == 0, "shifting twice changes nothing"
    assert os.stat(suid).st_uid == BASE


def test_shift_refuses_the_cache(private_cache: list[Path], tmp_path: Path) -> None:
    key = rootfs.create("debian/bookworm", tmp_path / "one").cache_key
    with pytest.raises(RootfsError, match="inside lxcvirt's cache"):
        rootfs.shift(_cache.cache_root() / str(key) / "tree", rootfs.idmap_from_base(BASE))


def test_shift_cli(tmp_path: Path) -> None:
    root = tmp_path / "web"
    rootfs.create("busybox", root)
    r = lxcvirt("rootfs", "shift", str(root), "--idmap-base", str(BASE), "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["entries"] > 10
    assert os.lstat(root / "bin" / "sh").st_uid == BASE


# --- real Debian roots -----------------------------------------------------------------


def test_cached_debian_root(debian_root: Callable[..., Path]) -> None:
    began = time.monotonic()
    root = debian_root("deb-cached")
    took = time.monotonic() - began
    assert took < 30, f"a copy from the cache took {took:.1f} s"
    assert (root / "etc" / "hostname").read_text() == "deb-cached\n"
    assert "deb-cached" in (root / "etc" / "hosts").read_text()
    assert (root / "etc" / "machine-id").read_text() == ""
    assert os.readlink(root / "etc" / "resolv.conf") == "../run/systemd/resolve/stub-resolv.conf"
    wants = root / "etc/systemd/system/multi-user.target.wants"
    assert (wants / "systemd-networkd.service").is_symlink()
    assert "DHCP=yes" in (root / "etc/systemd/network/80-lxcvirt.network").read_text()
    assert os.path.realpath(root / "sbin" / "init").endswith("/systemd")


def test_cache_hit_through_the_cli(debian_cache: str) -> None:
    base = ROOTS_DIR / f"{os.getpid()}-cli"
    try:
        r = lxcvirt("rootfs", "create", DEBIAN_IMAGE, str(base / "web"), "--json")
        assert r.returncode == 0, r.stderr
        out = json.loads(r.stdout)
        assert out["cache_hit"] is True and out["cache_key"] == debian_cache
        assert out["hostname"] == "web"
        r = lxcvirt("rootfs", "create", DEBIAN_IMAGE, str(base / "web"))
        assert r.returncode == 1 and "not empty" in r.stderr
        assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
        r = lxcvirt("rootfs", "images")
        assert f"cached {debian_cache}" in r.stdout
        r = lxcvirt("rootfs", "build", DEBIAN_IMAGE)
        assert r.returncode == 0 and f"already cached ({debian_cache})" in r.stdout
    finally:
        import shutil

        shutil.rmtree(base, ignore_errors=True)


def test_shifted_debian_root(debian_root: Callable[..., Path]) -> None:
    root = debian_root("deb-shifted", idmap_base=BASE)
    passwd = os.stat(root / "usr" / "bin" / "passwd")
    assert passwd.st_uid == BASE and passwd.st_mode & stat.S_ISUID
    shadow = os.stat(root / "etc" / "shadow")
    assert shadow.st_gid == BASE + 42  # group shadow
    assert (root / "etc" / "hostname").read_text() == "deb-shifted\n"
    assert os.stat(root / "etc" / "hostname").st_uid == BASE


@pytest.fixture(scope="session")
def default_network(libvirt_conn: Any) -> str:
    """libvirt's NAT network ``default`` (192.168.122.0/24, DHCP, virbr0), defined and
    started when this host has none; left in place."""
    import libvirt

    try:
        net = libvirt_conn.networkLookupByName("default")
    except libvirt.libvirtError:
        net = libvirt_conn.networkDefineXML(
            "<network><name>default</name><forward mode='nat'/>"
            "<bridge name='virbr0' stp='on' delay='0'/>"
            "<ip address='192.168.122.1' netmask='255.255.255.0'>"
            "<dhcp><range start='192.168.122.2' end='192.168.122.254'/></dhcp></ip></network>"
        )
    if not net.isActive():
        net.create()
    net.setAutostart(1)
    return "default"


def debian_spec(name: str, root: Path, network: str) -> Container:
    return Container(
        name=name,
        init=Init("/sbin/init"),
        memory="512MiB",
        filesystems=(Filesystem(target="/", source=str(root)),),
        interfaces=(Interface(type="network", source=network),),
    )


def shut_down(name: str) -> float:
    """Halt a systemd container the way systemd listens (initctl alone); seconds taken."""
    began = time.monotonic()
    subprocess.run([*VIRSH, "shutdown", "--mode", "initctl", name], check=True,
                   capture_output=True)
    _wait(lambda: "shut off" in subprocess.run([*VIRSH, "domstate", name], capture_output=True,
                                               text=True).stdout, 30, f"{name} to shut off")
    return time.monotonic() - began


def wait_running(name: str, timeout: float = 90) -> str:
    """systemd's verdict once start-up is over (``running`` or ``degraded``); retried while
    the container is too young for systemctl to reach its manager."""
    def verdict() -> str | None:
        r = lxcvirt("exec", name, "--", "systemctl", "is-system-running", "--wait",
                    timeout=timeout)
        out = r.stdout.strip()
        return out if out in ("running", "degraded", "maintenance") else None

    return str(_wait(verdict, timeout, f"systemd in {name} to finish starting"))


def _lease(dom: Any) -> str | None:
    import libvirt

    try:
        addrs = dom.interfaceAddresses(libvirt.VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_LEASE)
    except libvirt.libvirtError:
        return None
    for iface in (addrs or {}).values():
        for a in iface.get("addrs") or []:
            if a.get("type") == libvirt.VIR_IP_ADDR_TYPE_IPV4:
                return str(a["addr"])
    return None


def test_debian_boots_with_systemd_and_dhcp(
    host: Any, names: Callable[[str], str], debian_root: Callable[..., Path],
    default_network: str,
) -> None:
    name = names("deb")
    root = debian_root(name)
    began = time.monotonic()
    host.create(debian_spec(name, root, default_network), check=False)
    verdict = wait_running(name)
    print(f"boot to {verdict}: {time.monotonic() - began:.1f} s")
    assert verdict in ("running", "degraded")
    assert lxcvirt("exec", name, "--", "cat", "/proc/1/comm").stdout.strip() == "systemd"
    assert lxcvirt("exec", name, "--", "hostname").stdout.strip() == name
    r = lxcvirt("console", name, "--send", r"\r", "--expect", "login:", "--timeout", "60",
                timeout=90)
    assert r.returncode == 0, r.stderr
    address = _wait(lambda: _lease(host.domain(name)), 60, f"a DHCP lease for {name}")
    assert address.startswith("192.168.122.")
    r = lxcvirt("exec", name, "--", "ip", "-4", "-o", "addr", "show")
    assert address in r.stdout
    # The resolver: the stub in resolv.conf, its upstream the DNS server DHCP named (the
    # network's dnsmasq); no query leaves the machine here.
    r = lxcvirt("exec", name, "--", "cat", "/etc/resolv.conf")
    assert "nameserver 127.0.0.53" in r.stdout
    _wait(lambda: "192.168.122.1" in lxcvirt("exec", name, "--", "resolvectl", "dns").stdout,
          30, "systemd-resolved to learn the DNS server from DHCP")
    print(f"shut down in {shut_down(name):.1f} s")


def test_spec_from_builds_the_root_at_create(
    names: Callable[[str], str], debian_cache: str, default_network: str, tmp_path: Path,
) -> None:
    name = names("from")
    base = ROOTS_DIR / f"{os.getpid()}-from"
    root = base / name
    spec = tmp_path / "web.toml"
    spec.write_text(
        f'name = "{name}"\nmemory = "512MiB"\n[init]\npath = "/sbin/init"\n'
        f'[[filesystem]]\nsource = "{root}"\ntarget = "/"\nfrom = "debian/bookworm"\n'
        f'[[interface]]\ntype = "network"\nsource = "{default_network}"\n'
    )
    try:
        r = lxcvirt("create", "--no-check", "--json", str(spec))
        assert r.returncode == 0, r.stderr
        out = json.loads(r.stdout)
        assert out["rootfs"][0]["cache_hit"] is True
        assert out["rootfs"][0]["dest"] == str(root)
        assert (root / "etc" / "hostname").read_text() == f"{name}\n"
        assert out["status"]["state"] == "running"
        assert wait_running(name) in ("running", "degraded")
        shut_down(name)
        # The folder exists now: a second create builds nothing.
        subprocess.run([*VIRSH, "undefine", name], check=True, capture_output=True)
        stamp = (root / "etc" / "hostname").stat().st_mtime_ns
        r = lxcvirt("create", "--no-check", "--json", str(spec))
        assert r.returncode == 0, r.stderr
        assert "rootfs" not in json.loads(r.stdout)
        assert (root / "etc" / "hostname").stat().st_mtime_ns == stamp
    finally:
        subprocess.run([*VIRSH, "destroy", name], capture_output=True)
        import shutil

        shutil.rmtree(base, ignore_errors=True)


def test_apply_plans_and_builds_the_root(
    host: Any, names: Callable[[str], str], debian_cache: str, tmp_path: Path,
) -> None:
    from lxcvirt.apply import ROOTFS, apply, plan

    name = names("apply")
    base = ROOTS_DIR / f"{os.getpid()}-apply"
    root = base / name
    spec = tmp_path / f"{name}.toml"
    spec.write_text(
        f'name = "{name}"\nstate = "defined"\n[init]\npath = "/sbin/init"\n'
        f'[[filesystem]]\nsource = "{root}"\ntarget = "/"\nfrom = "debian/bookworm"\n'
    )
    try:
        with plan([spec], hosts={"local": host}) as p:
            assert p.items[0].actions == (ROOTFS, "create")
            assert not root.exists(), "planning builds nothing"
            result = apply(p, check=False)
        assert result.ok, result.to_dict()
        assert result.results[0].done[0].startswith(f"root {root} made of debian/bookworm")
        assert (root / "etc" / "hostname").read_text() == f"{name}\n"
        with plan([spec], hosts={"local": host}) as p:
            assert not p.changed
    finally:
        import shutil

        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.slow
def test_cold_build_into_an_empty_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real mmdebstrap build, in a cache of the test's own (the shared one is warm)."""
    import shutil

    from conftest import in_ci

    base = ROOTS_DIR / f"{os.getpid()}-cold"
    monkeypatch.setenv(_cache.ENV, str(base / "cache"))
    began = time.monotonic()
    try:
        try:
            cold = rootfs.create(DEBIAN_IMAGE, base / "one", refresh=True)
        except RootfsError as exc:
            if in_ci():
                raise
            pytest.skip(f"cannot build: {exc}")
        print(f"cold build: {time.monotonic() - began:.1f} s")
        assert not cold.cache_hit
        warm = rootfs.create(DEBIAN_IMAGE, base / "two")
        assert warm.cache_hit and warm.seconds < 10
        print(f"copy from the cache: {warm.seconds:.1f} s")
        assert (base / "two" / "etc" / "hostname").read_text() == "two\n"
    finally:
        shutil.rmtree(base, ignore_errors=True)
