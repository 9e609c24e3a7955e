"""The words every ``--json`` output shares (schemas/json/ describes them).

What was done to one container is an *outcome*: ``name``, ``action`` (the verb asked:
start, stop, define, ...), ``result`` (what happened: started, already running, shut
down, failed, skipped, ...), ``ok``, ``seconds``, and when it went wrong ``error`` (the
kind, as in an error document) and ``message``.  A command that acts on containers
prints a *report*: ``action``, ``ok``, ``exit_code``, ``seconds``, ``counts`` (how many
outcomes ended with each result), ``notes`` and ``containers`` (the outcomes).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .errors import EXIT_ERROR, EXIT_OK, EXIT_PARTIAL


def outcome(name: str, action: str, result: str, *, ok: bool = True, seconds: float = 0.0,
            error: str | None = None, message: str | None = None,
            **extra: Any) -> dict[str, object]:
    """One container's outcome; ``extra`` keys follow the shared ones."""
    return {"name": name, "action": action, "result": result, "ok": ok,
            "seconds": round(seconds, 3), "error": error, "message": message or None,
            **extra}


def exit_code(failed: int, total: int) -> int:
    """0 when nothing failed (nothing to do included), 1 when everything did, else 2."""
    if failed == 0:
        return EXIT_OK
    return EXIT_ERROR if failed == total else EXIT_PARTIAL


def counts(results: Iterable[str]) -> dict[str, int]:
    """How many of each result, in the order first seen."""
    out: dict[str, int] = {}
    for r in results:
        out[r] = out.get(r, 0) + 1
    return out


def report(action: str, outcomes: Sequence[Mapping[str, Any]], *, seconds: float,
           notes: Iterable[str] = (), **extra: Any) -> dict[str, object]:
    """The report of a command that acted on ``outcomes``."""
    failed = sum(1 for o in outcomes if not o["ok"])
    return {"action": action, "ok": failed == 0, "exit_code": exit_code(failed, len(outcomes)),
            "seconds": round(seconds, 3), "counts": counts(str(o["result"]) for o in outcomes),
            "notes": list(notes), **extra, "containers": [dict(o) for o in outcomes]}
