"""The controller: :class:`Host` on one libvirt URI, and what it reports.

::

    _controller.py   Host: define, start, stop, reboot, undefine, list, status
    _status.py       state and reason names; Status, DefineResult, StopResult, RebootResult
    _events.py       LifecycleWatch: waiting by lifecycle events (one domain, or many)
    _definitions.py  the definition diff; what libvirt generated, kept on redefinition
    _domain.py       DHCP leases, "is the init pid known yet", the init path
"""

from ._controller import (
    DEFAULT_SETTLE,
    LATER_GRACE,
    LOCAL_HOSTS,
    LXC_LOG_DIR,
    MONITOR_RETRIES,
    Host,
    PreflightHook,
    default_preflight,
)
from ._definitions import definition_diff, keep_generated
from ._events import LifecycleWatch
from ._status import (
    DefineResult,
    RebootResult,
    Status,
    StopResult,
    reason_name,
    state_name,
)

__all__ = [
    "DEFAULT_SETTLE",
    "LATER_GRACE",
    "LOCAL_HOSTS",
    "LXC_LOG_DIR",
    "MONITOR_RETRIES",
    "DefineResult",
    "Host",
    "LifecycleWatch",
    "PreflightHook",
    "RebootResult",
    "Status",
    "StopResult",
    "default_preflight",
    "definition_diff",
    "keep_generated",
    "reason_name",
    "state_name",
]
