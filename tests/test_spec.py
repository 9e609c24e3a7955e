"""The spec model: units, checks when built, TOML loading errors naming the key."""

from __future__ import annotations

import pytest

from lxcvirt import Autostart, Container, Filesystem, IdMap, IdRange, Init, Interface
from lxcvirt._units import UnitError, parse_kib
from lxcvirt.errors import SpecError
from lxcvirt.load import load_spec, load_spec_text, spec_from_dict


@pytest.mark.parametrize(
    ("value", "kib"),
    [
        (1024, 1024),
        ("1024", 1024),
        ("512M", 524288),
        ("512MiB", 524288),
        ("1G", 1048576),
        ("1 GiB", 1048576),
        ("1000000KB", 976563),  # powers of 1000, rounded up to whole KiB as libvirt does
        ("1MB", 977),
        ("4096b", 4),
        ("1t", 1024**3),
    ],
)
def test_units(value: object, kib: int) -> None:
    assert parse_kib(value) == kib


@pytest.mark.parametrize("value", ["1.5G", "-1", "12 parsecs", True, 1.5, "", "G"])
def test_bad_units(value: object) -> None:
    with pytest.raises(UnitError):
        parse_kib(value)


def test_python_construction_normalises() -> None:
    c = Container(
        name="web",
        init=Init("/bin/sh", args=["-c", "x"], env={"A": "1"}),  # type: ignore[arg-type]
        memory="256MiB",
        filesystems=[Filesystem(target="/tmp", type="ram", usage="1M")],  # type: ignore[arg-type]
        interfaces=[Interface(source="default", mac="52:54:00:AB:CD:EF")],  # type: ignore[arg-type]
    )
    assert c.memory_kib == 262144
    assert c.init.args == ("-c", "x") and c.init.env == (("A", "1"),)
    assert c.filesystems[0].usage_kib == 1024
    assert c.interfaces[0].mac == "52:54:00:ab:cd:ef"
    assert c.root is None
    with pytest.raises(AttributeError):
        c.name = "other"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"name": ""}, "name"),
        ({"name": "a\nb"}, "name"),
        ({"memory": "1KiB"}, "memory"),
        ({"vcpu": 0}, "vcpu"),
        ({"uuid": "not-a-uuid"}, "uuid"),
        ({"on_crash": "explode"}, "on_crash"),
        ({"state": "paused"}, "state"),
        ({"emulator": "libvirt_lxc"}, "emulator"),
    ],
)
def test_container_checks(kwargs: dict[str, object], key: str) -> None:
    base: dict[str, object] = {"name": "x", "init": Init("/sbin/init")}
    with pytest.raises(SpecError) as info:
        Container(**(base | kwargs))  # type: ignore[arg-type]
    assert info.value.key == key


@pytest.mark.parametrize(
    ("build", "fragment"),
    [
        (lambda: Init("/bin/sh", env={"1BAD": "x"}), "init.env.1BAD"),  # type: ignore[arg-type]
        (lambda: Init("/a/../b"), "'..'"),
        (lambda: Filesystem(target="/x", source="/a", usage="1M"), "usage is for type = 'ram'"),
        (lambda: Filesystem(target="/x", type="ram", source="/a", usage="1M"), "no source"),
        (lambda: Interface(type="bridge"), "needs the bridge name"),
        (lambda: Interface(type="ethernet", source="br0"), "takes no source"),
        (lambda: Interface(source="default", guest="a name with spaces"), "network device"),
        (lambda: IdRange(0, 0, 0), "idmap.count"),
        (lambda: IdMap(uid=(IdRange(0, 1, 1),), gid=()), "idmap.gid"),
        (lambda: Autostart(time=-1), "autostart.time"),
        (lambda: Autostart(groups=("a", "a")), "listed twice"),
        (lambda: Autostart(groups=("a,b",)), "group names"),
        (lambda: Autostart(after=("x/y",)), "autostart.after"),
    ],
)
def test_part_checks(build: object, fragment: str) -> None:
    with pytest.raises(SpecError, match=fragment.replace(".", r"\.").replace("(", r"\(")):
        build()  # type: ignore[operator]


