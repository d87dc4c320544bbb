"""Node operating systems: the spec's ``node_os`` values and the Debian suite each is built from.

The one home for the allowed values (spec validation, the CLI's help, the local node image).
``debian-12`` stays the default: existing clusters' stored specs have no ``node_os`` and were
built on bookworm, and the doubles and roles are exercised on its warm cached image.
"""

from __future__ import annotations

# node_os value -> Debian suite (debootstrap's SUITE argument).
NODE_OS_SUITES: dict[str, str] = {"debian-12": "bookworm", "debian-13": "trixie"}
DEFAULT_NODE_OS = "debian-12"
ALLOWED = ", ".join(NODE_OS_SUITES)


def suite(node_os: str) -> str:
    """The Debian suite of a validated ``node_os`` value."""
    return NODE_OS_SUITES[node_os]
