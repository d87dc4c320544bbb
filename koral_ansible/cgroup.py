"""The cgroup version of a host, read as the kubelet reads it (libcontainer IsCgroup2UnifiedMode:
statfs("/sys/fs/cgroup").f_type == CGROUP2_SUPER_MAGIC)."""

from __future__ import annotations

import ctypes

CGROUP2_SUPER_MAGIC = 0x63677270


def cgroup_version(path: str = "/sys/fs/cgroup") -> int:
    """2 on a unified (cgroup v2) host, 1 otherwise (v1 or hybrid, or no cgroup mount)."""
    buf = ctypes.create_string_buffer(256)  # struct statfs; f_type (a C long) comes first
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.statfs(path.encode(), buf) != 0:
        return 1
    return 2 if ctypes.c_long.from_buffer(buf).value == CGROUP2_SUPER_MAGIC else 1
