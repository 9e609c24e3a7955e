"""One broken domain never stops lxcvirt from managing the others (issue 12, item 2).

Domains are defined straight through libvirt (as virsh or another tool would), with
lxcvirt metadata that lxcvirt itself would refuse, or XML libvirt stores in a form that no
XML parser reads back.  lxcvirt lists them as broken, with why, and goes on.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import busybox_spec

from lxcvirt.cli import main
from lxcvirt.rendering import render

BAD_AUTOSTART = [
    pytest.param("priority='high'", "priority", id="priority-word"),
    pytest.param("auto='maybe'", "auto", id="auto-maybe"),
    pytest.param("time='-5'", "time", id="negative-time"),
]


def _define_with_autostart(libvirt_conn: Any, host: Any, name: str, root: Path,
                           attrs: str) -> None:
    xml = render(busybox_spec(name, root), emulator=host.emulator())
    xml = re.sub(r"<lxcvirt:autostart\b.*?(/>|</lxcvirt:autostart>)", "", xml, flags=re.S)
    assert "</lxcvirt:container>" in xml
    xml = xml.replace("</lxcvirt:container>",
                      f"<lxcvirt:autostart {attrs}/></lxcvirt:container>")
    libvirt_conn.defineXML(xml)


@pytest.mark.parametrize(("attrs", "key"), BAD_AUTOSTART)
def test_bad_metadata_is_listed_as_broken_and_the_rest_listed(
    host: Any, libvirt_conn: Any, names: Callable[[str], str], busybox_root: Path,
    attrs: str, key: str, capsys: pytest.CaptureFixture[str],
) -> None:
    good, bad = names("good"), names("bad")
    host.define(busybox_spec(good, busybox_root))
    _define_with_autostart(libvirt_conn, host, bad, busybox_root, attrs)
    by_name = {s.name: s for s in host.list(all=True)}
    assert by_name[good].problem is None
    assert by_name[bad].problem is not None and key in by_name[bad].problem
    assert by_name[bad].autostart is None
    # The CLI lists both, says why the one is broken, and exits 0 (the listing worked).
    capsys.readouterr()
    assert main(["-c", host.uri, "list", "--all"]) == 0
    out, err = capsys.readouterr()
    assert good in out and bad in out
    assert f"{bad}: broken:" in err and key in err
    assert main(["-c", host.uri, "status", bad]) == 0
    assert "problem:" in capsys.readouterr().out
    # Defining a good spec repairs it.
    host.define(busybox_spec(bad, busybox_root))
    assert host.status(bad).problem is None


def test_unreadable_domain_xml_is_listed_as_broken(
    host: Any, libvirt_conn: Any, names: Callable[[str], str], busybox_root: Path,
) -> None:
    # libvirt 9 writes <initenv> values as they are: `]]>` makes its own XMLDesc output
    # something no XML parser accepts.
    name = names("cdata")
    xml = render(busybox_spec(name, busybox_root), emulator=host.emulator())
    xml = xml.replace("</init>", "</init><initenv name='X'>a]]&gt;b</initenv>", 1)
    libvirt_conn.defineXML(xml)
    stored = libvirt_conn.lookupByName(name).XMLDesc(0)
    if "]]>b" not in stored:
        pytest.fail("libvirt escaped ]]> in <initenv>: the corrupt case no longer arises here")
    status = host.status(name)
    assert status.problem is not None and "cannot be read" in status.problem
    assert name in {s.name for s in host.list(all=True)}
    # info (and status --json, which says as much) still shows it, with its problem
    from lxcvirt.host import info

    full = info(host, name).to_dict()
    assert "cannot be read" in str(full["problem"]) and full["interfaces"] == []



def test_doctype_text_in_another_tools_metadata_is_not_a_doctype(
    host: Any, libvirt_conn: Any, names: Callable[[str], str], busybox_root: Path,
) -> None:
    # Text that looks like a DOCTYPE inside CDATA is text: it must not make the domain
    # unreadable (the hardened parser refuses real DTDs only).
    name = names("doctype")
    xml = render(busybox_spec(name, busybox_root), emulator=host.emulator())
    xml = xml.replace("</metadata>",
                      "<other xmlns='urn:example:other'><![CDATA[<!DOCTYPE x [<!ENTITY a 'b'>]>]]>"
                      "</other></metadata>", 1)
    libvirt_conn.defineXML(xml)
    status = host.status(name)
    assert status.problem is None, status.problem
    assert status.managed


def test_an_architecture_the_host_has_not_is_refused_before_libvirt(
    host: Any, names: Callable[[str], str], busybox_root: Path,
) -> None:
    from lxcvirt.errors import Refused

    name = names("arch")
    xml = render(busybox_spec(name, busybox_root), emulator=host.emulator())
    other = "aarch64" if "aarch64" not in host.arches() else "x86_64"
    with pytest.raises(Refused, match=f"<type arch='{other}'>"):
        host.define(xml.replace("<type>exe</type>", f"<type arch='{other}'>exe</type>"))
    assert not host.exists(name)
    mine = sorted(host.arches())[0]
    host.define(xml.replace("<type>exe</type>", f"<type arch='{mine}'>exe</type>"))
    assert host.exists(name)


def test_a_name_with_control_characters_is_listed_escaped(
    host: Any, libvirt_conn: Any, names: Callable[[str], str], busybox_root: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Defined by another tool: libvirt takes a C1 control (U+009B is CSI to many terminals)
    # and a tab in a name.  Printed raw they would rewrite the terminal of whoever lists
    # the host's containers, or shift the columns of the listing.
    base = names("ctl")
    evil = base + "\u009b2J\tfake"
    xml = render(busybox_spec(base, busybox_root), emulator=host.emulator())
    libvirt_conn.defineXML(xml.replace(f"<name>{base}</name>", f"<name>{evil}</name>"))
    try:
        capsys.readouterr()
        assert main(["-c", host.uri, "list", "--all"]) == 0
        out = capsys.readouterr().out
        assert "\u009b" not in out and "\tfake" not in out
        assert base + "\\x9b2J\\tfake" in out
    finally:
        libvirt_conn.lookupByName(evil).undefine()
