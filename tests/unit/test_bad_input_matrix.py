"""Bad input matrix: every CLI option and spec field with invalid values.

Each case must exit 2 with exactly one stderr line that names the field and the allowed values,
print nothing on stdout, and leave the state directory byte-identical (the database, its WAL,
keys, locks: every file but SQLite's transient ``-shm`` index and an empty ``-wal``). The home already holds a
Running cluster ``demo`` (1 control + 2 workers, no machines) so day-2 commands get that far.
Nothing may start: an operation frame opening is a test failure, so a case that slips through
validation can never create nodes.
"""

from __future__ import annotations

import hashlib
import importlib
from pathlib import Path

import pytest

from koral_ansible.cli import root
from koral_ansible.cli.common import run_cli
from koral_ansible.operations.context import Env
from koral_ansible.spec import validate_spec
from koral_ansible.state import ClusterState, NodeRecord
from tests.versions import (
    RECORD_FROM,
    RECORD_NEXT_MINOR,
    RECORD_NEXT_PATCH,
    RECORD_OLDER,
    RECORD_TOO_FAR,
    RECORD_TOO_FAR_WORDS,
)

NAME_RULE = "1-32 characters of a-z"
SIZE_RULE = "from 1 to 10"
CIDR_RULE = "IPv4 CIDR"

