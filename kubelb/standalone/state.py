"""Persisted address assignments, so that a restart gives every LoadBalancer the same address.

One JSON file in the state folder, replaced atomically (write to a temporary file, fsync,
rename), so a crash mid-write leaves the previous state intact.
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


class StateStore:
    def __init__(self, directory: Path) -> None:
        self.path = directory / STATE_FILE
        self._saved: dict[str, str] | None = None

    def load(self) -> dict[str, str]:
        """The saved assignments; an unreadable file is logged and treated as empty."""
        try:
            raw = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as e:
            logger.warning("ignoring unreadable state file %s: %s", self.path, e)
            return {}
        addresses = raw.get("addresses") if isinstance(raw, dict) else None
        if not isinstance(addresses, dict):
            logger.warning("ignoring state file %s: no 'addresses' mapping", self.path)
            return {}
        self._saved = {str(k): str(v) for k, v in addresses.items()}
        return dict(self._saved)

    def save(self, addresses: Mapping[str, str]) -> None:
        """Write the assignments when they differ from what was last saved."""
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
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self._saved = current
