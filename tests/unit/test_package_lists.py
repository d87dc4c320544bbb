"""The README's two commands install apart: setup.sh (the first, install + create) installs
koral-play's own packages; test.sh adds what only the tests need (Chromium for the console's
browser tests), so a user who never runs the tests never gets a browser."""

from __future__ import annotations

from pathlib import Path

from koral_ansible.doctor import host_packages

REPO = Path(__file__).resolve().parents[2]


def _names(path: Path) -> set[str]:
    return {
        ln.split("#", 1)[0].split()[0] for ln in path.read_text().splitlines() if ln.split("#", 1)[0].strip()
    }


def test_chromium_is_a_test_package_only() -> None:
    tests_only = _names(REPO / "tests" / "test-packages.txt")
    assert {"chromium", "fonts-dejavu-core"} <= tests_only
    assert not tests_only & {p.name for p in host_packages()}


def test_setup_installs_the_host_list_and_test_sh_adds_the_test_list() -> None:
    setup = (REPO / "scripts" / "setup.sh").read_text()
    test = (REPO / "scripts" / "test.sh").read_text()
    assert "install-debs.sh koral_ansible/data/host-packages.txt" in setup
    assert "test-packages" not in setup
    assert (
        test.index("./scripts/setup.sh")
        < test.index("install-debs.sh tests/test-packages.txt")
        < test.index("\npytest ")
    )
    assert "playwright" in (REPO / "pyproject.toml").read_text()
