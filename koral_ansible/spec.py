"""The cluster spec: one model, validated up front, from a YAML file and/or CLI flags.

Fields mirror Mold's "Add Kubernetes cluster" form. Every rule lives here; the CLI, the
library API and the tests all go through :func:`load_spec`, which turns any validation
problem into one :class:`~koral_ansible.errors.InputError` line naming the field and the
allowed values.
"""

from __future__ import annotations

import copy
import ipaddress
import os
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from koral_ansible import node_os as node_oses
from koral_ansible import versions
from koral_ansible.errors import InputError

DEFAULT_MAX_SIZE = 10
MAX_SIZE_ENV = "KORAL_CLUSTER_MAX_SIZE"
NAME_RE = re.compile(r"^[a-z]([a-z0-9-]{0,30}[a-z0-9])?$")
NAME_RULE = "1-32 characters of a-z, 0-9 and '-', starting with a letter and not ending with '-'"
PROVIDERS = ("local", "cloudstack")
PROVIDER_ALIASES = {"mold": "cloudstack"}
CNIS = ("weave", "calico")
MAX_CONTROL_NODES = 7
SECRET_FIELDS = ("registry.password", "weave_password")


def name_ok(name: object) -> bool:
    """The cluster-name rule, the one home of it: the spec's ``name`` and every NAME argument.
    ``fullmatch``: ``$`` alone would let a trailing newline through."""
    return isinstance(name, str) and NAME_RE.fullmatch(name) is not None


def check_name(name: object, field: str = "NAME") -> str:
    """``name`` when it is a valid cluster name, else InputError naming ``field`` and the rule."""
    if not name_ok(name):
        raise InputError(field, f"must be {NAME_RULE} (got {str(name)[:40]!r})")
    assert isinstance(name, str)
    return name


def max_cluster_size(raw: str | None = None, field: str = MAX_SIZE_ENV) -> int:
    """``cloud.kubernetes.cluster.max.size``: ``raw`` if given, else KORAL_CLUSTER_MAX_SIZE, else 10."""
    if raw is None:
        raw = os.environ.get(MAX_SIZE_ENV, "")
    if not raw:
        return DEFAULT_MAX_SIZE
    if not raw.isdigit() or not 1 <= int(raw) <= 1000:
        raise InputError(field, f"must be an integer from 1 to 1000 (got {raw!r})")
    return int(raw)


def _network(value: str, field: str) -> ipaddress.IPv4Network:
    try:
        return ipaddress.IPv4Network(value, strict=True)
    except ValueError as exc:
        raise ValueError(f"must be an IPv4 CIDR like 10.244.0.0/16 with no host bits set ({exc})") from None


class Registry(BaseModel):
    """A private registry every image is pulled from (Mold's private registry fields)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field(description="Registry URL, http://HOST[:PORT] or https://HOST[:PORT]")
    username: str | None = Field(default=None, description="Registry user name")
    password: SecretStr | None = Field(default=None, description="Registry password (secret)")
    insecure_skip_verify: bool = Field(default=False, description="Skip TLS verification")

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not re.match(r"^https?://[A-Za-z0-9.-]+(:\d{1,5})?/?$", v):
            raise ValueError("must be http://HOST[:PORT] or https://HOST[:PORT]")
        return v.rstrip("/")

    @model_validator(mode="after")
    def _auth_pair(self) -> Registry:
        if (self.username is None) != (self.password is None):
            raise ValueError("username and password must be given together")
        return self

    @property
    def host(self) -> str:
        """HOST[:PORT] part, as used for containerd's certs.d directory."""
        return self.url.split("://", 1)[1]