# (args, field named in the line, words stating the allowed values). "{dir}" is a directory
# holding the spec files of SPEC_FILES.
CREATE_CASES: list[tuple[list[str], str, str]] = [
    # names
    (["create", "my cluster"], "name", NAME_RULE),
    (["create", "Demo2"], "name", NAME_RULE),
    (["create", "a" * 33], "name", NAME_RULE),
    (["create", ""], "name", NAME_RULE),
    (["create", "1abc"], "name", NAME_RULE),
    (["create", "abc-"], "name", NAME_RULE),
    (["create", "ab_c"], "name", NAME_RULE),
    (["create"], "name", NAME_RULE),
    # sizes and counts
    (["create", "other", "--size", "0"], "size", SIZE_RULE),
    (["create", "other", "--size", "-1"], "size", SIZE_RULE),
    (["create", "other", "--size", "11"], "size", SIZE_RULE),
    (["create", "other", "--size", "abc"], "size", "1..max cluster size"),
    (["create", "other", "--size", "1.5"], "size", "1..max cluster size"),
    (["create", "other", "--size", ""], "size", "1..max cluster size"),
    (["--max-size", "3", "create", "other", "--size", "4"], "size", "from 1 to 3"),
    (["--max-size", "0", "create", "other"], "--max-size", "from 1 to 1000"),
    (["--max-size", "abc", "create", "other"], "--max-size", "from 1 to 1000"),
    (["create", "other", "--control-nodes", "2"], "control_nodes", "1, 3, 5 or 7"),
    (["create", "other", "--control-nodes", "4"], "control_nodes", "1, 3, 5 or 7"),
    (["create", "other", "--control-nodes", "0"], "control_nodes", "1, 3, 5 or 7"),
    (["create", "other", "--control-nodes", "-1"], "control_nodes", "1, 3, 5 or 7"),
    (["create", "other", "--control-nodes", "9"], "control_nodes", "1, 3, 5 or 7"),
    (["create", "other", "--ha", "--control-nodes", "2"], "control_nodes", "1, 3, 5 or 7"),
    (["create", "other", "--cpu", "1"], "cpu", "from 2 to 64"),
    (["create", "other", "--cpu", "65"], "cpu", "from 2 to 64"),
    (["create", "other", "--memory", "1024"], "memory", "from 2048"),
    (["create", "other", "--memory", "lots"], "memory", ">= 2048"),
    (["create", "other", "--root-disk-size", "7"], "root_disk_size", "from 8"),
    (["create", "other", "--root-disk-size", "0"], "root_disk_size", "from 8"),
    # CIDRs
    (["create", "other", "--pod-cidr", "abc"], "pod_cidr", CIDR_RULE),
    (["create", "other", "--pod-cidr", "10.244.0.0/33"], "pod_cidr", CIDR_RULE),
    (["create", "other", "--pod-cidr", "10.244.0.1/16"], "pod_cidr", "no host bits"),
    (["create", "other", "--pod-cidr", "fd00::/64"], "pod_cidr", CIDR_RULE),
    (["create", "other", "--service-cidr", "10.96.0.0/40"], "service_cidr", CIDR_RULE),
    (["create", "other", "--service-cidr", "300.0.0.0/12"], "service_cidr", CIDR_RULE),
    (["create", "other", "--pod-cidr", "10.96.0.0/16"], "pod_cidr", "disjoint"),
    (["create", "other", "--service-cidr", "10.244.0.0/24"], "pod_cidr", "disjoint"),
    (["create", "other", "--pod-cidr", "10.0.0.0/8"], "pod_cidr", "disjoint"),
    # overlapping the node network (local nodes live in 10.213.0.0/16)
    (
        ["create", "other", "--pod-cidr", "10.213.0.0/16"],
        "pod_cidr",
        "must not overlap the local node subnets",
    ),
    (
        ["create", "other", "--service-cidr", "10.213.5.0/24"],
        "service_cidr",
        "must not overlap the local node",
    ),
    (["create", "other", "--allowed-cidrs", "abc"], "allowed_cidrs", "IPv4 CIDRs like"),
    (["create", "other", "--allowed-cidrs", "10.0.0.0/8,1.2.3.4/33"], "allowed_cidrs", "IPv4 CIDRs like"),
    (["create", "other", "--allowed-cidrs", ","], "allowed_cidrs", "at least one CIDR"),
    (["create", "other", "--external-lb-ip", "300.1.1.1"], "external_lb_ip", "IPv4 address"),
    (["create", "other", "--external-lb-ip", "10.0.0.1/24"], "external_lb_ip", "IPv4 address"),
    (["create", "other", "--external-lb-ip", "10.0.0.1"], "external_lb_ip", "not supported by the local"),
    # versions
    (["create", "other", "--kubernetes-version", "2.0.0"], "kubernetes_version", "supported: 1."),
    (["create", "other", "--kubernetes-version", "1.20.0"], "kubernetes_version", "supported: 1."),
    (["create", "other", "--kubernetes-version", "1.31"], "kubernetes_version", "X.Y.Z"),
    (["create", "other", "--version", "latest"], "kubernetes_version", "X.Y.Z"),
    # choices and strings
    (["create", "other", "--cni", "flannel"], "cni", "weave, calico"),
    (["create", "other", "--node-os", "debian-11"], "node_os", "debian-12, debian-13"),
    (["create", "other", "--node-os", ""], "node_os", "debian-12, debian-13"),
    (
        ["create", "other", "--provider", "cloudstack", "--compute-offering", "o", "--node-os", "debian-13"],
        "node_os",
        "only used by provider local",
    ),
    (["create", "other", "--provider", "aws"], "provider", "local, cloudstack"),
    (["create", "other", "--zone", ""], "zone", "at least 1 character"),
    (["create", "other", "--description", "x" * 256], "description", "at most 255"),
    (["create", "other", "--network", " "], "network", "must not be empty"),
    (["create", "other", "--network", "net1"], "network", "not supported by the local"),
    (["create", "other", "--bundle", ""], "bundle", "must not be empty"),
    # kubeconfig merge switches: bad input still stops before anything (the user's kubeconfig too)
    (["create", "other", "--set-current"], "--set-current", "only goes with --merge-kubeconfig"),
    (["create", "other", "--merge-kubeconfig", "--size", "0"], "size", SIZE_RULE),
    (["create", "other", "--dashboard", "--size", "0"], "size", SIZE_RULE),
    (["create", "other", "--bundle", "/nonexistent/k.iso"], "--bundle", "bundle directory, an ISO or a name"),
    (["create", "other", "--compute-offering", ""], "compute_offering", "must not be empty"),
    (["create", "other", "--registry-url", "ftp://r"], "registry.url", "http://HOST[:PORT]"),
    (
        ["create", "other", "--registry-url", "http://r:5000", "--registry-username", "u"],
        "registry",
        "together",
    ),
    (
        ["create", "other", "--registry-url", "http://r:5000", "--registry-password", "pw"],
        "registry",
        "together",
    ),
    (["create", "other", "--registry-username", "u"], "registry.url", "is required"),
    (["create", "other", "--ssh-keypair", ""], "ssh_keypair", "must not be empty"),
    (
        ["create", "other", "--registry-password-file", "/nonexistent/pw"],
        "--registry-password-file",
        "cannot read",
    ),
    (["create", "other", "--nope"], "--nope", "Did you mean"),
    (["create", "other", "--size"], "--size", "requires an argument"),
    # CloudStack: offering and credentials
    (["create", "other", "--provider", "cloudstack"], "compute_offering", "offering name or id"),
    (
        ["create", "other", "--provider", "cloudstack", "--compute-offering", "m"],
        "CLOUDSTACK_ENDPOINT",
        "CLOUDSTACK_KEY",
    ),
    (
        ["create", "other", "--provider", "mold", "--compute-offering", "m"],
        "CLOUDSTACK_ENDPOINT",
        "CLOUDSTACK_SECRET",
    ),
    # spec files
    (["create", "other", "-f", "{dir}/malformed.yaml"], "-f/--file", "not valid YAML at line"),
    (["create", "other", "-f", "{dir}/list.yaml"], "-f/--file", "YAML mapping of field: value"),
    (["create", "other", "-f", "{dir}/missing.yaml"], "-f/--file", "cannot read"),
    (["create", "other", "-f", "{dir}/unknown.yaml"], "flavour", "allow_cgroup_v1, allowed_cidrs"),
    (["create", "other", "-f", "{dir}/registry_unknown.yaml"], "registry.color", "allowed fields: insecure"),
    (["create", "-f", "{dir}/bad_fields.yaml"], "control_nodes", "1, 3, 5 or 7"),
    (["create", "-f", "{dir}/bad_size.yaml"], "size", SIZE_RULE),
    (["create", "-f", "{dir}/bad_type.yaml"], "size", "1..max cluster size"),
    (["create", "-f", "{dir}/overlap.yaml"], "pod_cidr", "disjoint"),
    (["create", "-f", "{dir}/noname.yaml"], "name", NAME_RULE),
    (["create", "-f", "{dir}/cgroup_v1_word.yaml"], "allow_cgroup_v1", "true or false"),
    (["create", "-f", "{dir}/cgroup_v1_list.yaml"], "allow_cgroup_v1", "true or false"),
    (["create", "other", "--allow-cgroup-v1=yes"], "--allow-cgroup-v1", "does not take a value"),
    # an existing cluster with another spec
    (["create", "demo", "--size", "3"], "name", "already exists"),
]

