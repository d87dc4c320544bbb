"""The cloud controller manager's key pair against the test cloud (in-process): a dedicated user in
the operator's account with its own keys, the same pair on a re-run, a new one on rotation (the
old one refused), the operator's pair where the cloud refuses to make users, and the user's
removal. The pair it gives is judged by the real ``cs`` client signing with it."""

from __future__ import annotations

from cs import CloudStack, CloudStackApiException

from koral_ansible.paths import Paths
from koral_ansible.providers.cloudstack.ccm_keys import ccm_username, delete_ccm_user, ensure_ccm_keys
from koral_ansible.providers.cloudstack.client import CloudClient
from tests.cloudsim import CloudSim, SimConfig
from tests.integration.cloudstack.helpers import config_for, harness, signs_with


def test_dedicated_user_same_pair_on_rerun_new_pair_on_rotation() -> None:
    with CloudSim(SimConfig(job_latency=0)) as sim:
        client = CloudClient(config_for(sim))
        keys = ensure_ccm_keys(client, "demo")
        assert keys.dedicated and keys.user == ccm_username("demo") == "koral-ccm-demo"
        assert keys.api_key != sim.config.api_key and keys.secret_key not in repr(keys)
        assert signs_with(sim, keys.api_key, keys.secret_key) == 200
        [user] = sim.cloud.users.values()
        assert (user["username"], user["account"]) == ("koral-ccm-demo", "admin")  # the operator's account

        again = ensure_ccm_keys(client, "demo")  # a re-run: the pair it has, no new user
        assert again == keys and len(sim.cloud.users) == 1
        assert sim.calls.count("createUser") == 1 and sim.calls.count("registerUserKeys") == 1

        rotated = ensure_ccm_keys(client, "demo", rotate=True)
        assert rotated.api_key != keys.api_key and rotated.secret_key != keys.secret_key
        assert signs_with(sim, rotated.api_key, rotated.secret_key) == 200
        assert signs_with(sim, keys.api_key, keys.secret_key) == 401  # the old pair stops working

        assert delete_ccm_user(client, "demo") is True and sim.cloud.users == {}
        assert signs_with(sim, rotated.api_key, rotated.secret_key) == 401
        assert delete_ccm_user(client, "demo") is False


def test_a_user_role_account_falls_back_to_the_operator_s_pair() -> None:
    """CreateUserCmd is for Admin and DomainAdmin: a User-role caller is refused (432) and the
    operator's own pair is used, marked not dedicated; nothing is created."""
    with CloudSim(SimConfig(job_latency=0, role="User")) as sim:
        client = CloudClient(config_for(sim))
        keys = ensure_ccm_keys(client, "demo")
        assert not keys.dedicated and keys.api_key == sim.config.api_key and keys.user == ""
        assert sim.cloud.users == {}
        assert "createUser" not in sim.calls  # refused before the command ran


def test_create_user_refusals_as_cloudstack() -> None:
    with CloudSim(SimConfig(job_latency=0)) as sim:
        cs = CloudStack(
            endpoint=sim.endpoint, key=sim.config.api_key, secret=sim.config.secret, method="post"
        )
        args = {"account": "admin", "username": "u1", "password": "p", "firstname": "f", "lastname": "l"}
        try:
            cs.createUser(**args)  # no email
        except CloudStackApiException as exc:
            assert exc.error["errorcode"] == 431 and "email" in exc.error["errortext"]
        else:
            raise AssertionError("createUser without email was accepted")
        cs.createUser(email="u1@x.invalid", **args)
        try:
            cs.createUser(email="u1@x.invalid", **args)
        except CloudStackApiException as exc:
            assert exc.error["errorcode"] == 530
            assert exc.error["errortext"] == "The user u1 already exists in domain 1"
        else:
            raise AssertionError("a second user u1 was accepted")


def test_destroy_removes_the_dedicated_user(koral_home: Paths) -> None:
    """CloudStackProvider.destroy takes the CCM's user with the cluster (its pair refused after)."""
    with CloudSim(SimConfig(job_latency=0)) as sim:
        h = harness(sim, koral_home, control_nodes=1, size=1)
        h.provider.provision(h.spec)
        keys = ensure_ccm_keys(h.provider.client, "demo")
        assert len(sim.cloud.users) == 1
        h.provider.destroy(h.spec)
        assert sim.cloud.users == {} and signs_with(sim, keys.api_key, keys.secret_key) == 401
        h.provider.destroy(h.spec)  # again: nothing left, nothing refused