class ClusterSpec(BaseModel):
    """What the user asks for. Immutable once validated."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: str = Field(description=f"Cluster name: {NAME_RULE}")
    description: str = Field(default="", max_length=255, description="Free text, up to 255 characters")
    provider: Literal["local", "cloudstack"] = Field(
        default="local",
        description="Where nodes come from: local (podman nodes here) or cloudstack (alias mold)",
    )
    zone: str = Field(default="local", min_length=1, max_length=255, description="Zone name or id")
    kubernetes_version: str = Field(default=versions.DEFAULT_VERSION, description="Kubernetes version X.Y.Z")
    compute_offering: str | None = Field(default=None, description="CloudStack compute offering name or id")
    template: str | None = Field(
        default=None,
        max_length=255,
        description="CloudStack node VM template name or id "
        "(default: KORAL_CLOUDSTACK_TEMPLATE or the cloudstack.ini key koral_template)",
    )
    cpu: int = Field(default=2, description="vCPUs per node (local nodes), >= 2")
    memory: int = Field(default=2048, description="Memory per node in MiB (local nodes), >= 2048")
    root_disk_size: int = Field(default=8, description="Node root disk size in GB, >= 8")
    network: str | None = Field(
        default=None, description="Existing network name or id; auto-created if unset"
    )
    control_nodes: int = Field(default=1, description="Control-plane nodes: odd, 1..7 (HA when > 1)")
    external_lb_ip: str | None = Field(default=None, description="External load balancer IPv4 address")
    size: int = Field(default=1, description="Worker nodes: 1..max cluster size")
    ssh_keypair: str | None = Field(default=None, description="CloudStack SSH key pair name")
    registry: Registry | None = Field(default=None, description="Private registry")
    cni: Literal["weave", "calico"] = Field(default="weave", description="CNI plugin: weave or calico")
    weave_password: SecretStr | None = Field(
        default=None, description="WeaveNet encryption password (secret)"
    )
    pod_cidr: str = Field(default="10.244.0.0/16", description="Pod network CIDR")
    service_cidr: str = Field(default="10.96.0.0/12", description="Service network CIDR")
    allowed_cidrs: tuple[str, ...] = Field(
        default=("0.0.0.0/0",), description="Source CIDRs allowed to reach SSH (2222..) and the API (6443)"
    )
    bundle: str | None = Field(default=None, description="Kubernetes binaries bundle: directory or ISO path")
    node_os: str = Field(
        default=node_oses.DEFAULT_NODE_OS,
        description=f"Local nodes' OS: one of {node_oses.ALLOWED} (default {node_oses.DEFAULT_NODE_OS})",
    )
    allow_cgroup_v1: bool = Field(
        default=False,
        description="Run on cgroup v1 nodes (kubelet failCgroupV1: false; deprecated upstream from 1.35, "
        "KEP-5573): true or false. Local nodes on a cgroup v1 host opt in by themselves",
    )

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not name_ok(v):
            raise ValueError(f"must be {NAME_RULE}")
        return v

    @field_validator("provider", mode="before")
    @classmethod
    def _provider(cls, v: Any) -> Any:
        if isinstance(v, str):
            v = PROVIDER_ALIASES.get(v.lower(), v.lower())
            if v not in PROVIDERS:
                raise ValueError(f"must be one of {', '.join(PROVIDERS)} (or mold)")
        return v

    @field_validator("cni", mode="before")
    @classmethod
    def _cni(cls, v: Any) -> Any:
        if isinstance(v, str) and v.lower() not in CNIS:
            raise ValueError(f"must be one of {', '.join(CNIS)}")
        return v.lower() if isinstance(v, str) else v

    @field_validator("node_os", mode="before")
    @classmethod
    def _node_os(cls, v: Any) -> Any:
        if isinstance(v, str) and v.lower() not in node_oses.NODE_OS_SUITES:
            raise ValueError(f"must be one of {node_oses.ALLOWED}")
        return v.lower() if isinstance(v, str) else v

    @field_validator("kubernetes_version")
    @classmethod
    def _version(cls, v: str) -> str:
        # A recorded cluster may be on an upgrade-source-only minor; `create` refuses those
        # (load_spec, the create entry point, checks versions.check_supported).
        return str(versions.check_known(v))

    @field_validator("cpu")
    @classmethod
    def _cpu(cls, v: int) -> int:
        if not 2 <= v <= 64:
            raise ValueError("must be an integer from 2 to 64")
        return v

    @field_validator("memory")
    @classmethod
    def _memory(cls, v: int) -> int:
        if not 2048 <= v <= 1048576:
            raise ValueError("must be an integer number of MiB from 2048 to 1048576")
        return v

    @field_validator("root_disk_size")
    @classmethod
    def _disk(cls, v: int) -> int:
        if not 8 <= v <= 65536:
            raise ValueError("must be an integer number of GB from 8 to 65536")
        return v

    @field_validator("control_nodes")
    @classmethod
    def _control(cls, v: int) -> int:
        if v < 1 or v > MAX_CONTROL_NODES or v % 2 == 0:
            raise ValueError(f"must be an odd integer from 1 to {MAX_CONTROL_NODES} (1, 3, 5 or 7)")
        return v

    @field_validator("size")
    @classmethod
    def _size(cls, v: int, info: ValidationInfo) -> int:
        ctx = info.context or {}
        limit = int(ctx.get("max_size", DEFAULT_MAX_SIZE))
        if not 1 <= v <= limit:
            raise ValueError(f"must be an integer from 1 to {limit} (cloud.kubernetes.cluster.max.size)")
        return v

    @field_validator("external_lb_ip")
    @classmethod
    def _lb_ip(cls, v: str | None) -> str | None:
        if v is None:
            return v
        try:
            return str(ipaddress.IPv4Address(v))
        except ValueError:
            raise ValueError("must be an IPv4 address like 192.0.2.10") from None

    @field_validator("pod_cidr", "service_cidr")
    @classmethod
    def _cidr(cls, v: str, info: ValidationInfo) -> str:
        return str(_network(v, info.field_name or "cidr"))

    @field_validator("allowed_cidrs", mode="before")
    @classmethod
    def _allowed(cls, v: Any) -> Any:
        if isinstance(v, str):
            v = [p.strip() for p in v.split(",") if p.strip()]
        if isinstance(v, list | tuple):
            if not v:
                raise ValueError("must list at least one CIDR (0.0.0.0/0 allows everyone)")
            out = []
            for item in v:
                try:
                    out.append(str(ipaddress.IPv4Network(str(item), strict=False)))
                except ValueError:
                    raise ValueError(f"must be IPv4 CIDRs like 203.0.113.0/24 (got {item!r})") from None
            return tuple(out)
        return v

    @field_validator("compute_offering", "template", "network", "ssh_keypair", "bundle")
    @classmethod
    def _nonempty(cls, v: str | None) -> str | None:
        if v is not None and not v.strip():
            raise ValueError("must not be empty when given")
        return v

    @model_validator(mode="after")
    def _cross(self) -> ClusterSpec:
        pod, svc = ipaddress.IPv4Network(self.pod_cidr), ipaddress.IPv4Network(self.service_cidr)
        if pod.overlaps(svc):
            raise ValueError(f"pod_cidr: {pod} overlaps service_cidr {svc}; choose two disjoint CIDRs")
        if self.provider == "cloudstack" and not self.compute_offering:
            raise ValueError("compute_offering: is required for provider cloudstack (an offering name or id)")
        if self.template is not None and self.provider != "cloudstack":
            raise ValueError("template: is only used by provider cloudstack (leave it unset)")
        if self.node_os != node_oses.DEFAULT_NODE_OS and self.provider != "local":
            raise ValueError(
                f"node_os: is only used by provider local (cloudstack nodes run their template's OS;"
                f" leave it unset or {node_oses.DEFAULT_NODE_OS})"
            )
        return self

    # ---- derived values -------------------------------------------------------------------
    @property
    def ha(self) -> bool:
        return self.control_nodes > 1

    @property
    def node_suite(self) -> str:
        """The Debian suite local nodes are built from (``node_os``)."""
        return node_oses.suite(self.node_os)

    @property
    def node_count(self) -> int:
        return self.control_nodes + self.size

    def public_dict(self) -> dict[str, Any]:
        """The spec as plain data with every secret replaced by a marker (safe to store/show)."""
        data = self.model_dump(mode="json")
        for field in SECRET_FIELDS:
            parent, leaf = _secret_slot(data, field)
            if parent is not None and parent.get(leaf) is not None:
                parent[leaf] = "********"
        return data

    def secrets(self) -> dict[str, str]:
        """Secret values by dotted field name, for the secret store and for redaction."""
        data = self.model_dump(mode="python")
        out: dict[str, str] = {}
        for field in SECRET_FIELDS:
            parent, leaf = _secret_slot(data, field)
            value = parent.get(leaf) if parent is not None else None
            if isinstance(value, SecretStr):
                out[field] = value.get_secret_value()
        return out

    def replace(self, **changes: Any) -> ClusterSpec:
        """A validated copy with ``changes`` applied (for scale/upgrade)."""
        data = self.model_dump(mode="python")
        data.update(changes)
        return validate_spec(data)


def _secret_slot(data: dict[str, Any], field: str) -> tuple[dict[str, Any] | None, str]:
    """The mapping holding dotted ``field`` inside ``data`` (None when a parent is absent) and its key."""
    *parents, leaf = field.split(".")
    node: Any = data
    for key in parents:
        node = node.get(key)
        if not isinstance(node, dict):
            return None, leaf
    return node, leaf


def restore_spec(public: dict[str, Any], secrets: dict[str, str]) -> ClusterSpec:
    """Rebuild a stored spec: the public data with its secrets put back in place."""
    data = copy.deepcopy(public)
    for field in SECRET_FIELDS:
        parent, leaf = _secret_slot(data, field)
        if parent is not None:
            parent[leaf] = secrets.get(field)
    return validate_spec(data, max_size=10**6)


_FIELD_ALIASES = {"k8s_version": "kubernetes_version", "version": "kubernetes_version"}


def _loc(loc: tuple[int | str, ...]) -> str:
    parts = [str(p) for p in loc if not (isinstance(p, str) and p.startswith("function-"))]
    return ".".join(parts) if parts else "spec"


def _format_error(exc: ValidationError, data: dict[str, Any]) -> InputError:
    err = exc.errors(include_url=False)[0]
    field = _loc(tuple(err["loc"]))
    msg = str(err["msg"])
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    etype = err["type"]
    allowed = {f: ClusterSpec.model_fields[f].description for f in ClusterSpec.model_fields}
    if etype == "extra_forbidden":
        known = ", ".join(sorted(ClusterSpec.model_fields))
        if field.startswith("registry."):
            known = ", ".join(sorted(Registry.model_fields))
        return InputError(field, f"unknown field; allowed fields: {known}")
    if etype == "missing":
        return InputError(field, f"is required ({allowed.get(field, '')})")
    if etype in ("int_parsing", "int_type", "int_from_float"):
        msg = f"must be an integer ({allowed.get(field, '')})"
    elif etype == "literal_error":
        msg = msg.replace("Input should be", "must be")
    elif etype in ("string_type", "bool_parsing", "bool_type"):
        msg = f"{msg.replace('Input should be', 'must be')} ({allowed.get(field, '')})"
    elif etype in ("string_too_long", "string_too_short"):
        msg = f"{msg.replace('String should have', 'must have')} ({allowed.get(field, '')})"
    if field not in SECRET_FIELDS and "input" in err and not isinstance(err["input"], dict | list):
        shown = repr(err["input"])
        if len(shown) <= 60 and "got " not in msg:
            msg = f"{msg} (got {shown})"
    if field == "spec":
        m = re.match(r"^(\w+): (.*)$", msg)
        if m:
            field, msg = m.group(1), m.group(2)
    return InputError(field, msg)


def validate_spec(data: dict[str, Any], max_size: int | None = None) -> ClusterSpec:
    """Validate plain data into a ClusterSpec or raise one InputError line."""
    if not isinstance(data, dict):
        raise InputError("spec", "must be a YAML mapping of field: value")
    data = {_FIELD_ALIASES.get(k, k): v for k, v in data.items() if v is not None}
    limit = max_cluster_size() if max_size is None else max_size
    try:
        return ClusterSpec.model_validate(data, context={"max_size": limit})
    except ValidationError as exc:
        raise _format_error(exc, data) from None


def read_spec_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML spec file into plain data; malformed YAML is an InputError naming the file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError("-f/--file", f"cannot read {p}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise InputError("-f/--file", f"{p} is not valid YAML{where}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise InputError("-f/--file", f"{p} must hold a YAML mapping of field: value")
    # A Kubernetes-style wrapper (kind/metadata/spec) is accepted too.
    if "spec" in data and isinstance(data["spec"], dict):
        name = (data.get("metadata") or {}).get("name")
        data = {**data["spec"], **({"name": name} if name else {})}
    return data


def load_spec(
    file: str | Path | None = None, overrides: dict[str, Any] | None = None, max_size: int | None = None
) -> ClusterSpec:
    """The one entry point: file values, then flag overrides (flags win), validated."""
    data: dict[str, Any] = read_spec_file(file) if file else {}
    for key, value in (overrides or {}).items():
        if value is None:
            continue
        if "." in key:
            head, tail = key.split(".", 1)
            sub = dict(data.get(head) or {})
            sub[tail] = value
            data[head] = sub
        else:
            data[key] = value
    if "name" not in data:
        raise InputError("name", f"is required ({NAME_RULE})")
    spec = validate_spec(data, max_size=max_size)
    try:
        versions.check_supported(spec.kubernetes_version)
    except ValueError as exc:
        raise InputError("kubernetes_version", str(exc)) from None
    return spec
