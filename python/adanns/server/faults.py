"""Injectable storage faults, for the fault-injection tests (never set in production).

``ADANNS_FAULTS="wal.fsync=2:EIO,snapshot.rename=1:crash"`` makes the 2nd fsync of a log raise
``OSError(EIO)`` and the 1st rename of a snapshot folder end the process at once (``os._exit``, like
``kill -9``). ``N+`` instead of ``N`` fails that call and every later one (a disk that stays full).
Each storage step of the log and of the snapshot path calls `point` with its name (see `POINTS`);
with no plan, a point costs one falsy check.
"""

from __future__ import annotations

import errno
import os
import threading

POINTS = (
    "wal.write",        # append a record (the injected fault writes half the frame first)
    "wal.fsync",        # make the append durable
    "wal.rollback",     # cut the log back after a failed append
    "wal.reset",        # empty the log once a snapshot holds its records
    "snapshot.write",   # each file of a new snapshot
    "snapshot.fsync",   # the new snapshot's folder
    "snapshot.rename",  # publish the new snapshot folder under its final name
    "meta.write",       # write meta.json.tmp (the pointer to the current snapshot)
    "meta.rename",      # switch meta.json to the new snapshot (the commit point)
    "snapshot.cleanup", # remove the previous snapshot
)

_lock = threading.Lock()
_plan: dict[str, tuple[int, bool, str]] = {}
_calls: dict[str, int] = {}


def configure(spec: str | None) -> None:
    """Replaces the plan (``None`` or ``""`` clears it) and the call counts."""
    plan = {}
    for item in filter(None, (spec or "").split(",")):
        name, _, rest = item.partition("=")
        nth, _, action = rest.partition(":")
        if name not in POINTS:
            raise ValueError(f"unknown fault point {name!r}; expected one of {POINTS}")
        if action != "crash" and not hasattr(errno, action):
            raise ValueError(f"fault action must be 'crash' or an errno name, got {action!r}")
        plan[name] = (int(nth.rstrip("+")), nth.endswith("+"), action)
    with _lock:
        _plan.clear()
        _plan.update(plan)
        _calls.clear()


def point(name: str) -> None:
    """Raises the planned OSError (or ends the process) when this call of ``name`` is planned to fail."""
    if not _plan:
        return
    with _lock:
        planned = _plan.get(name)
        if planned is None:
            return
        count = _calls[name] = _calls.get(name, 0) + 1
    nth, onwards, action = planned
    if count == nth or (onwards and count > nth):
        if action == "crash":
            os._exit(137)
        code = getattr(errno, action)
        raise OSError(code, f"{os.strerror(code)} (injected at {name})")


configure(os.environ.get("ADANNS_FAULTS"))
