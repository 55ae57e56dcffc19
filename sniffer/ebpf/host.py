"""Whether this host lets a process trace its kernel with eBPF: the privilege, the kernel's BTF."""

from __future__ import annotations

import platform
import re
from pathlib import Path

from .build import BTF

CAP_SYS_ADMIN, CAP_PERFMON, CAP_BPF = 21, 38, 39


class Unavailable(Exception):
    """eBPF cannot run here: why, in a few words."""


def capabilities(status: str = "/proc/self/status") -> int:
    """This process's effective capabilities, as a bit set."""
    try:
        with open(status) as lines:
            for line in lines:
                if line.startswith("CapEff:"):
                    return int(line.split()[1], 16)
    except (OSError, ValueError, IndexError):
        pass
    return 0


def kernel(release: str | None = None) -> tuple[int, int]:
    """The running kernel's (major, minor) version."""
    numbers = re.match(r"(\d+)\.(\d+)", release or platform.release())
    return (int(numbers[1]), int(numbers[2])) if numbers else (0, 0)


def uprobes_unavailable(release: str | None = None) -> str | None:
    """Why this process cannot attach uprobes though it may load eBPF: since Linux 6.16 they
    need CAP_SYS_ADMIN again, CAP_PERFMON no longer being enough."""
    if kernel(release) >= (6, 16) and not capabilities() >> CAP_SYS_ADMIN & 1:
        return "reading TLS needs CAP_SYS_ADMIN on Linux 6.16 and later (uprobes)"
    return None


def unavailable(btf: Path = BTF) -> str | None:
    """Why eBPF tracing cannot run here, or None."""
    effective = capabilities()

    def has(capability: int) -> bool:
        return bool(effective >> capability & 1)

    # CAP_SYS_ADMIN alone on kernels before 5.8, which know neither CAP_BPF nor CAP_PERFMON
    if not (has(CAP_SYS_ADMIN) or (has(CAP_BPF) and has(CAP_PERFMON))):
        return "needs root, or the CAP_BPF and CAP_PERFMON capabilities"
    if not btf.exists():
        return f"the kernel has no BTF ({btf})"
    return None
