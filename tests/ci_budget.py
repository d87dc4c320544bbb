"""What CI (``CI=true``) leaves out to stay inside its 90-minute limit, and why.

On the machines of session 6 the integration tests ran about 2.2 times slower than before (the
same cluster create: 136 s, then 308 s on a quiet machine), which put the whole suite past the
limit (5,990 s; the next CI run was cut at 5,400 s). Since session 7 scripts/test.sh runs two
modules at a time (pytest-xdist): on session 7's machine a fresh-clone CI run's tests took 28
minutes (1,702 s) while its modules' own times add up to about 56. These modules stay left out so
that a machine twice as slow still ends near 60 minutes. They are left out of CI runs only; each
is covered in CI by a cheaper test of the same behaviour, and ``KORAL_CI_FULL=1`` (or any run
without ``CI=true``, such as the README's test command on a developer machine) runs them.

- Molecule scenarios: the roles' idempotence (changed=0 on a second converge) is checked in CI on
  a whole cluster by tests/integration/test_cluster_local.py, with every role of create.yml.
- test_node_os_local.py: Debian 13 nodes (the default Debian 12 node OS is what every cluster
  test runs on).
- test_bundle_tampered.py: a tampered bundle on nodes (bundle verification itself is unit-tested
  in tests/unit).
"""

from __future__ import annotations

import os

DEFERRED = (
    "tests/integration/test_molecule.py",
    "tests/integration/test_node_os_local.py",
    "tests/integration/test_bundle_tampered.py",
)
REASON = "left out of CI for its time limit (tests/ci_budget.py); KORAL_CI_FULL=1 runs it"


def deferred(nodeid: str) -> bool:
    """Whether this test is left out of this run."""
    in_ci = os.environ.get("CI", "").lower() == "true"
    if not in_ci or os.environ.get("KORAL_CI_FULL") == "1":
        return False
    return nodeid.startswith(DEFERRED)