SPEC_FILES = {
    "malformed.yaml": "name: x\n  size: [\n",
    "list.yaml": "- name: x\n",
    "unknown.yaml": "name: other\nflavour: big\n",
    "registry_unknown.yaml": "name: other\nregistry: {url: 'http://r:5000', color: red}\n",
    "bad_fields.yaml": "name: other\ncontrol_nodes: 2\n",
    "bad_size.yaml": "name: other\nsize: 11\n",
    "bad_type.yaml": "name: other\nsize: [1]\n",
    "overlap.yaml": "name: other\npod_cidr: 10.100.0.0/16\nservice_cidr: 10.100.128.0/17\n",
    "noname.yaml": "size: 2\n",
    "cgroup_v1_word.yaml": "name: other\nallow_cgroup_v1: sometimes\n",
    "cgroup_v1_list.yaml": "name: other\nallow_cgroup_v1: [true]\n",
}

NEXT_MINOR = RECORD_NEXT_MINOR
OUTPUT_CASES: list[tuple[list[str], str, str]] = [
    (["list", "-o", "xml"], "--output", "'table', 'wide', 'json', 'yaml'"),
    (["show", "demo", "-o", "xml"], "--output", "'table', 'wide', 'json', 'yaml'"),
    (["events", "demo", "-o", "csv"], "--output", "'table', 'wide', 'json', 'yaml'"),
    (["autoscale", "demo", "-o", "toml"], "--output", "'table', 'wide', 'json', 'yaml'"),
    (["show", "ghost"], "NAME", "known clusters: demo"),
    (["events", "ghost"], "NAME", "known clusters: demo"),
    (["kubeconfig", "ghost"], "NAME", "known clusters: demo"),
    (["delete", "demo"], "--yes", "required"),
]

