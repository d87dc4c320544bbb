"""Spec field ``template``: validated in the spec, preferred over KORAL_CLOUDSTACK_TEMPLATE /
``koral_template``, an unknown one refused (InputError naming the field and the ready templates)
before anything is created."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from koral_ansible.errors import InputError
from koral_ansible.paths import Paths
from koral_ansible.providers.cloudstack.config import TEMPLATE_ENV
from koral_ansible.spec import validate_spec
from tests.cloudsim import CloudSim, SimConfig
from tests.integration.cloudstack.helpers import config_for, harness

BASE = {"name": "t", "provider": "cloudstack", "zone": "zone1", "compute_offering": "Medium Instance"}


@pytest.fixture
def sim() -> Iterator[CloudSim]:
    with CloudSim(SimConfig(job_latency=0.0)) as s:
        yield s


def test_spec_template_field() -> None:
    assert validate_spec({**BASE, "template": "koral-node-debian12"}).template == "koral-node-debian12"
    assert validate_spec(BASE).template is None
    for bad, words in (({**BASE, "template": " "}, "must not be empty"),
                       ({"name": "t", "template": "x"}, "only used by provider cloudstack"),
                       ({**BASE, "template": "x" * 256}, "255")):  # fmt: skip
        with pytest.raises(InputError) as err:
            validate_spec(bad)
        assert err.value.field == "template" and words in str(err.value)


def _template_ids(sim: CloudSim) -> dict[str, str]:
    return {t["name"]: t["id"] for t in sim.cloud.templates.values()}


def test_spec_template_wins_over_the_configured_fallback(sim: CloudSim, tmp_path: Path) -> None:
    paths = Paths.resolve(home=tmp_path)
    ids = _template_ids(sim)
    name = "koral-node-debian12"
    for i, value in enumerate((name, ids[name])):  # by name or by id
        h = harness(sim, paths, name=f"a{i}", config=config_for(sim, template="missing"), template=value)
        assert h.provider._resolve(h.spec).template_id == ids[name]
    h = harness(sim, paths, name="b", config=config_for(sim, template=name))  # fallback alone
    assert h.provider._resolve(h.spec).template_id == ids[name]


def test_unknown_or_missing_template_is_input_error_before_anything(sim: CloudSim, tmp_path: Path) -> None:
    paths = Paths.resolve(home=tmp_path)
    h = harness(sim, paths, name="c", template="no-such-template")
    with pytest.raises(InputError) as err:
        h.provider.provision(h.spec)
    assert err.value.field == "template"
    assert "no-such-template" in str(err.value) and "koral-node-debian12" in str(err.value)
    h = harness(sim, paths, name="d", config=config_for(sim, template="gone"))
    with pytest.raises(InputError) as err:
        h.provider.validate(h.spec)
    assert err.value.field == TEMPLATE_ENV and "koral-node-debian12" in str(err.value)
    h = harness(sim, paths, name="e", config=config_for(sim, template=None))
    with pytest.raises(InputError) as err:
        h.provider.validate(h.spec)
    assert err.value.field == "template" and TEMPLATE_ENV in str(err.value)
    assert set(sim.counts().values()) == {0}
    assert not [c for c in sim.calls if not c.startswith("list")]  # nothing was created