def test_duplicate_mac_and_guest_names() -> None:
    itf = Interface(source="default", mac="52:54:00:00:00:01", guest="eth0")
    with pytest.raises(SpecError, match="same MAC"):
        Container(name="x", init=Init("/i"), interfaces=(itf, itf))
    other = Interface(source="default", guest="eth0")
    with pytest.raises(SpecError, match="same guest device"):
        Container(name="x", init=Init("/i"), interfaces=(itf, other))


def test_toml_errors_name_file_and_key(tmp_path) -> None:  # type: ignore[no-untyped-def]
    p = tmp_path / "web.toml"
    p.write_text('name = "web"\n[init]\npath = "/i"\n[[filesystem]]\ntarget = "/"\nsorce = "/x"\n')
    with pytest.raises(SpecError) as info:
        load_spec(p)
    assert str(info.value).startswith(f"{p}: filesystem[0].sorce: unknown key")


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('name = "x"\ninit = "/sbin/init"\n', "init: expected a table"),
        ('name = "x"\n[init]\nargs = []\n', "init.path: missing"),
        ('name = "x"\nfilesystem = "nope"\n[init]\npath = "/i"\n', "array of tables"),
        ('name = "x"\n[init]\npath = "/i"\n[idmap]\nuid = []\n', "idmap.gid: missing"),
        ('name = "x"\n[init]\npath = "/i"\n[autostart]\nauto = "yes"\n', "autostart.auto"),
    ],
)
def test_toml_shapes(text: str, fragment: str) -> None:
    with pytest.raises(SpecError, match=fragment.replace(".", r"\.")):
        load_spec_text(text, "t.toml")


def test_missing_spec_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SpecError, match="cannot read spec"):
        load_spec(tmp_path / "nope.toml")


@pytest.mark.parametrize(
    "tail",
    [pytest.param("args=" + "[" * 600 + "]" * 600, id="arrays"),
     pytest.param("env={a=" + "{b=" * 600 + "1" + "}" * 601, id="inline-tables")],
)
def test_deeply_nested_toml_is_a_spec_error(tail: str) -> None:
    with pytest.raises(SpecError, match="nested hundreds deep"):
        load_spec_text('name="x"\n[init]\npath="/bin/sh"\n' + tail)


def test_a_table_missing_a_required_key_names_it() -> None:
    with pytest.raises(SpecError) as info:
        spec_from_dict({"name": "x", "init": {"path": "/bin/sh"},
                        "filesystem": [{"source": "/tmp"}]})
    assert info.value.key == "filesystem[0].target"
    assert "missing" in str(info.value)


@pytest.mark.parametrize("value", ["a\ud800", "a\x01b", "\x1b[2J", "x\ufffe"])
def test_text_a_domain_xml_cannot_hold_is_a_spec_error(value: str) -> None:
    with pytest.raises(SpecError, match="which a domain XML cannot hold"):
        spec_from_dict({"name": "x", "init": {"path": "/bin/sh", "args": [value]}})


def test_init_user_needs_group_and_workdir_loses_its_trailing_slash() -> None:
    """libvirt's schema takes <inituser> and <initgroup> only together, and no <initdir>
    ending in '/': a spec says so by key instead of a puzzling schema error later."""
    from lxcvirt.rendering import render
    from lxcvirt.spec import Container, Filesystem, Init
    from lxcvirt.validate import check_domain_xml

    for kw, key in (({"user": "app"}, "init.group"), ({"group": "app"}, "init.user")):
        with pytest.raises(SpecError) as exc:
            Init("/sbin/init", **kw)
        assert exc.value.key == key and "together" in str(exc.value)
    assert Init("/sbin/init", workdir="/").workdir is None
    assert Init("/sbin/init", workdir="/srv/app/").workdir == "/srv/app"
    spec = Container(name="initdir", init=Init("/sbin/init", workdir="/srv/", user="app",
                                               group="app"),
                     filesystems=(Filesystem(target="/", source="/srv/initdir"),))
    check_domain_xml(render(spec, emulator="/usr/lib/libvirt/libvirt_lxc"))
