"""Credentials: cs's conventions (env first, then cloudstack.ini profiles); the secret never shows."""

from __future__ import annotations

from pathlib import Path

import pytest

from koral_ansible.errors import InputError
from koral_ansible.providers.cloudstack.config import load_config

ENV = (
    "CLOUDSTACK_ENDPOINT",
    "CLOUDSTACK_KEY",
    "CLOUDSTACK_SECRET",
    "CLOUDSTACK_CONFIG",
    "CLOUDSTACK_REGION",
    "KORAL_CLOUDSTACK_TEMPLATE",
    "CLOUDSTACK_TIMEOUT",
    "CLOUDSTACK_VERIFY",
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)


def test_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLOUDSTACK_ENDPOINT", "https://user:pw@cloud.example/client/api?x=1")
    monkeypatch.setenv("CLOUDSTACK_KEY", "k")
    monkeypatch.setenv("CLOUDSTACK_SECRET", "very-secret-value")
    monkeypatch.setenv("CLOUDSTACK_VERIFY", "false")
    monkeypatch.setenv("KORAL_CLOUDSTACK_TEMPLATE", "tmpl")
    cfg = load_config()
    assert (cfg.key, cfg.secret, cfg.verify, cfg.template) == ("k", "very-secret-value", False, "tmpl")
    assert "very-secret-value" not in repr(cfg)
    assert cfg.where == "https://cloud.example/client/api"  # no credentials or query in messages


def test_missing_secret_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLOUDSTACK_ENDPOINT", "https://cloud.example/client/api")
    monkeypatch.setenv("CLOUDSTACK_KEY", "k")
    with pytest.raises(InputError) as err:
        load_config()
    assert err.value.field == "CLOUDSTACK_SECRET"


def test_ini_profiles(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    ini = tmp_path / "cloudstack.ini"
    ini.write_text(
        "[cloudstack]\nendpoint = https://a.example/client/api\nkey = ka\nsecret = sa\n"
        "[mold]\nendpoint = https://b.example/client/api\nkey = kb\nsecret = sb\ntimeout = 12\n"
        "koral_template = node-b\n"
    )
    assert load_config().key == "ka"
    monkeypatch.setenv("CLOUDSTACK_REGION", "mold")
    cfg = load_config()
    assert (cfg.key, cfg.timeout, cfg.template, cfg.profile) == ("kb", 12.0, "node-b", "mold")
    monkeypatch.setenv("CLOUDSTACK_REGION", "nope")
    with pytest.raises(InputError, match=r"profile \[nope\] not found .*profiles: cloudstack, mold"):
        load_config()


def test_nothing_configured() -> None:
    with pytest.raises(InputError) as err:
        load_config()
    assert err.value.field == "CLOUDSTACK_ENDPOINT" and err.value.exit_code == 2
