# Copyright: koral-ansible contributors
# Apache License 2.0
"""Ansible inventory plugin: the nodes of a koral cluster, from koral's state store or the cloud."""

from __future__ import annotations

DOCUMENTATION = r"""
name: koral
short_description: Nodes of a koral-ansible cluster (local or Mold / CloudStack)
description:
  - Lists the nodes of one cluster with the kubespray groups C(kube_control_plane), C(etcd), C(kube_node)
    and C(k8s_cluster), and the host variables C(ansible_host) (public IP), C(ansible_port) (2222 + node
    index), C(koral_node_ip), C(koral_node_index), C(koral_node_role) plus the cluster-wide C(koral_*)
    variables, exactly as C(koral-play) writes them (the same Python code builds both).
  - From the state store it also gives what C(koral-play) passes as extra variables (the kubeconfig
    destination C(kubeadm_kubeconfig_dest), the bundle's C(koral_bundle*) variables), so plain
    C(ansible-playbook) and AWX runs need nothing else (secrets such as a registry password excepted).
  - The source is koral's state store (C(KORAL_HOME)) when the cluster is recorded there; otherwise, for
    CloudStack / Mold, the cloud itself, found by the C(koral-cluster) tag, with the credentials of the
    C(cs) conventions (C(CLOUDSTACK_ENDPOINT)/C(CLOUDSTACK_KEY)/C(CLOUDSTACK_SECRET) or cloudstack.ini).
  - The configuration file name must end with C(.koral.yml) or C(.koral.yaml).
extends_documentation_fragment:
  - constructed
  - inventory_cache
options:
  plugin:
    description: The name of this plugin.
    required: true
    choices: [koral, koral.ansible.koral]
  cluster:
    description: Name of the cluster.
    required: true
    type: str
  state_dir:
    description: koral's state directory; default C(KORAL_HOME) or C(~/.local/share/koral).
    type: path
    env:
      - name: KORAL_HOME
  source:
    description:
      - Where the nodes come from. C(auto) uses the state store when it knows the cluster, else the cloud.
    type: str
    default: auto
    choices: [auto, state, cloud]
  connection_vars:
    description: Add koral's per-cluster SSH key and known_hosts file (when present) to C(all) vars.
    type: bool
    default: true
"""

EXAMPLES = r"""
# inventories/demo.koral.yml, then: ansible-inventory -i inventories/demo.koral.yml --list
plugin: koral
cluster: demo
source: auto
keyed_groups:
  - key: koral_node_role
    prefix: role
"""

from typing import Any  # noqa: E402

from ansible.errors import AnsibleParserError  # noqa: E402
from ansible.plugins.inventory import BaseInventoryPlugin, Cacheable, Constructable  # noqa: E402


class InventoryModule(BaseInventoryPlugin, Constructable, Cacheable):  # type: ignore[misc]
    NAME = "koral"

    def verify_file(self, path: str) -> bool:
        return super().verify_file(path) and path.endswith((".koral.yml", ".koral.yaml"))

    def parse(self, inventory: Any, loader: Any, path: str, cache: bool = True) -> None:
        super().parse(inventory, loader, path, cache)
        self._read_config_data(path)
        key = self.get_cache_key(path)
        use_cache = self.get_option("cache") and cache
        data = None
        if use_cache:
            try:
                data = self._cache[key]
            except KeyError:
                data = None
        if data is None:
            data = self._build()
            if self.get_option("cache"):
                self._cache[key] = data
        self._populate(data)

    # ---- building (koral_ansible does the work; this file only adapts it) ---------------------
    def _build(self) -> dict[str, Any]:
        try:
            from koral_ansible.errors import KoralError
            from koral_ansible.inventory import record_inventory, ssh_connection_vars
            from koral_ansible.paths import Paths
        except ImportError as exc:
            raise AnsibleParserError(
                f"koral inventory: koral_ansible is not importable by this Python ({exc})"
            ) from None
        cluster = self.get_option("cluster")
        source = self.get_option("source")
        paths = Paths.resolve(home=self.get_option("state_dir") or None)
        try:
            record = self._record(paths, cluster) if source in ("auto", "state") else None
            if record is not None:
                data = record_inventory(record, paths)
                # What koral-play passes as extra vars (kubeconfig destination, the bundle): plain
                # ansible-playbook and AWX runs install and write exactly what koral-play does.
                data["all"]["vars"].update(self._playbook_vars(paths, record))
                if not self.get_option("connection_vars"):
                    for var in ("ansible_ssh_private_key_file", "ansible_ssh_common_args"):
                        data["all"]["vars"].pop(var, None)
                return data
            if source == "state":
                raise AnsibleParserError(
                    f"koral inventory: cluster {cluster!r} is not in the state store {paths.home}"
                )
            from koral_ansible.providers.cloudstack.client import CloudClient
            from koral_ansible.providers.cloudstack.config import load_config
            from koral_ansible.providers.cloudstack.discover import cloud_inventory

            connection = None
            if self.get_option("connection_vars") and paths.ssh_key(cluster).exists():
                connection = ssh_connection_vars(paths, cluster)
            return cloud_inventory(CloudClient(load_config()), cluster, connection=connection)
        except KoralError as exc:
            raise AnsibleParserError(f"koral inventory: {exc}") from None

    @staticmethod
    def _playbook_vars(paths: Any, record: Any) -> dict[str, Any]:
        from koral_ansible.operations.context import Env
        from koral_ansible.operations.create import playbook_vars
        from koral_ansible.state import StateStore

        store = StateStore(paths)
        try:
            return playbook_vars(Env(paths=paths, store=store, quiet=True), record.spec)
        finally:
            store.close()

    @staticmethod
    def _record(paths: Any, cluster: str) -> Any:
        if not paths.db.exists():  # reading must not create a state store
            return None
        from koral_ansible.state import StateStore

        store = StateStore(paths)
        try:
            return store.find_cluster(cluster)
        finally:
            store.close()

    # ---- populating ---------------------------------------------------------------------------
    def _populate(self, data: dict[str, Any]) -> None:
        inv = self.inventory
        top = data.get("all", {})
        for name, value in (top.get("vars") or {}).items():
            inv.set_variable("all", name, value)
        strict = self.get_option("strict")
        hosts: dict[str, dict[str, Any]] = {}

        def walk(group: str, body: dict[str, Any]) -> None:
            inv.add_group(group)
            for host, hvars in (body.get("hosts") or {}).items():
                inv.add_host(host, group=group)
                hosts.setdefault(host, {}).update(hvars or {})
            for name, value in (body.get("vars") or {}).items():
                inv.set_variable(group, name, value)
            for child, child_body in (body.get("children") or {}).items():
                walk(child, child_body or {})
                inv.add_child(group, child)

        for group, body in (top.get("children") or {}).items():
            walk(group, body or {})
        for host, hvars in hosts.items():
            for name, value in hvars.items():
                inv.set_variable(host, name, value)
            allvars = {**(top.get("vars") or {}), **hvars}
            self._set_composite_vars(self.get_option("compose"), allvars, host, strict=strict)
            self._add_host_to_composed_groups(self.get_option("groups"), allvars, host, strict=strict)
            self._add_host_to_keyed_groups(self.get_option("keyed_groups"), allvars, host, strict=strict)