LIFECYCLE_CASES: list[tuple[list[str], str, str]] = [
    (["scale", "demo", "--size", "0"], "size", SIZE_RULE),
    (["scale", "demo", "--size", "-1"], "size", SIZE_RULE),
    (["scale", "demo", "--size", "11"], "size", SIZE_RULE),
    (["scale", "demo", "--size", "abc"], "size", "1..max cluster size"),
    (["--max-size", "2", "scale", "demo", "--size", "3"], "size", "from 1 to 2"),
    (["scale", "demo"], "--size", "Missing option"),
    (["scale", "ghost", "--size", "2"], "NAME", "known clusters: demo"),
    (["upgrade", "demo", "--version", RECORD_TOO_FAR], "--version", RECORD_TOO_FAR_WORDS),
    (["upgrade", "demo", "--version", RECORD_OLDER], "--version", "only forward"),
    (["upgrade", "demo", "--version", RECORD_FROM], "--version", "only forward"),
    (["upgrade", "demo", "--version", "abc"], "--version", "X.Y.Z"),
    (["upgrade", "demo", "--version", "9.0.0"], "--version", "supported: 1."),
    (["upgrade", "demo"], "--version", "Missing option"),
    # an allowed step with no bundle recorded for it (the roles install only from a bundle)
    (["upgrade", "demo", "--version", NEXT_MINOR], "--version", f"no bundle for Kubernetes {NEXT_MINOR}"),
    (["upgrade", "demo", "--version", RECORD_NEXT_PATCH], "--version", "bundle verify PATH --record"),
    (["upgrade", "ghost", "--version", RECORD_NEXT_PATCH], "NAME", "known clusters: demo"),
    (["remove-node", "demo", "ghost"], "NODE", "nodes: demo-control-1, demo-node-1, demo-node-2"),
    (["remove-node", "demo", "demo-control-1"], "NODE", "last control-plane node"),
    (["remove-node", "ghost", "demo-node-1"], "NAME", "known clusters: demo"),
    (["reset", "demo"], "--yes", "required"),
    (["autoscale", "demo", "--enable", "--min", "0", "--max", "3"], "--min", SIZE_RULE),
    (["autoscale", "demo", "--enable", "--min", "-1", "--max", "3"], "--min", SIZE_RULE),
    (["autoscale", "demo", "--enable", "--min", "abc", "--max", "3"], "--min", SIZE_RULE),
    (["autoscale", "demo", "--enable", "--min", "1", "--max", "11"], "--max", SIZE_RULE),
    (["autoscale", "demo", "--enable", "--min", "5", "--max", "3"], "--max", "at least --min"),
    (["autoscale", "demo", "--enable", "--min", "1"], "--max", SIZE_RULE),
    (["autoscale", "demo", "--min", "1"], "--min", "only goes with --enable"),
    (["autoscale", "demo", "--enable", "--disable"], "--enable/--disable", "not both"),
    (["autoscale", "ghost", "--enable", "--min", "1", "--max", "3"], "NAME", "known clusters: demo"),
    (["cloud-provider", "demo"], "NAME", "only CloudStack clusters run the cloud provider"),
    (["cloud-provider", "ghost", "--rotate-keys"], "NAME", "known clusters: demo"),
]


