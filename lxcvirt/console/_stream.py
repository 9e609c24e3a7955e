"""libvirt's console stream: opened non-blocking with a callback in libvirt's event-loop
thread, written to with back-off, and let go of without keeping the connection alive.

libvirt-python keeps the data it registers with a stream callback (the stream itself,
the callback) after the callback is removed, and the stream holds its connection: a
program that opens many console sessions would keep every connection, and its socket,
open (seen: two descriptors a session in this process, one in libvirtd's).  So the
callback is registered through a weak proxy of the stream and calls back through a weak
reference: what libvirt keeps then holds nothing of ours alive.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Callable
from typing import Any

import libvirt

from .. import _libvirt
from ..errors import LibvirtError

#: Bytes read from the stream at a time.
CHUNK = 65536
#: How long a send waits, all told, for a full stream queue to drain before it drops.
SEND_PATIENCE = 5.0

_EVENTS = (libvirt.VIR_STREAM_EVENT_READABLE | libvirt.VIR_STREAM_EVENT_ERROR
           | libvirt.VIR_STREAM_EVENT_HANGUP)

#: ``handler(data)`` for each chunk read (False: stop reading for now); ``handler(None)``
#: once the stream has ended.  It must hold its session by a weak reference only.
Handler = Callable[[bytes | None], "bool | None"]


def open_stream(conn: Any, dom: Any, name: str, handler: Handler) -> Any:
    """Open ``dom``'s console on a new non-blocking stream; ``handler`` runs in libvirt's
    event-loop thread.  Raises :class:`LibvirtError` (the stream is aborted then)."""
    doing = f"opening the console of {name}"
    st = _libvirt.call(doing, conn.newStream, libvirt.VIR_STREAM_NONBLOCK)

    def on_event(stream: Any, events: int, _opaque: object) -> None:
        _dispatch(stream, events, handler)

    try:
        with _libvirt.converted(doing):
            dom.openConsole(None, st, 0)
            libvirt.virStream.eventAddCallback(weakref.proxy(st), _EVENTS, on_event, None)
    except LibvirtError:
        with _libvirt.ignored():
            st.abort()
        raise
    return st


def _dispatch(stream: Any, events: int, handler: Handler) -> None:
    closed = False
    try:
        if events & libvirt.VIR_STREAM_EVENT_READABLE:
            while True:
                try:
                    data = _libvirt.call("reading the console", stream.recv, CHUNK)
                except LibvirtError:
                    closed = True
                    break
                if isinstance(data, int):  # -2: nothing more for now
                    break
                if not data:
                    closed = True
                    break
                if handler(data) is False:
                    break
        if events & (libvirt.VIR_STREAM_EVENT_ERROR | libvirt.VIR_STREAM_EVENT_HANGUP):
            closed = True
        if closed:
            with _libvirt.ignored():
                stream.eventUpdateCallback(0)  # stop the callback firing until we act
    except ReferenceError:
        closed = True  # the stream was let go of meanwhile
    if closed:
        handler(None)


def close_stream(st: Any) -> None:
    """Remove the callback and abort the stream (errors ignored: it may be dead)."""
    with _libvirt.ignored():
        st.eventRemoveCallback()
    with _libvirt.ignored():
        st.abort()


def send_all(st: Any, data: bytes) -> bool:
    """Write ``data``; False when the stream failed (it has ended).  A queue that stays
    full for :data:`SEND_PATIENCE` seconds drops the rest, as a terminal would."""
    view = memoryview(data)
    waited = 0.0
    while view:
        try:
            n = _libvirt.call("writing to the console", st.send, bytes(view))
        except LibvirtError:
            return False
        if n == -2:  # the stream's queue is full: give it a moment
            time.sleep(0.005)
            waited += 0.005
            if waited > SEND_PATIENCE:
                return True
            continue
        view = view[n:]
    return True
