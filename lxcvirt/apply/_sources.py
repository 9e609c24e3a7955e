"""Reading an apply's files: which files a folder holds, and each one as a spec or domain
XML with its name and hosts."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ..errors import (
    LxcvirtError,
    Problem,
    SpecError,
    ValidationError,
)
from ..spec import Container
from ..validate import check_domain_xml, is_spec_path, read_xml_file

# --- reading the files ---------------------------------------------------------------


@dataclass(frozen=True)
class Source:
    """One file of the apply set: a spec or a domain XML file, read and checked offline."""

    path: str
    name: str
    state: str
    hosts: tuple[str, ...]
    spec: Container | None


def collect_files(paths: Iterable[str | Path], *, skip: Iterable[Path] = ()) -> list[Path]:
    """The spec (``*.toml``) and XML (``*.xml``) files named, folders read one level deep."""
    skipped = {p.resolve() for p in skip}
    out: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            found = sorted(
                f for f in p.iterdir()
                if f.is_file() and f.suffix in (".toml", ".xml") and f.resolve() not in skipped
            )
            if not found:
                raise SpecError("", "no spec (*.toml) or domain XML (*.xml) files here",
                                source=str(p))
            out.extend(found)
        elif p.is_file():
            out.append(p)
        elif p.exists():
            raise SpecError("", "not a regular file or folder", source=str(p))
        else:
            raise SpecError("", "no such file or folder", source=str(p))
    unique: dict[Path, Path] = {}
    for f in out:
        unique.setdefault(f.resolve(), f)
    return list(unique.values())


def subfolders(paths: Iterable[str | Path]) -> list[Path]:
    """The folders inside the folders named: apply reads one level, so these are not
    read (said, so that a spec put there is not silently left out)."""
    out: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            out.extend(sorted(d for d in p.iterdir() if d.is_dir() and not d.name.startswith(".")))
    return out


def read_source(path: Path) -> Source:
    """Load one file; raises SpecError / XMLError / ValidationError naming it."""
    if is_spec_path(path):
        from ..load import load_spec

        spec = load_spec(path)
        return Source(str(path), spec.name, spec.state, spec.hosts, spec)
    checked = check_domain_xml(read_xml_file(path), str(path))
    return Source(str(path), checked.name, "running", (), None)


def _problems(path: str, exc: LxcvirtError) -> list[Problem]:
    if isinstance(exc, ValidationError):
        return list(exc.problems)
    msg = exc.message
    for prefix in (f"{path}: ", f"{path}:"):
        if msg.startswith(prefix):
            msg = msg[len(prefix):]
            break
    return [Problem(path, None, None, msg)]
