"""A container's console through libvirt's console stream: interactive or scripted.

``attach(host, name)`` connects our terminal (raw mode) or our stdin/stdout (pipe mode) to
the container's pty console, ``dom.openConsole(None, stream, 0)``, until one of these
ends the session:

=====================================  =========  ================================
what happened                          exit code  said on stderr
=====================================  =========  ================================
the escape key (``^]``) was typed      0          detached
the container stopped                  0          NAME stopped
``--expect`` matched                   0          (nothing)
stdin ended, console quiet (pipe)      0          (nothing)
``--expect`` not seen in ``timeout``   1          timed out ...
libvirtd went away                     1          lost the connection ...
another session took over (--force)    1          taken over by pid N
the console kept closing               1          gave up reattaching ...
SIGTERM / SIGHUP / SIGINT to us        128+N      (nothing)
=====================================  =========  ================================

How the pieces fit (``_session.py`` the loop, ``_stream.py`` libvirt's stream,
``_expect.py`` the patterns, ``_lock.py`` one session per container):

* libvirt's event loop thread (see :mod:`lxcvirt._libvirt`) runs the stream callback,
  which reads what the console prints and writes it to stdout straight away (as virsh
  does: no hop through another thread).  Lifecycle and connection-close callbacks run
  there too.  They only set flags and poke a pipe; the main thread decides.
* The main thread waits in ``select`` on stdin, that pipe and the lock's takeover socket;
  it sends keystrokes, watches for the escape byte, restores the terminal on every way
  out (``finally``; SIGTERM and SIGHUP are turned into a normal end of the loop).
* A stream that ends (EOF, hang-up, error) does not mean the container is gone: during
  boot an init may close ``/dev/console`` and a getty reopen it.  We then ask the daemon:
  running -> reattach with a short backoff and bounded retries; shut off -> say so and
  exit 0; no daemon -> exit 1.
* One session per container: libvirt's LXC driver has no safe/force console flags
  (``openConsole`` takes flags 0 only), and two readers of one pty would each get half
  of the output.  So :class:`ConsoleLock` is an ``flock`` on
  ``/run/lxcvirt/console/NAME.lock`` (released by the kernel when a holder dies) plus a
  datagram socket beside it on which ``--force`` asks the holder to leave.
"""

from .._terminal import decode_send, escape_name, parse_escape, raw_terminal
from ._expect import Expect
from ._lock import RUN_DIR, ConsoleLock
from ._session import DEFAULT_ESCAPE, Result, Session, attach

__all__ = ["DEFAULT_ESCAPE", "RUN_DIR", "ConsoleLock", "Expect", "Result", "Session", "attach",
           "decode_send", "escape_name", "parse_escape", "raw_terminal"]
