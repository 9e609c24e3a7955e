"""``lxcvirt apply``: make one or more hosts match a folder of specs, again and again, safely.

Two phases.  :func:`plan` reads and validates every file for every host and compares each
wanted definition with what libvirt has stored, changing nothing; one bad file raises and
nothing is touched.  :func:`apply` then acts item by item through :class:`~lxcvirt.host.Host`
(define, start, stop, undefine); a failure is recorded and the other containers go on.

The comparison of a wanted definition with libvirt's stored one is
:mod:`lxcvirt._compare`'s.  The modules, in data-path order::

    _sources.py  the files: a folder's specs and domain XML, read and named
    _plan.py     per host: what is stored against what is wanted; the actions
    _act.py      carrying the actions out; what happened, per container

Plan items list their actions: ``build root`` (a spec's root ``from`` an image whose
folder is missing, built through :mod:`lxcvirt.rootfs` before the definition),
``create``, ``redefine`` (with a diff), ``autostart`` (only
lxcvirt's autostart metadata differs), ``restart``, ``start``, ``stop``, ``undefine``
(``--prune``); an item with no action is unchanged.
"""

from ..host import RECONNECT_WAIT
from ._act import (
    ApplyResult,
    ItemResult,
    act_order,
    apply,
    dry_run,
    run,
    set_live_autostart,
)
from ._plan import (
    AUTOSTART,
    CREATE,
    DEFAULT_PARALLEL_HOSTS,
    LIMITS,
    PROJECT,
    REDEFINE,
    RESTART,
    ROOTFS,
    START,
    STOP,
    UNDEFINE,
    HostPlan,
    Plan,
    PlanItem,
    plan,
)
from ._sources import Source, collect_files, read_source

__all__ = [
    "AUTOSTART", "CREATE", "DEFAULT_PARALLEL_HOSTS", "LIMITS", "PROJECT", "RECONNECT_WAIT",
    "REDEFINE", "RESTART", "ROOTFS", "START", "STOP", "UNDEFINE", "ApplyResult", "HostPlan",
    "ItemResult", "Plan", "PlanItem", "Source", "act_order", "apply", "collect_files",
    "dry_run", "plan", "read_source", "run", "set_live_autostart",
]
