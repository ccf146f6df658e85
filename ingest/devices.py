"""Which runner a device belongs to: the race's entrants, reloadable, reassignable.

Devices resolve to bibs through the race folder's ``entrants.csv``. The file is checked
for changes at most every few seconds and reloaded without a restart; a file that does
not load keeps the previous mapping (and says why in ``last_error``), so an organiser's
typo never takes the ingest down. Race control can reassign a device to a bib (a
runner swaps a dead tracker for a spare); reassignments win over the file and survive
reloads, but live in this process only.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from race_engine.model import Entrant
from race_engine.racefolder import load_entrants

log = logging.getLogger(__name__)

ENTRANTS_FILE = "entrants.csv"


class RegistryError(ValueError):
    """The entrants cannot be loaded or a reassignment is not possible; says why."""


@dataclass(frozen=True)
class _Snapshot:
    by_device: dict[str, str]
    by_chip: dict[str, str]
    bibs: frozenset[str]


def _index(entrants: tuple[Entrant, ...]) -> _Snapshot:
    by_device: dict[str, str] = {}
    by_chip: dict[str, str] = {}
    for e in entrants:
        if e.device:
            other = by_device.setdefault(e.device, e.bib)
            if other != e.bib:
                raise RegistryError(f"device {e.device} is given to bibs {other} and {e.bib}")
        chip = e.private.get("chip", "")
        if chip:
            by_chip[chip] = e.bib
    return _Snapshot(by_device, by_chip, frozenset(e.bib for e in entrants))


class DeviceRegistry:
    """Device -> bib (and chip -> bib) for one race, reloaded when the file changes."""

    def __init__(
        self,
        race_dir: Path,  # the race folder, or an entrants.csv file itself
        *,
        reload_interval_s: float = 2.0,
        loader: Callable[[Path], tuple[Entrant, ...]] = load_entrants,  # of entrants.csv
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.race_dir = race_dir
        self._interval = reload_interval_s
        self._loader = loader
        self._clock = clock
        self._snap = _Snapshot({}, {}, frozenset())
        self._overrides: dict[str, str] = {}
        self._mtime: float | None = None
        self._checked = float("-inf")
        self.last_error: str = ""

    @property
    def entrants_file(self) -> Path:
        return self.race_dir / ENTRANTS_FILE if self.race_dir.is_dir() else self.race_dir

    def reload(self) -> int:
        """Load the entrants now; return how many. Raises RegistryError, keeping the old."""
        try:
            mtime = os.stat(self.entrants_file).st_mtime
            snap = _index(self._loader(self.entrants_file))
        except (OSError, RegistryError, ValueError) as exc:
            self.last_error = str(exc)
            raise RegistryError(str(exc)) from None
        self._snap, self._mtime, self.last_error = snap, mtime, ""
        log.info("loaded %d entrants from %s", len(snap.bibs), self.entrants_file)
        return len(snap.bibs)

    def maybe_reload(self) -> None:
        """Reload if the file changed since the last load; at most once per interval."""
        now = self._clock()
        if now - self._checked < self._interval:
            return
        self._checked = now
        try:
            mtime = os.stat(self.entrants_file).st_mtime
        except OSError as exc:
            self.last_error = f"cannot read {self.entrants_file}: {exc.strerror or exc}"
            return
        if mtime != self._mtime:
            try:
                self.reload()
            except RegistryError as exc:
                log.warning("entrants not reloaded, keeping the previous ones: %s", exc)

    def bib_of(self, device: str) -> str | None:
        """The bib ``device`` belongs to, or None for a device of no entrant."""
        return self._overrides.get(device) or self._snap.by_device.get(device)

    def bib_of_chip(self, chip: str) -> str | None:
        """The bib of a timing chip (the ``chip`` column of entrants.csv), or None."""
        return self._snap.by_chip.get(chip)

    def has_bib(self, bib: str) -> bool:
        return bib in self._snap.bibs

    def reassign(self, device: str, bib: str | None) -> None:
        """Give ``device`` to ``bib`` (None: drop a reassignment). Raises RegistryError."""
        device = device.strip()
        if not device:
            raise RegistryError("give the device id to reassign, e.g. \"ZGM-0413\"")
        if bib is None:
            self._overrides.pop(device, None)
            return
        if not self.has_bib(bib):
            raise RegistryError(f"bib {bib} is not an entrant of this race")
        self._overrides[device] = bib
        log.info("device %s reassigned to bib %s", device, bib)

    def reassignments(self) -> dict[str, str]:
        return dict(self._overrides)

    def size(self) -> int:
        return len(self._snap.bibs)
