"""Create a cluster: provision machines through the provider, then converge them with Ansible.

Resumable: a create that failed or was killed leaves the cluster in Error (or Starting with
a dead pid) with every resource recorded; running ``create`` again with the same spec
continues from what exists (providers are idempotent, playbooks converge).
"""

from __future__ import annotations

from typing import Any

from koral_ansible.bundle import ResolvedBundle, kubeadm_images, resolve_bundle
from koral_ansible.bundle.manifest import pause_image
from koral_ansible.cgroup import cgroup_version
from koral_ansible.errors import InputError, OperationError
from koral_ansible.inventory import record_inventory
from koral_ansible.operations import cloud_provider
from koral_ansible.operations.context import Env, OperationFrame
from koral_ansible.provider_id import EXTERNAL_CLOUD_PROVIDER
from koral_ansible.providers import ProviderContext, get_provider
from koral_ansible.providers.base import Endpoint, Provider
from koral_ansible.runner import PlaybookRunner, RunResult
from koral_ansible.spec import ClusterSpec
from koral_ansible.sshkeys import ensure_keypair
from koral_ansible.state import ClusterRecord, ClusterState

RESUMABLE = {ClusterState.CREATED, ClusterState.STARTING, ClusterState.ERROR}


def provider_for(
    env: Env, spec: ClusterSpec, report: Any = None, ssh_public_key: str | None = None
) -> Provider:
    """The spec's provider; ``ssh_public_key=""`` gives one for validation only (no key pair written)."""
    if ssh_public_key is None:
        _key, pub = ensure_keypair(env.paths, spec.name)
    else:
        pub = ssh_public_key
    ctx = ProviderContext(
        store=env.store,
        paths=env.paths,
        cluster=spec.name,
        ssh_public_key=pub,
        report=report or (lambda _m: None),
    )
    return get_provider(spec.provider, ctx)


def playbook_secrets(spec: ClusterSpec) -> dict[str, str]:
    """Secret variables for the plays (passed through a 0600 file, never extravars)."""
    out: dict[str, str] = {}
    if spec.registry and spec.registry.password is not None:
        out["container_runtime_registry_password"] = spec.registry.password.get_secret_value()
    if spec.weave_password is not None:
        out["cni_weave_password"] = spec.weave_password.get_secret_value()
    return out


def resolve_spec_bundle(env: Env, spec: ClusterSpec, deep: bool = False) -> ResolvedBundle | None:
    """The bundle the spec installs from: --bundle, or the one recorded for its version."""
    return resolve_bundle(env.paths.home, spec.bundle, spec.kubernetes_version, deep=deep)


def playbook_vars(env: Env, spec: ClusterSpec) -> dict[str, Any]:
    """Controller-side paths the plays write to, and the bundle to install from."""
    out: dict[str, Any] = {"kubeadm_kubeconfig_dest": str(env.paths.kubeconfig(spec.name))}
    bundle = resolve_spec_bundle(env, spec)
    if bundle is not None:
        out.update(bundle.ansible_vars())  # the roles read the pause tag from the bundle's manifest
    else:  # online: the pause tag kubeadm uses for the version (the table bundle builds fall back to)
        pause = pause_image(kubeadm_images(spec.kubernetes_version))
        out["container_runtime_pause_version"] = pause.rsplit(":", 1)[-1]
    return out


def converge(
    env: Env,
    frame: OperationFrame,
    record: ClusterRecord,
    name: str,
    limit: str | None = None,
    extra: dict[str, Any] | None = None,
    secrets: dict[str, str] | None = None,
) -> RunResult:
    """Run one playbook over the cluster's recorded nodes; raise OperationError naming host and task."""
    runner = PlaybookRunner(
        env.paths,
        record.name,
        frame.operation,
        progress=frame.progress,
        redactor=env.redactor,
        tuned=env.tuned,
    )
    result = runner.run(
        name,
        record_inventory(record, env.paths),
        extravars={**playbook_vars(env, record.spec), **(extra or {})},
        secrets={**playbook_secrets(record.spec), **(secrets or {})},
        limit=limit,
    )
    frame.event(f"ansible:{name}", "Completed" if result.ok else "Failed", result.summary())
    if not result.ok:
        raise OperationError(result.summary())
    return result


