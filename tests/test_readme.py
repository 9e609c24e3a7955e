"""The README's Python examples run as written (against the real daemon), so they stay
true.  Container names and the root filesystem are swapped for the test's own."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import TERM_INIT

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)



def test_readme_has_the_examples() -> None:
    assert len(BLOCKS) == 2


def test_spec_and_host_example(
    names: Callable[[str], str], busybox_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    name = names("readme")
    code = BLOCKS[0].replace('"web"', repr(name)).replace(
        "/var/lib/lxcvirt/rootfs/busybox", str(busybox_root)
    )
    exec(compile(code, "README.md", "exec"), {})  # noqa: S102 - our own README
    out = capsys.readouterr().out
    assert f"<name>{name}</name>" in out
    assert "\nrunning\n" in out


def test_apply_example(
    names: Callable[[str], str], busybox_root: Path, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    name = names("readme-apply")
    specs = tmp_path / "specs"
    specs.mkdir()
    # JSON strings are TOML basic strings.
    (specs / "one.toml").write_text(
        f"name = {json.dumps(name)}\n"
        'memory = "64MiB"\n'
        f"[init]\npath = {json.dumps(TERM_INIT[0])}\nargs = {json.dumps(TERM_INIT[1:])}\n"
        f"[[filesystem]]\nsource = {json.dumps(str(busybox_root))}\ntarget = \"/\"\n"
    )
    old = Path.cwd()
    os.chdir(tmp_path)
    try:
        exec(compile(BLOCKS[1], "README.md", "exec"), {})  # noqa: S102 - our own README
    finally:
        os.chdir(old)
    out = capsys.readouterr().out
    assert f"{name} create" in out
    assert out.rstrip().endswith("0 []")


def test_the_spec_example_is_a_valid_spec() -> None:
    """The README's annotated TOML spec (every section) loads and validates."""
    from lxcvirt.load import load_spec_text
    from lxcvirt.rendering import render
    from lxcvirt.validate import check_domain_xml

    block = re.search(r"```toml\n(name = \"web\".*?)```", README.read_text(), re.S)
    assert block is not None
    spec = load_spec_text(block.group(1), "README.md")
    assert spec.limits.cpu_shares == 512 and spec.security.cap_drop == ("sys_admin",)
    check_domain_xml(render(spec, emulator="/usr/lib/libvirt/libvirt_lxc"))
