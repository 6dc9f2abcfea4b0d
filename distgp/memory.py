"""Peak memory of the current process."""

from __future__ import annotations

import resource
import sys
from pathlib import Path


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, MiB.

    On Linux this is ``VmHWM`` of ``/proc/self/status``, the high-water mark of the current
    program image: ``getrusage`` would also count the parent's memory at the time of the fork
    that spawned this process, because Linux carries ``ru_maxrss`` across ``exec``. Elsewhere it
    falls back to ``getrusage`` (kibibytes, bytes on macOS).
    """
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return float(line.split()[1]) / 2**10
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (2**20 if sys.platform == "darwin" else 2**10)
