"""Explicit recovery of a collection the service left in the ``failed`` state: ``adanns repair DIR/NAME``.

The service never repairs silently; this does, and says exactly what it drops. It loads the current
snapshot (or, with ``discard_snapshot``, starts empty when the snapshot itself is damaged), replays every
intact record of the log (skipping damaged byte ranges and records that cannot be applied, each
reported), copies the original folder aside (``NAME.before-repair-<time>``, which the service ignores),
then writes a fresh snapshot and an empty log. Run it while the service is stopped.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from . import wal
from .collection import Collection, Damaged, read_meta


class RepairError(Exception):
    """The collection cannot be repaired without a decision the caller has not made; the message says which."""


def repair(folder: Path, discard_snapshot: bool = False, dry_run: bool = False) -> list[str]:
    """Repairs the collection in ``folder``; returns the report, one line per thing skipped or done."""
    folder = Path(folder)
    if not folder.is_dir():
        raise RepairError(f"{folder} is not a folder")
    report: list[str] = []
    try:
        meta = read_meta(folder)
    except Damaged as e:
        raise RepairError(f"{folder.name}: {e}; its configuration is unknown, so it cannot be rebuilt "
                          "automatically (restore meta.json from a backup)") from None
    log_path = folder / "wal.log"
    data = log_path.read_bytes() if log_path.exists() else b""
    records, damage = wal.scan(data)
    for d in damage:
        report.append(f"skipped wal.log {d}")
    c = Collection(folder, Collection.failed(folder, "", 1).config, snapshot_every=1 << 62)
    try:
        c._recover(meta, records, strict=False, report=report, discard_snapshot=discard_snapshot)
    except Damaged as e:
        raise RepairError(f"{folder.name}: {e}; rerun with --discard-snapshot to rebuild from the log alone "
                          "(the vectors the snapshot held are then lost)") from None
    report.append(f"recovered {len(c._ids)} vectors up to write {c._seq} ({c._replayed} replayed from the log)")
    if dry_run:
        report.append("dry run: nothing written")
        return report
    backup = folder.with_name(f"{folder.name}.before-repair-{time.strftime('%Y%m%d-%H%M%S')}")
    shutil.copytree(folder, backup)
    report.append(f"the original files are in {backup}")
    c._wal = wal.WriteAheadLog(log_path)
    try:
        c._snapshot()  # publishes the repaired state, then empties the log
    finally:
        c._wal.close()
    report.append("wrote a fresh snapshot and an empty log: the index loads again")
    return report
