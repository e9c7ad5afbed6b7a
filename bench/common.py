"""Shared helpers of the benchmark scripts: machine facts, peak RSS, percentiles."""

from __future__ import annotations

import os
import platform
import resource
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"


def cpu_model() -> str:
    """CPU model name, family and model number from /proc/cpuinfo ('unknown' elsewhere)."""
    fields: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
    except OSError:
        return platform.processor() or "unknown"
    name = fields.get("model name", "unknown")
    flags = fields.get("flags", "").split()
    simd = "avx512" if "avx512f" in flags else ("avx2" if "avx2" in flags else "")
    return (f"{name} (family {fields.get('cpu family', '?')} model {fields.get('model', '?')}"
            f"{', ' + simd if simd else ''})")


def mem_total_gib() -> float:
    """Total RAM in GiB from /proc/meminfo (0.0 if unknown)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return 0.0


def machine_facts() -> dict[str, object]:
    """Cores, CPU model, RAM, Python and the date, for the top of every benchmark."""
    return {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cores": os.cpu_count(),
        "cpu": cpu_model(),
        "ram_gib": round(mem_total_gib(), 1),
        "python": platform.python_version(),
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }


def print_facts(title: str) -> None:
    """Print the benchmark name and the machine facts."""
    print(f"== {title}")
    for key, value in machine_facts().items():
        print(f"{key:>12}: {value}")


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def pct(values: list[float], q: float) -> float:
    """q-th percentile with linear interpolation (same as qa.eval.metrics.percentile)."""
    from qa.eval.metrics import percentile

    return percentile(values, q)
