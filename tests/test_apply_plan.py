"""Pure logic of apply: the definition comparison, file collection, the inventory, the spec's
``hosts`` key.  (Everything that talks to libvirt is in test_apply.py / test_remote.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from lxcvirt import apply as A
from lxcvirt._compare import compare
from lxcvirt._xml import parse_xml
from lxcvirt.errors import ConfigError, SpecError
from lxcvirt.host import keep_generated
from lxcvirt.inventory import inventory_from_dict, load_inventory
from lxcvirt.load import spec_from_dict
from lxcvirt.rendering import render
from lxcvirt.spec import Autostart, Container, Filesystem, Init

EMU = "/usr/lib/libvirt/libvirt_lxc"


def spec(**kw: object) -> Container:
    base: dict[str, object] = {
        "name": "web",
        "init": Init("/bin/sh", args=("-c", "sleep 1")),
        "memory": "64MiB",
        "filesystems": (Filesystem(target="/", source="/srv/web"),),
    }
    base.update(kw)
    return Container(**base)  # type: ignore[arg-type]


def as_libvirt_stores(xml: str) -> str:
    """What libvirt 9.0 writes back for our rendering (seen with virsh dumpxml --inactive):
    the defaults it adds, double-quoted metadata, its own layout."""
    root = parse_xml(xml)
    from lxml import etree

    memory = root.find("memory")
    cur = etree.Element("currentMemory", unit="KiB")
    cur.text = memory.text
    memory.addnext(cur)
    if root.find("vcpu") is None:
        cur.addnext(etree.Element("vcpu"))
        root.find("vcpu").text = "1"
    root.find("vcpu").set("placement", "static")
    root.find("os/type").set("arch", "x86_64")
    clock = etree.Element("clock", offset="utc")
    root.find("os").addnext(clock)
    if root.find("on_crash") is None:
        for tag, value in reversed(
            (("on_poweroff", "destroy"), ("on_reboot", "restart"), ("on_crash", "destroy"))
        ):
            el = etree.Element(tag)
            el.text = value
            clock.addnext(el)
    res = etree.SubElement(root, "resource")
    etree.SubElement(res, "partition").text = "/machine"
    root.find("vcpu").addnext(res)
    con = root.find("devices/console")
    etree.SubElement(con, "target", type="lxc", port="0")
    etree.indent(root, space="  ")
    return str(etree.tostring(root, encoding="unicode"))


def test_unchanged_despite_libvirt_defaults() -> None:
    new = render(spec(), emulator=EMU)
    cmp = compare("web", as_libvirt_stores(new), parse_xml(new))
    assert not cmp.changed and cmp.diff == ""


def test_memory_change_shows_in_diff() -> None:
    stored = as_libvirt_stores(render(spec(), emulator=EMU))
    cmp = compare("web", stored, parse_xml(render(spec(memory="1GiB"), emulator=EMU)))
    assert cmp.changed and not cmp.autostart_only
    assert '+  <memory unit="KiB">1048576</memory>' in cmp.diff
    assert '-  <memory unit="KiB">65536</memory>' in cmp.diff


def test_autostart_only() -> None:
    stored = as_libvirt_stores(render(spec(), emulator=EMU))
    new = render(spec(autostart=Autostart(auto=True, priority=2)), emulator=EMU)
    cmp = compare("web", stored, parse_xml(new))
    assert cmp.changed and cmp.autostart_only and 'priority="2"' in cmp.diff


def test_units_comments_and_layout_do_not_count() -> None:
    stored = as_libvirt_stores(render(spec(), emulator=EMU))
    new = render(spec(), emulator=EMU).replace(
        "<memory unit='KiB'>65536</memory>", "<!-- 64 MiB --><memory unit='MiB'>64</memory>"
    ).replace("\n  ", "\n")
    assert not compare("web", stored, parse_xml(new)).changed


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("</domain>", "<features><privnet/></features></domain>"),
        ('<clock offset="utc"/>', '<clock offset="localtime"/>'),
        ("<on_reboot>restart</on_reboot>", "<on_reboot>destroy</on_reboot>"),
        ("<devices>", "<devices><emulator>/usr/lib/libvirt/libvirt_lxc</emulator>"),
    ],
    ids=["features", "clock", "on_reboot", "emulator-is-a-default"],
)
def test_stored_only_elements_count_unless_defaults(old: str, new: str) -> None:
    """Anything the stored definition has beyond libvirt's own defaults is a change."""
    minimal = (
        "<domain type='lxc'><name>web</name><uuid>5b0f8a1e-3c55-4a3e-9d55-6c7876697274</uuid>"
        "<memory>65536</memory><os><type>exe</type><init>/bin/sh</init></os>"
        "<devices><console type='pty'/></devices></domain>"
    )
    stored = as_libvirt_stores(minimal)
    assert not compare("web", stored, parse_xml(minimal)).changed
    assert old in stored
    changed = compare("web", stored.replace(old, new, 1), parse_xml(minimal)).changed
    assert changed is ("emulator" not in new)


