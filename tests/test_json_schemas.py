"""One JSON vocabulary (issue 16): every command's ``--json`` output, produced against the
real daemon, is valid under the JSON Schema that schemas/json/commands.json names for it,
and every command that has ``--json`` is named there."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import click
import pytest
from conftest import DEBIAN_IMAGE, busybox_spec

from lxcvirt._resources import resource_dir
from lxcvirt.cli import cli, main

jsonschema = pytest.importorskip("jsonschema")
referencing = pytest.importorskip("referencing")

SCHEMAS = resource_dir("schemas") / "json"
COMMANDS: dict[str, str] = json.loads((SCHEMAS / "commands.json").read_text())["commands"]


def _registry() -> Any:
    resources = []
    for path in SCHEMAS.glob("*.schema.json"):
        doc = json.loads(path.read_text())
        resources.append((doc["$id"], referencing.Resource.from_contents(doc)))
    return referencing.Registry().with_resources(resources)


REGISTRY = _registry()


def _validator(schema_file: str) -> Any:
    schema = json.loads((SCHEMAS / schema_file).read_text())
    return jsonschema.Draft202012Validator(schema, registry=REGISTRY)


def _errors(schema_file: str, doc: object) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
            for e in _validator(schema_file).iter_errors(doc)]


def _json_commands(option: str = "--json") -> list[str]:
    """Every command (as `autostart list`) that takes ``option``."""
    found: list[str] = []

    def walk(cmd: click.Command, path: str, ctx: click.Context) -> None:
        if any(option in getattr(p, "opts", ()) for p in cmd.params):
            found.append(path)
        if isinstance(cmd, click.Group):
            for name in cmd.list_commands(ctx):
                sub = cmd.get_command(ctx, name)
                assert sub is not None
                walk(sub, f"{path} {name}".strip(), click.Context(sub, parent=ctx))

    walk(cli, "", click.Context(cli))
    # `autostart NAME` is a command of its own, reached through any name.
    from lxcvirt._cli_autostart import settings_command

    walk(settings_command, "autostart", click.Context(settings_command))
    return sorted(found)


def test_every_schema_is_a_valid_json_schema() -> None:
    files = sorted(SCHEMAS.glob("*.schema.json"))
    assert len(files) >= 10
    for path in files:
        doc = json.loads(path.read_text())
        jsonschema.Draft202012Validator.check_schema(doc)
        assert doc["$id"].endswith("/" + path.name), path
    for command, schema_file in COMMANDS.items():
        assert (SCHEMAS / schema_file).is_file(), f"{command}: {schema_file} is not there"


def test_every_command_with_json_has_a_schema() -> None:
    named = {c for c in COMMANDS if not c.startswith("(")}
    assert set(_json_commands()) == named
    lines = json.loads((SCHEMAS / "commands.json").read_text())["json-lines"]
    assert set(_json_commands("--json-lines")) == set(lines)
    assert all((SCHEMAS / f).is_file() for f in lines.values())


def test_the_schemas_reject_what_is_not_the_vocabulary() -> None:
    # The old words, refused: a report without counts, a stop that says `how`, apply's
    # "current", autostart settings flat beside the name.
    report = {"action": "stop", "ok": True, "exit_code": 0, "seconds": 0.1, "notes": [],
              "containers": [{"name": "a", "how": "shut down", "seconds": 0.1}]}
    assert _errors("report.schema.json", report)
    assert _errors("autostart.schema.json", {"name": "a", "auto": True, "priority": 0,
                                             "changed": False, "libvirt_autostart": False})
    assert _errors("error.schema.json", {"error": "Not Found", "message": "x"})


class _Run:
    """Runs lxcvirt in this process and checks its JSON against the command's schema."""

    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self.capsys = capsys
        self.seen: set[str] = set()

    def __call__(self, command: str, *args: str, codes: tuple[int, ...] = (0,),
                 error: bool = False) -> Any:
        """The JSON of ``lxcvirt COMMAND ARGS --json``; ``error``: it is an error document."""
        self.capsys.readouterr()
        rc = main([*command.split(), *args, "--json"])
        out, err = self.capsys.readouterr()
        assert rc in codes, f"{command} {args}: exit {rc}: {err}"
        doc = json.loads(out)
        schema = COMMANDS["(any, on error)"] if error else COMMANDS[command]
        problems = _errors(schema, doc)
        assert not problems, f"{command} {args} ({schema}): {problems}\n{doc}"
        self.seen.add(command)
        return doc


