"""Run a ``zegama-live`` command in this process, as the fuzz tests run their services,
with two hooks for the tests and nothing else changed:

* every log record is written: the services' repeat filter (zegama_live/repeats.py,
  five warnings or errors of a kind a minute) would hide the sixth traceback of a kind,
  and a test must see each one;
* on SIGUSR1 its memory figures are appended, as a JSON line, to the file named by
  ``ZEGAMA_MEMORY_PROBE``:

  - ``rss_kib``: VmRSS as it is;
  - ``blocks`` and ``objects`` after a full collection: what Python still holds
    (``sys.getallocatedblocks()``, the GC-tracked objects); a leak shows here;
  - ``trimmed_rss_kib``: VmRSS once glibc's ``malloc_trim(0)`` has given the free heap
    back to the system: what the process could not give back because it is in use.

  RSS alone cannot tell a leak from memory the allocator keeps for later; these can.

Usage: ``python service_probe.py broadcast --race DIR ...`` (``zegama-live``'s arguments).
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import json
import os
import signal
import sys
from pathlib import Path
from types import FrameType


def _rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return -1


def _report(signum: int, frame: FrameType | None) -> None:
    rss = _rss_kib()
    gc.collect()
    figures = {"rss_kib": rss, "blocks": sys.getallocatedblocks(),
               "objects": len(gc.get_objects())}
    with contextlib.suppress(OSError):  # not glibc: nothing trimmed
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    figures["trimmed_rss_kib"] = _rss_kib()
    with open(os.environ["ZEGAMA_MEMORY_PROBE"], "a") as out:
        out.write(json.dumps(figures) + "\n")


def main() -> int:
    from zegama_live import repeats
    from zegama_live.cli import main as cli

    repeats.install = lambda logger=None: repeats.RepeatFilter()  # installed nowhere
    if os.environ.get("ZEGAMA_MEMORY_PROBE"):
        signal.signal(signal.SIGUSR1, _report)
    return cli(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
