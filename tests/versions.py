"""The Kubernetes versions the tests use, all derived from koral_ansible.versions (one place).

Changing the supported set or the default there moves every test with it:

* ``DEFAULT``: what ``create`` uses when no version is given.
* ``UPGRADE_FROM`` -> ``UPGRADE_TO``: a supported version and one of the next minor (the pinned
  patch where one is recorded, else X.Y.0); ``UPGRADE_FROM`` is the default unless the default is
  the newest supported minor, then the pinned patch of the minor before it.
* ``TOO_FAR`` (refused, ``TOO_FAR_WORDS``): more than one minor past ``UPGRADE_FROM``;
  ``OLDER``: a supported version before it (refused: only forward); ``NEXT_PATCH``: the patch after.
* ``OTHER_SUPPORTED``: the pinned patch of each supported minor other than the default's.
* ``VERSIONS_TO_CHECK``: those no other module creates on; ``LB_VERSION``: the first of them, what the
  LoadBalancer module creates on (the default if none).
* ``RECORD_*``: the same around ``RECORD_FROM``, a version on the oldest supported minor, for
  clusters only recorded in the state (a supported target two minors on exists there).
"""

from __future__ import annotations

from koral_ansible import k8s_releases, versions
from koral_ansible.versions import Version

DEFAULT = versions.DEFAULT_VERSION


def _of_minor(major: int, minor: int) -> str:
    return versions.pinned_version((major, minor)) or f"{major}.{minor}.0"


def _upgrade_pair() -> tuple[str, str]:
    d = Version.parse(DEFAULT)
    if (d.major, d.minor + 1) in versions.SUPPORTED_MINORS:
        return DEFAULT, _of_minor(d.major, d.minor + 1)
    return _of_minor(d.major, d.minor - 1), DEFAULT


UPGRADE_FROM, UPGRADE_TO = _upgrade_pair()


def _too_far(current: str) -> tuple[str, str]:
    """A target more than one minor past ``current`` and the words of its refusal: a supported
    minor when there is one ("allowed targets"), else an unsupported one ("supported: ...")."""
    c = Version.parse(current)
    for major, minor in versions.SUPPORTED_MINORS:
        if major == c.major and minor >= c.minor + 2:
            return f"{major}.{minor}.0", f"allowed targets are {c.major}.{c.minor}.x"
    return f"{c.major}.{c.minor + 2}.0", f"supported: {versions.supported_range()}"


def _older(current: str) -> str:
    """A supported version before ``current`` (refused: only forward)."""
    c = Version.parse(current)
    return f"{c.major}.{c.minor}.{c.patch - 1}" if c.patch else f"{c.major}.{c.minor - 1}.9"


# The pinned patch of every supported minor except the default's (``create`` on each of them; the
# default's is covered by the tests that use DEFAULT).
OTHER_SUPPORTED: tuple[str, ...] = tuple(
    _of_minor(major, minor)
    for major, minor in versions.SUPPORTED_MINORS
    if (major, minor) != Version.parse(DEFAULT).minor_key
)

# The supported versions no other integration module creates on (the default: test_cluster_local.py
# and most others; UPGRADE_FROM: the upgrade modules). test_loadbalancer_local.py creates its cluster
# on the first (LB_VERSION; the default when there is none) and runs tests/integration/version_checks.py
# on it; test_versions_local.py creates on the rest.
VERSIONS_TO_CHECK: tuple[str, ...] = tuple(v for v in OTHER_SUPPORTED if v != UPGRADE_FROM)
LB_VERSION = VERSIONS_TO_CHECK[0] if VERSIONS_TO_CHECK else DEFAULT

# For an upgrade of a created cluster (integration tests).
TOO_FAR, TOO_FAR_WORDS = _too_far(UPGRADE_FROM)
OLDER = _older(UPGRADE_FROM)
_f = Version.parse(UPGRADE_FROM)
NEXT_PATCH = f"{_f.major}.{_f.minor}.{_f.patch + 1}"
FROM_MINOR = f"{_f.major}.{_f.minor}"

# For a cluster only recorded in the state (unit tests): the oldest supported minor, so that a
# supported target two minors on exists.
_oldest = versions.SUPPORTED_MINORS[0]
RECORD_FROM = versions.pinned_version(_oldest) or f"{_oldest[0]}.{_oldest[1]}.4"
RECORD_TOO_FAR, RECORD_TOO_FAR_WORDS = _too_far(RECORD_FROM)
RECORD_OLDER = _older(RECORD_FROM)
_r = Version.parse(RECORD_FROM)
RECORD_NEXT_PATCH = f"{_r.major}.{_r.minor}.{_r.patch + 1}"
RECORD_NEXT_MINOR = f"{_r.major}.{_r.minor + 1}.0"

# The control-plane image tags of DEFAULT (from koral_ansible/k8s_releases.py).
_d = Version.parse(DEFAULT)
_rel = k8s_releases.release(_d.minor)
PAUSE = k8s_releases.step(_rel.pause, _d.patch)
ETCD = k8s_releases.step(_rel.etcd, _d.patch)
COREDNS = k8s_releases.step(_rel.coredns, _d.patch)