def test_every_commands_json_follows_its_schema(
    host: Any, names: Any, busybox_root: Path, tmp_path: Path, debian_cache: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from lxcvirt.spec import Autostart

    run = _Run(capsys)
    a, b = names("json-a"), names("json-b")
    spec_a = tmp_path / "a.toml"
    spec_a.write_text(f"""name = "{a}"
memory = "64MiB"
[init]
path = "/bin/sh"
args = ["-c", "trap 'exit 0' TERM; while :; do sleep 1 & wait; done"]
[[filesystem]]
source = "{busybox_root}"
target = "/"
[autostart]
auto = true
priority = 3
groups = ["{a}"]
""")
    assert run("validate", str(spec_a))["ok"]
    bad = tmp_path / "bad.toml"
    bad.write_text("name = 1\n")
    assert run("validate", str(bad), codes=(1,))["counts"] == {"valid": 0, "invalid": 1}

    defined = run("define", str(spec_a))
    assert (defined["action"], defined["result"]) == ("define", "created")
    host.define(busybox_spec(b, busybox_root, autostart=Autostart(auto=False)))

    # Events as they happen, while the lifecycle verbs run.
    watcher = subprocess.Popen(
        [sys.executable, "-m", "lxcvirt", "events", a, "--count", "2", "--timeout", "60",
         "--json"], stdout=subprocess.PIPE, text=True)
    time.sleep(1.0)
    started = run("start", a)
    assert started["containers"][0]["result"] == "started"
    assert started["counts"] == {"started": 1}
    assert run("start", a)["containers"][0]["result"] == "already running"
    assert run("start", a, b, "no-such-container-here", codes=(2,))["counts"] == {
        "already running": 1, "started": 1, "failed": 1}
    missing = run("start", "no-such-container-here", codes=(1,))
    assert missing["containers"][0]["error"] == "not-found"

    listed = run("list", "--all")
    assert {a, b} <= {c["name"] for c in listed}
    assert run("status", a)["state"] == "running"
    assert run("info", a)["init_pid"]
    assert run("stats", a)[0]["name"] == a
    assert run("set", a, "--memory-limit", "100MiB")["result"] == "changed"
    assert run("suspend", a)["containers"][0]["status"]["state"] == "paused"
    assert run("resume", a)["containers"][0]["result"] == "resumed"
    assert run("restart", a)["containers"][0]["status"]["state"] == "running"
    assert run("reboot", a, "--timeout", "30")["ok"]
    setting = run("autostart", a, "--priority", "4")
    assert setting["autostart"]["priority"] == 4 and setting["changed"]
    order = run("autostart list", "--group", a)
    assert [(o["name"], o["state"]) for o in order] == [(a, "running")]
    run("autostart import", "--dry-run")
    stopped = run("stop", "--all", "--group", a, "--timeout", "5")
    assert stopped["containers"][0]["result"] == "shut down"
    assert run("start", "--all", "--group", a)["counts"] == {"started": 1}
    assert run("stop", a, "--timeout", "5")["containers"][0]["method"]
    assert run("destroy", b)["containers"][0]["result"] == "destroyed"
    assert run("destroy", b)["containers"][0]["result"] == "already stopped"

    plan = run("apply", str(spec_a), "--dry-run")
    item = plan["hosts"][0]["plan"][0]
    assert (item["state"], item["wanted"]) == ("shut off", "running")
    applied = run("apply", str(spec_a), "--timeout", "10")
    assert applied["hosts"][0]["results"][0]["result"] == "changed"
    run("check")
    assert run("undefine", a, b, "--force", "--timeout", "5")["counts"] == {"undefined": 2}
    created = run("create", str(spec_a))
    assert created["result"] == "created" and created["status"]["state"] == "running"
    run("undefine", a, "--force", "--timeout", "5")
    # An error is the error document, whatever the command.
    assert run("status", "no-such-container-here", codes=(1,), error=True)["error"] == \
        "not-found"

    root = tmp_path / "root"
    run("rootfs create", "busybox", str(root))
    run("rootfs shift", str(root), "--idmap-base", "200000")
    run("rootfs images")

    assert run("rootfs build", DEBIAN_IMAGE)["cache_hit"]

    out, _ = watcher.communicate(timeout=60)
    events = [json.loads(ln) for ln in out.splitlines()]
    assert len(events) == 2 and {e["name"] for e in events} == {a}
    for e in events:
        assert not _errors(COMMANDS["events"], e), e
    untested = set(COMMANDS) - run.seen - {"(any, on error)", "events"}
    assert not untested, f"not exercised here: {sorted(untested)}"
