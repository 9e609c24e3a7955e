"""Spec → domain XML through the Jinja templates in ``templates/``.

The environment autoescapes every XML template and uses ``StrictUndefined``: a value such as
``O'Brien & <Co>`` comes out as escaped, valid XML and ``{{ 7*7 }}`` in a value stays
literal, because values are data and never template source.

Output is deterministic: the UUID is the spec's or a UUIDv5 of the name, MACs the spec's or
derived from the UUID and the interface's position.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import uuid as _uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import jinja2

from ._resources import resource_dir
from .errors import Problem, SpecError, XMLError
from .spec import METADATA_NS, Container
from .validate import Checked, check_domain_xml, is_spec_path, read_xml_file

#: Namespace for the UUIDv5 of a spec without a uuid of its own.
UUID_NAMESPACE = _uuid.UUID("5b0f8a1e-3c55-4a3e-9d55-6c7876697274")

#: Where the LXC emulator is on Debian and on distributions that use libexec; asked only
#: when the daemon's capabilities cannot be read (offline rendering).
KNOWN_EMULATORS = ("/usr/lib/libvirt/libvirt_lxc", "/usr/libexec/libvirt_lxc")

DOMAIN_TEMPLATE = "domain.xml.j2"


def _bytecode_cache() -> jinja2.BytecodeCache | None:
    # Compiling the templates is most of a render's time (about 40 ms of a 200 ms run).
    # Jinja keeps compiled templates in a per-user folder it creates 0700 and refuses to
    # use when another user owns it or can write to it (a planted cache would be code run
    # by us); keyed by a checksum of the template source, so an edit is never stale.
    try:
        return jinja2.FileSystemBytecodeCache()
    except (OSError, RuntimeError):
        return None  # no safe folder: compile every time, as before


@cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(resource_dir("templates"))),
        bytecode_cache=_bytecode_cache(),
        # select_autoescape goes by file extension: ours end in .xml.j2, so name it.
        autoescape=jinja2.select_autoescape(
            enabled_extensions=("xml.j2", "xml"), default_for_string=True, default=True
        ),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return env


def default_uuid(spec: Container) -> str:
    return spec.uuid or str(_uuid.uuid5(UUID_NAMESPACE, spec.name))


def default_mac(uuid: str, index: int) -> str:
    """A locally administered-looking MAC in libvirt's 52:54:00 range, stable per uuid+index."""
    digest = hashlib.sha256(f"{uuid}/{index}".encode()).digest()
    return "52:54:00:" + ":".join(f"{b:02x}" for b in digest[:3])


@dataclass(frozen=True)
class Emulator:
    """The emulator a rendering used, and how it was chosen (shown to users offline)."""

    path: str | None
    how: str


def offline_emulator(spec: Container) -> Emulator:
    """The emulator to use when the daemon's capabilities are not read."""
    if spec.emulator:
        return Emulator(spec.emulator, "from the spec")
    for path in KNOWN_EMULATORS:
        if os.path.exists(path):
            return Emulator(path, "found on this machine; the daemon's capabilities were not read")
    return Emulator(None, "left out: libvirt fills in the host's own when the domain is defined")


def render(
    spec: Container,
    *,
    emulator: str | None = None,
    mac_factory: Callable[[str, int], str] = default_mac,
) -> str:
    """Render ``spec`` to domain XML.

    ``emulator`` is used when the spec names none (pass the one from the host's
    capabilities); with neither, ``<emulator>`` is left out and libvirt fills in its own.
    """
    uuid = default_uuid(spec)
    macs = [itf.mac or mac_factory(uuid, i) for i, itf in enumerate(spec.interfaces)]
    template = environment().get_template(DOMAIN_TEMPLATE)
    return template.render(
        spec=spec,
        uuid=uuid,
        macs=macs,
        emulator=spec.emulator or emulator,
        ns=METADATA_NS,
        autostart=spec.autostart,
        init=spec.init,
        managed=True,
        project=spec.project,
    )


