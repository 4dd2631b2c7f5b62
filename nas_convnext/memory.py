"""How much memory this process may still take, to refuse work that cannot fit before starting it.

A header that declares a 4 GiB dataset, or a design a million channels wide, should be refused
in one line naming the figures, not end minutes later in a MemoryError or an allocator error.
What a process may take is the least of what the machine has free (MemAvailable), what its
container (cgroup) still allows, and what its own limits (ulimit -v, RLIMIT_DATA) leave; each
is read fresh, since other processes use memory too. Nothing here changes any process state.
"""
from __future__ import annotations

import os
import resource
from pathlib import Path

_CGROUP = Path("/sys/fs/cgroup")


def available_bytes() -> int:
    """The memory this process may still allocate, in bytes (the least of every limit known)."""
    candidates = [_meminfo_available(), _cgroup_headroom(), _rlimit_headroom()]
    known = [c for c in candidates if c is not None]
    return max(0, min(known)) if known else 1 << 62


def format_bytes(n: float) -> str:
    """`4.0 GiB`, `512.0 MiB`: figures for messages, in binary units as `free -h` shows them."""
    for unit, scale in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if abs(n) >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{int(n)} bytes"


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None  # "max" (cgroup v2): no limit


def _meminfo_available() -> int | None:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:  # not Linux: free physical pages
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _cgroup_headroom() -> int | None:
    # cgroup v2, then v1; a container sees its own group at the mount's root.
    for limit_file, usage_file in ((_CGROUP / "memory.max", _CGROUP / "memory.current"),
                                   (_CGROUP / "memory" / "memory.limit_in_bytes",
                                    _CGROUP / "memory" / "memory.usage_in_bytes")):
        limit, usage = _read_int(limit_file), _read_int(usage_file)
        if limit is not None and usage is not None and limit < 1 << 60:
            return limit - usage
    return None


def _rlimit_headroom() -> int | None:
    """What `ulimit -v` (RLIMIT_AS) and RLIMIT_DATA leave above what the process maps now."""
    status = _proc_status()
    out = []
    for limit_name, field in (("RLIMIT_AS", "VmSize"), ("RLIMIT_DATA", "VmData")):
        soft = resource.getrlimit(getattr(resource, limit_name))[0]
        if soft != resource.RLIM_INFINITY and field in status:
            out.append(soft - status[field])
    return min(out) if out else None


def _proc_status() -> dict[str, int]:
    out: dict[str, int] = {}
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                key, _, rest = line.partition(":")
                parts = rest.split()
                if key.startswith("Vm") and len(parts) == 2 and parts[1] == "kB":
                    out[key] = int(parts[0]) * 1024
    except (OSError, ValueError):
        pass
    return out
