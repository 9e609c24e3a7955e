"""Autostart: settings that travel inside the domain, an ordered start-all and stop-all.

Containers carry their own settings (:class:`~lxcvirt.spec.Autostart`) in lxcvirt's
``<metadata>`` element, so a ``dumpxml`` / ``define`` to another host keeps them; libvirt's
own autostart flag is a symlink under /etc/libvirt that stays behind and has no order.

The pieces, in data-path order, one module each::

    _settings.py  get / update / erase: libvirt's metadata API (virDomain{Get,Set}Metadata),
                  keyed by our namespace URI, on the persistent config and, while the
                  container runs, the live one too; entries(host): every container with
                  its settings and whether it runs
    _plan.py      plan(entries, ...): pure; select, order, cut into waves
    _boot.py      the system switch (boot_switch) and the run lock
    _run.py       start_all / stop_all: run a plan under the lock, a thread pool per wave
    _imported.py  import_libvirt_autostart: take over libvirt's own flag

``time``: when > 0, the run waits up to that long for the container to be RUNNING before
it starts the next wave; 0 means it does not wait, so the next wave's starts are begun
right after (in order) and may overlap.  ``after`` always waits for the start of the one
followed to succeed, and skips the follower when it did not.
"""

from ._boot import DEFAULT_LOCK, LOCK_ENV, BootSwitch, boot_switch, lock_path, run_lock
from ._imported import Imported, import_libvirt_autostart
from ._plan import Entry, Plan, Wave, find_cycle, plan, settings_dict
from ._run import DEFAULT_PARALLEL, Outcome, Progress, Report, start_all, stop_all
from ._settings import SetResult, entries, erase, get, update

__all__ = [
    "DEFAULT_LOCK", "DEFAULT_PARALLEL", "LOCK_ENV", "BootSwitch", "Entry", "Imported",
    "Outcome", "Plan", "Progress", "Report", "SetResult", "Wave", "boot_switch", "entries",
    "erase", "find_cycle", "get", "import_libvirt_autostart", "lock_path", "plan",
    "run_lock", "settings_dict", "start_all", "stop_all", "update",
]
