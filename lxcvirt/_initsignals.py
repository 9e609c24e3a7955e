"""How a container's init is asked to halt or reboot: the pure part (no libvirt, no I/O).

A spec's ``[init] halt`` / ``reboot`` (stored in lxcvirt's ``<metadata>``) is a *method*:

* ``auto`` (the default): decided at the moment of stopping from what the running init
  listens for (its blocked and caught signals, read from /proc on a local daemon);
* ``initctl``: libvirt's initctl request (sysvinit's /run/initctl; systemd listens there
  too through systemd-initctl.socket);
* a signal name (``SIGTERM``, ``SIGPWR``, ``SIGRTMIN+3`` ...), sent to init through
  ``virDomainSendProcessSignal``, which works over remote URIs too;
* for reboot also ``restart``: a graceful stop, then a start.

Why ``auto`` looks at the init: systemd as PID 1 halts on SIGRTMIN+3 and reboots on
SIGRTMIN+5 (what lxc sends it, ``lxc.signal.halt``), but on SIGTERM it re-executes itself,
and a shutdown queued through initctl just before is lost (seen with systemd 252 here:
initctl followed by SIGTERM left the container running).  Application inits such as a
shell with ``trap ... TERM`` understand only SIGTERM, and a busybox root may have an
initctl pipe that nothing reads.  Signals without a handler are dropped by the kernel for
a PID-namespace init, so a signal the init does not listen for is simply lost.
"""

from __future__ import annotations

import re
import signal
from dataclasses import dataclass

AUTO = "auto"
INITCTL = "initctl"
RESTART = "restart"

#: systemd's halt and reboot requests (systemd(1), "Signals").
SYSTEMD_HALT = signal.SIGRTMIN + 3
SYSTEMD_REBOOT = signal.SIGRTMIN + 5

_RT = re.compile(r"^(?:SIG)?RTM(IN|AX)(?:([+-])(\d{1,2}))?$")


def signal_number(text: str) -> int:
    """``SIGTERM``, ``TERM``, ``SIGRTMIN+3``, ``RTMAX-1`` or ``15`` as a signal number.

    Raises ValueError with a sentence for anything else (SIGKILL and SIGSTOP too: they
    cannot be handled, so they are no way to ask an init anything).
    """
    name = text.strip().upper()
    if name.isdigit():
        number = int(name)
    else:
        m = _RT.match(name)
        if m:
            base = signal.SIGRTMIN if m.group(1) == "IN" else signal.SIGRTMAX
            offset = int(m.group(3) or 0) * (-1 if m.group(2) == "-" else 1)
            number = base + offset
        else:
            if not name.startswith("SIG"):
                name = "SIG" + name
            sig = getattr(signal.Signals, name, None) if name.isidentifier() else None
            if sig is None:
                raise ValueError(f"{text!r} is not a signal name (e.g. SIGTERM, SIGRTMIN+3)")
            number = int(sig)
    if not 1 <= number <= signal.SIGRTMAX:
        raise ValueError(f"{text!r} is not a signal number (1-{int(signal.SIGRTMAX)})")
    if number in (signal.SIGKILL, signal.SIGSTOP):
        raise ValueError(f"{text!r} cannot be handled by an init; name the signal it listens for")
    return number


def signal_name(number: int) -> str:
    """The conventional name of a signal number (``SIGRTMIN+3`` for real-time ones)."""
    if number >= signal.SIGRTMIN:
        return f"SIGRTMIN+{number - signal.SIGRTMIN}"
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def check_method(text: str, *, reboot: bool) -> str:
    """A valid halt (or reboot) method in its canonical spelling; ValueError otherwise."""
    value = text.strip()
    words = (AUTO, INITCTL, RESTART) if reboot else (AUTO, INITCTL)
    if value.lower() in words:
        return value.lower()
    try:
        return signal_name(signal_number(value))
    except ValueError as exc:
        raise ValueError(f"{exc}; or one of {', '.join(words)}") from None


@dataclass(frozen=True)
class Plan:
    """What to do: libvirt's initctl request and/or signals, in order.

    ``signals`` go out at once; ``later`` (SIGTERM, when the init's kind was not known)
    follows after a grace period.  ``restart`` (reboot only) means stop, then start.
    """

    initctl: bool = False
    signals: tuple[int, ...] = ()
    later: tuple[int, ...] = ()
    restart: bool = False

    def describe(self) -> str:
        if self.restart:
            return "stop + start"
        parts = (["initctl"] if self.initctl else []) + [signal_name(s) for s in self.signals]
        parts += [f"{signal_name(s)} later" for s in self.later]
        return "+".join(parts) or "nothing"


def listens(mask: int | None, number: int) -> bool:
    """Whether the signal ``number`` is in a listened-signal mask (None: not known)."""
    return mask is not None and bool(mask >> (number - 1) & 1)


def halt_plan(method: str, listened: int | None) -> Plan:
    """How to halt, given the configured ``method`` and the init's listened-signal mask
    (blocked | caught, bit N-1 for signal N; None when it cannot be read)."""
    if method == INITCTL:
        return Plan(initctl=True)
    if method != AUTO:
        return Plan(signals=(signal_number(method),))
    if listens(listened, SYSTEMD_HALT):
        return Plan(signals=(SYSTEMD_HALT,))
    if listened is None:
        # Not knowable (a remote daemon): ask the ways that do not disturb systemd first;
        # SIGTERM follows for inits that only know it.
        return Plan(initctl=True, signals=(SYSTEMD_HALT,), later=(signal.SIGTERM,))
    return Plan(initctl=True, signals=(signal.SIGTERM,))


def reboot_plan(method: str, listened: int | None) -> Plan:
    """How to reboot (same inputs as :func:`halt_plan`)."""
    if method == INITCTL:
        return Plan(initctl=True)
    if method == RESTART:
        return Plan(restart=True)
    if method != AUTO:
        return Plan(signals=(signal_number(method),))
    if listens(listened, SYSTEMD_REBOOT):
        return Plan(signals=(SYSTEMD_REBOOT,))
    return Plan(restart=True)


def listened_mask(status: str) -> int | None:
    """The signals a process blocks or catches, from the text of /proc/PID/status."""
    mask = 0
    found = False
    for line in status.splitlines():
        key, _, value = line.partition(":")
        if key in ("SigBlk", "SigCgt"):
            try:
                mask |= int(value.strip(), 16)
            except ValueError:
                return None
            found = True
    return mask if found else None
