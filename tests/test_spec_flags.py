"""Specs from command-line flags: the same XML as the equivalent TOML spec, the same
checks, and define/create from flags against the real daemon."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from conftest import TERM_INIT

from lxcvirt.cli import cli, main
from lxcvirt.errors import SpecError
from lxcvirt.load import load_spec_text, spec_from_flags

EQUIVALENT_TOML = """
name = "web"
memory = "128MiB"
vcpu = 2
[init]
path = "/bin/sh"
args = ["-c", "echo hi"]
env = { A = "1" }
[[filesystem]]
source = "/srv/web"
target = "/"
[[filesystem]]
source = "/srv/cfg"
target = "/etc/app"
readonly = true
[[filesystem]]
type = "ram"
target = "/tmp"
usage = "64MiB"
[[interface]]
type = "network"
source = "default"
[[interface]]
type = "bridge"
source = "br0"
"""

FLAGS = [
    "--name", "web", "--init", "/bin/sh", "--arg", "-c", "--arg", "echo hi", "--env", "A=1",
    "--root", "/srv/web", "--mount", "/srv/cfg:/etc/app:ro", "--ram", "/tmp:64MiB",
    "--network", "default", "--bridge", "br0", "--memory", "128MiB", "--vcpu", "2",
]


def test_flags_build_the_same_spec_as_toml() -> None:
    built = spec_from_flags(
        name="web", init="/bin/sh", args=["-c", "echo hi"], env=["A=1"], root="/srv/web",
        mounts=["/srv/cfg:/etc/app:ro"], rams=["/tmp:64MiB"], networks=["default"],
        bridges=["br0"], memory="128MiB", vcpu=2,
    )
    assert built == load_spec_text(EQUIVALENT_TOML)


def test_render_from_flags_matches_render_from_file(tmp_path: Path) -> None:
    spec = tmp_path / "web.toml"
    spec.write_text(EQUIVALENT_TOML)
    runner = CliRunner()
    from_flags = runner.invoke(cli, ["render", "--offline", *FLAGS])
    from_file = runner.invoke(cli, ["render", "--offline", str(spec)])
    assert from_flags.exit_code == 0, from_flags.output
    assert from_flags.stdout == from_file.stdout
    assert "<source bridge='br0'/>" in from_flags.stdout


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"mounts": ["/a"]}, "--mount: write SRC:DST"),
        ({"mounts": ["/a:/b:rx"]}, "'ro' or 'rw'"),
        ({"rams": ["/tmp"]}, "--ram: write DST:SIZE"),
        ({"env": ["NOVALUE"]}, "--env: write NAME=VALUE"),
        ({"root": "relative/dir"}, "path must be absolute"),
        ({"memory": "lots"}, "memory: not a size"),
    ],
)
def test_bad_flags_are_named(kwargs: dict[str, Any], fragment: str) -> None:
    with pytest.raises(SpecError, match=fragment.replace("(", r"\(")):
        spec_from_flags(name="web", init="/bin/sh", **kwargs)


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        pytest.param(["render", "x.toml", "--name", "web"], "not both", id="file-and-flags"),
        pytest.param(["render", "--name", "web"], "--init PATH", id="no-init"),
        pytest.param(["define"], "give a spec or XML file", id="nothing"),
        pytest.param(["render", "--offline", "--name", "a/b", "--init", "/i"], "'/'",
                     id="bad-name"),
    ],
)
def test_flag_usage_errors_are_one_line(
    argv: list[str], fragment: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert fragment in err and "Traceback" not in err


def test_create_from_flags_runs_on_the_daemon(
    host: Any, names: Callable[[str], str], busybox_root: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    name = names("flags")
    argv = ["create", "--no-check", "--name", name, "--init", TERM_INIT[0],
            "--root", str(busybox_root), "--memory", "64MiB"]
    for arg in TERM_INIT[1:]:
        argv += ["--arg", arg]
    assert main(argv) == 0, capsys.readouterr().err
    assert host.status(name).running
    # the same flags again: define says nothing changed
    define = ["define" if a == "create" else a for a in argv if a != "--no-check"]
    assert main(define) == 0
    assert f"{name}: unchanged" in capsys.readouterr().out
    host.undefine(name, force=True, timeout=10)
