"""The Kubernetes versions the tests use, all derived from koral_ansible.versions (one place).

Changing the supported set or the default there moves every test with it:

* ``DEFAULT``: what ``create`` uses when no version is given.
* ``UPGRADE_FROM`` -> ``UPGRADE_TO``: a supported version and one of the next minor (the pinned
  patch where one is recorded, else X.Y.0); ``UPGRADE_FROM`` is the default unless the default is
  the newest supported minor, then the pinned patch of the minor before it.
* ``TOO_FAR``: two minors past ``UPGRADE_FROM`` (refused: one minor at a time);
  ``OLDER``: a patch of the minor before ``UPGRADE_FROM`` (refused: only forward);
  ``NEXT_PATCH``: the patch after ``UPGRADE_FROM``.
"""

from __future__ import annotations

from koral_ansible import versions
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
_f = Version.parse(UPGRADE_FROM)
TOO_FAR = f"{_f.major}.{_f.minor + 2}.0"
OLDER = f"{_f.major}.{_f.minor - 1}.9"
NEXT_PATCH = f"{_f.major}.{_f.minor}.{_f.patch + 1}"
FROM_MINOR = f"{_f.major}.{_f.minor}"
