"""Persisted address assignments, so that a restart gives every LoadBalancer the same address.

One JSON file in the state folder, replaced atomically (write to a temporary file, fsync,
rename), so a crash mid-write leaves the previous state intact; the replaced file is kept as
`assignments.json.prev`, the fallback when the state file is ever unreadable.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

logger = logging.getLogger(__name__)

STATE_FILE = "assignments.json"
FORMAT_VERSION = 1
# The file before the last save, read when the state file itself is unreadable.
BACKUP_SUFFIX = ".prev"


class StateStore:
    def __init__(self, directory: Path) -> None:
        self.path = directory / STATE_FILE
        self._saved: dict[str, str] | None = None

    def load(self) -> dict[str, str]:
        """The saved assignments. An unreadable file falls back to the previous good copy
        (`BACKUP_SUFFIX`), loudly: a state file silently treated as empty moves addresses."""
        loaded = _read(self.path)
        if isinstance(loaded, str):
            backup = self.path.with_name(self.path.name + BACKUP_SUFFIX)
            from_backup = _read(backup)
            if not isinstance(from_backup, dict):
                logger.error("ignoring unreadable state file %s (%s) and its previous copy "
                             "(%s): addresses may move",
                             self.path, loaded, from_backup or "none")  # fmt: skip
                return {}
            logger.error("unreadable state file %s (%s): using its previous good copy %s",
                         self.path, loaded, backup)  # fmt: skip
            loaded = from_backup
        if loaded is None:
            return {}
        self._saved = loaded
        return dict(loaded)

    def save(self, addresses: Mapping[str, str]) -> None:
        """Write the assignments when they differ from what was last saved; the file replaced
        is kept as the previous good copy (only if it still reads back)."""
        current = dict(sorted(addresses.items()))
        if current == self._saved:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        body = json.dumps({"version": FORMAT_VERSION, "addresses": current}, indent=2) + "\n"
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".assignments-", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as f:
                f.write(body)
                f.flush()
                os.fsync(f.fileno())
            if isinstance(_read(self.path), dict):
                # A hard link keeps the old content under the backup name without a copy.
                backup_tmp = f"{tmp}.bak"
                os.link(self.path, backup_tmp)
                os.replace(backup_tmp, self.path.with_name(self.path.name + BACKUP_SUFFIX))
            os.replace(tmp, self.path)
            _fsync_dir(self.path.parent)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            Path(f"{tmp}.bak").unlink(missing_ok=True)
            raise
        self._saved = current


def _read(path: Path) -> dict[str, str] | str | None:
    """The assignments in `path`, None when it does not exist, or why it cannot be read."""
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        return str(e)
    addresses = raw.get("addresses") if isinstance(raw, dict) else None
    if not isinstance(addresses, dict):
        return "no 'addresses' mapping"
    return {str(k): str(v) for k, v in addresses.items()}


def _fsync_dir(directory: Path) -> None:
    """Make the rename itself durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
