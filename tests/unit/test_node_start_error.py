"""The error of a refused node start names podman's IPAM leak only when it is one."""

from __future__ import annotations

from koral_ansible.providers.local.nodes import start_error

OWN = "041c6742cb327b0679f178e1575a2e4e629a319714eaa81de3f991e5392dfacb"
# The text podman 4.3.1 printed in a CI run whose create was SIGKILLed inside `podman run`.
HELD = (
    f'Error: unable to start container "{OWN}": IPAM error: requested ip address 10.213.0.12 '
    f"is already allocated to container ID {OWN}\n"
)


def test_the_leak_is_named_with_its_address_and_the_fix() -> None:
    msg = start_error("c1-node-1", HELD, OWN)
    assert "\n" not in msg
    assert "10.213.0.12" in msg and "interrupted" in msg and "koral-play delete" in msg


def test_an_address_held_by_another_container_is_reported_as_podman_says() -> None:
    msg = start_error("c1-node-1", HELD, "f" * 64)
    assert msg == f"cannot start node c1-node-1: {HELD.strip()}"


def test_other_errors_pass_through() -> None:
    assert start_error("n", "Error: crun: oops\n", OWN) == "cannot start node n: Error: crun: oops"