def _snapshot(home: Path) -> dict[str, str]:
    """Every file's sha256 and every directory under the home. SQLite's transient files that
    hold no data are left out: the -shm index and an empty -wal (opening the database makes both)."""
    out: dict[str, str] = {}
    for path in sorted(home.rglob("*")):
        rel = str(path.relative_to(home))
        if path.name.endswith("-shm") or (path.name.endswith("-wal") and path.stat().st_size == 0):
            continue
        out[rel] = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "dir"
    return out


@pytest.fixture()
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    h = tmp_path / "home"
    monkeypatch.setenv("KORAL_HOME", str(h))
    monkeypatch.delenv("KORAL_CLUSTER_MAX_SIZE", raising=False)
    # No CloudStack credentials anywhere: no env, no ~/.cloudstack.ini, no ./cloudstack.ini.
    for var in (
        "CLOUDSTACK_ENDPOINT",
        "CLOUDSTACK_KEY",
        "CLOUDSTACK_SECRET",
        "CLOUDSTACK_CONFIG",
        "CLOUDSTACK_REGION",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    monkeypatch.chdir(tmp_path)
    env = Env.open(str(h), quiet=True)
    env.store.add_cluster(
        validate_spec({"name": "demo", "size": 2, "kubernetes_version": RECORD_FROM}), ClusterState.RUNNING
    )
    for idx, (name, role) in enumerate(
        [("demo-control-1", "control"), ("demo-node-1", "worker"), ("demo-node-2", "worker")]
    ):
        env.store.upsert_node("demo", NodeRecord(name=name, role=role, idx=idx, state="Running"))
    env.store.close()
    specs = tmp_path / "specs"
    specs.mkdir()
    for fname, text in SPEC_FILES.items():
        (specs / fname).write_text(text)

    def never(*_a: object, **_k: object) -> None:
        raise AssertionError("bad input reached an operation")

    # Anything that gets past validation fails the test before it can touch a node or the state.
    for module in (
        "koral_ansible.operations.create",
        "koral_ansible.operations.lifecycle",
        "koral_ansible.operations.cloud_provider",
    ):
        monkeypatch.setattr(importlib.import_module(module), "OperationFrame", never)
    return h


@pytest.mark.parametrize(
    ("args", "field", "allowed"),
    CREATE_CASES + OUTPUT_CASES + LIFECYCLE_CASES,
    ids=lambda v: " ".join(v)[:60] if isinstance(v, list) else None,
)
def test_bad_input_exits_2_with_one_line_and_changes_nothing(
    args: list[str], field: str, allowed: str, home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [a.replace("{dir}", str(home.parent / "specs")) for a in args]
    before = _snapshot(home)
    code = run_cli(root, argv)
    out, err = capsys.readouterr()
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: "), err
    assert field in lines[0], f"field {field!r} not named: {lines[0]}"
    assert allowed in lines[0], f"allowed values {allowed!r} not stated: {lines[0]}"
    assert out == ""
    assert _snapshot(home) == before


def test_matrix_names_every_create_option() -> None:
    """Every create option (but the flags --ha and --allow-cgroup-v1, and the help) has a bad value above."""
    create = root.get_command(None, "create")  # type: ignore[arg-type]
    assert create is not None
    tested = {a for args, _f, _w in CREATE_CASES for a in args if a.startswith("-")}
    options = {
        opt
        for param in create.params
        for opt in param.opts
        if opt.startswith("--") and opt not in ("--ha", "--allow-cgroup-v1", "--help")
    }
    aliases = {"--file": "-f", "--version": "--kubernetes-version"}
    missing = {o for o in options - tested if aliases.get(o) not in tested}
    assert not missing, f"create options without a bad-input case: {sorted(missing)}"
