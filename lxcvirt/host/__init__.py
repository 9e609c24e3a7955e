"""The controller: :class:`Host` on one libvirt URI, and what it reports.

::

    _controller.py   Host: the connection, lookups, list, status, define, and the verbs
    _starting.py     what blocks a start, one create() and its waits, the container's log
    _stopping.py     how init is asked to halt or reboot, the waits, destroy as last resort
    _status.py       state and reason names; Status, DefineResult, StopResult, RebootResult
    _events.py       LifecycleWatch: waiting by lifecycle events (one domain, or many)
    _definitions.py  the definition diff; what libvirt generated, kept on redefinition
    _domain.py       DHCP leases, "is the init pid known yet", the init path, destroy
    _tuning.py       limits changed through libvirt's parameter calls (set)
    _eventlog.py     lifecycle events as they happen (events)
    _info.py         one container in full (info)
    _stats.py        usage as rates over an interval (stats)
"""

from ._controller import (
    DEFAULT_SETTLE,
    LOCAL_HOSTS,
    MONITOR_RETRIES,
    RECONNECT_WAIT,
    RESTARTED,
    Host,
    PreflightHook,
    deaths_since,
    default_preflight,
    running_when_back,
    start_retries,
)
from ._definitions import definition_diff, keep_generated, runs_old_definition
from ._eventlog import Event, events
from ._events import LifecycleWatch
from ._info import Info, InterfaceInfo, MountInfo, info
from ._starting import LXC_LOG_DIR, init_gone, leave_shut_off
from ._stats import Sample, Usage, sample, usage
from ._status import (
    DefineResult,
    RebootResult,
    Status,
    StopResult,
    reason_name,
    state_name,
)
from ._stopping import LATER_GRACE
from ._tuning import (
    UNLIMITED_KIB,
    Change,
    TuneResult,
    live_changes,
    read_config_limits,
    read_live_limits,
    set_limits,
    without_limits,
)

__all__ = [
    "DEFAULT_SETTLE",
    "LATER_GRACE",
    "LOCAL_HOSTS",
    "LXC_LOG_DIR",
    "MONITOR_RETRIES",
    "RECONNECT_WAIT",
    "RESTARTED",
    "UNLIMITED_KIB",
    "Change",
    "TuneResult",
    "Usage",
    "live_changes",
    "read_config_limits",
    "read_live_limits",
    "set_limits",
    "without_limits",
    "DefineResult",
    "Event",
    "Host",
    "Info",
    "InterfaceInfo",
    "MountInfo",
    "LifecycleWatch",
    "PreflightHook",
    "RebootResult",
    "Sample",
    "Status",
    "StopResult",
    "deaths_since",
    "init_gone",
    "leave_shut_off",
    "start_retries",
    "default_preflight",
    "events",
    "info",
    "sample",
    "usage",
    "running_when_back",
    "definition_diff",
    "keep_generated",
    "runs_old_definition",
    "reason_name",
    "state_name",
]
