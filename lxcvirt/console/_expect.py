"""``--expect``: regular expressions matched one after the other against what the console
prints, in bounded memory."""

from __future__ import annotations

import re
from collections.abc import Sequence

from ..errors import ConsoleError


class Expect:
    """``--expect`` patterns, matched one after the other against the console output."""

    #: A match may start at most this far before the output that completes it: after a
    #: search fails only this tail is kept, so long outputs cost linear time.
    KEEP = 8192

    def __init__(self, patterns: Sequence[str]) -> None:
        try:
            self.patterns = [re.compile(p.encode()) for p in patterns]
        except re.error as exc:
            raise ConsoleError(f"--expect: bad regular expression: {exc}") from exc
        self.buf = bytearray()
        self.next = 0

    @property
    def done(self) -> bool:
        return self.next >= len(self.patterns)

    @property
    def waiting_for(self) -> str:
        return self.patterns[self.next].pattern.decode() if not self.done else ""

    def feed(self, data: bytes) -> bool:
        """Add output; True once every pattern has been seen."""
        if self.done:
            return True
        self.buf += data
        while not self.done:
            m = self.patterns[self.next].search(self.buf)
            if m is None:
                break
            del self.buf[: m.end()]
            self.next += 1
        if len(self.buf) > self.KEEP:
            del self.buf[: -self.KEEP]
        return self.done