@dataclass(frozen=True)
class Rendered:
    """What ``lxcvirt render`` prints, and what it tells the user about the emulator."""

    xml: str
    emulator: Emulator
    note: str | None = None


def _load_spec_file(path: str | Path) -> Container:
    """A spec file, with a sentence for domain XML given where a spec was wanted."""
    from .load import load_spec

    if not is_spec_path(path):
        with contextlib.suppress(OSError), open(path, "rb") as f:
            head = f.read(512)
            if head.lstrip().startswith(b"<"):
                raise SpecError(
                    "", "this is XML, and rendering takes a spec (.toml)", source=str(path),
                    hint="domain XML is checked with `lxcvirt validate` and defined as it is "
                    "with `lxcvirt define`",
                )
    return load_spec(path)


def render_file(
    path: str | Path | Container,
    *,
    uri: str | None = None,
    emulator: str | None = None,
    offline: bool = False,
) -> Rendered:
    """Load a spec file (or take a built spec) and render it for the host at ``uri`` (its
    capabilities name the emulator), or offline.  The output is checked against lxcvirt's
    profile schema."""
    import threading
    from dataclasses import replace

    from .errors import DaemonUnreachable

    asked: dict[str, object] = {}

    def ask_daemon() -> None:
        from . import _libvirt

        target = uri or _libvirt.default_uri()
        try:
            conn = _libvirt.open_connection(target, events=False)
            try:
                asked["path"] = _libvirt.lxc_emulator(conn, target)
            finally:
                conn.close()
        except DaemonUnreachable as exc:
            asked["error"] = exc

    # The daemon answers capabilities slowly (it probes the host); ask it while the spec
    # is read and the template engine loads.
    worker = None
    if not offline and emulator is None:
        worker = threading.Thread(target=ask_daemon, daemon=True)
        worker.start()
    if isinstance(path, Container):
        spec, label = path, f"spec {path.name}"
    else:
        spec, label = _load_spec_file(path), str(path)
    if emulator:
        spec = replace(spec, emulator=emulator)
    note = None
    used: Emulator | None = None
    if spec.emulator:
        used = Emulator(spec.emulator, "from the spec" if not emulator else "given")
    elif worker is not None:
        worker.join()
        if "path" in asked:
            used = Emulator(str(asked["path"]), "from the daemon's capabilities")
        else:
            note = f"{asked['error']}; rendering offline"
    if used is None:
        used = offline_emulator(spec)
        note = (note + "\n" if note else "") + f"emulator {used.path or '(none)'}: {used.how}"
    xml = render(spec, emulator=used.path)

    # Our profile catches a bad value; libvirt's domain.rng (~50 ms to load) is not needed
    # for what our templates write: tests/test_render.py checks every golden file with it.
    check_domain_xml(xml, label, libvirt_schema=False)
    return Rendered(xml, used, note)


# --- files: specs rendered, then validated; XML validated as it is ---------------------


def check_file(path: str | Path, *, emulator: str | None = None) -> Checked:
    """Validate a spec (``.toml``) or a domain XML file; specs are rendered first."""
    from .load import load_spec

    p = Path(path)
    if is_spec_path(p):
        spec = load_spec(p)
        return check_domain_xml(render(spec, emulator=emulator), str(p))
    return check_domain_xml(read_xml_file(p), str(p))


def check_files(
    paths: Iterable[str | Path],
) -> list[tuple[str, Exception | None, tuple[Problem, ...]]]:
    """Validate several files; returns (path, error or None, warnings) for each, never
    raising for a file's own problems."""
    results: list[tuple[str, Exception | None, tuple[Problem, ...]]] = []
    for path in paths:
        try:
            checked = check_file(path)
        except (XMLError, SpecError) as exc:
            results.append((str(path), exc, ()))
        else:
            results.append((str(path), None, checked.warnings))
    return results