def test_identity_filled_from_stored() -> None:
    stored = (
        "<domain type='lxc'><name>w</name><uuid>11111111-2222-3333-4444-555555555555</uuid>"
        "<devices><interface type='ethernet'><mac address='52:54:00:aa:bb:cc'/></interface>"
        "</devices></domain>"
    )
    new = parse_xml("<domain type='lxc'><name>w</name><devices>"
                    "<interface type='ethernet'/></devices></domain>")
    assert keep_generated(new, stored)
    assert new.findtext("uuid") == "11111111-2222-3333-4444-555555555555"
    assert new.find("devices/interface/mac").get("address") == "52:54:00:aa:bb:cc"
    assert not keep_generated(new, stored)  # nothing more to add


def test_collect_files(tmp_path: Path) -> None:
    (tmp_path / "b.toml").write_text("")
    (tmp_path / "a.xml").write_text("")
    (tmp_path / "notes.txt").write_text("")
    (tmp_path / "hosts.toml").write_text("")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "c.toml").write_text("")
    got = A.collect_files([tmp_path, tmp_path / "b.toml"], skip=[tmp_path / "hosts.toml"])
    assert [p.name for p in got] == ["a.xml", "b.toml"]
    with pytest.raises(SpecError, match="no such file"):
        A.collect_files([tmp_path / "missing"])
    # the same file named twice (two spellings) is read once
    sub = tmp_path / "sub"
    twice = A.collect_files([sub / "c.toml", sub / ".." / "sub" / "c.toml"])
    assert len(twice) == 1


def test_collect_files_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(SpecError, match="empty: no spec"):
        A.collect_files([tmp_path / "empty"])


def test_inventory(tmp_path: Path) -> None:
    path = tmp_path / "hosts.toml"
    path.write_text('[hosts]\na = "lxc:///"\nb = { uri = "lxc+ssh://root@b/" }\n')
    inv = load_inventory(path)
    assert inv.names == ("a", "b") and inv.uri("b") == "lxc+ssh://root@b/"
    assert inv.select() == [("a", "lxc:///"), ("b", "lxc+ssh://root@b/")]
    assert inv.select(["b", "lxc+tcp://c/"]) == [
        ("b", "lxc+ssh://root@b/"), ("lxc+tcp://c/", "lxc+tcp://c/")
    ]
    with pytest.raises(ConfigError, match="no host named 'z'"):
        inv.select(["z"])


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({}, "hosts: missing"),
        ({"hosts": {"a": "web1"}}, "expected a libvirt URI"),
        ({"hosts": {"a": {"url": "lxc:///"}}}, "hosts.a.url: unknown key"),
        ({"hosts": {"a b": "lxc:///"}}, "is not a host name"),
        ({"hosts": {"a": "lxc:///"}, "groups": {}}, "groups: unknown key"),
    ],
    ids=["empty", "not-a-uri", "unknown-host-key", "bad-name", "unknown-top-key"],
)
def test_inventory_invalid(data: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        inventory_from_dict(data, "inv.toml")


def test_spec_hosts_key() -> None:
    base = {"name": "w", "init": {"path": "/bin/sh"}}
    assert spec_from_dict({**base, "hosts": ["a", "b"]}).hosts == ("a", "b")
    assert spec_from_dict(base).hosts == ()
    with pytest.raises(SpecError, match="hosts: a host is listed twice"):
        spec_from_dict({**base, "hosts": ["a", "a"]})
    with pytest.raises(SpecError, match="hosts: 'a b'"):
        spec_from_dict({**base, "hosts": ["a b"]})
    assert "hosts" not in render(spec(hosts=("a",)), emulator=EMU)
