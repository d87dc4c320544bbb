"""Kubernetes versions koral-ansible knows how to install, and version arithmetic.

One home for: which versions are supported, which kubeadm config API a version uses,
and which upgrades are allowed (patch of the same minor or the next minor, never back).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Minor versions whose kubeadm config API and component flags the roles know.
SUPPORTED_MINORS: tuple[tuple[int, int], ...] = tuple((1, m) for m in range(28, 35))
DEFAULT_VERSION = "1.31.4"

_VERSION_RE = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)$")


@dataclass(frozen=True, order=True)
class Version:
    major: int
    minor: int
    patch: int

    @classmethod
    def parse(cls, text: str) -> Version:
        m = _VERSION_RE.match(text.strip())
        if not m:
            raise ValueError(f"not a version of the form X.Y.Z: {text!r}")
        return cls(int(m.group(1)), int(m.group(2)), int(m.group(3)))

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"

    @property
    def minor_key(self) -> tuple[int, int]:
        return (self.major, self.minor)


def supported_range() -> str:
    lo, hi = SUPPORTED_MINORS[0], SUPPORTED_MINORS[-1]
    return f"{lo[0]}.{lo[1]}.x to {hi[0]}.{hi[1]}.x"


def check_supported(text: str) -> Version:
    """Parse ``text`` and check it is a supported version; raise ValueError naming the range."""
    v = Version.parse(text)
    if v.minor_key not in SUPPORTED_MINORS:
        raise ValueError(f"unsupported Kubernetes version {v}; supported: {supported_range()}")
    return v


def kubeadm_api_version(version: str | Version) -> str:
    """kubeadm config API for a Kubernetes version: v1beta4 from 1.31 on, v1beta3 before."""
    v = Version.parse(version) if isinstance(version, str) else version
    return "kubeadm.k8s.io/v1beta4" if v.minor_key >= (1, 31) else "kubeadm.k8s.io/v1beta3"


def check_upgrade(current: str, target: str) -> Version:
    """Allowed: a later patch of the same minor, or any patch of the next minor. Never backwards."""
    cur, tgt = Version.parse(current), check_supported(target)
    if tgt <= cur:
        raise ValueError(f"cannot upgrade from {cur} to {tgt}: only forward upgrades are allowed")
    if tgt.major != cur.major or tgt.minor not in (cur.minor, cur.minor + 1):
        raise ValueError(
            f"cannot upgrade from {cur} to {tgt}: allowed targets are {cur.major}.{cur.minor}.x "
            f"(>{cur}) or {cur.major}.{cur.minor + 1}.x"
        )
    return tgt
