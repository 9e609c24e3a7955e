"""The one exception tree of lxcvirt.

Every error a user can cause or meet derives from :class:`LxcvirtError`; the CLI catches
that base class only, prints ``str(error)`` on one line and exits with ``error.exit_code``.
Anything else reaching the top is a bug.

::

    LxcvirtError                      exit 1
    ├── SpecError                     a spec (TOML / Python / flags) is wrong; names the key
    ├── XMLError                      XML that cannot be read safely (syntax, DOCTYPE, entities)
    │   └── ValidationError           XML that parses but is not a valid LXC domain
    ├── HostError                     the host cannot run containers (failed host checks)
    ├── ConfigError                   lxcvirt's own configuration file is wrong
    ├── LibvirtError                  libvirt said no; converted in lxcvirt._libvirt only
    │   ├── DaemonUnreachable         no daemon at the URI, or it went away
    │   ├── NotFound                  no such container / network
    │   ├── AlreadyExists             name or uuid taken
    │   ├── InvalidState              the container is in the wrong state for that
    │   ├── Refused                   libvirt refused the definition or operation
    │   └── StartFailed               the container died while starting (carries the log tail)
    ├── ConsoleError                  console attach/lock problems
    ├── ExecFailed                    exec could not run the command (exit 126/127 or 1)
    ├── LockHeld                      another lxcvirt run holds the lock
    ├── PermissionDenied              this user may not do that (the daemon, a lock file)
    ├── RootfsError                   a root filesystem cannot be built, copied or changed
    ├── CommandFailed                 a program lxcvirt runs failed (carries its stderr tail)
    └── PartialFailure                exit 2: a command acting on several did some of it
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_PARTIAL = 2


class LxcvirtError(Exception):
    """Base of every error lxcvirt raises on purpose."""

    exit_code: int = EXIT_ERROR
    kind: str = "error"

    def __init__(self, message: str, *, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        #: What to do about it with lxcvirt's command line (``lxcvirt list --all``,
        #: ``--force``...): the CLI shows it after the message; the library's message
        #: itself names no command or flag.
        self.hint = hint

    def __str__(self) -> str:
        return self.message

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"error": self.kind, "message": self.message}
        if self.hint:
            out["hint"] = self.hint
        return out


class SpecError(LxcvirtError):
    """A spec value is wrong.  ``key`` is the dotted path of the offending key."""

    kind = "spec"

    def __init__(self, key: str, message: str, *, source: str | None = None,
                 hint: str = "") -> None:
        where = f"{source}: " if source else ""
        super().__init__(f"{where}{key}: {message}" if key else f"{where}{message}", hint=hint)
        self.key = key
        self.detail = message
        self.source = source

    def at(self, source: str) -> SpecError:
        """The same error, said of the file ``source``."""
        return SpecError(self.key, self.detail, source=source, hint=self.hint)


class XMLError(LxcvirtError):
    """XML that cannot be read: a syntax error, a DOCTYPE, an entity."""

    kind = "xml"


@dataclass(frozen=True)
class Problem:
    """One validation finding: where it is and what to do about it."""

    file: str
    line: int | None
    element: str | None
    message: str

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        elem = f" <{self.element}>" if self.element else ""
        return f"{where}:{elem} {self.message}"

    def to_dict(self) -> dict[str, object]:
        return {
            "file": self.file,
            "line": self.line,
            "element": self.element,
            "message": self.message,
        }


class ValidationError(XMLError):
    """XML that parses but is not an acceptable LXC domain."""

    kind = "invalid"

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))

    def to_dict(self) -> dict[str, object]:
        return {
            "error": self.kind,
            "message": self.message,
            "problems": [p.to_dict() for p in self.problems],
        }


class HostError(LxcvirtError):
    """The host cannot run containers as it is."""

    kind = "host"


class ConfigError(LxcvirtError):
    """lxcvirt's own configuration file is wrong."""

    kind = "config"


class LibvirtError(LxcvirtError):
    """libvirt refused or failed; ``code`` is libvirt's error code when known."""

    kind = "libvirt"

    def __init__(self, message: str, *, code: int | None = None, hint: str = "",
                 detail: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.code = code
        #: libvirt's own message, without what lxcvirt was doing; set when the error was
        #: converted from libvirt's (so a caller can say what it was doing instead).
        self.detail = detail


class DaemonUnreachable(LibvirtError):
    kind = "unreachable"


class NotFound(LibvirtError):
    kind = "not-found"


class AlreadyExists(LibvirtError):
    kind = "exists"


class InvalidState(LibvirtError):
    kind = "invalid-state"


class Refused(LibvirtError):
    kind = "refused"


class StartFailed(LibvirtError):
    """The container died while starting.  ``log_tail`` holds the end of its log."""

    kind = "start-failed"

    def __init__(self, message: str, *, log_tail: str = "", code: int | None = None,
                 hint: str = "") -> None:
        full = message if not log_tail else f"{message}\n--- container log (tail) ---\n{log_tail}"
        super().__init__(full, code=code, hint=hint)
        self.log_tail = log_tail


class ConsoleError(LxcvirtError):
    kind = "console"


class ExecFailed(LxcvirtError):
    """``exec`` could not run the command in the container.

    Exits like a shell would: 127 when the command is not found, 126 when it cannot be
    executed, 1 when the container could not be entered (user, working directory...).
    """

    kind = "exec"

    def __init__(self, message: str, *, exit_code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class LockHeld(LxcvirtError):
    kind = "locked"


class PermissionDenied(LxcvirtError):
    """This user may not: reach the daemon's socket, open a lock file."""

    kind = "permission"


class RootfsError(LxcvirtError):
    """A root filesystem cannot be built, copied or changed (unknown image, a destination
    that is not empty, a symlink planted where lxcvirt writes...)."""

    kind = "rootfs"


class CommandFailed(LxcvirtError):
    """A program lxcvirt ran (through :mod:`lxcvirt._run`) failed.  ``output`` holds the
    last lines of its stderr; they follow the one-line message."""

    kind = "command-failed"

    def __init__(
        self, message: str, *, argv: Sequence[str] = (), output: str = ""
    ) -> None:
        full = message if not output else f"{message}\n{output}"
        super().__init__(full)
        self.argv = tuple(argv)
        self.output = output


class PartialFailure(LxcvirtError):
    """A command acting on several things did some of them."""

    kind = "partial"
    exit_code = EXIT_PARTIAL
