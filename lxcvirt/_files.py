"""Reading the files users name, with a size cap: ``/dev/zero`` or a 10 GiB log given by
mistake must give an error, not fill the memory."""

from __future__ import annotations

from pathlib import Path

#: Domain XML and specs are a few KiB; nothing a user means is larger than this.
MAX_BYTES = 4 * 1024 * 1024


class TooLarge(OSError):
    """The file is larger than the cap (``strerror`` says so)."""


def read_capped(path: str | Path, limit: int = MAX_BYTES) -> bytes:
    """The bytes of ``path``; raises OSError (TooLarge past ``limit``) like ``open`` does."""
    with open(path, "rb") as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise TooLarge(27, f"larger than {limit // 1024} KiB; not a spec or domain XML file")
    return data