def check_resume(env: Env, spec: ClusterSpec) -> ClusterRecord | None:
    """An existing cluster may only be resumed with the same spec and from a resumable state."""
    existing = env.store.find_cluster(spec.name)
    if existing is None:
        return None
    if existing.state not in RESUMABLE:
        raise InputError(
            "name",
            f"cluster {spec.name!r} already exists (state {existing.state.value}); "
            "choose another name or delete it first",
        )
    if existing.spec.public_dict() != spec.public_dict():
        raise InputError(
            "name",
            f"cluster {spec.name!r} exists from an earlier create with a different spec; "
            "re-run create with the same spec to resume, or delete it first",
        )
    return existing


def _cgroup_v1_opt_in(spec: ClusterSpec) -> ClusterSpec:
    """Local nodes share this host's cgroup hierarchy: on a cgroup v1 host they opt in by themselves."""
    if spec.provider == "local" and not spec.allow_cgroup_v1 and cgroup_version() == 1:
        return spec.replace(allow_cgroup_v1=True)
    return spec


def check_create(env: Env, spec: ClusterSpec) -> ClusterSpec:
    """Every refusal of ``create`` that needs no change: raises before anything is written."""
    spec = _cgroup_v1_opt_in(spec)
    check_resume(env, spec)
    resolve_spec_bundle(env, spec, deep=True)  # a bad bundle is refused before anything is created
    # Refused before anything (even the cluster's SSH key pair) is written.
    checker = provider_for(env, spec, ssh_public_key="")
    checker.validate(spec)
    checker.check_host()  # e.g. the local provider's `koral-play doctor` checks
    return spec


def create(env: Env, spec: ClusterSpec) -> ClusterRecord:
    spec = check_create(env, spec)
    progress = env.progress("create")
    provider = provider_for(env, spec, report=progress.message)
    for value in spec.secrets().values():
        env.redactor.add(value)
    with OperationFrame(
        env, spec.name, "create", busy=ClusterState.STARTING, failed=ClusterState.ERROR, progress=progress
    ) as frame:
        if env.store.find_cluster(spec.name) is None:
            env.store.add_cluster(spec, ClusterState.STARTING)
            if spec.allow_cgroup_v1:
                env.store.event(
                    spec.name,
                    "create",
                    "preflight",
                    "warning",
                    "cgroup v1 nodes allowed (kubelet failCgroupV1: false): cgroup v1 is deprecated "
                    "upstream from Kubernetes 1.35 (KEP-5573) and will be removed; move nodes to cgroup v2",
                )
        bundle = resolve_spec_bundle(env, spec)
        with frame.phase("provision"):
            endpoint: Endpoint = provider.provision(spec)
            if cloud_provider.wanted(env.store.get_cluster(spec.name), bundle):
                # Before the first play: kubelets start with --cloud-provider=external and the
                # provider's providerID (koral_ansible.provider_id, the inventory).
                endpoint.extra[EXTERNAL_CLOUD_PROVIDER] = True
            env.store.set_endpoint(spec.name, endpoint.to_dict())
        record = env.store.get_cluster(spec.name)
        with frame.phase("configure"):
            converge(env, frame, record, "create.yml")
        if cloud_provider.wanted(record, bundle):
            with frame.phase("cloud-provider"):
                cloud_provider.deploy_cloud_provider(env, frame, record, provider, bundle)
        kubeconfig = env.paths.kubeconfig(spec.name)
        if kubeconfig.exists():
            kubeconfig.chmod(0o600)
        for node in record.nodes:
            env.store.set_node_state(spec.name, node.name, "Running")
        env.store.set_state(spec.name, ClusterState.RUNNING)
    return env.store.get_cluster(spec.name)
