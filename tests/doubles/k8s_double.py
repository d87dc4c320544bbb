#!/usr/bin/env python3
"""Test doubles for kubeadm and kubelet, and the entry point of the kube-apiserver double
(kube_apiserver.py); stdlib only.

Installed on test nodes in place of the real binaries as one zipapp per program (see
tests/doubles/__init__.py and tests/doubles/README.md); kubectl is the real one. The program to
play is chosen from the name it is run under (``kubeadm``, ``kubelet``) or, for the API server
that the kubelet double starts from the kube-apiserver static pod manifest, from KORAL_DOUBLE_PROG.

What is real: the config files parsed (strict YAML subset, see ``yaml_load_all``), the
kubeadm API field lists (v1beta3 / v1beta4, written here as data from the upstream types),
flags, certificates (openssl), kubeconfigs, static pod manifests, TLS with client
certificates, bootstrap tokens with CA pinning, encrypted control-plane certificate upload,
node registration and heartbeats. What is fake: no container ever runs (apart from a real
``etcd`` binary when one is installed), controller-manager and scheduler do nothing.

Every kubeadm call is appended to /var/lib/kubeadm-double/calls.jsonl (argv, parsed config,
exit code) so tests can assert what the roles asked for.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as _dt
import hashlib
import hmac
import http.client
import ipaddress
import json
import os
import re
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

# The Kubernetes version this double claims to be. tests/doubles/install.py rewrites this
# line when it builds a bundle for another version (like a real binary, the version is baked in).
DOUBLE_VERSION = "1.31.4"
# Per-release facts (image tags, kubeadm config API, the kubelet's cgroup v1 rule) from
# koral_ansible/k8s_releases.py: tests/doubles/__init__.py bakes them into this line when it writes
# the double, so a double on a node reads the same data as koral without importing it.
K8S_RELEASES: dict[str, Any] = {}


def _releases() -> dict[str, Any]:
    if K8S_RELEASES:
        return K8S_RELEASES
    # Run from the source tree (unit tests): read the facts from koral itself.
    from koral_ansible.k8s_releases import double_data

    return double_data()


STATE_DIR = Path(os.environ.get("KORAL_DOUBLE_STATE", "/var/lib/kubeadm-double"))
K8S_DIR = Path(os.environ.get("KORAL_DOUBLE_K8S_DIR", "/etc/kubernetes"))
KUBELET_DIR = Path(os.environ.get("KORAL_DOUBLE_KUBELET_DIR", "/var/lib/kubelet"))
ETCD_DIR = Path(os.environ.get("KORAL_DOUBLE_ETCD_DIR", "/var/lib/etcd"))
# Filesystem of the etcd image the static pod runs (koral_ansible/providers/local/image.py keeps
# Debian's etcd and etcdctl there, out of PATH: real kubeadm nodes have neither). The etcd pod and
# kubeadm's etcd member add/remove look there first, then in PATH.
ETCD_IMAGE_BIN = os.environ.get("KORAL_DOUBLE_ETCD_IMAGE_BIN", "/opt/koral-double-images/etcd/usr/bin")
IMAGE_PATH = os.pathsep.join([ETCD_IMAGE_BIN, os.environ.get("PATH", os.defpath)])
# Commands that change a node: always recorded. Read-only ones (version, config images list) are
# recorded only once the state directory exists, so that running the double on a build host
# (e.g. a bundle build listing images) leaves nothing behind.
_RECORD_ALWAYS = {"init", "join", "reset", "upgrade", "token"}
DEFAULT_CRI = "unix:///var/run/containerd/containerd.sock"


class DoubleError(Exception):
    """A failure the double reports like the real tool: message on stderr, exit 1."""


# ---------------------------------------------------------------------------------------
# Strict YAML subset (stdlib has no YAML parser).
#
# Supported: block mappings and sequences, "- key: value" items, plain / single / double
# quoted scalars, flow collections ([a, b], {a: b}), literal and folded block scalars,
# comments, multi-document streams. Rejected with a line number: anchors, aliases, tags,
# complex keys, multi-line plain scalars, tabs in indentation, duplicate keys. This is the
# subset kubeadm configs, kubeconfigs and Kubernetes manifests are written in.
# ---------------------------------------------------------------------------------------


class YamlError(ValueError):
    pass


_INT_RE = re.compile(r"^[-+]?(0|[1-9][0-9]*)$")
_FLOAT_RE = re.compile(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$")
_NULLS = {"", "~", "null", "Null", "NULL"}
_TRUES = {"true", "True", "TRUE"}
_FALSES = {"false", "False", "FALSE"}


def _strip_comment(text: str) -> str:
    in_s = in_d = False
    i = 0
    while i < len(text):
        ch = text[i]
        if in_d and ch == "\\":
            i += 2
            continue
        if ch == "'" and not in_d:
            in_s = not in_s
        elif ch == '"' and not in_s:
            in_d = not in_d
        elif ch == "#" and not in_s and not in_d and (i == 0 or text[i - 1] in " \t"):
            return text[:i].rstrip()
        i += 1
    return text.rstrip()


def _plain(text: str, lineno: int) -> Any:
    if text and text[0] in "&*!?%@`|>":
        raise YamlError(f"line {lineno}: unsupported YAML construct {text[:20]!r}")
    if ": " in text or text.endswith(":"):
        raise YamlError(f"line {lineno}: mapping not allowed here: {text[:40]!r}")
    if text in _NULLS:
        return None
    if text in _TRUES:
        return True
    if text in _FALSES:
        return False
    if _INT_RE.match(text):
        return int(text)
    if re.match(r"^0x[0-9a-fA-F]+$", text):
        return int(text, 16)
    if re.match(r"^0o[0-7]+$", text):
        return int(text, 8)
    if _FLOAT_RE.match(text) and any(c.isdigit() for c in text):
        return float(text)
    return text


def _double_quoted(text: str, lineno: int) -> tuple[str, int]:
    """Parse a double-quoted scalar at text[0]; return (value, end index)."""
    i = 1
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        if text[i] == '"':
            try:
                return json.loads(text[: i + 1]), i + 1
            except json.JSONDecodeError as exc:
                raise YamlError(f"line {lineno}: bad escape in double-quoted string ({exc})") from None
        i += 1
    raise YamlError(f"line {lineno}: unterminated double-quoted string")


def _single_quoted(text: str, lineno: int) -> tuple[str, int]:
    i = 1
    out = []
    while i < len(text):
        if text[i] == "'":
            if i + 1 < len(text) and text[i + 1] == "'":
                out.append("'")
                i += 2
                continue
            return "".join(out), i + 1
        out.append(text[i])
        i += 1
    raise YamlError(f"line {lineno}: unterminated single-quoted string")


class _Flow:
    """Parser for one flow collection or scalar that must fill the whole text."""

    def __init__(self, text: str, lineno: int) -> None:
        self.t, self.i, self.lineno = text, 0, lineno

    def _ws(self) -> None:
        while self.i < len(self.t) and self.t[self.i] in " \t":
            self.i += 1

    def parse(self) -> Any:
        v = self._value()
        self._ws()
        if self.i != len(self.t):
            raise YamlError(f"line {self.lineno}: unexpected text after value: {self.t[self.i :][:30]!r}")
        return v

    def _value(self) -> Any:
        self._ws()
        if self.i >= len(self.t):
            return None
        ch = self.t[self.i]
        if ch == "[":
            self.i += 1
            out: list[Any] = []
            self._ws()
            if self.t[self.i : self.i + 1] == "]":
                self.i += 1
                return out
            while True:
                out.append(self._value())
                self._ws()
                c = self.t[self.i : self.i + 1]
                self.i += 1
                if c == "]":
                    return out
                if c != ",":
                    raise YamlError(f"line {self.lineno}: expected ',' or ']' in flow sequence")
        if ch == "{":
            self.i += 1
            res: dict[str, Any] = {}
            self._ws()
            if self.t[self.i : self.i + 1] == "}":
                self.i += 1
                return res
            while True:
                self._ws()
                key = self._scalar(key=True)
                self._ws()
                if self.t[self.i : self.i + 1] != ":":
                    raise YamlError(f"line {self.lineno}: expected ':' in flow mapping")
                self.i += 1
                if not isinstance(key, str):
                    key = str(key)
                if key in res:
                    raise YamlError(f"line {self.lineno}: duplicate key {key!r}")
                res[key] = self._value()
                self._ws()
                c = self.t[self.i : self.i + 1]
                self.i += 1
                if c == "}":
                    return res
                if c != ",":
                    raise YamlError(f"line {self.lineno}: expected ',' or '}}' in flow mapping")
        return self._scalar()

    def _scalar(self, key: bool = False) -> Any:
        rest = self.t[self.i :]
        if rest.startswith('"'):
            v, n = _double_quoted(rest, self.lineno)
            self.i += n
            return v
        if rest.startswith("'"):
            v, n = _single_quoted(rest, self.lineno)
            self.i += n
            return v
        m = re.match(r"[^,\[\]{}:]*" if key else r"[^,\[\]{}]*", rest)
        assert m is not None
        self.i += m.end()
        return _plain(m.group(0).strip(), self.lineno)


def _scalar_value(text: str, lineno: int) -> Any:
    if text.startswith(("[", "{", '"', "'")):
        return _Flow(text, lineno).parse()
    return _plain(text, lineno)


class _Block:
    def __init__(self, lines: list[tuple[int, str]]) -> None:
        self.lines = lines  # (lineno, raw text)
        self.i = 0
        self.override: dict[int, tuple[int, str]] = {}

    def peek(self) -> tuple[int, str, int] | None:
        """Next structural line as (indent, content without comment, lineno)."""
        while self.i < len(self.lines):
            if self.i in self.override:
                ind, content = self.override[self.i]
                return ind, content, self.lines[self.i][0]
            lineno, raw = self.lines[self.i]
            content = _strip_comment(raw)
            if not content.strip():
                self.i += 1
                continue
            stripped = content.lstrip(" ")
            if stripped.startswith("\t") or content[: len(content) - len(stripped)].count("\t"):
                raise YamlError(f"line {lineno}: tab in indentation")
            return len(content) - len(stripped), stripped, lineno
        return None

    def advance(self) -> None:
        self.override.pop(self.i, None)
        self.i += 1

    @staticmethod
    def _is_item(content: str) -> bool:
        return content == "-" or content.startswith("- ")

    def node(self, min_indent: int) -> Any:
        p = self.peek()
        if p is None or p[0] < min_indent:
            return None
        ind, content, _ = p
        if self._is_item(content):
            return self.seq(ind)
        return self.mapping(ind)

    def _split_key(self, content: str, lineno: int) -> tuple[str, str]:
        if content.startswith(("'", '"')):
            key, n = (_double_quoted if content[0] == '"' else _single_quoted)(content, lineno)
            rest = content[n:]
            if not rest.startswith(":") or (len(rest) > 1 and rest[1] != " "):
                raise YamlError(f"line {lineno}: expected ':' after quoted key")
            return key, rest[1:].strip()
        if content.startswith(("? ", "&", "*", "!", "[", "{")):
            raise YamlError(f"line {lineno}: unsupported YAML construct {content[:20]!r}")
        m = re.match(r"^([^:]*?)\s*:(\s+|$)", content)
        if not m:
            raise YamlError(f"line {lineno}: expected 'key: value', got {content[:40]!r}")
        return m.group(1), content[m.end() :].strip()

    def mapping(self, ind: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        while True:
            p = self.peek()
            if p is None or p[0] < ind:
                return out
            pind, content, lineno = p
            if pind > ind:
                raise YamlError(f"line {lineno}: unexpected indentation")
            if self._is_item(content):
                return out
            key, rest = self._split_key(content, lineno)
            if key in out:
                raise YamlError(f"line {lineno}: duplicate key {key!r}")
            self.advance()
            if rest == "":
                nxt = self.peek()
                if nxt is not None and nxt[0] == ind and self._is_item(nxt[1]):
                    out[key] = self.seq(ind)
                elif nxt is not None and nxt[0] > ind:
                    out[key] = self.node(nxt[0])
                else:
                    out[key] = None
            elif rest[0] in "|>":
                out[key] = self.block_scalar(rest, ind, lineno)
            else:
                out[key] = _scalar_value(rest, lineno)
                nxt = self.peek()
                if nxt is not None and nxt[0] > ind:
                    raise YamlError(f"line {nxt[2]}: unexpected indentation (multi-line scalars unsupported)")

    def seq(self, ind: int) -> list[Any]:
        out: list[Any] = []
        while True:
            p = self.peek()
            if p is None or p[0] < ind:
                return out
            pind, content, lineno = p
            if pind > ind:
                raise YamlError(f"line {lineno}: unexpected indentation")
            if not self._is_item(content):
                return out
            rest = content[1:].lstrip(" ")
            offset = ind + len(content) - len(rest)
            if rest == "":
                self.advance()
                out.append(self.node(ind + 1))
            elif rest[0] in "|>":
                self.advance()
                out.append(self.block_scalar(rest, ind, lineno))
            elif (
                self._is_item(rest)
                or (not rest.startswith(("[", "{", '"', "'")) and re.match(r"^[^:]*?:(\s|$)", rest))
                or (rest.startswith(('"', "'")) and re.match(r"^(\"[^\"]*\"|'[^']*')\s*:(\s|$)", rest))
            ):
                self.override[self.i] = (offset, rest)
                out.append(self.node(offset))
            else:
                self.advance()
                out.append(_scalar_value(rest, lineno))
                nxt = self.peek()
                if nxt is not None and nxt[0] > ind:
                    raise YamlError(f"line {nxt[2]}: unexpected indentation (multi-line scalars unsupported)")

    def block_scalar(self, header: str, parent_ind: int, lineno: int) -> str:
        m = re.match(r"^([|>])([-+]?)([1-9]?)([-+]?)$", header)
        if not m:
            raise YamlError(f"line {lineno}: bad block scalar header {header!r}")
        style, chomp = m.group(1), m.group(2) or m.group(4)
        body: list[str] = []
        content_ind = parent_ind + int(m.group(3)) if m.group(3) else None
        while self.i < len(self.lines):
            raw = self.lines[self.i][1].rstrip("\n")
            if not raw.strip():
                body.append("")
                self.i += 1
                continue
            ind = len(raw) - len(raw.lstrip(" "))
            if content_ind is None:
                if ind <= parent_ind:
                    break
                content_ind = ind
            if ind < content_ind:
                break
            body.append(raw[content_ind:])
            self.i += 1
        trailing = 0
        while body and body[-1] == "":
            body.pop()
            trailing += 1
        if style == "|":
            text = "\n".join(body)
        else:
            parts: list[str] = []
            for line in body:
                if line == "" or line.startswith(" "):
                    parts.append("\n" + line if parts else line)
                elif parts and not parts[-1].endswith("\n") and parts[-1] != "":
                    parts.append(" " + line)
                else:
                    parts.append(line)
            text = "".join(parts)
        if not body:
            return ""
        if chomp == "-":
            return text
        if chomp == "+":
            return text + "\n" * (trailing + 1)
        return text + "\n"


def yaml_load_all(text: str) -> list[Any]:
    """Parse a multi-document YAML stream (strict subset); empty documents are dropped."""
    docs: list[list[tuple[int, str]]] = [[]]
    for n, raw in enumerate(text.splitlines(), 1):
        if re.match(r"^---(\s|$)", raw):
            rest = _strip_comment(raw[3:]).strip()
            if rest:
                raise YamlError(f"line {n}: content after '---' is not supported")
            docs.append([])
            continue
        if re.match(r"^\.\.\.(\s|$)", raw):
            docs.append([])
            continue
        if raw.startswith("%"):
            raise YamlError(f"line {n}: YAML directives are not supported")
        docs[-1].append((n, raw))
    out = []
    for lines in docs:
        blk = _Block(lines)
        first = blk.peek()
        if first is None:
            continue
        if first[0] != 0 and not _Block._is_item(first[1]):
            pass
        if not _Block._is_item(first[1]) and not re.match(
            r"^([^:]*?|\"[^\"]*\"|'[^']*')\s*:(\s|$)", first[1]
        ):
            value = _scalar_value(first[1], first[2])
            blk.advance()
        else:
            value = blk.node(first[0])
        rest = blk.peek()
        if rest is not None:
            raise YamlError(f"line {rest[2]}: unexpected content (bad indentation?)")
        out.append(value)
    return out


def yaml_load(text: str) -> Any:
    docs = yaml_load_all(text)
    if len(docs) != 1:
        raise YamlError(f"expected one YAML document, found {len(docs)}")
    return docs[0]


def _needs_quotes(s: str) -> bool:
    if s in _NULLS or s in _TRUES or s in _FALSES or _INT_RE.match(s) or _FLOAT_RE.match(s):
        return True
    if s.lower() in {"yes", "no", "on", "off", "y", "n"}:
        return True
    if s[0] in "-?:,[]{}#&*!|>'\"%@` " or s[-1] == " ":
        return True
    return any(t in s for t in (": ", " #", "\n", "\t")) or s.endswith(":")


def _scalar_text(v: Any) -> str:
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, (int, float)):
        return str(v)
    s = str(v)
    return json.dumps(s) if _needs_quotes(s) else s


def yaml_dump(obj: Any, indent: int = 0) -> str:
    """Block-style YAML for dicts/lists/scalars that ``yaml_load_all`` reads back."""
    pad = " " * indent
    if isinstance(obj, dict):
        if not obj:
            return pad + "{}\n"
        lines = []
        for k, v in obj.items():
            key = _scalar_text(str(k))
            if isinstance(v, dict) and v:
                lines.append(f"{pad}{key}:\n" + yaml_dump(v, indent + 2))
            elif isinstance(v, list) and v:
                lines.append(f"{pad}{key}:\n" + yaml_dump(v, indent))
            elif isinstance(v, (dict, list)):
                lines.append(f"{pad}{key}: {'{}' if isinstance(v, dict) else '[]'}\n")
            else:
                lines.append(f"{pad}{key}: {_scalar_text(v)}\n")
        return "".join(lines)
    if isinstance(obj, list):
        if not obj:
            return pad + "[]\n"
        lines = []
        for item in obj:
            if isinstance(item, (dict, list)) and item:
                inner = yaml_dump(item, indent + 2)
                lines.append(pad + "- " + inner[indent + 2 :])
            elif isinstance(item, (dict, list)):
                lines.append(f"{pad}- {'{}' if isinstance(item, dict) else '[]'}\n")
            else:
                lines.append(f"{pad}- {_scalar_text(item)}\n")
        return "".join(lines)
    return pad + _scalar_text(obj) + "\n"


# ---------------------------------------------------------------------------------------
# kubeadm config API: field lists per API version, written as data from the upstream Go
# types (cmd/kubeadm/app/apis/kubeadm/v1beta3/types.go, v1beta4/types.go and
# bootstraptoken/v1/types.go). Type notation: "string", "int", "bool", "duration",
# "time", "any", "[]T", "map[string]T", or a struct name from the same table.
# ---------------------------------------------------------------------------------------

_COMMON_STRUCTS: dict[str, dict[str, str]] = {
    "BootstrapToken": {
        "token": "string",
        "description": "string",
        "ttl": "duration",
        "expires": "time",
        "usages": "[]string",
        "groups": "[]string",
    },
    "APIEndpoint": {"advertiseAddress": "string", "bindPort": "int"},
    "ImageMeta": {"imageRepository": "string", "imageTag": "string"},
    "Networking": {"serviceSubnet": "string", "podSubnet": "string", "dnsDomain": "string"},
    "ExternalEtcd": {"endpoints": "[]string", "caFile": "string", "certFile": "string", "keyFile": "string"},
    "HostPathMount": {
        "name": "string",
        "hostPath": "string",
        "mountPath": "string",
        "readOnly": "bool",
        "pathType": "string",
    },
    "Patches": {"directory": "string"},
    "JoinControlPlane": {"localAPIEndpoint": "APIEndpoint", "certificateKey": "string"},
    "BootstrapTokenDiscovery": {
        "token": "string",
        "apiServerEndpoint": "string",
        "caCertHashes": "[]string",
        "unsafeSkipCAVerification": "bool",
    },
    "FileDiscovery": {"kubeConfigPath": "string"},
    "Taint": {"key": "string", "value": "string", "effect": "string", "timeAdded": "time"},
    "Arg": {"name": "string", "value": "string"},
    "EnvVar": {"name": "string", "value": "string", "valueFrom": "any"},
}

_V1BETA3: dict[str, dict[str, str]] = {
    **_COMMON_STRUCTS,
    "InitConfiguration": {
        "bootstrapTokens": "[]BootstrapToken",
        "nodeRegistration": "NodeRegistrationOptions",
        "localAPIEndpoint": "APIEndpoint",
        "certificateKey": "string",
        "skipPhases": "[]string",
        "patches": "Patches",
    },
    "ClusterConfiguration": {
        "etcd": "Etcd",
        "networking": "Networking",
        "kubernetesVersion": "string",
        "controlPlaneEndpoint": "string",
        "apiServer": "APIServer",
        "controllerManager": "ControlPlaneComponent",
        "scheduler": "ControlPlaneComponent",
        "dns": "DNS",
        "certificatesDir": "string",
        "imageRepository": "string",
        "featureGates": "map[string]bool",
        "clusterName": "string",
    },
    "ControlPlaneComponent": {"extraArgs": "map[string]string", "extraVolumes": "[]HostPathMount"},
    "APIServer": {
        "extraArgs": "map[string]string",
        "extraVolumes": "[]HostPathMount",
        "certSANs": "[]string",
        "timeoutForControlPlane": "duration",
    },
    "DNS": {"imageRepository": "string", "imageTag": "string"},
    "NodeRegistrationOptions": {
        "name": "string",
        "criSocket": "string",
        "taints": "[]Taint",
        "kubeletExtraArgs": "map[string]string",
        "ignorePreflightErrors": "[]string",
        "imagePullPolicy": "string",
    },
    "Etcd": {"local": "LocalEtcd", "external": "ExternalEtcd"},
    "LocalEtcd": {
        "imageRepository": "string",
        "imageTag": "string",
        "dataDir": "string",
        "extraArgs": "map[string]string",
        "serverCertSANs": "[]string",
        "peerCertSANs": "[]string",
    },
    "JoinConfiguration": {
        "nodeRegistration": "NodeRegistrationOptions",
        "caCertPath": "string",
        "discovery": "Discovery",
        "controlPlane": "JoinControlPlane",
        "skipPhases": "[]string",
        "patches": "Patches",
    },
    "Discovery": {
        "bootstrapToken": "BootstrapTokenDiscovery",
        "file": "FileDiscovery",
        "tlsBootstrapToken": "string",
        "timeout": "duration",
    },
}

_TIMEOUTS = {
    "controlPlaneComponentHealthCheck": "duration",
    "kubeletHealthCheck": "duration",
    "kubernetesAPICall": "duration",
    "etcdAPICall": "duration",
    "tlsBootstrap": "duration",
    "discovery": "duration",
    "upgradeManifests": "duration",
}

_V1BETA4: dict[str, dict[str, str]] = {
    **_COMMON_STRUCTS,
    "Timeouts": _TIMEOUTS,
    "InitConfiguration": {
        "bootstrapTokens": "[]BootstrapToken",
        "dryRun": "bool",
        "nodeRegistration": "NodeRegistrationOptions",
        "localAPIEndpoint": "APIEndpoint",
        "certificateKey": "string",
        "skipPhases": "[]string",
        "patches": "Patches",
        "timeouts": "Timeouts",
    },
    "ClusterConfiguration": {
        "etcd": "Etcd",
        "networking": "Networking",
        "kubernetesVersion": "string",
        "controlPlaneEndpoint": "string",
        "apiServer": "APIServer",
        "controllerManager": "ControlPlaneComponent",
        "scheduler": "ControlPlaneComponent",
        "dns": "DNS",
        "proxy": "Proxy",
        "certificatesDir": "string",
        "imageRepository": "string",
        "featureGates": "map[string]bool",
        "clusterName": "string",
        "encryptionAlgorithm": "string",
        "certificateValidityPeriod": "duration",
        "caCertificateValidityPeriod": "duration",
    },
    "ControlPlaneComponent": {
        "extraArgs": "[]Arg",
        "extraVolumes": "[]HostPathMount",
        "extraEnvs": "[]EnvVar",
    },
    "APIServer": {
        "extraArgs": "[]Arg",
        "extraVolumes": "[]HostPathMount",
        "extraEnvs": "[]EnvVar",
        "certSANs": "[]string",
    },
    "DNS": {"imageRepository": "string", "imageTag": "string", "disabled": "bool"},
    "Proxy": {"disabled": "bool"},
    "NodeRegistrationOptions": {
        "name": "string",
        "criSocket": "string",
        "taints": "[]Taint",
        "kubeletExtraArgs": "[]Arg",
        "ignorePreflightErrors": "[]string",
        "imagePullPolicy": "string",
        "imagePullSerial": "bool",
    },
    "Etcd": {"local": "LocalEtcd", "external": "ExternalEtcd"},
    "LocalEtcd": {
        "imageRepository": "string",
        "imageTag": "string",
        "dataDir": "string",
        "extraArgs": "[]Arg",
        "extraEnvs": "[]EnvVar",
        "serverCertSANs": "[]string",
        "peerCertSANs": "[]string",
    },
    "JoinConfiguration": {
        "dryRun": "bool",
        "nodeRegistration": "NodeRegistrationOptions",
        "caCertPath": "string",
        "discovery": "Discovery",
        "controlPlane": "JoinControlPlane",
        "skipPhases": "[]string",
        "patches": "Patches",
        "timeouts": "Timeouts",
    },
    "Discovery": {
        "bootstrapToken": "BootstrapTokenDiscovery",
        "file": "FileDiscovery",
        "tlsBootstrapToken": "string",
    },
    "ResetConfiguration": {
        "cleanupTmpDir": "bool",
        "certificatesDir": "string",
        "criSocket": "string",
        "dryRun": "bool",
        "force": "bool",
        "ignorePreflightErrors": "[]string",
        "skipPhases": "[]string",
        "unmountFlags": "[]string",
        "timeouts": "Timeouts",
    },
    "UpgradeConfiguration": {
        "apply": "UpgradeApplyConfiguration",
        "diff": "UpgradeDiffConfiguration",
        "node": "UpgradeNodeConfiguration",
        "plan": "UpgradePlanConfiguration",
        "timeouts": "Timeouts",
    },
    "UpgradeApplyConfiguration": {
        "kubernetesVersion": "string",
        "allowExperimentalUpgrades": "bool",
        "allowRCUpgrades": "bool",
        "certificateRenewal": "bool",
        "dryRun": "bool",
        "etcdUpgrade": "bool",
        "forceUpgrade": "bool",
        "ignorePreflightErrors": "[]string",
        "patches": "Patches",
        "printConfig": "bool",
        "skipPhases": "[]string",
    },
    "UpgradeDiffConfiguration": {"kubernetesVersion": "string", "contextLines": "int"},
    "UpgradeNodeConfiguration": {
        "certificateRenewal": "bool",
        "dryRun": "bool",
        "etcdUpgrade": "bool",
        "ignorePreflightErrors": "[]string",
        "skipPhases": "[]string",
        "patches": "Patches",
    },
    "UpgradePlanConfiguration": {
        "kubernetesVersion": "string",
        "allowExperimentalUpgrades": "bool",
        "allowRCUpgrades": "bool",
        "dryRun": "bool",
        "ignorePreflightErrors": "[]string",
        "printConfig": "bool",
    },
}

KUBEADM_SCHEMAS: dict[str, dict[str, dict[str, str]]] = {
    "kubeadm.k8s.io/v1beta3": _V1BETA3,
    "kubeadm.k8s.io/v1beta4": _V1BETA4,
}
KUBEADM_KINDS: dict[str, tuple[str, ...]] = {
    "kubeadm.k8s.io/v1beta3": ("InitConfiguration", "ClusterConfiguration", "JoinConfiguration"),
    "kubeadm.k8s.io/v1beta4": (
        "InitConfiguration",
        "ClusterConfiguration",
        "JoinConfiguration",
        "ResetConfiguration",
        "UpgradeConfiguration",
    ),
}
# Component configs kubeadm accepts in the same file (fields not checked beyond a few enums).
COMPONENT_KINDS = {
    ("kubelet.config.k8s.io/v1beta1", "KubeletConfiguration"),
    ("kubeproxy.config.k8s.io/v1alpha1", "KubeProxyConfiguration"),
}
_ENUMS = {
    "imagePullPolicy": {"Always", "IfNotPresent", "Never"},
    "encryptionAlgorithm": {"RSA-2048", "RSA-3072", "RSA-4096", "ECDSA-P256"},
    "effect": {"NoSchedule", "PreferNoSchedule", "NoExecute"},
    "pathType": {
        "",
        "DirectoryOrCreate",
        "Directory",
        "FileOrCreate",
        "File",
        "Socket",
        "CharDevice",
        "BlockDevice",
    },
}
_DURATION_RE = re.compile(r"^-?([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$|^0$")
_TIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
TOKEN_RE = re.compile(r"^([a-z0-9]{6})\.([a-z0-9]{16})$")
CA_HASH_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
CERT_KEY_RE = re.compile(r"^[0-9a-f]{64}$")


def api_version_for(version: str) -> str:
    """The kubeadm config API the double insists on (K8S_RELEASES: v1beta4 from 1.31, v1beta3 before)."""
    facts = _releases().get(str(_vtuple(version)[1]))
    if facts:
        return str(facts["kubeadm_api"])
    return "kubeadm.k8s.io/v1beta4" if _vtuple(version)[:2] >= (1, 31) else "kubeadm.k8s.io/v1beta3"


def _vtuple(v: str) -> tuple[int, int, int]:
    m = re.match(r"^v?(\d+)\.(\d+)\.(\d+)$", str(v).strip())
    if not m:
        raise DoubleError(f"invalid version {v!r}: expected vX.Y.Z")
    return int(m.group(1)), int(m.group(2)), int(m.group(3))


def _check_value(schema: dict[str, dict[str, str]], typ: str, value: Any, path: str, errs: list[str]) -> None:
    if value is None:
        return
    if typ == "any":
        return
    if typ.startswith("[]"):
        if not isinstance(value, list):
            errs.append(f"{path}: expected a list, got {type(value).__name__}")
            return
        for i, item in enumerate(value):
            _check_value(schema, typ[2:], item, f"{path}[{i}]", errs)
        return
    if typ.startswith("map[string]"):
        if not isinstance(value, dict):
            errs.append(f"{path}: expected a map, got {type(value).__name__}")
            return
        for k, v in value.items():
            _check_value(schema, typ[len("map[string]") :], v, f"{path}.{k}", errs)
        return
    leaf = path.rsplit(".", 1)[-1].split("[")[0]
    if typ == "string":
        if not isinstance(value, str):
            errs.append(f"{path}: cannot unmarshal {type(value).__name__} into a string field")
        elif leaf in _ENUMS and value not in _ENUMS[leaf]:
            errs.append(f"{path}: unsupported value {value!r}, must be one of {sorted(_ENUMS[leaf])}")
        return
    if typ == "int":
        if not isinstance(value, int) or isinstance(value, bool):
            errs.append(f"{path}: cannot unmarshal {type(value).__name__} into an int field")
        return
    if typ == "bool":
        if not isinstance(value, bool):
            errs.append(f"{path}: cannot unmarshal {type(value).__name__} into a bool field")
        return
    if typ == "duration":
        if not isinstance(value, str) or not _DURATION_RE.match(value):
            errs.append(f"{path}: invalid duration {value!r} (Go duration like 4m0s)")
        return
    if typ == "time":
        if not isinstance(value, str) or not _TIME_RE.match(value):
            errs.append(f"{path}: invalid RFC 3339 time {value!r}")
        return
    fields = schema[typ]
    if not isinstance(value, dict):
        errs.append(f"{path}: expected an object ({typ}), got {type(value).__name__}")
        return
    for k, v in value.items():
        if k not in fields:
            errs.append(f'unknown field "{path}.{k}"' if path else f'unknown field "{k}"')
            continue
        _check_value(schema, fields[k], v, f"{path}.{k}" if path else k, errs)


def validate_kubeadm_docs(docs: list[Any], kubeadm_version: str) -> dict[str, dict[str, Any]]:
    """Strict decoding of a kubeadm config stream. Returns {kind: doc}; raises DoubleError."""
    wanted = api_version_for(kubeadm_version)
    by_kind: dict[str, dict[str, Any]] = {}
    for n, doc in enumerate(docs):
        if not isinstance(doc, dict):
            raise DoubleError(f"config document {n}: expected a mapping, got {type(doc).__name__}")
        api, kind = doc.get("apiVersion"), doc.get("kind")
        if not api or not kind:
            raise DoubleError(f"config document {n}: 'apiVersion' and 'kind' are required")
        if (api, kind) in COMPONENT_KINDS:
            if kind == "KubeletConfiguration" and doc.get("cgroupDriver") not in (
                None,
                "systemd",
                "cgroupfs",
            ):
                raise DoubleError(f"KubeletConfiguration.cgroupDriver: invalid value {doc['cgroupDriver']!r}")
        elif str(api).startswith("kubeadm.k8s.io/"):
            if api not in KUBEADM_SCHEMAS:
                raise DoubleError(
                    f'no kind "{kind}" is registered for version "{api}"; kubeadm v{kubeadm_version} '
                    f"reads {wanted}"
                )
            if api != wanted:
                raise DoubleError(
                    f"{kind} uses {api} but kubeadm v{kubeadm_version} expects {wanted} "
                    "(kubeadm.k8s.io/v1beta4 from 1.31 on, kubeadm.k8s.io/v1beta3 before)"
                )
            if kind not in KUBEADM_KINDS[api]:
                raise DoubleError(f'no kind "{kind}" is registered for version "{api}"')
            schema = KUBEADM_SCHEMAS[api]
            errs: list[str] = []
            body = {k: v for k, v in doc.items() if k not in ("apiVersion", "kind")}
            _check_value(schema, kind, body, "", errs)
            if errs:
                raise DoubleError(
                    f'error unmarshaling configuration schema.GroupVersionKind{{Group:"kubeadm.k8s.io", '
                    f'Version:"{api.split("/")[1]}", Kind:"{kind}"}}: strict decoding error: '
                    + "; ".join(errs)
                )
        else:
            sys.stderr.write(
                f"W0000 [config] WARNING: Ignored YAML document with GroupVersionKind {api}, Kind={kind}\n"
            )
            continue
        if kind in by_kind:
            raise DoubleError(f"found multiple documents of kind {kind}")
        by_kind[kind] = doc
    _semantic_checks(by_kind, kubeadm_version)
    return by_kind


def _is_ip(v: str) -> bool:
    try:
        ipaddress.ip_address(v)
        return True
    except ValueError:
        return False


def _semantic_checks(by_kind: dict[str, dict[str, Any]], kubeadm_version: str) -> None:
    errs: list[str] = []
    cc = by_kind.get("ClusterConfiguration", {})
    net = cc.get("networking") or {}
    for f in ("podSubnet", "serviceSubnet"):
        if net.get(f):
            for part in str(net[f]).split(","):
                try:
                    ipaddress.ip_network(part.strip(), strict=True)
                except ValueError:
                    errs.append(f"networking.{f}: Invalid value {net[f]!r}: couldn't parse subnet")
    kv = cc.get("kubernetesVersion")
    if kv:
        try:
            want, have = _vtuple(kv), _vtuple(kubeadm_version)
        except DoubleError as exc:
            errs.append(f"kubernetesVersion: {exc}")
        else:
            if want > have:
                errs.append(
                    f"this version of kubeadm only supports deploying clusters with the control plane version "  # noqa: E501
                    f">= {have[0]}.{have[1] - 1}.0. Current version: v{kv} (kubeadm is v{kubeadm_version})"
                    if want[:2] < (have[0], have[1] - 1)
                    else f"the specified version v{kv.lstrip('v')} is newer than kubeadm v{kubeadm_version}"
                )
            elif want[:2] < (have[0], have[1] - 1):
                errs.append(
                    f"this version of kubeadm only supports deploying clusters with the control plane version "  # noqa: E501
                    f">= {have[0]}.{have[1] - 1}.0. Current version: {kv}"
                )
    cpe = cc.get("controlPlaneEndpoint")
    if cpe and not re.match(r"^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+)(:\d{1,5})?$", str(cpe)):
        errs.append(f"controlPlaneEndpoint: Invalid value {cpe!r}")
    for kind in ("InitConfiguration", "JoinConfiguration"):
        doc = by_kind.get(kind, {})
        nr = doc.get("nodeRegistration") or {}
        name = nr.get("name")
        if name and not re.match(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", str(name)):
            errs.append(f"nodeRegistration.name: Invalid value {name!r}: a lowercase RFC 1123 subdomain")
        eps = [
            doc.get("localAPIEndpoint") or {},
            (doc.get("controlPlane") or {}).get("localAPIEndpoint") or {},
        ]
        for ep in eps:
            if ep.get("advertiseAddress") and not _is_ip(str(ep["advertiseAddress"])):
                errs.append(f"localAPIEndpoint.advertiseAddress: Invalid value {ep['advertiseAddress']!r}")
            if ep.get("bindPort") is not None and not 0 < int(ep["bindPort"]) < 65536:
                errs.append(f"localAPIEndpoint.bindPort: Invalid value {ep['bindPort']!r}")
        ck = doc.get("certificateKey") or (doc.get("controlPlane") or {}).get("certificateKey")
        if ck and not CERT_KEY_RE.match(str(ck)):
            errs.append("certificateKey: must be a hex encoded AES key of 32 bytes (64 hex characters)")
        for i, bt in enumerate(doc.get("bootstrapTokens") or []):
            if not TOKEN_RE.match(str(bt.get("token", ""))):
                errs.append(f"bootstrapTokens[{i}].token: Invalid value: the bootstrap token is invalid")
    jc = by_kind.get("JoinConfiguration")
    if jc is not None:
        disc = jc.get("discovery") or {}
        bt, fd = disc.get("bootstrapToken"), disc.get("file")
        if bool(bt) == bool(fd):
            errs.append("discovery: Invalid value: exactly one of bootstrapToken or file must be set")
        if bt:
            if not TOKEN_RE.match(str(bt.get("token", ""))):
                errs.append("discovery.bootstrapToken.token: Invalid value: the bootstrap token is invalid")
            if not bt.get("apiServerEndpoint"):
                errs.append("discovery.bootstrapToken.apiServerEndpoint: Required value")
            hashes = bt.get("caCertHashes") or []
            if not hashes and not bt.get("unsafeSkipCAVerification"):
                errs.append(
                    "discovery.bootstrapToken.caCertHashes: Invalid value: using token-based discovery without "  # noqa: E501
                    "caCertHashes can be unsafe. Set unsafeSkipCAVerification as true to continue"
                )
            for h in hashes:
                if not CA_HASH_RE.match(str(h)):
                    errs.append(f"discovery.bootstrapToken.caCertHashes: Invalid value {h!r}")
    if errs:
        raise DoubleError("invalid configuration: " + "; ".join(errs))


# ---------------------------------------------------------------------------------------
# PKI with the openssl CLI (the node image must contain openssl; Debian's ca-certificates
# depends on it).
# ---------------------------------------------------------------------------------------


def _openssl(*args: str, stdin: bytes | None = None) -> bytes:
    exe = shutil.which("openssl")
    if not exe:
        raise DoubleError(
            "openssl not found on this node (the kubeadm double needs it to create certificates)"
        )
    proc = subprocess.run([exe, *args], input=stdin, capture_output=True, check=False)
    if proc.returncode != 0:
        raise DoubleError(f"openssl {args[0]} failed: {proc.stderr.decode(errors='replace').strip()}")
    return proc.stdout


def _write(path: Path, data: str | bytes, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data.encode() if isinstance(data, str) else data)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def make_ca(pki: Path, name: str, cn: str, days: int = 3650) -> None:
    crt, key = pki / f"{name}.crt", pki / f"{name}.key"
    if crt.exists() and key.exists():
        return
    crt.parent.mkdir(parents=True, exist_ok=True)
    _openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        str(key),
        "-out",
        str(crt),
        "-days",
        str(days),
        "-subj",
        f"/CN={cn}",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,digitalSignature,keyEncipherment,keyCertSign",
    )
    os.chmod(key, 0o600)


def sign_csr(ca: Path, csr_pem: bytes, usage: str, sans: list[str] | None = None, days: int = 365) -> bytes:
    """Sign a CSR with ca.crt/ca.key (``ca`` is the path without suffix)."""
    ext = ["basicConstraints=critical,CA:FALSE", "keyUsage=critical,digitalSignature,keyEncipherment"]
    ext.append(
        "extendedKeyUsage="
        + {"server": "serverAuth", "client": "clientAuth", "both": "serverAuth,clientAuth"}[usage]
    )
    if sans:
        ext.append("subjectAltName=" + ",".join(("IP:" if _is_ip(s) else "DNS:") + s for s in sans))
    with tempfile.TemporaryDirectory() as tmp:
        extf, csrf = Path(tmp) / "ext.cnf", Path(tmp) / "req.csr"
        extf.write_text("\n".join(ext) + "\n")
        csrf.write_bytes(csr_pem)
        return _openssl(
            "x509",
            "-req",
            "-in",
            str(csrf),
            "-CA",
            f"{ca}.crt",
            "-CAkey",
            f"{ca}.key",
            "-set_serial",
            str(secrets.randbits(63)),
            "-days",
            str(days),
            "-extfile",
            str(extf),
        )


def make_key_and_csr(cn: str, orgs: tuple[str, ...] = ()) -> tuple[bytes, bytes]:
    subj = "".join(f"/O={o}" for o in orgs) + f"/CN={cn}"
    with tempfile.TemporaryDirectory() as tmp:
        keyf = Path(tmp) / "k.key"
        csr = _openssl("req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", str(keyf), "-subj", subj)
        return keyf.read_bytes(), csr


def make_cert(
    pki: Path,
    ca: str,
    name: str,
    cn: str,
    usage: str,
    orgs: tuple[str, ...] = (),
    sans: list[str] | None = None,
) -> None:
    crt, key = pki / f"{name}.crt", pki / f"{name}.key"
    if crt.exists() and key.exists():
        return
    k, csr = make_key_and_csr(cn, orgs)
    cert = sign_csr(pki / ca, csr, usage, sans)
    _write(key, k, 0o600)
    _write(crt, cert)


def ca_cert_hash(ca_pem: bytes) -> str:
    """sha256 of the CA's DER SubjectPublicKeyInfo, as kubeadm prints it."""
    pub = _openssl("x509", "-pubkey", "-noout", stdin=ca_pem)
    der = _openssl("pkey", "-pubin", "-outform", "DER", stdin=pub)
    return "sha256:" + hashlib.sha256(der).hexdigest()


def csr_subject(pem: bytes) -> str:
    return _openssl("req", "-noout", "-subject", "-nameopt", "RFC2253", stdin=pem).decode().strip()


def _blob_mac(key_hex: str, iv: str, ct: bytes) -> str:
    return hmac.new(bytes.fromhex(key_hex), iv.encode() + ct, hashlib.sha256).hexdigest()


def encrypt_blob(key_hex: str, data: bytes) -> str:
    """The kubeadm-certs payload. Upstream seals it with AES-256-GCM (cmd/kubeadm/app/util/crypto/
    crypto.go EncryptBytes), so a wrong key always fails authentication. `openssl enc` has no AEAD
    mode, so the double uses AES-256-CBC plus an HMAC-SHA256 over IV and ciphertext: a wrong key is
    refused every time, not only when CBC's padding happens to be invalid (255 in 256)."""
    iv = secrets.token_hex(16)
    ct = _openssl("enc", "-aes-256-cbc", "-K", key_hex, "-iv", iv, stdin=data)
    return iv + ":" + base64.b64encode(ct).decode() + ":" + _blob_mac(key_hex, iv, ct)


def decrypt_blob(key_hex: str, blob: str) -> bytes:
    iv, ct_b64, mac = [*blob.split(":", 2), "", ""][:3]
    try:
        ct = base64.b64decode(ct_b64)
        if not hmac.compare_digest(mac, _blob_mac(key_hex, iv, ct)):
            raise DoubleError("mac")
        return _openssl("enc", "-d", "-aes-256-cbc", "-K", key_hex, "-iv", iv, stdin=ct)
    except (DoubleError, ValueError):
        raise DoubleError(
            "error downloading the secret: error decoding secret data with provided key: "
            "cipher: message authentication failed (wrong certificate key?)"
        ) from None


# ---------------------------------------------------------------------------------------
# kubeconfig + HTTPS client
# ---------------------------------------------------------------------------------------


def kubeconfig_doc(
    cluster: str,
    server: str,
    ca_pem: bytes,
    user: str,
    cert_pem: bytes | None = None,
    key_pem: bytes | None = None,
    token: str | None = None,
) -> dict[str, Any]:
    b64 = lambda b: base64.b64encode(b).decode()  # noqa: E731
    u: dict[str, Any] = {}
    if cert_pem is not None and key_pem is not None:
        u = {"client-certificate-data": b64(cert_pem), "client-key-data": b64(key_pem)}
    if token:
        u = {"token": token}
    ctx = f"{user}@{cluster}"
    return {
        "apiVersion": "v1",
        "clusters": [
            {"cluster": {"certificate-authority-data": b64(ca_pem), "server": server}, "name": cluster}
        ],
        "contexts": [{"context": {"cluster": cluster, "user": user}, "name": ctx}],
        "current-context": ctx,
        "kind": "Config",
        "preferences": {},
        "users": [{"name": user, "user": u}],
    }


class Kubeconfig:
    def __init__(self, path: Path) -> None:
        try:
            doc = yaml_load(path.read_text())
        except FileNotFoundError:
            raise DoubleError(f"stat {path}: no such file or directory") from None
        except YamlError as exc:
            raise DoubleError(f"error loading config file {str(path)!r}: {exc}") from None
        self.path = path
        try:
            cur = doc["current-context"]
            ctx = next(c["context"] for c in doc["contexts"] if c["name"] == cur)
            cl = next(c["cluster"] for c in doc["clusters"] if c["name"] == ctx["cluster"])
            us = next(u["user"] for u in doc["users"] if u["name"] == ctx["user"]) or {}
        except (KeyError, StopIteration, TypeError):
            raise DoubleError(f"invalid configuration in {path}: no usable current-context") from None
        self.server: str = cl["server"]
        self.ca_pem = (
            base64.b64decode(cl["certificate-authority-data"])
            if cl.get("certificate-authority-data")
            else None
        )
        if cl.get("certificate-authority"):
            self.ca_pem = Path(cl["certificate-authority"]).read_bytes()
        self.cert_pem = self._data(us, "client-certificate")
        self.key_pem = self._data(us, "client-key")
        self.token: str | None = us.get("token")

    @staticmethod
    def _data(us: dict[str, Any], name: str) -> bytes | None:
        if us.get(f"{name}-data"):
            return base64.b64decode(us[f"{name}-data"])
        if us.get(name):
            return Path(us[name]).read_bytes()
        return None

    def client(self, timeout: float = 10.0) -> ApiClient:
        return ApiClient(self.server, self.ca_pem, self.cert_pem, self.key_pem, self.token, timeout)


class ApiError(DoubleError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class ApiClient:
    """Minimal Kubernetes REST client over HTTPS with client certificates or a bearer token."""

    def __init__(
        self,
        server: str,
        ca_pem: bytes | None,
        cert_pem: bytes | None = None,
        key_pem: bytes | None = None,
        token: str | None = None,
        timeout: float = 10.0,
        extra_headers: dict[str, str] | None = None,
    ) -> None:
        u = urlparse(server)
        if u.scheme != "https" or not u.hostname:
            raise DoubleError(f"server {server!r}: only https://HOST:PORT is supported")
        self.server, self.host, self.port = server, u.hostname, u.port or 443
        self.token, self.timeout = token, timeout
        self.headers = extra_headers or {}
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        if ca_pem is None:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        else:
            ctx.load_verify_locations(cadata=ca_pem.decode())
        if cert_pem and key_pem:
            with tempfile.TemporaryDirectory() as tmp:
                c, k = Path(tmp) / "c.pem", Path(tmp) / "k.pem"
                c.write_bytes(cert_pem)
                k.write_bytes(key_pem)
                os.chmod(k, 0o600)
                ctx.load_cert_chain(str(c), str(k))
        self.ctx = ctx

    def request(
        self, method: str, path: str, body: Any = None, content_type: str = "application/json"
    ) -> Any:
        conn = http.client.HTTPSConnection(self.host, self.port, context=self.ctx, timeout=self.timeout)
        headers = {"Accept": "application/json", **self.headers}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = content_type
        try:
            conn.request(method, path, body=data, headers=headers)
            resp = conn.getresponse()
            raw = resp.read()
        except ssl.SSLCertVerificationError as exc:
            raise DoubleError(
                f'Get "{self.server}{path}": tls: failed to verify certificate: {exc.verify_message}'
            ) from None
        except (OSError, http.client.HTTPException) as exc:
            raise DoubleError(f'Get "{self.server}{path}": dial tcp {self.host}:{self.port}: {exc}') from None
        finally:
            conn.close()
        try:
            payload = json.loads(raw) if raw else None
        except json.JSONDecodeError:
            payload = raw.decode(errors="replace")
        if resp.status >= 400:
            msg = payload.get("message") if isinstance(payload, dict) else str(payload)
            raise ApiError(resp.status, f"Error from server ({resp.reason}): {msg}")
        return payload


def wait_healthy(client: ApiClient, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        try:
            client.request("GET", "/healthz")
            return
        except DoubleError as exc:
            last = str(exc)
        time.sleep(0.5)
    raise DoubleError(f"timed out waiting for the API server at {client.server} to be healthy: {last}")


def record_call(argv: list[str], config: Any, rc: int, note: str = "") -> None:
    if not STATE_DIR.is_dir() and not (argv and argv[0] in _RECORD_ALWAYS):
        return
    try:
        STATE_DIR.mkdir(parents=True, exist_ok=True)
        with open(STATE_DIR / "calls.jsonl", "a") as fh:
            fh.write(
                json.dumps({"time": time.time(), "argv": argv, "config": config, "rc": rc, "note": note})
                + "\n"
            )
    except OSError:
        pass


def now_rfc3339() -> str:
    return _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_go_duration(text: str) -> float:
    if text in ("0", ""):
        return 0.0
    if not _DURATION_RE.match(text):
        raise DoubleError(f'invalid duration "{text}"')
    units = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}
    return sum(float(n) * units[u] for n, _, u in re.findall(r"([0-9]+(\.[0-9]+)?)(ns|us|µs|ms|s|m|h)", text))


# ---------------------------------------------------------------------------------------
# Flags (cobra/pflag-like: --name=value, --name value, -x value, bools without value)
# ---------------------------------------------------------------------------------------


def parse_flags(
    argv: list[str], spec: dict[str, str], short: dict[str, str] | None = None, prog: str = "kubeadm"
) -> tuple[dict[str, Any], list[str]]:
    """spec: flag name -> "bool" | "str" | "list". Unknown flags fail like cobra does."""
    short = short or {}
    flags: dict[str, Any] = {}
    pos: list[str] = []
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "--":
            pos.extend(argv[i + 1 :])
            break
        if a.startswith("-") and a != "-":
            if a.startswith("--"):
                name, eq, val = a[2:].partition("=")
            else:
                key, eq, val = a[1:].partition("=")
                if key[:1] in short and len(key) > 1 and not eq:
                    key, val, eq = key[:1], key[1:], "="
                if key not in short:
                    raise DoubleError(f"unknown shorthand flag: '{key}' in {a}")
                name = short[key]
            if name not in spec:
                raise DoubleError(f"unknown flag: --{name}")
            kind = spec[name]
            if kind == "bool":
                if eq:
                    if val not in ("true", "false"):
                        raise DoubleError(f'invalid argument "{val}" for "--{name}" flag: strconv.ParseBool')
                    flags[name] = val == "true"
                else:
                    flags[name] = True
            else:
                if not eq:
                    i += 1
                    if i >= len(argv):
                        raise DoubleError(f"flag needs an argument: --{name}")
                    val = argv[i]
                if kind == "list":
                    flags.setdefault(name, []).extend(v for v in val.split(",") if v)
                else:
                    flags[name] = val
        else:
            pos.append(a)
        i += 1
    return flags, pos


# ---------------------------------------------------------------------------------------
# kubeadm
# ---------------------------------------------------------------------------------------


def _image_tags(version: str) -> tuple[str, str, str]:
    """(pause, etcd, CoreDNS) tags for a version, from the baked release facts (K8S_RELEASES);
    a minor without facts takes those of the double's own minor."""
    _major, minor, patch = _vtuple(version)
    rel = _releases()
    facts = rel.get(str(minor)) or rel[str(_vtuple(DOUBLE_VERSION)[1])]

    def step(steps: list[list[Any]]) -> str:
        tag = str(steps[0][1])
        for first, candidate in steps:
            if patch >= int(first):
                tag = str(candidate)
        return tag

    return step(facts["pause"]), step(facts["etcd"]), step(facts["coredns"])


INIT_PHASES = {
    "preflight",
    "certs",
    "kubeconfig",
    "etcd",
    "control-plane",
    "kubelet-start",
    "wait-control-plane",
    "upload-config",
    "upload-certs",
    "mark-control-plane",
    "bootstrap-token",
    "kubelet-finalize",
    "addon",
    "show-join-command",
}
JOIN_PHASES = {
    "preflight",
    "control-plane-prepare",
    "kubelet-start",
    "control-plane-join",
    "wait-control-plane",
    "kubelet-wait-bootstrap",
    "etcd-join",
    "mark-control-plane",
}
CERT_FILES = (
    "ca.crt",
    "ca.key",
    "sa.key",
    "sa.pub",
    "front-proxy-ca.crt",
    "front-proxy-ca.key",
    "etcd/ca.crt",
    "etcd/ca.key",
)
GLOBAL_KUBEADM_FLAGS = {"v": "str", "rootfs": "str", "help": "bool"}


def image_list(version: str, repo: str | None, cc: dict[str, Any] | None = None) -> list[str]:
    """`kubeadm config images list`: cmd/kubeadm/app/images/images.go GetControlPlaneImages, with
    GetDNSImage (dns.imageRepository overrides imageRepository; registry.k8s.io adds /coredns) and
    GetEtcdImage (etcd.local.imageRepository overrides it) read from the ClusterConfiguration ``cc``."""
    pause, etcd, coredns = _image_tags(version)
    r = repo or "registry.k8s.io"
    cc = cc or {}
    dns_repo = (cc.get("dns") or {}).get("imageRepository") or r
    cdns = f"{dns_repo}/coredns" if dns_repo == "registry.k8s.io" else dns_repo
    etcd_repo = ((cc.get("etcd") or {}).get("local") or {}).get("imageRepository") or r
    v = "v" + version.lstrip("v")
    return [
        f"{r}/kube-apiserver:{v}",
        f"{r}/kube-controller-manager:{v}",
        f"{r}/kube-scheduler:{v}",
        f"{r}/kube-proxy:{v}",
        f"{cdns}/coredns:{coredns}",
        f"{r}/pause:{pause}",
        f"{etcd_repo}/etcd:{etcd}",
    ]


def _load_config_file(path: str) -> tuple[dict[str, dict[str, Any]], list[Any]]:
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise DoubleError(f"unable to read config from {path!r} [{exc.strerror}]") from None
    try:
        docs = yaml_load_all(text)
    except YamlError as exc:
        raise DoubleError(f"error converting YAML to JSON: yaml: {exc}") from None
    return validate_kubeadm_docs(docs, DOUBLE_VERSION), docs


# isAllowedFlag (cmd/kubeadm/app/apis/kubeadm/validation/validation.go, ValidateMixedArguments):
# the only flags --config can be given with, besides every --skip-* flag.
MIX_ALLOWED = {
    "config",
    "ignore-preflight-errors",
    "dry-run",
    "kubeconfig",
    "node-name",
    "kubeconfig-dir",
    "upload-certs",
    "print-join-command",
    "rootfs",
    "v",
    "log-file",
}


def _go_list(items: list[str]) -> str:
    return "[" + " ".join(items) + "]"


def _no_mix(flags: dict[str, Any], allowed: set[str] | None = None) -> None:
    """ValidateMixedArguments: flag.Visit walks set flags in name order, printed as a Go slice."""
    ok = MIX_ALLOWED | (allowed or set()) | {"help"}
    bad = sorted(k for k in flags if k not in ok and not k.startswith("skip-"))
    if bad:
        raise DoubleError(f"can not mix '--config' with arguments {_go_list(bad)}")


def _args_list(value: Any) -> list[tuple[str, str]]:
    """extraArgs: map (v1beta3) or list of {name, value} (v1beta4)."""
    if not value:
        return []
    if isinstance(value, dict):
        return [(str(k), str(v)) for k, v in value.items()]
    return [(str(a["name"]), str(a.get("value", ""))) for a in value]


def _default_ip() -> str:
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("10.255.255.254", 9))  # no packet is sent for UDP connect
            return str(s.getsockname()[0])
    except OSError:
        return "127.0.0.1"


def _hostname() -> str:
    return socket.gethostname().lower()


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("0.0.0.0", port))
            return True
        except OSError:
            return False


def _preflight(ignored: list[str], checks: list[tuple[Any, ...]]) -> None:
    """RunChecks (cmd/kubeadm/app/preflight/checks.go): (name, ok, message[, warning_only]).

    Warnings and ignored errors go to stderr as `[WARNING name]`; errors fail together."""
    ign = {i.lower() for i in ignored}
    errors = []
    for name, ok, msg, *warn in checks:
        if ok:
            continue
        if (warn and warn[0]) or "all" in ign or name.lower() in ign:
            sys.stderr.write(f"\t[WARNING {name}]: {msg}\n")
        else:
            errors.append(f"\t[ERROR {name}]: {msg}")
    if errors:
        raise DoubleError(
            "[preflight] Some fatal errors occurred:\n"
            + "\n".join(errors)
            + "\n[preflight] If you know what you are doing, you can make a check non-fatal with "
            "`--ignore-preflight-errors=...`"
        )


# SystemVerificationCheck's cgroups part (kubernetes/kubernetes cmd/kubeadm/app/preflight/checks.go,
# k8s.io/system-validators validators/cgroup_validator_linux.go). v1.12.1 (commit 4a53f46, PR #61),
# vendored by kubeadm 1.35 (kubernetes/kubernetes PR #134744): on a cgroup v1 host an error when the
# KubeletVersion is >= 1.35.0-0, else a warning, with this text. Before (commit f66cb6a, kubeadm
# 1.32-1.34 as their users' logs show): a warning, the second text.
SYSVER_CGROUP_V1 = (
    "cgroups v1 support is deprecated and will be removed in a future release. "
    "Please migrate to cgroups v2. To explicitly enable cgroups v1 support for kubelet v1.35 or newer, "
    "you must set the kubelet configuration option 'FailCgroupV1' to 'false'. You must also explicitly "
    "skip this validation. For more information, see https://git.k8s.io/enhancements/keps/sig-node/5573-remove-cgroup-v1"
)
SYSVER_CGROUP_V1_MAINTENANCE = "cgroups v1 support is in maintenance mode, please migrate to cgroups v2"


def _cgroups_v2_host() -> tuple[bool, str]:
    """getUnifiedMountpoint: (cgroups v2, error text or ""). /proc/mounts' /sys/fs/cgroup line
    decides (tmpfs: v1 when /sys/fs/cgroup/memory is a directory), else the first cgroup2 mount
    (v2) or cgroup mount (v1)."""
    mounts = host_path("/proc/mounts")
    try:
        lines = mounts.read_text().splitlines()
    except OSError:
        return False, f"cannot get a cgroup mount point: open {mounts}: no such file or directory"
    v1 = False
    for line in lines:
        fields = line.split()
        if "cgroup" not in line or len(fields) < 3:
            continue
        if fields[1] == "/sys/fs/cgroup":
            if fields[2] == "tmpfs":
                return not host_path("/sys/fs/cgroup/memory").is_dir(), ""
            return fields[2] == "cgroup2", ""
        if fields[2] == "cgroup2":
            return True, ""
        v1 = v1 or fields[2] == "cgroup"
    if v1:
        return False, ""
    return False, f'cannot get a cgroup mount point: cannot get a cgroupfs mount point from "{mounts}"'


def _installed_kubelet_version() -> str:
    """The node's ``kubelet --version`` (GetKubeletVersion, checks.go), "" when it gives none."""
    if shutil.which("kubelet") is None:
        return ""
    try:
        out = subprocess.run(["kubelet", "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return ""
    m = re.search(r"v(\d+\.\d+\.\d+)", out)
    return m.group(1) if m else ""


def system_verification_checks(kubeadm_version: str, kubelet_version: str) -> list[tuple[Any, ...]]:
    """The cgroups validator's answer as preflight checks (name, ok, message[, warning_only]);
    init and join pass the installed kubelet's version. Prints the header kubeadm prints when the
    check returns errors (the validators' report lines are not reproduced)."""
    if _vtuple(kubeadm_version)[:2] < (1, 32):
        return []
    v2, err = _cgroups_v2_host()
    if v2 and not err:
        return []
    if not err and _vtuple(kubeadm_version)[:2] < (1, 35):
        return [("SystemVerification", False, SYSVER_CGROUP_V1_MAINTENANCE, True)]
    fails = bool(err) or (bool(kubelet_version) and _vtuple(kubelet_version)[:2] >= (1, 35))
    if fails:
        print("[preflight] The system verification failed. Printing the output from the verification:")
    return [("SystemVerification", False, err or SYSVER_CGROUP_V1, not fails)]


def upgrade_kubelet_version(installed: str) -> str:
    """The KubeletVersion `kubeadm upgrade` gives the cgroups validator: the installed kubelet's with
    MINOR+1, "for the target upgrade version" (kubernetes/kubernetes PR #134744); "" when unknown."""
    if not installed:
        return ""
    major, minor = _vtuple(installed)[:2]
    return f"{major}.{minor + 1}.0"


def run_upgrade_checks(ignored: list[str]) -> None:
    """RunUpgradeChecks (cmd/kubeadm/app/preflight/checks.go): SystemVerificationCheck alone, run by
    `upgrade apply` (phases/upgrade/apply/preflight.go) and `upgrade node`
    (phases/upgrade/node/preflight.go) right after the root check, before anything else."""
    kubelet = upgrade_kubelet_version(_installed_kubelet_version())
    _preflight(ignored, system_verification_checks(DOUBLE_VERSION, kubelet))


def _cri_path(cri: str) -> str:
    return cri[len("unix://") :] if cri.startswith("unix://") else cri


def _common_checks(cri: str, version: str, k8s_version: str = "") -> list[tuple[Any, ...]]:
    """addCommonChecks + the IPv4 check (checks.go): CRI, swap, executables, ip_forward.

    version: what decides version-dependent checks (kubeadm's); k8s_version: the Kubernetes
    version being set up (init) or "" (join), as kubeadm passes it to addExecChecks."""

    def read(p: str) -> str:
        try:
            return Path(p).read_text().strip()
        except OSError:
            return ""

    checks = [
        (
            "FileContent--proc-sys-net-ipv4-ip_forward",
            read("/proc/sys/net/ipv4/ip_forward") == "1",
            "/proc/sys/net/ipv4/ip_forward contents are not set to 1",
        ),
        (
            "CRI",
            Path(_cri_path(cri)).is_socket(),
            f"container runtime is not running: validate service connection: dial unix {_cri_path(cri)}: "
            "connect: no such file or directory",
        ),
        (
            "Swap",
            len(read("/proc/swaps").splitlines()) <= 1,
            "swap is supported for cgroup v2 only. The kubelet must be properly configured to use swap. "
            "Please refer to https://kubernetes.io/docs/concepts/architecture/nodes/#swap-memory, "
            "or disable swap on the node",
            True,  # SwapCheck returns a warning; the kubelet refuses swap (failSwapOn)
        ),
    ]
    if _vtuple(version)[:2] < (1, 30):
        checks.append(
            (
                "FileContent--proc-sys-net-bridge-bridge-nf-call-iptables",
                read("/proc/sys/net/bridge/bridge-nf-call-iptables") == "1",
                "/proc/sys/net/bridge/bridge-nf-call-iptables contents are not set to 1",
            )
        )
    checks += system_verification_checks(DOUBLE_VERSION, _installed_kubelet_version())
    return [*checks, *exec_checks(DOUBLE_VERSION, k8s_version)]


# ---------------------------------------------------------------------------------------
# Node tools: executables kubeadm needs (InPathCheck), containerd's effective CRI config and
# the images of its k8s.io namespace (read and pulled with the node's real crictl or ctr)
# ---------------------------------------------------------------------------------------

# Tests on a host point these at a private directory (never the host's /etc or /opt).
ROOTFS = os.environ.get("KORAL_DOUBLE_ROOTFS", "")
CONTAINERD_CONFIG = os.environ.get("KORAL_DOUBLE_CONTAINERD_CONFIG", "/etc/containerd/config.toml")
CRI_NAMESPACE = "k8s.io"


def host_path(path: str) -> Path:
    """A node path, under KORAL_DOUBLE_ROOTFS when tests run the double on a host."""
    return Path(ROOTFS + path) if ROOTFS else Path(path)


def exec_checks(kubeadm_version: str, k8s_version: str) -> list[tuple[str, bool, str, bool]]:
    """InPathCheck list of kubeadm's addExecChecks (cmd/kubeadm/app/preflight/checks_linux.go).

    Returns (name, ok, message, warning_only). kubeadm < 1.31 shells out to crictl (mandatory);
    1.31 talks CRI itself and only warns (kubernetes/kubeadm#3064); 1.32 drops the check.
    conntrack is mandatory before 1.32; from 1.32 only when the Kubernetes version being set up
    parses and is older than 1.32 (init; join passes "" so it is never checked there).
    """
    kv = _vtuple(kubeadm_version)[:2]
    tools: list[tuple[str, bool]] = []
    if kv < (1, 31):
        tools.append(("crictl", True))
    elif kv == (1, 31):
        tools.append(("crictl", False))
    old_k8s = bool(re.match(r"^v?\d+\.\d+\.\d+", k8s_version)) and _vtuple(k8s_version)[:2] < (1, 32)
    if kv < (1, 32) or old_k8s:
        tools.append(("conntrack", True))
    tools += [("ip", True), ("iptables", True), ("mount", True), ("nsenter", True)]
    tools += [(t, False) for t in ("ebtables", "ethtool", "socat", "tc", "touch")]
    return [
        (f"FileExisting-{exe}", shutil.which(exe) is not None, f"{exe} not found in system path", not must)
        for exe, must in tools
    ]


class CriConfig:
    """What containerd's CRI plugin uses: sandbox image, CNI dirs, registry hosts dir.

    Read from the effective configuration (`containerd config dump`: defaults merged) or, when
    no containerd binary exists, from the file. v2: plugins."io.containerd.grpc.v1.cri"
    (sandbox_image, cni.bin_dir, cni.conf_dir, registry.config_path); v3 (containerd 2.x):
    plugins."io.containerd.cri.v1.images".pinned_images.sandbox and .registry.config_path,
    plugins."io.containerd.cri.v1.runtime".cni.bin_dirs (2.1) / bin_dir (2.0), conf_dir.
    Sources: containerd/containerd docs/cri/config.md, pkg/cri/config/config_unix.go.
    """

    def __init__(self, cfg: dict[str, Any]) -> None:
        plugins = cfg.get("plugins") or {}
        version = int(cfg.get("version") or 1)
        if version >= 3:
            images = plugins.get("io.containerd.cri.v1.images") or {}
            cni = (plugins.get("io.containerd.cri.v1.runtime") or {}).get("cni") or {}
            pinned = images.get("pinned_images") or {}
            self.sandbox_image = str(pinned.get("sandbox") or "registry.k8s.io/pause:3.10")
            dirs = cni.get("bin_dirs") or ([cni["bin_dir"]] if cni.get("bin_dir") else [])
            self.config_path = str((images.get("registry") or {}).get("config_path") or "")
        else:
            cri = plugins.get("io.containerd.grpc.v1.cri") or plugins.get("cri") or {}
            cni = cri.get("cni") or {}
            self.sandbox_image = str(cri.get("sandbox_image") or "registry.k8s.io/pause:3.8")
            dirs = [cni["bin_dir"]] if cni.get("bin_dir") else []
            self.config_path = str((cri.get("registry") or {}).get("config_path") or "")
        self.cni_bin_dirs = [str(d) for d in dirs] or ["/opt/cni/bin"]
        self.cni_conf_dir = str(cni.get("conf_dir") or "/etc/cni/net.d")
        runtime = plugins.get("io.containerd.cri.v1.runtime" if version >= 3 else "io.containerd.grpc.v1.cri")
        self.cgroup_driver = _runtime_handlers_cgroup_driver(((runtime or {}).get("containerd")) or {})


def _runtime_handlers_cgroup_driver(ctrd: dict[str, Any]) -> str | None:
    """containerd 2.x's answer to the CRI RuntimeConfig call (internal/cri/server/
    runtime_config_linux.go getCgroupDriver): the runtime handlers, the default one first and the
    others by name; the first runc handler gives "systemd" when its options.SystemdCgroup is true,
    else "cgroupfs". None: no runc handler (containerd then auto-detects: systemd when systemd
    runs)."""
    runtimes = ctrd.get("runtimes") or {}
    default = str(ctrd.get("default_runtime_name") or "runc")
    for name in sorted(runtimes, key=lambda n: (n != default, n)):
        handler = runtimes[name] or {}
        if handler.get("runtime_type", "io.containerd.runc.v2") != "io.containerd.runc.v2":
            continue
        return "systemd" if (handler.get("options") or {}).get("SystemdCgroup") else "cgroupfs"
    return None


def containerd_config() -> CriConfig:
    text = ""
    exe = shutil.which("containerd")
    if exe:
        with contextlib.suppress(OSError, subprocess.TimeoutExpired):
            proc = subprocess.run(
                [exe, "--config", str(host_path(CONTAINERD_CONFIG)), "config", "dump"],
                capture_output=True, text=True, timeout=30, check=False,
            )  # fmt: skip
            if proc.returncode == 0:
                text = proc.stdout
    if not text:
        with contextlib.suppress(OSError):
            text = host_path(CONTAINERD_CONFIG).read_text()
    try:
        import tomllib

        return CriConfig(tomllib.loads(text))
    except (ImportError, ValueError):
        return CriConfig({})


def normalize_image(ref: str) -> str:
    """The docker.io/library/x:latest form containerd's CRI stores (reference.ParseNormalizedNamed)."""
    name, digest = [*ref.split("@", 1), ""][:2]
    first = name.split("/", 1)[0]
    if "/" not in name or not ("." in first or ":" in first or first == "localhost"):
        name = "docker.io/" + (name if "/" in name else "library/" + name)
    if not digest and ":" not in name.rsplit("/", 1)[-1]:
        name += ":latest"
    return name + ("@" + digest if digest else "")


class ImageStore:
    """Images in containerd's k8s.io namespace, through the node's real clients.

    `crictl inspecti` / `crictl pull` talk CRI (a pull honours the CRI registry config, hosts.toml
    included) — used when crictl answers like the real one. Otherwise `ctr -n k8s.io images ls -q`
    and `ctr -n k8s.io images pull --hosts-dir <registry config_path>` (same registry hosts).
    """

    def __init__(self, cri_socket: str, cri: CriConfig, pull_timeout: float = 300.0) -> None:
        self.sock = _cri_path(cri_socket)
        self.cri = cri
        self.pull_timeout = pull_timeout
        self._crictl: bool | None = None
        self._names: set[str] | None = None

    def _run(self, argv: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
        try:
            return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            return subprocess.CompletedProcess(argv, 124, "", f"{argv[0]}: timed out after {timeout:.0f}s")
        except OSError as exc:
            return subprocess.CompletedProcess(argv, 127, "", f"{argv[0]}: {exc.strerror}")

    def _crictl_argv(self, *args: str) -> list[str]:
        ep = f"unix://{self.sock}"
        return ["crictl", "--runtime-endpoint", ep, "--image-endpoint", ep, *args]

    def _inspect_crictl(self, image: str) -> bool | None:
        """True/False when crictl answered like the real one, None when it did not."""
        if self._crictl is False or shutil.which("crictl") is None:
            return None
        proc = self._run(self._crictl_argv("inspecti", "-o", "json", image), 30)
        if proc.returncode == 0:
            try:
                ok = isinstance(json.loads(proc.stdout).get("status"), dict)
            except (ValueError, AttributeError):
                ok = False
            if ok:
                self._crictl = True
                return True
        elif "no such image" in (proc.stdout + proc.stderr).lower():
            self._crictl = True
            return False
        self._crictl = False
        return None

    def _ctr_names(self) -> set[str]:
        if self._names is None:
            proc = self._run(["ctr", "--address", self.sock, "-n", CRI_NAMESPACE, "images", "ls", "-q"], 30)
            self._names = set(proc.stdout.split()) if proc.returncode == 0 else set()
        return self._names

    def exists(self, image: str) -> bool:
        found = self._inspect_crictl(image)
        if found is not None:
            return found
        return normalize_image(image) in self._ctr_names()

    def pull(self, image: str) -> str | None:
        """None when the image is now present, else the client's error (last line)."""
        if self._crictl:
            proc = self._run(self._crictl_argv("pull", image), self.pull_timeout)
        else:
            argv = ["ctr", "--address", self.sock, "-n", CRI_NAMESPACE, "images", "pull"]
            if self.cri.config_path:
                argv += ["--hosts-dir", self.cri.config_path]
            proc = self._run([*argv, normalize_image(image)], self.pull_timeout)
            self._names = None
        if proc.returncode == 0:
            return None
        lines = [ln.strip() for ln in (proc.stderr or proc.stdout).splitlines() if ln.strip()]
        return re.sub(r"^(ctr|crictl): ", "", lines[-1] if lines else f"exit status {proc.returncode}")

    def ensure(self, image: str) -> str | None:
        """IfNotPresent: present, or pulled now; else containerd's error for the pull
        (`failed to pull and unpack image "<ref>": <cause>`, internal/cri/server/images/image_pull.go)."""
        if self.exists(image):
            return None
        err = self.pull(image)
        if err is None:
            return None
        return f'failed to pull and unpack image "{normalize_image(image)}": {err}'


def image_pull_check(images: list[str], cri_socket: str, kubeadm_version: str) -> list[tuple[str, bool, str]]:
    """kubeadm's ImagePullCheck with the default policy IfNotPresent and serial pulls
    (cmd/kubeadm/app/preflight/checks.go, cmd/kubeadm/app/util/runtime/runtime.go).

    Each missing image that cannot be pulled is one error of the check named ImagePull. From 1.31
    kubeadm pulls through the CRI client (runtime.PullImage wraps "failed to pull image X" and the
    check wraps it again); before, it shells out to crictl ("output: ..., error: exit status 1").
    """
    store = ImageStore(cri_socket, containerd_config())
    out = []
    for image in images:
        err = store.ensure(image)
        if err is None:
            continue
        err = f"rpc error: code = Unknown desc = {err}"
        if _vtuple(kubeadm_version)[:2] >= (1, 31):
            msg = f"failed to pull image {image}: failed to pull image {image}: {err}"
        else:
            msg = f"failed to pull image {image}: output: {err}, error: exit status 1"
        out.append(("ImagePull", False, msg))
    return out


def _pull_images_check(ignored: list[str], images: list[str], cri_socket: str, prefix: str) -> None:
    print(f"[{prefix}] Pulling images required for setting up a Kubernetes cluster")
    print(f"[{prefix}] This might take a minute or two, depending on the speed of your internet connection")
    print(f"[{prefix}] You can also perform this action beforehand using 'kubeadm config images pull'")
    _preflight(ignored, image_pull_check(images, cri_socket, DOUBLE_VERSION))


def _control_plane_checks(port: int, etcd_dir: str | None) -> list[tuple[Any, ...]]:
    """InitNodeChecks (checks.go): API server, scheduler and controller-manager ports, the four
    static pod manifests, and for a local etcd its client/peer ports and an empty data dir."""
    checks: list[tuple[Any, ...]] = [
        (f"Port-{n}", _port_free(n), f"Port {n} is in use") for n in (port, 10259, 10257)
    ]
    for name in ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "etcd"):
        f = K8S_DIR / "manifests" / f"{name}.yaml"
        checks.append(
            (f"FileAvailable--etc-kubernetes-manifests-{name}.yaml", not f.exists(), f"{f} already exists")
        )
    if etcd_dir is not None:
        checks += [(f"Port-{n}", _port_free(n), f"Port {n} is in use") for n in (2379, 2380)]
        checks.append(
            (
                "DirAvailable-" + etcd_dir.replace("/", "-"),
                not Path(etcd_dir).is_dir() or not any(Path(etcd_dir).iterdir()),
                f"{etcd_dir} is not empty",
            )
        )
    return checks


def _node_state() -> dict[str, Any]:
    try:
        return dict(json.loads((STATE_DIR / "node.json").read_text()))
    except (OSError, ValueError):
        return {}


def _save_node_state(data: dict[str, Any]) -> None:
    _write(STATE_DIR / "node.json", json.dumps(data, indent=1), 0o600)


def _static_pod(name: str, image: str, command: list[str], tier: str = "control-plane") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"labels": {"component": name, "tier": tier}, "name": name, "namespace": "kube-system"},
        "spec": {
            "containers": [
                {"command": command, "image": image, "imagePullPolicy": "IfNotPresent", "name": name}
            ],
            "hostNetwork": True,
            "priorityClassName": "system-node-critical",
        },
    }


class ClusterParams:
    """What init / join --control-plane need from the merged configuration."""

    def __init__(self, cc: dict[str, Any], local: dict[str, Any], nr: dict[str, Any]) -> None:
        net = cc.get("networking") or {}
        self.version = str(cc.get("kubernetesVersion") or DOUBLE_VERSION).lstrip("v")
        self.cluster_name = cc.get("clusterName") or "kubernetes"
        self.pod_subnet = net.get("podSubnet") or ""
        self.service_subnet = net.get("serviceSubnet") or "10.96.0.0/12"
        self.dns_domain = net.get("dnsDomain") or "cluster.local"
        self.repo = cc.get("imageRepository") or "registry.k8s.io"
        self.images = image_list(self.version, self.repo, cc)
        self.pki = Path(cc.get("certificatesDir") or K8S_DIR / "pki")
        self.advertise = local.get("advertiseAddress") or _default_ip()
        self.port = int(local.get("bindPort") or 6443)
        self.cpe = cc.get("controlPlaneEndpoint") or ""
        self.cert_sans = [str(s) for s in ((cc.get("apiServer") or {}).get("certSANs") or [])]
        self.node_name = nr.get("name") or _hostname()
        self.cri = nr.get("criSocket") or DEFAULT_CRI
        self.api_args = _args_list((cc.get("apiServer") or {}).get("extraArgs"))
        self.kubelet_args = _args_list(nr.get("kubeletExtraArgs"))
        self.taints = nr.get("taints")
        etcd = cc.get("etcd") or {}
        self.external_etcd = etcd.get("external")
        self.etcd_dir = ((etcd.get("local") or {}).get("dataDir")) or str(ETCD_DIR)

    @property
    def endpoint(self) -> str:
        if not self.cpe:
            return f"{self.advertise}:{self.port}"
        return self.cpe if re.search(r":\d+$", self.cpe) else f"{self.cpe}:{self.port}"

    @property
    def server(self) -> str:
        return f"https://{self.endpoint}"

    def api_sans(self) -> list[str]:
        svc_ip = str(next(ipaddress.ip_network(self.service_subnet.split(",")[0].strip()).hosts()))
        host = re.sub(r":\d+$", "", self.endpoint).strip("[]")
        sans = [
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            f"kubernetes.default.svc.{self.dns_domain}",
            self.node_name,
            svc_ip,
            self.advertise,
            host,
            *self.cert_sans,
        ]
        return list(dict.fromkeys(sans))


def _write_certs(p: ClusterParams, with_cas: bool) -> None:
    pki = p.pki
    if with_cas:
        make_ca(pki, "ca", "kubernetes")
        make_ca(pki, "front-proxy-ca", "front-proxy-ca")
        make_ca(pki, "etcd/ca", "etcd-ca")
        if not (pki / "sa.key").exists():
            _write(
                pki / "sa.key",
                _openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"),
                0o600,
            )
            _write(pki / "sa.pub", _openssl("pkey", "-pubout", "-in", str(pki / "sa.key")))
    make_cert(pki, "ca", "apiserver", "kube-apiserver", "server", sans=p.api_sans())
    make_cert(
        pki,
        "ca",
        "apiserver-kubelet-client",
        "kube-apiserver-kubelet-client",
        "client",
        ("kubeadm:cluster-admins",) if _vtuple(p.version)[:2] >= (1, 29) else ("system:masters",),
    )
    make_cert(pki, "front-proxy-ca", "front-proxy-client", "front-proxy-client", "client")
    if not p.external_etcd:
        etcd_sans = [p.node_name, "localhost", p.advertise, "127.0.0.1", "::1"]
        make_cert(pki, "etcd/ca", "etcd/server", p.node_name, "both", sans=etcd_sans)
        make_cert(pki, "etcd/ca", "etcd/peer", p.node_name, "both", sans=etcd_sans)
        make_cert(pki, "etcd/ca", "etcd/healthcheck-client", "kube-etcd-healthcheck-client", "client")
        make_cert(pki, "etcd/ca", "apiserver-etcd-client", "kube-apiserver-etcd-client", "client")


def _client_kubeconfig(
    p: ClusterParams, path: Path, user: str, cn: str, orgs: tuple[str, ...], server: str
) -> None:
    if path.exists():
        return
    key, csr = make_key_and_csr(cn, orgs)
    cert = sign_csr(p.pki / "ca", csr, "client")
    doc = kubeconfig_doc(p.cluster_name, server, (p.pki / "ca.crt").read_bytes(), user, cert, key)
    _write(path, yaml_dump(doc), 0o600)


def _write_kubeconfigs(p: ClusterParams, init: bool) -> None:
    v129 = _vtuple(p.version)[:2] >= (1, 29)
    admin_group = "kubeadm:cluster-admins" if v129 else "system:masters"
    _client_kubeconfig(
        p, K8S_DIR / "admin.conf", "kubernetes-admin", "kubernetes-admin", (admin_group,), p.server
    )
    if init and v129:
        _client_kubeconfig(
            p,
            K8S_DIR / "super-admin.conf",
            "kubernetes-super-admin",
            "kubernetes-super-admin",
            ("system:masters",),
            p.server,
        )
    local = f"https://{p.advertise}:{p.port}"
    _client_kubeconfig(
        p,
        K8S_DIR / "controller-manager.conf",
        "system:kube-controller-manager",
        "system:kube-controller-manager",
        (),
        local,
    )
    _client_kubeconfig(
        p, K8S_DIR / "scheduler.conf", "system:kube-scheduler", "system:kube-scheduler", (), local
    )
    _client_kubeconfig(
        p,
        K8S_DIR / "kubelet.conf",
        f"system:node:{p.node_name}",
        f"system:node:{p.node_name}",
        ("system:nodes",),
        p.server,
    )


def _write_manifests(p: ClusterParams, initial_cluster: str, cluster_state: str) -> None:
    man = K8S_DIR / "manifests"
    man.mkdir(parents=True, exist_ok=True)
    v = "v" + p.version
    pki = str(p.pki)
    if not p.external_etcd:
        _pause, etcd_tag, _cdns = _image_tags(p.version)
        etcd_cmd = [
            "etcd",
            f"--advertise-client-urls=https://{p.advertise}:2379",
            f"--cert-file={pki}/etcd/server.crt",
            "--client-cert-auth=true",
            f"--data-dir={p.etcd_dir}",
            f"--initial-advertise-peer-urls=https://{p.advertise}:2380",
            f"--initial-cluster={initial_cluster}",
            f"--initial-cluster-state={cluster_state}",
            f"--key-file={pki}/etcd/server.key",
            f"--listen-client-urls=https://127.0.0.1:2379,https://{p.advertise}:2379",
            "--listen-metrics-urls=http://127.0.0.1:2381",
            f"--listen-peer-urls=https://{p.advertise}:2380",
            f"--name={p.node_name}",
            f"--peer-cert-file={pki}/etcd/peer.crt",
            "--peer-client-cert-auth=true",
            f"--peer-key-file={pki}/etcd/peer.key",
            f"--peer-trusted-ca-file={pki}/etcd/ca.crt",
            "--snapshot-count=10000",
            f"--trusted-ca-file={pki}/etcd/ca.crt",
        ]
        _write(
            man / "etcd.yaml", yaml_dump(_static_pod("etcd", f"{p.repo}/etcd:{etcd_tag}", etcd_cmd)), 0o600
        )
    api_cmd = [
        "kube-apiserver",
        f"--advertise-address={p.advertise}",
        "--allow-privileged=true",
        "--authorization-mode=Node,RBAC",
        f"--client-ca-file={pki}/ca.crt",
        "--enable-admission-plugins=NodeRestriction",
        "--enable-bootstrap-token-auth=true",
        f"--etcd-cafile={pki}/etcd/ca.crt",
        f"--etcd-certfile={pki}/apiserver-etcd-client.crt",
        f"--etcd-keyfile={pki}/apiserver-etcd-client.key",
        "--etcd-servers=https://127.0.0.1:2379",
        f"--kubelet-client-certificate={pki}/apiserver-kubelet-client.crt",
        f"--kubelet-client-key={pki}/apiserver-kubelet-client.key",
        f"--proxy-client-cert-file={pki}/front-proxy-client.crt",
        f"--proxy-client-key-file={pki}/front-proxy-client.key",
        f"--requestheader-client-ca-file={pki}/front-proxy-ca.crt",
        f"--secure-port={p.port}",
        f"--service-account-key-file={pki}/sa.pub",
        f"--service-account-signing-key-file={pki}/sa.key",
        f"--service-cluster-ip-range={p.service_subnet}",
        f"--tls-cert-file={pki}/apiserver.crt",
        f"--tls-private-key-file={pki}/apiserver.key",
    ]
    api_cmd += [f"--{k}={val}" for k, val in p.api_args]
    _write(
        man / "kube-apiserver.yaml",
        yaml_dump(_static_pod("kube-apiserver", f"{p.repo}/kube-apiserver:{v}", api_cmd)),
        0o600,
    )
    cm_cmd = [
        "kube-controller-manager",
        "--kubeconfig=/etc/kubernetes/controller-manager.conf",
        f"--cluster-signing-cert-file={pki}/ca.crt",
        f"--cluster-signing-key-file={pki}/ca.key",
        "--leader-elect=true",
        f"--service-cluster-ip-range={p.service_subnet}",
    ]
    if p.pod_subnet:
        cm_cmd += ["--allocate-node-cidrs=true", f"--cluster-cidr={p.pod_subnet}"]
    _write(
        man / "kube-controller-manager.yaml",
        yaml_dump(_static_pod("kube-controller-manager", f"{p.repo}/kube-controller-manager:{v}", cm_cmd)),
        0o600,
    )
    sch_cmd = ["kube-scheduler", "--kubeconfig=/etc/kubernetes/scheduler.conf", "--leader-elect=true"]
    _write(
        man / "kube-scheduler.yaml",
        yaml_dump(_static_pod("kube-scheduler", f"{p.repo}/kube-scheduler:{v}", sch_cmd)),
        0o600,
    )


def _kubelet_config(kc_doc: dict[str, Any] | None, p: ClusterParams) -> dict[str, Any]:
    svc = ipaddress.ip_network(p.service_subnet.split(",")[0].strip())
    base: dict[str, Any] = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(p.pki / "ca.crt")},
        },
        "authorization": {"mode": "Webhook"},
        "cgroupDriver": "systemd",
        "clusterDNS": [str(svc.network_address + 10)],
        "clusterDomain": p.dns_domain,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": 10248,
        "rotateCertificates": True,
        "staticPodPath": str(K8S_DIR / "manifests"),
    }
    for k, v in (kc_doc or {}).items():
        if k not in ("apiVersion", "kind"):
            base[k] = v
    return base


def _kubelet_start(
    kubelet_cfg: dict[str, Any], cri: str, node_ip: str, node_name: str, extra: list[tuple[str, str]]
) -> None:
    _write(KUBELET_DIR / "config.yaml", yaml_dump(kubelet_cfg))
    args = [f"--container-runtime-endpoint={cri}"]
    if node_name != _hostname():
        args.append(f"--hostname-override={node_name}")
    args += [f"--{k}={v}" for k, v in extra]
    if not any(k == "node-ip" for k, _ in extra):
        args.append(f"--node-ip={node_ip}")
    _write(KUBELET_DIR / "kubeadm-flags.env", f'KUBELET_KUBEADM_ARGS="{" ".join(args)}"\n')
    print('[kubelet-start] Writing kubelet configuration to file "/var/lib/kubelet/config.yaml"')
    print("[kubelet-start] Starting the kubelet")
    if _systemd_running():
        subprocess.run(["systemctl", "restart", "kubelet"], check=False)


def _systemd_running() -> bool:
    return Path("/run/systemd/system").is_dir() and shutil.which("systemctl") is not None


def _wait_kubelet(timeout: float, port: int = 10248) -> None:
    deadline = time.monotonic() + timeout
    print("[kubelet-check] Waiting for a healthy kubelet at http://127.0.0.1:10248/healthz")
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.5)
    raise DoubleError(
        "[kubelet-check] The kubelet is not healthy after "
        f"{int(timeout)}s: systemctl status kubelet / journalctl -xeu kubelet"
    )


def _timeout(doc: dict[str, Any], name: str, default: float) -> float:
    t = (doc.get("timeouts") or {}).get(name)
    return parse_go_duration(t) if t else default


def _new_token() -> str:
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    return (
        "".join(secrets.choice(alphabet) for _ in range(6))
        + "."
        + "".join(secrets.choice(alphabet) for _ in range(16))
    )


def token_secret(
    token: str,
    ttl: str = "24h",
    description: str = "",
    usages: list[str] | None = None,
    groups: list[str] | None = None,
) -> dict[str, Any]:
    tid, tsec = token.split(".")
    data = {"token-id": tid, "token-secret": tsec}
    seconds = parse_go_duration(ttl)
    if seconds > 0:
        exp = _dt.datetime.now(_dt.UTC) + _dt.timedelta(seconds=seconds)
        data["expiration"] = exp.strftime("%Y-%m-%dT%H:%M:%SZ")
    if description:
        data["description"] = description
    for u in usages or ["signing", "authentication"]:
        data[f"usage-bootstrap-{u}"] = "true"
    data["auth-extra-groups"] = ",".join(groups or ["system:bootstrappers:kubeadm:default-node-token"])
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "bootstrap.kubernetes.io/token",
        "metadata": {"name": f"bootstrap-token-{tid}", "namespace": "kube-system"},
        "stringData": data,
    }


def _admin_client(kubeconfig: str | None = None) -> tuple[Kubeconfig, ApiClient]:
    kc = Kubeconfig(Path(kubeconfig or K8S_DIR / "admin.conf"))
    return kc, kc.client()


def _join_command(kc: Kubeconfig, token: str, cert_key: str | None) -> str:
    assert kc.ca_pem is not None
    ep = urlparse(kc.server).netloc
    cmd = f"kubeadm join {ep} --token {token} --discovery-token-ca-cert-hash {ca_cert_hash(kc.ca_pem)} "
    if cert_key:
        cmd += f"--control-plane --certificate-key {cert_key}"
    return cmd


def _upload_certs(client: ApiClient, pki: Path, key: str) -> None:
    data = {}
    for name in CERT_FILES:
        f = pki / name
        if f.exists():
            data[name.replace("/", "-")] = encrypt_blob(key, f.read_bytes())
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "kubeadm-certs", "namespace": "kube-system"},
        "type": "Opaque",
        "stringData": data,
    }
    create_or_update(client, "/api/v1/namespaces/kube-system/secrets", secret)
    print('[upload-certs] Storing the certificates in Secret "kubeadm-certs" in the "kube-system" Namespace')


def _wait_node(client: ApiClient, name: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            return dict(client.request("GET", f"/api/v1/nodes/{name}"))
        except DoubleError:
            time.sleep(0.5)
    raise DoubleError(f'timed out waiting for the node "{name}" to register with the API server')


def _mark_control_plane(client: ApiClient, name: str, taints: Any) -> None:
    if taints is None:
        taints = [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]
    client.request(
        "PATCH",
        f"/api/v1/nodes/{name}",
        {
            "metadata": {
                "labels": {
                    "node-role.kubernetes.io/control-plane": "",
                    "node.kubernetes.io/exclude-from-external-load-balancers": "",
                }
            },
            "spec": {"taints": taints},
        },
        "application/merge-patch+json",
    )
    print(f"[mark-control-plane] Marking the node {name} as control-plane")


INIT_FLAGS = {
    **GLOBAL_KUBEADM_FLAGS,
    "config": "str",
    "upload-certs": "bool",
    "skip-phases": "list",
    "certificate-key": "str",
    "ignore-preflight-errors": "list",
    "dry-run": "bool",
    "skip-token-print": "bool",
    "skip-certificate-key-print": "bool",
    "patches": "str",
    "apiserver-advertise-address": "str",
    "apiserver-bind-port": "str",
    "apiserver-cert-extra-sans": "list",
    "cert-dir": "str",
    "control-plane-endpoint": "str",
    "cri-socket": "str",
    "feature-gates": "str",
    "image-repository": "str",
    "kubernetes-version": "str",
    "node-name": "str",
    "pod-network-cidr": "str",
    "service-cidr": "str",
    "service-dns-domain": "str",
    "token": "str",
    "token-ttl": "str",
}


def cmd_init(argv: list[str], rec: dict[str, Any]) -> int:
    flags, pos = parse_flags(argv, INIT_FLAGS)
    if pos:
        raise DoubleError(f'unknown command "{pos[0]}" for "kubeadm init"')
    by_kind: dict[str, dict[str, Any]] = {}
    if "config" in flags:
        _no_mix(flags)
        by_kind, docs = _load_config_file(flags["config"])
        rec["config"] = docs
        if "JoinConfiguration" in by_kind:
            raise DoubleError("kubeadm init: the config file must not contain a JoinConfiguration")
    else:
        by_kind = {
            "ClusterConfiguration": {
                k: v
                for k, v in {
                    "kubernetesVersion": flags.get("kubernetes-version"),
                    "controlPlaneEndpoint": flags.get("control-plane-endpoint"),
                    "imageRepository": flags.get("image-repository"),
                    "networking": {
                        k2: v2
                        for k2, v2 in {
                            "podSubnet": flags.get("pod-network-cidr"),
                            "serviceSubnet": flags.get("service-cidr"),
                        }.items()
                        if v2
                    },
                    "apiServer": {"certSANs": flags["apiserver-cert-extra-sans"]}
                    if flags.get("apiserver-cert-extra-sans")
                    else None,
                }.items()
                if v
            },
            "InitConfiguration": {
                "localAPIEndpoint": {
                    "advertiseAddress": flags.get("apiserver-advertise-address") or _default_ip()
                },
                "nodeRegistration": {
                    k: v
                    for k, v in {"name": flags.get("node-name"), "criSocket": flags.get("cri-socket")}.items()
                    if v
                },
            },
        }
        _semantic_checks(by_kind, DOUBLE_VERSION)
    ic = by_kind.get("InitConfiguration", {})
    cc = by_kind.get("ClusterConfiguration", {})
    kc_doc = by_kind.get("KubeletConfiguration")
    nr = ic.get("nodeRegistration") or {}
    p = ClusterParams(cc, ic.get("localAPIEndpoint") or {}, nr)
    skip = set(flags.get("skip-phases") or ic.get("skipPhases") or [])
    for ph in skip:
        if ph.split("/")[0] not in INIT_PHASES:
            raise DoubleError(f'phase "{ph}" does not exist')
    ignored = list(flags.get("ignore-preflight-errors") or []) + list(nr.get("ignorePreflightErrors") or [])
    print(f"[init] Using Kubernetes version: v{p.version}")
    if "preflight" not in skip:
        print("[preflight] Running pre-flight checks")
        checks = [
            *_common_checks(p.cri, p.version, p.version),
            ("Port-10250", _port_free(10250), "Port 10250 is in use"),
            *_control_plane_checks(p.port, None if p.external_etcd is not None else p.etcd_dir),
            (
                "FileAvailable--etc-kubernetes-kubelet.conf",
                not (K8S_DIR / "kubelet.conf").exists(),
                f"{K8S_DIR}/kubelet.conf already exists",
            ),
        ]
        _preflight(ignored, checks)
        _pull_images_check(ignored, image_list(p.version, cc.get("imageRepository"), cc), p.cri, "preflight")
    if flags.get("dry-run") or ic.get("dryRun"):
        print("[dryrun] Would perform init; exiting")
        return 0
    _save_node_state(
        {
            "role": "control-plane",
            "primary_server": None,
            "node_name": p.node_name,
            "advertise": f"{p.advertise}:{p.port}",
            "version": p.version,
        }
    )
    print(f'[certs] Using certificateDir folder "{p.pki}"')
    _write_certs(p, with_cas=True)
    print(f'[kubeconfig] Using kubeconfig folder "{K8S_DIR}"')
    _write_kubeconfigs(p, init=True)
    print(f'[control-plane] Using manifest folder "{K8S_DIR}/manifests"')
    _write_manifests(p, f"{p.node_name}=https://{p.advertise}:2380", "new")
    kubelet_cfg = _kubelet_config(kc_doc, p)
    _kubelet_start(kubelet_cfg, p.cri, p.advertise, p.node_name, p.kubelet_args)
    _wait_kubelet(_timeout(ic, "kubeletHealthCheck", 240), int(kubelet_cfg.get("healthzPort") or 10248))
    print("[wait-control-plane] Waiting for the API server to be healthy")
    local = ApiClient(
        f"https://{p.advertise}:{p.port}",
        (p.pki / "ca.crt").read_bytes(),
        *_read_pair(K8S_DIR / "admin.conf"),
    )
    wait_healthy(local, _timeout(ic, "controlPlaneComponentHealthCheck", 240))
    cluster_cfg = {k: v for k, v in cc.items()}
    cluster_cfg.setdefault("apiVersion", api_version_for(DOUBLE_VERSION))
    cluster_cfg["kind"] = "ClusterConfiguration"
    cluster_cfg["kubernetesVersion"] = "v" + p.version
    cluster_cfg.setdefault("controlPlaneEndpoint", p.endpoint)
    print(
        '[upload-config] Storing the configuration used in ConfigMap "kubeadm-config" in the "kube-system" Namespace'  # noqa: E501
    )
    _put_cm(
        local,
        "kubeadm-config",
        {"ClusterConfiguration": yaml_dump(cluster_cfg)},
        {"double.koral/primary-apiserver": f"https://{p.advertise}:{p.port}"},
    )
    _put_cm(local, "kubelet-config", {"kubelet": yaml_dump(kubelet_cfg)})
    info = kubeconfig_doc("", p.server, (p.pki / "ca.crt").read_bytes(), "")
    info = {"apiVersion": "v1", "kind": "Config", "clusters": info["clusters"]}
    _put_cm(local, "cluster-info", {"kubeconfig": yaml_dump(info)}, ns="kube-public")
    cert_key = None
    if flags.get("upload-certs") and "upload-certs" not in skip:
        cert_key = flags.get("certificate-key") or ic.get("certificateKey") or secrets.token_hex(32)
        _upload_certs(local, p.pki, cert_key)
        if not flags.get("skip-certificate-key-print"):
            print(f"[upload-certs] Using certificate key:\n{cert_key}")
    if "mark-control-plane" not in skip:
        _wait_node(local, p.node_name, 120)
        _mark_control_plane(local, p.node_name, p.taints)
    tokens = [str(t["token"]) for t in ic.get("bootstrapTokens") or []] or [_new_token()]
    for t, spec in zip(tokens, ic.get("bootstrapTokens") or [{}] * len(tokens), strict=False):
        local.request(
            "POST",
            "/api/v1/namespaces/kube-system/secrets",
            token_secret(
                t,
                spec.get("ttl") or "24h",
                spec.get("description", ""),
                spec.get("usages"),
                spec.get("groups"),
            ),
        )
    print("[bootstrap-token] Configured bootstrap tokens")
    if "addon" not in skip:
        for obj in _addons(p, skip):
            base = "/api/v1" if obj["apiVersion"] == "v1" else f"/apis/{obj['apiVersion']}"
            plurals = {"Deployment": "deployments", "DaemonSet": "daemonsets", "Service": "services"}
            plural = plurals[obj["kind"]]
            create_or_update(local, f"{base}/namespaces/kube-system/{plural}", obj)
    print("\nYour Kubernetes control-plane has initialized successfully!\n")
    if not flags.get("skip-token-print"):
        kc = Kubeconfig(K8S_DIR / "admin.conf")
        print(
            "You can now join any number of control-plane nodes by running the following command on each:\n"
        )
        print("  " + _join_command(kc, tokens[0], cert_key or "<key>") + "\n")
        print("Then you can join any number of worker nodes by running the following on each as root:\n")
        print("  " + _join_command(kc, tokens[0], None))
    return 0


def _read_pair(kubeconfig: Path) -> tuple[bytes | None, bytes | None]:
    kc = Kubeconfig(kubeconfig)
    return kc.cert_pem, kc.key_pem


def _put_cm(
    client: ApiClient,
    name: str,
    data: dict[str, str],
    annotations: dict[str, str] | None = None,
    ns: str = "kube-system",
) -> None:
    cm = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": ns, "annotations": annotations or {}},
        "data": data,
    }
    create_or_update(client, f"/api/v1/namespaces/{ns}/configmaps", cm)


def create_or_update(client: ApiClient, collection: str, obj: dict[str, Any]) -> None:
    """POST, then PUT on AlreadyExists (cmd/kubeadm/app/util/apiclient/idempotency.go CreateOrUpdate*)."""
    try:
        client.request("POST", collection, obj)
    except ApiError as exc:
        if exc.status != 409:
            raise
        client.request("PUT", f"{collection}/{obj['metadata']['name']}", obj)


def _addons(p: ClusterParams, skip: set[str]) -> list[dict[str, Any]]:
    """CoreDNS (Deployment + kube-dns Service) and kube-proxy (DaemonSet), shaped as kubeadm's
    cmd/kubeadm/app/phases/addons/{dns,proxy}/manifests.go (selectors, tolerations, hostNetwork)."""
    out: list[dict[str, Any]] = []
    if "addon/coredns" not in skip:
        image = next(i for i in p.images if i.rsplit(":", 1)[0].endswith("/coredns"))
        labels = {"k8s-app": "kube-dns"}
        out.append(
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": "coredns", "namespace": "kube-system", "labels": labels},
                "spec": {
                    "replicas": 2,
                    "selector": {"matchLabels": labels},
                    "template": {
                        "metadata": {"labels": labels},
                        "spec": {
                            "containers": [{"name": "coredns", "image": image}],
                            "tolerations": [
                                {"key": "CriticalAddonsOnly", "operator": "Exists"},
                                {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"},
                            ],
                            "serviceAccountName": "coredns",
                        },
                    },
                },
            }
        )
        dns_ip = str(ipaddress.ip_network(p.service_subnet.split(",")[0], strict=False)[10])
        out.append(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {
                    "name": "kube-dns",
                    "namespace": "kube-system",
                    "labels": {
                        **labels,
                        "kubernetes.io/cluster-service": "true",
                        "kubernetes.io/name": "CoreDNS",
                    },
                },
                "spec": {
                    "clusterIP": dns_ip,
                    "selector": labels,
                    "ports": [
                        {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                        {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53},
                        {"name": "metrics", "port": 9153, "protocol": "TCP", "targetPort": 9153},
                    ],
                },
            }
        )
    if "addon/kube-proxy" not in skip:
        labels = {"k8s-app": "kube-proxy"}
        out.append(
            {
                "apiVersion": "apps/v1",
                "kind": "DaemonSet",
                "metadata": {"name": "kube-proxy", "namespace": "kube-system", "labels": labels},
                "spec": {
                    "selector": {"matchLabels": labels},
                    "template": {
                        "metadata": {"labels": labels},
                        "spec": {
                            "hostNetwork": True,
                            "containers": [
                                {"name": "kube-proxy", "image": f"{p.repo}/kube-proxy:v{p.version}"}
                            ],
                            "tolerations": [{"operator": "Exists"}],
                            "serviceAccountName": "kube-proxy",
                        },
                    },
                },
            }
        )
    return out


JOIN_FLAGS = {
    **GLOBAL_KUBEADM_FLAGS,
    "config": "str",
    "ignore-preflight-errors": "list",
    "skip-phases": "list",
    "dry-run": "bool",
    "patches": "str",
    "token": "str",
    "discovery-token": "str",
    "discovery-token-ca-cert-hash": "list",
    "discovery-token-unsafe-skip-ca-verification": "bool",
    "discovery-file": "str",
    "tls-bootstrap-token": "str",
    "control-plane": "bool",
    "certificate-key": "str",
    "apiserver-advertise-address": "str",
    "apiserver-bind-port": "str",
    "node-name": "str",
    "cri-socket": "str",
}


def _discover(bt: dict[str, Any]) -> tuple[str, bytes]:
    """Token discovery: fetch cluster-info unauthenticated, check its JWS and the CA pin."""
    endpoint, token = str(bt["apiServerEndpoint"]), str(bt["token"])
    tid = token.split(".")[0]
    insecure = ApiClient(f"https://{endpoint}", None, timeout=10)
    print(f'[discovery] Trying to connect to API Server "{endpoint}"')
    deadline = time.monotonic() + 60
    while True:
        try:
            cm = insecure.request("GET", "/api/v1/namespaces/kube-public/configmaps/cluster-info")
            break
        except ApiError:
            raise
        except DoubleError as exc:
            if time.monotonic() > deadline:
                raise DoubleError(f"couldn't validate the identity of the API Server: {exc}") from None
            time.sleep(1)
    data = cm.get("data") or {}
    kcfg = data.get("kubeconfig", "")
    sig = data.get(f"jws-kubeconfig-{tid}")
    if not sig:
        raise DoubleError(
            f'failed to connect to API Server "{endpoint}": token id "{tid}" is invalid for this cluster '
            'or it has expired. Use "kubeadm token create" on the control-plane node to create a new valid token'  # noqa: E501
        )
    if not hmac.compare_digest(sig, jws_sign(kcfg, token)):
        raise DoubleError(
            "failed to verify JWS signature of received cluster info object, can't trust this API Server"
        )
    doc = yaml_load(kcfg)
    cluster = doc["clusters"][0]["cluster"]
    ca_pem = base64.b64decode(cluster["certificate-authority-data"])
    hashes = bt.get("caCertHashes") or []
    if hashes:
        got = ca_cert_hash(ca_pem)
        if got not in hashes:
            raise DoubleError(
                f"cluster CA found in cluster-info ConfigMap is invalid: none of the public keys "
                f'"{got}" are pinned'
            )
    print(
        f"[discovery] Cluster info signature and contents are valid and TLS certificate validates against "
        f'pinned roots, will use API Server "{endpoint}"'
    )
    return str(cluster["server"]), ca_pem


def jws_sign(content: str, token: str) -> str:
    header = base64.urlsafe_b64encode(
        json.dumps({"alg": "HS256", "kid": token.split(".")[0]}).encode()
    ).rstrip(b"=")
    payload = base64.urlsafe_b64encode(content.encode()).rstrip(b"=")
    mac = hmac.new(token.split(".")[1].encode(), header + b"." + payload, hashlib.sha256).digest()
    return header.decode() + ".." + base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def cmd_join(argv: list[str], rec: dict[str, Any]) -> int:
    flags, pos = parse_flags(argv, JOIN_FLAGS)
    if "config" in flags:
        _no_mix(flags)
        if pos:
            raise DoubleError(f"can not mix '--config' with arguments {_go_list(pos)}")
        by_kind, docs = _load_config_file(flags["config"])
        rec["config"] = docs
        if "JoinConfiguration" not in by_kind:
            raise DoubleError("no JoinConfiguration kind was found in the YAML file")
        extra = set(by_kind) - {"JoinConfiguration"}
        if extra:
            raise DoubleError(f"kubeadm join: unexpected kinds in the config file: {sorted(extra)}")
        jc = by_kind["JoinConfiguration"]
    else:
        if len(pos) != 1:
            raise DoubleError(
                "kubeadm join needs exactly one API server endpoint argument when --config is not used"
            )
        token = flags.get("discovery-token") or flags.get("token")
        if not token:
            raise DoubleError("discovery: Invalid value: using token-based discovery requires --token")
        jc = {
            "discovery": {
                "bootstrapToken": {
                    "token": token,
                    "apiServerEndpoint": pos[0],
                    "caCertHashes": flags.get("discovery-token-ca-cert-hash") or [],
                    "unsafeSkipCAVerification": bool(
                        flags.get("discovery-token-unsafe-skip-ca-verification")
                    ),
                }
            },
            "nodeRegistration": {
                k: v
                for k, v in {"name": flags.get("node-name"), "criSocket": flags.get("cri-socket")}.items()
                if v
            },
        }
        if flags.get("control-plane"):
            jc["controlPlane"] = {
                "certificateKey": flags.get("certificate-key", ""),
                "localAPIEndpoint": {
                    "advertiseAddress": flags.get("apiserver-advertise-address") or _default_ip()
                },
            }
        _semantic_checks({"JoinConfiguration": jc}, DOUBLE_VERSION)
    nr = jc.get("nodeRegistration") or {}
    cp = jc.get("controlPlane")
    node_name = nr.get("name") or _hostname()
    cri = nr.get("criSocket") or DEFAULT_CRI
    skip = set(flags.get("skip-phases") or jc.get("skipPhases") or [])
    for ph in skip:
        if ph.split("/")[0] not in JOIN_PHASES:
            raise DoubleError(f'phase "{ph}" does not exist')
    ignored = list(flags.get("ignore-preflight-errors") or []) + list(nr.get("ignorePreflightErrors") or [])
    if "preflight" not in skip:
        print("[preflight] Running pre-flight checks")
        checks = [
            *_common_checks(cri, DOUBLE_VERSION),
            (
                "FileAvailable--etc-kubernetes-kubelet.conf",
                not (K8S_DIR / "kubelet.conf").exists(),
                f"{K8S_DIR}/kubelet.conf already exists",
            ),
            (
                "FileAvailable--etc-kubernetes-bootstrap-kubelet.conf",
                not (K8S_DIR / "bootstrap-kubelet.conf").exists(),
                f"{K8S_DIR}/bootstrap-kubelet.conf already exists",
            ),
            ("Port-10250", _port_free(10250), "Port 10250 is in use"),
        ]
        if cp is None:  # JoinNodeChecks: the CA only for worker joins
            checks.append(
                (
                    "FileAvailable--etc-kubernetes-pki-ca.crt",
                    not (K8S_DIR / "pki" / "ca.crt").exists(),
                    f"{K8S_DIR}/pki/ca.crt already exists",
                )
            )
        else:  # RunInitNodeChecks(isSecondaryControlPlane)
            port = int((cp.get("localAPIEndpoint") or {}).get("bindPort") or 6443)
            checks += _control_plane_checks(port, str(ETCD_DIR))
        _preflight(ignored, checks)
    disc = jc["discovery"]
    bt = disc.get("bootstrapToken")
    if not bt:
        raise DoubleError("the kubeadm double supports token discovery only (discovery.bootstrapToken)")
    server, ca_pem = _discover(bt)
    tls_token = disc.get("tlsBootstrapToken") or bt["token"]
    endpoint_host = urlparse(f"https://{bt['apiServerEndpoint']}").hostname
    client = ApiClient(f"https://{bt['apiServerEndpoint']}", ca_pem, token=tls_token)
    if urlparse(server).hostname != endpoint_host:
        client = ApiClient(server, ca_pem, token=tls_token)
    print(
        '[preflight] Reading configuration from the "kubeadm-config" ConfigMap in namespace "kube-system"...'
    )
    kcm = client.request("GET", "/api/v1/namespaces/kube-system/configmaps/kubeadm-config")
    cc = yaml_load(kcm["data"]["ClusterConfiguration"])
    primary = (kcm["metadata"].get("annotations") or {}).get("double.koral/primary-apiserver")
    kubelet_cfg = yaml_load(
        client.request("GET", "/api/v1/namespaces/kube-system/configmaps/kubelet-config")["data"]["kubelet"]
    )
    try:
        existing = client.request("GET", f"/api/v1/nodes/{node_name}")
    except ApiError as exc:
        if exc.status != 404:
            raise
        existing = None
    if existing and _node_ready(existing):
        raise DoubleError(
            f'a Node with name "{node_name}" and status "Ready" already exists in the cluster. '
            "You must delete the existing Node or change the name of this new joining Node"
        )
    if cp is not None and "preflight" not in skip and not (flags.get("dry-run") or jc.get("dryRun")):
        # cmd/kubeadm/app/cmd/phases/join/preflight.go: a control-plane join runs RunPullImagesCheck.
        version = str(cc.get("kubernetesVersion") or DOUBLE_VERSION).lstrip("v")
        _pull_images_check(ignored, image_list(version, cc.get("imageRepository"), cc), cri, "preflight")
    if flags.get("dry-run") or jc.get("dryRun"):
        print("[dryrun] Would join; exiting")
        return 0
    local = cp.get("localAPIEndpoint") if cp else {}
    p = ClusterParams(cc, local or {}, nr)
    p.node_name = node_name
    pki = Path(jc.get("caCertPath") or p.pki / "ca.crt").parent
    if cp is not None:
        key = cp.get("certificateKey") or ""
        if not key:
            raise DoubleError("control plane join requires a certificate key (controlPlane.certificateKey)")
        print(
            '[download-certs] Downloading the certificates in Secret "kubeadm-certs" in the "kube-system" Namespace'  # noqa: E501
        )
        try:
            sec = client.request("GET", "/api/v1/namespaces/kube-system/secrets/kubeadm-certs")
        except ApiError as exc:
            raise DoubleError(
                f"error downloading certs: {exc} (secret kubeadm-certs not found or expired; "
                "run 'kubeadm init phase upload-certs --upload-certs' on a control-plane node)"
            ) from None
        blobs = {k: base64.b64decode(v).decode() for k, v in (sec.get("data") or {}).items()}
        files = {
            name: decrypt_blob(key, blobs[name.replace("/", "-")])
            for name in CERT_FILES
            if name.replace("/", "-") in blobs
        }
        _save_node_state(
            {
                "role": "control-plane",
                "primary_server": primary,
                "node_name": node_name,
                "advertise": f"{p.advertise}:{p.port}",
                "version": p.version,
            }
        )
        for name, content in files.items():
            _write(p.pki / name, content, 0o600 if name.endswith(".key") else 0o644)
        _write_certs(p, with_cas=False)
        _write_kubeconfigs(p, init=False)
        initial, cluster_state = _etcd_member_add(p, node_name, primary)
        _write_manifests(p, initial, cluster_state)
    else:
        _save_node_state(
            {"role": "worker", "primary_server": primary, "node_name": node_name, "version": DOUBLE_VERSION}
        )
        _write(pki / "ca.crt", ca_pem)
        print("[kubelet-start] Performing TLS bootstrap")
        key_pem, csr = make_key_and_csr(f"system:node:{node_name}", ("system:nodes",))
        csr_obj = {
            "apiVersion": "certificates.k8s.io/v1",
            "kind": "CertificateSigningRequest",
            "metadata": {"generateName": "csr-"},
            "spec": {
                "request": base64.b64encode(csr).decode(),
                "signerName": "kubernetes.io/kube-apiserver-client-kubelet",
                "usages": ["digital signature", "client auth"],
            },
        }
        signed = client.request("POST", "/apis/certificates.k8s.io/v1/certificatesigningrequests", csr_obj)
        cert = base64.b64decode(signed["status"]["certificate"])
        doc = kubeconfig_doc(p.cluster_name, server, ca_pem, "default-auth", cert, key_pem)
        _write(K8S_DIR / "kubelet.conf", yaml_dump(doc), 0o600)
    ip = (local or {}).get("advertiseAddress") or _default_ip()
    _kubelet_start(kubelet_cfg, cri, ip, node_name, _args_list(nr.get("kubeletExtraArgs")))
    _wait_kubelet(_timeout(jc, "kubeletHealthCheck", 240), int(kubelet_cfg.get("healthzPort") or 10248))
    _wait_node(client, node_name, _timeout(jc, "tlsBootstrap", 120))
    if cp is not None:
        lc = ApiClient(f"https://{p.advertise}:{p.port}", ca_pem, *_read_pair(K8S_DIR / "admin.conf"))
        wait_healthy(lc, _timeout(jc, "controlPlaneComponentHealthCheck", 240))
        _mark_control_plane(lc, node_name, p.taints)
        print("\nThis node has joined the cluster and a new control plane instance was created")
    else:
        print(
            "\nThis node has joined the cluster:\n* Certificate signing request was sent to apiserver and a "
            "response was received.\n* The Kubelet was informed of the new secure connection details."
        )
    return 0


def _etcd_member_add(p: ClusterParams, node_name: str, primary: str | None) -> tuple[str, str]:
    """Add this node to the first control-plane node's etcd (etcd-join phase), like kubeadm does.

    Returns (--initial-cluster, --initial-cluster-state). Without etcdctl on the node the new
    etcd runs as a single-member cluster (a warning says so).
    """
    alone = (f"{node_name}=https://{p.advertise}:2380", "new")
    if p.external_etcd or not primary:
        return alone
    etcdctl = shutil.which("etcdctl", path=IMAGE_PATH)
    if etcdctl is None:
        print("[etcd-join] WARNING: no etcdctl on this node: the local etcd runs as a single-member cluster")
        return alone
    pki = p.pki / "etcd"
    argv = [
        etcdctl, f"--endpoints=https://{urlparse(primary).hostname}:2379", f"--cacert={pki}/ca.crt",
        f"--cert={pki}/healthcheck-client.crt", f"--key={pki}/healthcheck-client.key",
        "--command-timeout=15s", "member", "add", node_name, f"--peer-urls=https://{p.advertise}:2380",
    ]  # fmt: skip
    # Like kubeadm, retry with backoff while etcd refuses a member change because the member
    # added just before is not connected yet ("etcdserver: unhealthy cluster").
    delay, deadline = 0.5, time.monotonic() + 60
    while True:
        proc = subprocess.run(
            argv, capture_output=True, text=True, env={**os.environ, "ETCDCTL_API": "3"}, check=False
        )
        if proc.returncode == 0 or "unhealthy cluster" not in proc.stderr or time.monotonic() > deadline:
            break
        time.sleep(delay)
        delay = min(delay * 2, 8.0)
    m = re.search(r'^ETCD_INITIAL_CLUSTER="([^"]+)"', proc.stdout, re.M)
    if proc.returncode != 0 or not m:
        raise DoubleError(
            f"[etcd-join] adding etcd member {node_name} failed: {proc.stderr.strip() or proc.stdout}"
        )
    print(f"[etcd-join] Added etcd member {node_name} to the cluster")
    return m.group(1), "existing"


def _etcd_member_remove() -> None:
    """reset on a joined control-plane node: remove its etcd member through the first node's etcd."""
    node = _node_state()
    primary, name = node.get("primary_server"), node.get("node_name")
    pki = K8S_DIR / "pki" / "etcd"
    etcdctl = shutil.which("etcdctl", path=IMAGE_PATH)
    if not (
        primary and name and node.get("role") == "control-plane" and etcdctl and (pki / "ca.crt").exists()
    ):
        return
    base = [
        etcdctl, f"--endpoints=https://{urlparse(primary).hostname}:2379", f"--cacert={pki}/ca.crt",
        f"--cert={pki}/healthcheck-client.crt", f"--key={pki}/healthcheck-client.key",
        "--command-timeout=15s",
    ]  # fmt: skip
    env = {**os.environ, "ETCDCTL_API": "3"}
    listed = subprocess.run([*base, "member", "list"], capture_output=True, text=True, env=env, check=False)
    for line in listed.stdout.splitlines():
        fields = [f.strip() for f in line.split(",")]
        if len(fields) > 2 and fields[2] == name:
            subprocess.run([*base, "member", "remove", fields[0]], capture_output=True, env=env, check=False)
            print(f"[reset] Removed etcd member {name}")


def _node_ready(node: dict[str, Any]) -> bool:
    for c in (node.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready":
            return bool(c.get("status") == "True")
    return False


def cmd_token(argv: list[str], rec: dict[str, Any]) -> int:
    if not argv or argv[0] not in ("create", "list", "delete", "generate"):
        raise DoubleError("kubeadm token: expected one of create, list, delete, generate")
    sub, rest = argv[0], argv[1:]
    spec = {**GLOBAL_KUBEADM_FLAGS, "kubeconfig": "str", "dry-run": "bool"}
    if sub == "create":
        spec.update(
            {
                "print-join-command": "bool",
                "ttl": "str",
                "description": "str",
                "usages": "list",
                "groups": "list",
                "certificate-key": "str",
                "config": "str",
            }
        )
    if sub == "list":
        spec.update({"output": "str", "allow-missing-template-keys": "bool", "show-managed-fields": "bool"})
    flags, pos = parse_flags(rest, spec, {"o": "output"})
    if sub == "generate":
        print(_new_token())
        return 0
    kc, client = _admin_client(flags.get("kubeconfig"))
    if sub == "create":
        if len(pos) > 1:
            raise DoubleError("kubeadm token create accepts at most one token argument")
        token = pos[0] if pos else _new_token()
        if not TOKEN_RE.match(token):
            raise DoubleError(
                f'the bootstrap token "{token}" was not of the form "[a-z0-9]{{6}}.[a-z0-9]{{16}}"'
            )
        ck = flags.get("certificate-key")
        if ck and not CERT_KEY_RE.match(ck):
            raise DoubleError("certificate-key: must be a hex encoded AES key of 32 bytes")
        if ck and not flags.get("print-join-command"):
            raise DoubleError("the --certificate-key flag can only be used with --print-join-command")
        client.request(
            "POST",
            "/api/v1/namespaces/kube-system/secrets",
            token_secret(
                token,
                flags.get("ttl", "24h"),
                flags.get("description", ""),
                flags.get("usages"),
                flags.get("groups"),
            ),
        )
        rec["note"] = "token " + token.split(".")[0]
        print(_join_command(kc, token, ck) if flags.get("print-join-command") else token)
        return 0
    if sub == "list":
        lst = client.request("GET", "/api/v1/namespaces/kube-system/secrets")
        print(
            "TOKEN                     TTL         EXPIRES                USAGES                   DESCRIPTION"  # noqa: E501
        )
        for s in lst.get("items", []):
            if s.get("type") != "bootstrap.kubernetes.io/token":
                continue
            d = {k: base64.b64decode(v).decode() for k, v in (s.get("data") or {}).items()}
            print(
                f"{d.get('token-id')}.<hidden>   -           {d.get('expiration', '<forever>')}   "
                f"authentication,signing   {d.get('description', '<none>')}"
            )
        return 0
    for t in pos:
        tid = t.split(".")[0]
        client.request("DELETE", f"/api/v1/namespaces/kube-system/secrets/bootstrap-token-{tid}")
        print(f'bootstrap token "{tid}" deleted')
    return 0


def cmd_init_phase(argv: list[str], rec: dict[str, Any]) -> int:
    if not argv or argv[0] != "upload-certs":
        raise DoubleError(f'the kubeadm double implements only "init phase upload-certs" (got {argv[:1]})')
    spec = {
        **GLOBAL_KUBEADM_FLAGS,
        "upload-certs": "bool",
        "certificate-key": "str",
        "config": "str",
        "kubeconfig": "str",
        "skip-certificate-key-print": "bool",
        "dry-run": "bool",
    }
    flags, pos = parse_flags(argv[1:], spec)
    if pos:
        raise DoubleError(f'unknown command "{pos[0]}" for "kubeadm init phase upload-certs"')
    key = flags.get("certificate-key")
    pki = K8S_DIR / "pki"
    if "config" in flags:
        by_kind, docs = _load_config_file(flags["config"])
        rec["config"] = docs
        key = key or by_kind.get("InitConfiguration", {}).get("certificateKey")
        cd = by_kind.get("ClusterConfiguration", {}).get("certificatesDir")
        pki = Path(cd) if cd else pki
    if not flags.get("upload-certs"):
        print("[upload-certs] Skipping phase. Please see --upload-certs")
        return 0
    if key and not CERT_KEY_RE.match(key):
        raise DoubleError("certificate-key: must be a hex encoded AES key of 32 bytes (64 hex characters)")
    key = key or secrets.token_hex(32)
    _kc, client = _admin_client(flags.get("kubeconfig"))
    _upload_certs(client, pki, key)
    if not flags.get("skip-certificate-key-print"):
        print(f"[upload-certs] Using certificate key:\n{key}")
    return 0


def _cluster_version(client: ApiClient) -> str:
    cm = client.request("GET", "/api/v1/namespaces/kube-system/configmaps/kubeadm-config")
    return str(yaml_load(cm["data"]["ClusterConfiguration"])["kubernetesVersion"]).lstrip("v")


def _retag_manifests(version: str) -> None:
    man = K8S_DIR / "manifests"
    for name in ("kube-apiserver", "kube-controller-manager", "kube-scheduler"):
        f = man / f"{name}.yaml"
        if f.exists():
            f.write_text(re.sub(rf"(image: \S+/{name}):v[0-9.]+", rf"\1:v{version}", f.read_text()))


def _node_cri() -> str:
    """The CRI endpoint the node's kubelet uses (kubeadm-flags.env, else config.yaml)."""
    with contextlib.suppress(OSError):
        m = re.search(
            r"--container-runtime-endpoint=(\S+?)\"?(\s|$)", (KUBELET_DIR / "kubeadm-flags.env").read_text()
        )
        if m:
            return m.group(1)
    with contextlib.suppress(OSError, YamlError, AttributeError):
        cri = yaml_load((KUBELET_DIR / "config.yaml").read_text()).get("containerRuntimeEndpoint")
        if cri:
            return str(cri)
    return DEFAULT_CRI


def enforce_version_policies(target: str, current: str, mine: str, force: bool) -> None:
    """EnforceVersionPolicies (cmd/kubeadm/app/phases/upgrade/policy.go) as `upgrade apply` reports
    it (cmd/kubeadm/app/cmd/phases/upgrade/apply/preflight.go from 1.31, cmd/upgrade/apply.go before).

    Mandatory errors always fail; skippable ones fail unless --force. Released versions only (no
    pre-release tags), so the experimental / release-candidate rules do not apply.
    """
    tv, cv, mv = _vtuple(target), _vtuple(current), _vtuple(mine)
    t = f"v{target}"
    new_api = mv[:2] >= (1, 31)
    print(
        f'[upgrade/preflight] You have chosen to upgrade the cluster version to "{t}"'
        if new_api
        else f'[upgrade/version] You have chosen to change the cluster version to "{t}"'
    )
    print(f"[upgrade/versions] Cluster version: v{current}\n[upgrade/versions] kubeadm version: v{mine}")
    mandatory, skippable = [], []
    if tv[:2] < (mv[0], mv[1] - 1):  # constants.MinimumControlPlaneVersion = kubeadm minor - 1
        mandatory.append(
            f'Specified version to upgrade to "{t}" is equal to or lower than the minimum supported version '
            f'"v{current}". Please specify a higher version to upgrade to'
        )
    if tv[1] > cv[1] + 1:
        mandatory.append(
            f'Specified version to upgrade to "{t}" is too high; '
            "kubeadm can upgrade only 1 minor version at a time"
        )
    if tv[1] < cv[1] - 1:
        mandatory.append(
            f'Specified version to downgrade to "{t}" is too low; '
            "kubeadm can downgrade only 1 minor version at a time"
        )
    if mv < tv:
        if tv[1] > mv[1]:
            mandatory.append(
                f'Specified version to upgrade to "{t}" is at least one minor release higher than the '
                f"kubeadm minor release ({tv[1]} > {mv[1]}). Such an upgrade is not supported"
            )
        else:
            skippable.append(
                f'Specified version to upgrade to "{t}" is higher than the kubeadm version "v{mine}". '
                "Upgrade kubeadm first using the tool you used to install kubeadm"
            )
    if mv[0] > tv[0] or mv[1] > tv[1]:
        skippable.append(
            f"Kubeadm version v{mine} can only be used to upgrade to Kubernetes version {mv[0]}.{mv[1]}"
        )
    arg = "version" if new_api else "--version"
    lead = "" if new_api else "[upgrade/version] FATAL: "

    def fmt(errs: list[str]) -> str:
        return "".join(f"\t- {e}\n" for e in errs)

    if mandatory:
        raise DoubleError(
            f"{lead}the {arg} argument is invalid due to these fatal errors:\n\n{fmt(mandatory)}\n"
            "Please fix the misalignments highlighted above and try upgrading again"
        )
    if skippable and not force:
        raise DoubleError(
            f"{lead}the {arg} argument is invalid due to these errors:\n\n{fmt(skippable)}\n"
            "Can be bypassed if you pass the --force flag"
        )
    if skippable:
        print(
            f"[upgrade/preflight] Found {len(skippable)} potential version compatibility errors but skipping "
            f"since the --force flag is set: \n\n{fmt(skippable)}"
        )


def cmd_upgrade(argv: list[str], rec: dict[str, Any]) -> int:
    if not argv or argv[0] not in ("plan", "apply", "node", "diff"):
        raise DoubleError("kubeadm upgrade: expected one of plan, apply, node, diff")
    sub, rest = argv[0], argv[1:]
    spec = {
        **GLOBAL_KUBEADM_FLAGS,
        "config": "str",
        "kubeconfig": "str",
        "ignore-preflight-errors": "list",
        "dry-run": "bool",
        "certificate-renewal": "bool",
        "etcd-upgrade": "bool",
        "patches": "str",
        "skip-phases": "list",
    }
    if sub == "apply":
        spec.update(
            {
                "yes": "bool",
                "force": "bool",
                "allow-experimental-upgrades": "bool",
                "allow-release-candidate-upgrades": "bool",
                "print-config": "bool",
            }
        )
    if sub == "plan":
        spec.update(
            {
                "allow-experimental-upgrades": "bool",
                "allow-release-candidate-upgrades": "bool",
                "print-config": "bool",
                "output": "str",
            }
        )
    flags, pos = parse_flags(rest, spec, {"y": "yes", "f": "force", "o": "output"})
    if "config" in flags:
        _by_kind, docs = _load_config_file(flags["config"])
        rec["config"] = docs
    kubeconfig = flags.get("kubeconfig")
    if sub == "node" and not kubeconfig and not (K8S_DIR / "manifests" / "kube-apiserver.yaml").exists():
        # kubeadm upgrade node on a worker talks to the API with the kubelet's kubeconfig.
        kubeconfig = str(K8S_DIR / "kubelet.conf")
    _kc, client = _admin_client(kubeconfig)
    current = _cluster_version(client)
    mine = DOUBLE_VERSION
    if sub == "plan":
        print(f"[upgrade/versions] Cluster version: v{current}\n[upgrade/versions] kubeadm version: v{mine}")
        if _vtuple(mine) > _vtuple(current):
            print(f"Upgrade to the latest version:\n\n    kubeadm upgrade apply v{mine}")
        return 0
    if sub == "node":
        if pos:
            raise DoubleError(f'unknown command "{pos[0]}" for "kubeadm upgrade node"')
        run_upgrade_checks(list(flags.get("ignore-preflight-errors") or []))
        if (K8S_DIR / "manifests" / "kube-apiserver.yaml").exists():
            # phases/upgrade/node/preflight.go: control-plane nodes pre-pull the cluster's images.
            cm = client.request("GET", "/api/v1/namespaces/kube-system/configmaps/kubeadm-config")
            stored = yaml_load(cm["data"]["ClusterConfiguration"])
            ignored = list(flags.get("ignore-preflight-errors") or [])
            _pull_images_check(
                ignored,
                image_list(current, stored.get("imageRepository"), stored),
                _node_cri(),
                "upgrade/preflight",
            )
            _retag_manifests(current)
        else:
            print("[upgrade/preflight] Skipping prepull. Not a control plane node.")
        print("[upgrade] The configuration for this node was successfully updated!")
        return 0
    if sub == "diff":
        return 0
    if len(pos) != 1:
        raise DoubleError("kubeadm upgrade apply needs exactly one version argument")
    target = pos[0].lstrip("v")
    run_upgrade_checks(list(flags.get("ignore-preflight-errors") or []))
    enforce_version_policies(target, current, mine, bool(flags.get("force")))
    if not (flags.get("yes") or flags.get("force")):
        sys.stdout.write("[upgrade] Are you sure you want to proceed? [y/N]: ")
        sys.stdout.flush()
        if sys.stdin.readline().strip().lower() not in ("y", "yes"):
            raise DoubleError("won't proceed; the user didn't answer (Y|y) in order to continue")
    cm = client.request("GET", "/api/v1/namespaces/kube-system/configmaps/kubeadm-config")
    cc = yaml_load(cm["data"]["ClusterConfiguration"])
    if not flags.get("dry-run"):
        # phases/upgrade/apply/preflight.go: the new version's images, before anything changes.
        ignored = list(flags.get("ignore-preflight-errors") or [])
        _pull_images_check(
            ignored, image_list(target, cc.get("imageRepository"), cc), _node_cri(), "upgrade/preflight"
        )
    cc["kubernetesVersion"] = "v" + target
    cc["apiVersion"] = api_version_for(target)
    _put_cm(
        client, "kubeadm-config", {"ClusterConfiguration": yaml_dump(cc)}, cm["metadata"].get("annotations")
    )
    _retag_manifests(target)
    print(f'[upgrade] SUCCESS! A control plane node of your cluster was upgraded to "v{target}".')
    return 0


def cmd_reset(argv: list[str], rec: dict[str, Any]) -> int:
    spec = {
        **GLOBAL_KUBEADM_FLAGS,
        "force": "bool",
        "cri-socket": "str",
        "cleanup-tmp-dir": "bool",
        "ignore-preflight-errors": "list",
        "kubeconfig": "str",
        "skip-phases": "list",
        "dry-run": "bool",
        "cert-dir": "str",
        "config": "str",
    }
    flags, pos = parse_flags(argv, spec, {"f": "force"})
    if pos:
        raise DoubleError(f'unknown command "{pos[0]}" for "kubeadm reset"')
    if "config" in flags:
        _by_kind, docs = _load_config_file(flags["config"])
        rec["config"] = docs
    if not flags.get("force"):
        sys.stdout.write("[reset] Are you sure you want to proceed? [y/N]: ")
        sys.stdout.flush()
        if sys.stdin.readline().strip().lower() not in ("y", "yes"):
            raise DoubleError("aborted reset operation")
    _etcd_member_remove()
    if _systemd_running():
        subprocess.run(["systemctl", "stop", "kubelet"], check=False)
        # the static pods (containers of a real node) are removed too
        subprocess.run(["systemctl", "stop", "kubelet-static-*"], check=False)
        for marker in (STATE_DIR / "pods").glob("*.digest"):
            marker.unlink()
    for f in (
        "admin.conf",
        "super-admin.conf",
        "kubelet.conf",
        "bootstrap-kubelet.conf",
        "controller-manager.conf",
        "scheduler.conf",
    ):
        (K8S_DIR / f).unlink(missing_ok=True)
    for d in (
        K8S_DIR / "manifests",
        Path(flags.get("cert-dir") or K8S_DIR / "pki"),
        K8S_DIR / "tmp",
        ETCD_DIR,
    ):
        if d.exists():
            for child in d.iterdir():
                shutil.rmtree(child) if child.is_dir() else child.unlink()
    for f in ("config.yaml", "kubeadm-flags.env", "instance-config.yaml"):
        (KUBELET_DIR / f).unlink(missing_ok=True)
    shutil.rmtree(KUBELET_DIR / "pki", ignore_errors=True)
    (STATE_DIR / "node.json").unlink(missing_ok=True)
    (STATE_DIR / "apiserver-state.json").unlink(missing_ok=True)
    print("[reset] Deleted contents of: [/etc/kubernetes/manifests /var/lib/kubelet /etc/kubernetes/pki]")
    return 0


def cmd_version(argv: list[str], rec: dict[str, Any]) -> int:
    flags, pos = parse_flags(argv, {**GLOBAL_KUBEADM_FLAGS, "output": "str"}, {"o": "output"})
    if pos:
        raise DoubleError(f'unknown command "{pos[0]}" for "kubeadm version"')
    out = flags.get("output", "")
    v = _vtuple(DOUBLE_VERSION)
    info = {
        "major": str(v[0]),
        "minor": str(v[1]),
        "gitVersion": f"v{DOUBLE_VERSION}",
        "gitCommit": "0" * 40,
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "go1.22.0",
        "compiler": "gc",
        "platform": "linux/amd64",
    }
    if out == "short":
        print(f"v{DOUBLE_VERSION}")
    elif out == "json":
        print(json.dumps({"clientVersion": info}, indent=2))
    elif out == "yaml":
        print(yaml_dump({"clientVersion": info}), end="")
    elif out == "":
        print(
            f'kubeadm version: &version.Info{{Major:"{v[0]}", Minor:"{v[1]}", GitVersion:"v{DOUBLE_VERSION}"}}'  # noqa: E501
        )
    else:
        raise DoubleError(f"invalid output format: {out}")
    return 0


def cmd_config(argv: list[str], rec: dict[str, Any]) -> int:
    if argv[:2] != ["images", "list"]:
        raise DoubleError(f'the kubeadm double implements only "config images list" (got {argv[:2]})')
    spec = {
        **GLOBAL_KUBEADM_FLAGS,
        "config": "str",
        "kubernetes-version": "str",
        "image-repository": "str",
        "output": "str",
        "feature-gates": "str",
        "allow-missing-template-keys": "bool",
        "show-managed-fields": "bool",
        "kubeconfig": "str",
    }
    flags, pos = parse_flags(argv[2:], spec, {"o": "output"})
    if pos:
        raise DoubleError(f'unknown command "{pos[0]}" for "kubeadm config images list"')
    version, repo = flags.get("kubernetes-version") or DOUBLE_VERSION, flags.get("image-repository")
    cc: dict[str, Any] = {}
    if "config" in flags:
        _no_mix(flags, {"output", "allow-missing-template-keys", "show-managed-fields", "feature-gates"})
        by_kind, docs = _load_config_file(flags["config"])
        rec["config"] = docs
        cc = by_kind.get("ClusterConfiguration", {})
        version, repo = cc.get("kubernetesVersion") or version, cc.get("imageRepository") or repo
    images = image_list(str(version), repo, cc)
    out = flags.get("output", "text")
    if out in ("text", ""):
        print("\n".join(images))
    elif out == "json":
        print(
            json.dumps({"kind": "Images", "apiVersion": "output.kubeadm.k8s.io/v1alpha3", "images": images})
        )
    else:
        raise DoubleError(f"invalid output format: {out}")
    return 0


def cmd_certs(argv: list[str], rec: dict[str, Any]) -> int:
    if argv[:1] != ["certificate-key"]:
        raise DoubleError(f'the kubeadm double implements only "certs certificate-key" (got {argv[:1]})')
    _flags, pos = parse_flags(argv[1:], dict(GLOBAL_KUBEADM_FLAGS))
    if pos:
        raise DoubleError(f'unknown command "{pos[0]}" for "kubeadm certs certificate-key"')
    print(secrets.token_hex(32))
    return 0


_SECRET_FLAGS = ("--token", "--certificate-key", "--discovery-token", "--tls-bootstrap-token")


def redact_argv(argv: list[str]) -> list[str]:
    """Calls are recorded with secrets masked, like kubeadm's own logs."""
    out, hide = [], False
    for a in argv:
        if hide:
            out.append("<redacted>")
            hide = False
            continue
        name = a.split("=", 1)[0]
        if name in _SECRET_FLAGS:
            if "=" in a:
                out.append(name + "=<redacted>")
            else:
                out.append(a)
                hide = True
            continue
        out.append(re.sub(r"\b[a-z0-9]{6}\.[a-z0-9]{16}\b", "<redacted>", a))
    return out


def _redact_config(docs: Any) -> Any:
    if isinstance(docs, dict):
        return {
            k: (
                "<redacted>"
                if k in ("token", "certificateKey", "tlsBootstrapToken") and v
                else _redact_config(v)
            )
            for k, v in docs.items()
        }
    if isinstance(docs, list):
        return [_redact_config(d) for d in docs]
    return docs


def kubeadm_main(argv: list[str]) -> int:
    rec: dict[str, Any] = {"config": None, "note": ""}
    rc = 1
    try:
        if not argv or argv[0] in ("-h", "--help", "help"):
            print("Usage: kubeadm [command]  (koral test double)")
            rc = 0 if argv else 1
            return rc
        cmd, rest = argv[0], argv[1:]
        if cmd == "init" and rest[:1] == ["phase"]:
            rc = cmd_init_phase(rest[1:], rec)
            return rc
        table = {
            "init": cmd_init,
            "join": cmd_join,
            "token": cmd_token,
            "upgrade": cmd_upgrade,
            "reset": cmd_reset,
            "version": cmd_version,
            "config": cmd_config,
            "certs": cmd_certs,
        }
        if cmd not in table:
            raise DoubleError(f'unknown command "{cmd}" for "kubeadm"')
        rc = table[cmd](rest, rec)
        return rc
    except DoubleError as exc:
        sys.stderr.write(
            f"error execution phase: {exc}\n" if argv and argv[0] in ("init", "join") else f"{exc}\n"
        )
        sys.stderr.write("To see the stack trace of this error execute with --v=5 or higher\n")
        rc = 1
        return rc
    finally:
        record_call(redact_argv(argv), _redact_config(rec.get("config")), rc, rec.get("note", ""))


# The kube-apiserver double lives in kube_apiserver.py (same zipapp).

# ---------------------------------------------------------------------------------------
# kubelet double (run by kubelet.service with the 10-kubeadm.conf drop-in)
# ---------------------------------------------------------------------------------------

# DaemonSets the kubelet double plays as the network plugin's install step on its node.
NETWORK_DAEMONSETS = {"weave-net", "calico-node", "kube-flannel-ds", "cilium", "canal"}

KUBELET_FLAGS = {
    "bootstrap-kubeconfig": "str",
    "kubeconfig": "str",
    "config": "str",
    "container-runtime-endpoint": "str",
    "node-ip": "str",
    "hostname-override": "str",
    "node-labels": "str",
    "pod-infra-container-image": "str",
    "v": "str",
    "cgroup-driver": "str",
    "register-with-taints": "str",
    "resolv-conf": "str",
    "runtime-request-timeout": "str",
    "fail-swap-on": "bool",
    "cloud-provider": "str",
    "provider-id": "str",
    "root-dir": "str",
    "cert-dir": "str",
    "rotate-certificates": "bool",
    "version": "bool",
    "help": "bool",
}


class StaticPods:
    """Runs the static pods of a manifest directory.

    Under systemd each pod is a transient service ``kubelet-static-<name>`` (``systemd-run``), so,
    like containers under containerd, it keeps running when the kubelet restarts and is adopted
    again when the manifest did not change. Without systemd (tests on a host) pods are children.
    """

    def __init__(self, path: Path, log_dir: Path, runtime: KubeletRuntime | None = None) -> None:
        self.path, self.log_dir = path, log_dir
        self.runtime = runtime
        self.pods: dict[str, dict[str, Any]] = {}
        self.systemd = _systemd_running()

    def sync(self) -> None:
        seen = set()
        for f in sorted(self.path.glob("*.yaml")) if self.path.is_dir() else []:
            try:
                text = f.read_text()
                pod = yaml_load(text)
                c = pod["spec"]["containers"][0]
                cmd = [str(x) for x in (c.get("command") or []) + (c.get("args") or [])]
                name = pod["metadata"]["name"]
            except (OSError, YamlError, KeyError, IndexError, TypeError) as exc:
                sys.stderr.write(f"kubelet: invalid static pod manifest {f}: {exc}\n")
                continue
            seen.add(name)
            digest = hashlib.sha256(text.encode()).hexdigest()
            cur = self.pods.get(name)
            if cur is None and self._adopt(name, digest):
                continue
            if cur and cur["digest"] != digest:
                self._stop(name)
                cur = None
            if cur and not self._alive(name, cur):
                if time.monotonic() - cur["started"] < 10:
                    continue
                self._stop(name)
                cur = None
            if cur is None and self.runtime is not None:
                images = [str(x["image"]) for x in pod["spec"]["containers"] if x.get("image")]
                if not self.runtime.pod_gate(name, images):
                    continue  # no sandbox or image, no pod (retried on the next sync)
            if cur is None:
                new = {
                    "digest": digest,
                    "started": time.monotonic(),
                    "checked": 0.0,
                    "proc": None,
                    "unit": None,
                }
                self.pods[name] = new
                self._start(name, cmd, str(c.get("image") or ""), new)
                if self.runtime is not None:
                    self.runtime.pod_status(name, {"phase": "Running", "reason": "", "message": ""}, "")
        for name in list(self.pods):
            if name not in seen:
                self._stop(name)
        if self.systemd and self.log_dir.is_dir():
            for marker in self.log_dir.glob("*.digest"):
                if marker.stem not in seen:
                    self._stop_unit(marker.stem)

    @staticmethod
    def _unit(name: str) -> str:
        return f"kubelet-static-{name}.service"

    def _unit_active(self, name: str) -> bool:
        proc = subprocess.run(
            ["systemctl", "is-active", self._unit(name)], capture_output=True, text=True, check=False
        )
        return proc.stdout.strip() in ("active", "activating", "reloading")

    def _adopt(self, name: str, digest: str) -> bool:
        """A pod still running from before a kubelet restart, with the same manifest, is kept."""
        marker = self.log_dir / f"{name}.digest"
        if not self.systemd or not marker.exists() or marker.read_text() != digest:
            return False
        if not self._unit_active(name):
            return False
        now = time.monotonic()
        self.pods[name] = {
            "digest": digest,
            "started": now,
            "checked": now,
            "proc": None,
            "unit": self._unit(name),
        }
        sys.stderr.write(f"kubelet: static pod {name} already running, adopted\n")
        return True

    def _alive(self, name: str, pod: dict[str, Any]) -> bool:
        if pod["proc"] is not None:
            return bool(pod["proc"].poll() is None)
        if pod["unit"] is None:
            return True  # a pretended pod
        if time.monotonic() - pod["checked"] < 5:
            return True
        pod["checked"] = time.monotonic()
        return self._unit_active(name)

    def _start(self, name: str, cmd: list[str], image: str, pod: dict[str, Any]) -> None:
        if not cmd:
            return
        self.log_dir.mkdir(parents=True, exist_ok=True)
        env: dict[str, str] = {}
        if cmd[0] == "kube-apiserver":
            env["KORAL_DOUBLE_PROG"] = "kube-apiserver"
            tag = image.rsplit(":", 1)[-1] if ":" in image else ""
            if re.match(r"^v\d+\.\d+\.\d+$", tag):
                env["KORAL_DOUBLE_APISERVER_VERSION"] = tag[1:]
            argv, what = [sys.executable, self_path(), *cmd[1:]], "apiserver double"
        else:
            exe = shutil.which(cmd[0], path=IMAGE_PATH)
            if exe is None:
                sys.stderr.write(
                    f"kubelet: static pod {name}: no {cmd[0]} binary on this node, pretending it runs\n"
                )
                return
            argv, what = [exe, *cmd[1:]], exe
        log = self.log_dir / f"{name}.log"
        sys.stderr.write(f"kubelet: starting static pod {name} ({what})\n")
        if self.systemd:
            unit = self._unit(name)
            subprocess.run(["systemctl", "stop", unit], capture_output=True, check=False)
            subprocess.run(["systemctl", "reset-failed", unit], capture_output=True, check=False)
            run = [
                "systemd-run", f"--unit={unit}", "--collect", "--quiet",
                f"--property=StandardOutput=append:{log}", f"--property=StandardError=append:{log}",
                *[f"--setenv={k}={v}" for k, v in env.items()], "--", *argv,
            ]  # fmt: skip
            proc = subprocess.run(run, capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                sys.stderr.write(f"kubelet: cannot start static pod {name}: {proc.stderr.strip()}\n")
                return
            pod["unit"], pod["checked"] = unit, time.monotonic()
            (self.log_dir / f"{name}.digest").write_text(pod["digest"])
            return
        with open(log, "ab") as fh:
            pod["proc"] = subprocess.Popen(argv, env={**os.environ, **env}, stdout=fh, stderr=fh)

    def _stop_unit(self, name: str) -> None:
        subprocess.run(["systemctl", "stop", self._unit(name)], capture_output=True, check=False)
        (self.log_dir / f"{name}.digest").unlink(missing_ok=True)

    def _stop(self, name: str) -> None:
        pod = self.pods.pop(name, None)
        if pod is None:
            return
        if pod["unit"] is not None:
            self._stop_unit(name)
        proc = pod["proc"]
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()

    def stop_all(self) -> None:
        """On kubelet exit: children die with it; systemd pods keep running (like containers)."""
        for name in [n for n, p in self.pods.items() if p["proc"] is not None]:
            self._stop(name)


# ---------------------------------------------------------------------------------------
# kubelet: the container runtime as the kubelet sees it (sandbox image, CNI network status)
# and the network DaemonSet pod of this node (what its install containers write on the host)
# ---------------------------------------------------------------------------------------

NETWORK_NOT_READY = (
    "container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady "
    "message:Network plugin returns error: cni plugin not initialized"
)
_CNI_STANDIN = """#!/bin/sh
# koral test double: stand-in for the {plugin} CNI plugin that {ds} installs (no pod networking).
if [ "$CNI_COMMAND" = VERSION ]; then
  echo '{{"cniVersion":"1.0.0","supportedVersions":["0.3.0","0.3.1","0.4.0","1.0.0"]}}'
  exit 0
fi
echo '{{"cniVersion":"1.0.0","code":999,"msg":"koral test double: {plugin} stand-in sets up no networking"}}'
exit 1
"""
# What the install containers of the network DaemonSets write on their node: the conflist
# (weaveworks/weave prog/weave-kube/launch.sh; projectcalico/calico cni-plugin/pkg/install and the
# cni_network_config of manifests/calico.yaml) and their own plugin binaries.
NETWORK_PLUGINS: dict[str, dict[str, Any]] = {
    "weave-net": {
        "file": "10-weave.conflist",
        "conf": {
            "cniVersion": "0.3.0",
            "name": "weave",
            "plugins": [
                {"name": "weave", "type": "weave-net", "hairpinMode": True},
                {"type": "portmap", "capabilities": {"portMappings": True}, "snat": True},
            ],
        },
        "bins": ["weave-net", "weave-ipam"],
    },
    "calico-node": {
        "file": "10-calico.conflist",
        "conf": {
            "name": "k8s-pod-network",
            "cniVersion": "0.3.1",
            "plugins": [
                {
                    "type": "calico",
                    "log_level": "info",
                    "datastore_type": "kubernetes",
                    "mtu": 0,
                    "ipam": {"type": "calico-ipam"},
                    "policy": {"type": "k8s"},
                    "kubernetes": {"kubeconfig": "/etc/cni/net.d/calico-kubeconfig"},
                },
                {"type": "portmap", "snat": True, "capabilities": {"portMappings": True}},
                {"type": "bandwidth", "capabilities": {"bandwidth": True}},
            ],
        },
        "bins": ["calico", "calico-ipam"],
    },
}


def cni_network_status(cri: CriConfig) -> tuple[bool, str]:
    """containerd's CRI network status (go-cni Status through the CRI Status call).

    Ready when the first network config of conf_dir (libcni ConfFiles order: .conf, .conflist,
    .json sorted by name; containerd loads one, max_conf_num = 1) parses and every plugin type in
    it, and `loopback`, is an executable in one of the CNI bin dirs. Returns (ready, detail).
    """
    conf_dir = host_path(cri.cni_conf_dir)
    try:
        files = sorted(f for f in conf_dir.iterdir() if f.suffix in (".conf", ".conflist", ".json"))
    except OSError:
        files = []
    if not files:
        return (
            False,
            f"cni config load failed: no network config found in {cri.cni_conf_dir}: "
            "cni plugin not initialized",
        )
    try:
        doc = json.loads(files[0].read_text())
        types = [str(pl["type"]) for pl in doc["plugins"]] if "plugins" in doc else [str(doc["type"])]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return False, f"cni config load failed: failed to load CNI config {files[0]}: {exc}"
    for plugin in [*types, "loopback"]:
        if not any(os.access(host_path(d) / plugin, os.X_OK) for d in cri.cni_bin_dirs):
            return False, f'failed to find plugin "{plugin}" in path {_go_list(cri.cni_bin_dirs)}'
    return True, ""


def _ds_host_dirs(ds: dict[str, Any]) -> tuple[str, str]:
    """The host CNI bin and conf dirs a network DaemonSet mounts (hostPath volumes)."""
    vols = (((ds.get("spec") or {}).get("template") or {}).get("spec") or {}).get("volumes") or []
    paths = [str((v.get("hostPath") or {}).get("path") or "") for v in vols]
    bin_dir = next((x for x in paths if x.rstrip("/").endswith("cni/bin")), "/opt/cni/bin")
    # weave mounts /etc and writes /etc/cni/net.d; calico mounts /etc/cni/net.d itself.
    conf = next((x for x in paths if x.rstrip("/").endswith("cni/net.d")), "/etc/cni/net.d")
    return bin_dir, conf


def _pod_images(ds: dict[str, Any]) -> list[str]:
    spec = ((ds.get("spec") or {}).get("template") or {}).get("spec") or {}
    return [
        str(c["image"])
        for c in (spec.get("initContainers") or []) + (spec.get("containers") or [])
        if c.get("image")
    ]


class KubeletRuntime:
    """What the kubelet double asks of containerd, refreshed every `ttl` seconds."""

    def __init__(self, cri_socket: str, log_dir: Path, ttl: float = 10.0) -> None:
        self.cri_socket, self.log_dir, self.ttl = cri_socket, log_dir, ttl
        self._at = -1e9
        self.cri = CriConfig({})
        self.store = ImageStore(cri_socket, self.cri)
        self._sandbox_err: str | None = None
        self._said: dict[str, str] = {}
        self._failed: dict[str, tuple[float, str]] = {}  # image -> (when, error): pull back-off

    def refresh(self, force: bool = False) -> None:
        if not force and time.monotonic() - self._at < self.ttl:
            return
        self._at = time.monotonic()
        self.cri = containerd_config()
        self.store = ImageStore(self.cri_socket, self.cri, pull_timeout=20)
        self._sandbox_err = self.ensure(self.cri.sandbox_image)

    def ensure(self, image: str) -> str | None:
        """store.ensure with a 60 s back-off after a failed pull (like ImagePullBackOff), so an
        unreachable registry never holds up the node status heartbeat for long."""
        if self.store.exists(image):
            self._failed.pop(image, None)
            return None
        when, err = self._failed.get(image, (-1e9, ""))
        if time.monotonic() - when < 60:
            return err
        err2 = self.store.ensure(image)
        if err2 is not None:
            self._failed[image] = (time.monotonic(), err2)
        return err2

    def sandbox_error(self) -> str | None:
        """containerd's RunPodSandbox: the sandbox image must be present (or pulled)."""
        self.refresh()
        if self._sandbox_err is None:
            return None
        img = self.cri.sandbox_image
        return (
            f'rpc error: code = Unknown desc = failed to get sandbox image "{img}": '
            f'failed to pull image "{img}": {self._sandbox_err}'
        )

    def pod_status(self, pod: str, status: dict[str, Any], log: str) -> None:
        """Pod status as the kubelet would report it, in pods/<pod>.status.json; log lines once."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        _write(self.log_dir / f"{pod}.status.json", json.dumps(status, indent=1))
        if log and self._said.get(pod) != log:
            self._said[pod] = log
            sys.stderr.write(log + "\n")
            with open(self.log_dir / f"{pod}.log", "a") as fh:
                fh.write(log + "\n")

    def sandbox_gate(self, pod: str) -> bool:
        """True when the pod's sandbox can be created; else its status says why."""
        err = self.sandbox_error()
        if err is None:
            return True
        self.pod_status(
            pod,
            {
                "phase": "Pending",
                "reason": "FailedCreatePodSandBox",
                "message": f"Failed to create pod sandbox: {err}",
            },
            f'kubelet: "Failed to create sandbox for pod" err="{err}" pod="kube-system/{pod}"',
        )
        return False

    def pod_gate(self, pod: str, images: list[str]) -> bool:
        """The sandbox, then every container image (imagePullPolicy IfNotPresent): present or
        pulled; else the pod stays Pending with ErrImagePull (pkg/kubelet/images/image_manager.go)."""
        if not self.sandbox_gate(pod):
            return False
        for image in images:
            err = self.ensure(image)
            if err is not None:
                msg = f"rpc error: code = Unknown desc = {err}"
                self.pod_status(
                    pod,
                    {"phase": "Pending", "reason": "ErrImagePull", "image": image, "message": msg},
                    f'kubelet: "Failed to pull image" err="{msg}" image="{image}" pod="kube-system/{pod}"',
                )
                return False
        return True

    def run_network_pod(self, ds: dict[str, Any], node: str) -> None:
        """The DaemonSet pod of this node: its images (and the sandbox) must be in containerd; then
        its install containers write the conflist and plugin binaries on the host."""
        name = str(ds["metadata"]["name"])
        pod = f"{name}-{node}"
        if not self.pod_gate(pod, _pod_images(ds)):
            return
        plugin = NETWORK_PLUGINS.get(name)
        if plugin is not None:
            bin_dir, conf_dir = _ds_host_dirs(ds)
            for b in plugin["bins"]:
                f = host_path(bin_dir) / b
                text = _CNI_STANDIN.format(plugin=b, ds=name)
                if not f.exists() or f.read_text() != text:
                    _write(f, text, 0o755)
            conf = host_path(conf_dir) / plugin["file"]
            text = json.dumps(plugin["conf"], indent=2) + "\n"
            if not conf.exists() or conf.read_text() != text:
                _write(conf, text)
        self.pod_status(
            pod, {"phase": "Running", "reason": "", "message": ""}, f"kubelet: pod kube-system/{pod} running"
        )

    def ready_condition(self) -> dict[str, str]:
        """The Ready condition the kubelet posts (pkg/kubelet/nodestatus/setters.go ReadyCondition)."""
        self.refresh()
        ok, detail = cni_network_status(self.cri)
        if ok:
            return {
                "type": "Ready",
                "status": "True",
                "reason": "KubeletReady",
                "message": "kubelet is posting ready status",
            }
        if detail and self._said.get("__network__") != detail:
            self._said["__network__"] = detail
            sys.stderr.write(
                f'kubelet: "Container runtime network not ready" networkReady="{NETWORK_NOT_READY}" '
                f'detail="{detail}"\n'
            )
        return {"type": "Ready", "status": "False", "reason": "KubeletNotReady", "message": NETWORK_NOT_READY}


def _network_daemonsets(client: ApiClient) -> list[dict[str, Any]]:
    """The network plugin DaemonSets: apps/v1 when the API server serves it, else the double's store."""
    try:
        items = client.request("GET", "/apis/apps/v1/daemonsets").get("items") or []
    except ApiError as exc:
        if exc.status not in (404, 405):
            raise
        items = client.request("GET", "/apis/double.koral/v1/objects?kind=DaemonSet").get("items") or []
    out = []
    for ds in items:
        if ds.get("kind", "DaemonSet") != "DaemonSet":
            continue
        vols = (((ds.get("spec") or {}).get("template") or {}).get("spec") or {}).get("volumes") or []
        if ds["metadata"].get("name") in NETWORK_DAEMONSETS or any(
            str((v.get("hostPath") or {}).get("path") or "").rstrip("/").endswith("cni/net.d") for v in vols
        ):
            out.append(ds)
    return out


class _Healthz(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        raw = b"ok"
        self.send_response(200 if self.path.startswith("/healthz") else 404)
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, fmt: str, *args: Any) -> None:
        pass


def _serve_background(srv: ThreadingHTTPServer) -> None:
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()


CGROUP2_SUPER_MAGIC = 0x63677270


def _cgroup2_unified() -> bool:
    """libcontainer cgroups.IsCgroup2UnifiedMode: statfs("/sys/fs/cgroup").f_type == CGROUP2_SUPER_MAGIC."""
    import ctypes

    buf = ctypes.create_string_buffer(256)  # struct statfs; f_type (a C long) comes first
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.statfs(b"/sys/fs/cgroup", buf) != 0:
        return False
    return ctypes.c_long.from_buffer(buf).value == CGROUP2_SUPER_MAGIC


def _check_cgroup_v1(cfg: dict[str, Any]) -> None:
    """KubeletConfiguration.failCgroupV1 (default false up to 1.34, true from 1.35, KEP-5573): on a
    cgroup v1 host the kubelet exits with ValidateKubeletConfiguration's error, wrapped by
    cmd/kubelet/app/server.go (kubernetes/kubernetes pkg/kubelet/apis/config/validation/
    validation_linux.go; text of 1.35 as logged in kubernetes/node-problem-detector PR #1169)."""
    facts = _releases().get(str(_vtuple(DOUBLE_VERSION)[1])) or {}
    fail = cfg.get("failCgroupV1")
    if fail is None:
        fail = bool(facts.get("fail_cgroup_v1_default", False))
    if fail and not _cgroup2_unified():
        text = facts.get("cgroup_v1_error") or (
            "kubelet is configured to not run on a host using cgroup v1. "
            "cgroup v1 support is in maintenance mode"
        )
        raise DoubleError(
            f"failed to validate kubelet configuration, error: {text}, path: &TypeMeta{{Kind:,APIVersion:,}}"
        )


_SEMVER = re.compile(r"v?(\d+)\.(\d+)\.(\d+)")


def _runtime_version(cri: str) -> str | None:
    """What the CRI ``Version`` call answers as RuntimeVersion: containerd's ``version.Version``
    (containerd internal/cri/server/version.go), which ``ctr version`` prints as the "Server:"
    block's Version and ``containerd --version`` as its third field. None when neither answers."""
    for argv in (["ctr", "--address", _cri_path(cri), "version"], ["containerd", "--version"]):
        if shutil.which(argv[0]) is None:
            continue
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
        except (OSError, subprocess.TimeoutExpired):
            continue
        out = proc.stdout if proc.returncode == 0 else ""
        if argv[0] == "ctr":
            server = out.split("Server:", 1)[1] if "Server:" in out else ""
            found = re.search(r"^\s*Version:\s*(\S+)", server, re.M)
            version = found.group(1) if found else ""
        else:
            fields = out.split()
            version = fields[2] if len(fields) > 2 and fields[0] == "containerd" else ""
        if _SEMVER.match(version):
            return version
    return None


def _check_runtime(cri: str, driver: str) -> tuple[str, str | None]:
    """The kubelet's start-up talk with the runtime (cmd/kubelet/app/server.go): the CRI v1
    ``Version`` call (k8s.io/cri-client ``remote_runtime.go`` validateServiceConnection; v1 is the
    only CRI API from 1.26, containerd implements it from 1.6), then ``getCgroupDriverFromCRI``
    (KEP-4033, GA in 1.34). containerd >= 2.0 answers ``RuntimeConfig`` and its cgroup driver
    replaces the kubelet's ``cgroupDriver`` ("Using cgroup driver setting received from the CRI
    runtime"). containerd < 2.0 answers Unimplemented: the kubelet logs the fallback line, sets
    ``kubelet_cri_losing_support{version}`` and keeps ``cgroupDriver`` from its config - it does not
    refuse the runtime in 1.34-1.37. Returns the cgroup driver in use and the runtime version
    (None: not learned, nothing checked)."""
    version = _runtime_version(cri)
    if version is None:
        return driver, None
    m = _SEMVER.match(version)
    assert m is not None  # _runtime_version returns matching versions only
    major, minor = int(m.group(1)), int(m.group(2))
    if (major, minor) < (1, 6):
        raise DoubleError(
            f'validate service connection: validate CRI v1 runtime API for endpoint "{cri}": '
            "rpc error: code = Unimplemented desc = unknown service runtime.v1.RuntimeService"
        )
    facts = _releases().get(str(_vtuple(DOUBLE_VERSION)[1])) or {}
    label = facts.get("cri_losing_support")
    if not label:
        return driver, version  # before 1.34 the double models no RuntimeConfig call
    if major < 2:
        sys.stderr.write(
            '"CRI implementation should be updated to support RuntimeConfig. '
            'Falling back to using cgroupDriver from kubelet config."\n'
        )
        KUBELET_METRICS["kubelet_cri_losing_support"] = {"version": label}
        return driver, version
    runtime_driver = containerd_config().cgroup_driver
    if runtime_driver is None:
        runtime_driver = "systemd" if host_path("/run/systemd/system").is_dir() else "cgroupfs"
    sys.stderr.write(
        f'"Using cgroup driver setting received from the CRI runtime" cgroupDriver="{runtime_driver}"\n'
    )
    return runtime_driver, version


# Gauges the kubelet double sets (name -> labels; value 1), like the kubelet's legacy registry
# (not served: the double has no /metrics endpoint).
KUBELET_METRICS: dict[str, dict[str, str]] = {}


def kubelet_main(argv: list[str]) -> int:
    known = dict(KUBELET_FLAGS)
    if _vtuple(DOUBLE_VERSION)[:2] >= (1, 35):
        # Removed from the kubelet command line in 1.35 (kubernetes/kubernetes CHANGELOG-1.35.md,
        # PR #133779): passing it is an unknown flag and the kubelet does not start.
        known.pop("pod-infra-container-image", None)
    flags, pos = parse_flags(argv, known, {"v": "v"}, prog="kubelet")
    if flags.get("version"):
        print(f"Kubernetes v{DOUBLE_VERSION}")
        return 0
    if pos:
        raise DoubleError(f"unknown command {pos[0]!r} for kubelet")
    cfg_path = flags.get("config")
    if not cfg_path:
        raise DoubleError("kubelet double: --config is required (kubeadm-managed kubelet)")
    try:
        cfg = yaml_load(Path(cfg_path).read_text())
    except OSError as exc:
        raise DoubleError(
            f"failed to load kubelet config file, path: {cfg_path}, error: open {cfg_path}: "
            f"{exc.strerror.lower() if exc.strerror else exc}"
        ) from None
    if cfg.get("apiVersion") != "kubelet.config.k8s.io/v1beta1" or cfg.get("kind") != "KubeletConfiguration":
        raise DoubleError(f"{cfg_path}: expected kubelet.config.k8s.io/v1beta1 KubeletConfiguration")
    driver = flags.get("cgroup-driver") or cfg.get("cgroupDriver") or "cgroupfs"
    if driver not in ("systemd", "cgroupfs"):
        raise DoubleError(f"invalid configuration: cgroupDriver {driver!r}")
    _check_cgroup_v1(cfg)
    cri = flags.get("container-runtime-endpoint") or cfg.get("containerRuntimeEndpoint") or DEFAULT_CRI
    if not Path(_cri_path(cri)).is_socket():
        raise DoubleError(
            f'validate service connection: validate CRI v1 runtime API for endpoint "{cri}": '
            f"rpc error: code = Unavailable desc = connection error: dial unix {_cri_path(cri)}: "
            "connect: no such file or directory"
        )
    driver, runtime_version = _check_runtime(cri, driver)
    global RUNTIME_VERSION
    RUNTIME_VERSION = runtime_version or "double"
    swaps = Path("/proc/swaps").read_text().splitlines() if Path("/proc/swaps").exists() else []
    if cfg.get("failSwapOn", flags.get("fail-swap-on", True)) and len(swaps) > 1:
        raise DoubleError("running with swap on is not supported, please disable swap")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    ThreadingHTTPServer.allow_reuse_address = True
    _serve_background(
        ThreadingHTTPServer(
            (cfg.get("healthzBindAddress") or "127.0.0.1", int(cfg.get("healthzPort") or 10248)), _Healthz
        )
    )
    _serve_kubelet_api(int(cfg.get("port") or 10250))
    runtime = KubeletRuntime(cri, STATE_DIR / "pods")
    pods = StaticPods(Path(cfg.get("staticPodPath") or K8S_DIR / "manifests"), STATE_DIR / "pods", runtime)
    kubeconfig = Path(flags.get("kubeconfig") or K8S_DIR / "kubelet.conf")
    name = flags.get("hostname-override") or _hostname()
    ip = flags.get("node-ip") or _default_ip()
    registered = False
    last_ready: dict[str, str] = {"status": "", "lastTransitionTime": now_rfc3339()}
    next_beat = 0.0
    sys.stderr.write(f"kubelet double v{DOUBLE_VERSION} started (node {name}, cgroupDriver {driver})\n")
    try:
        while not stop.is_set():
            pods.sync()
            if time.monotonic() >= next_beat and kubeconfig.exists():
                try:
                    client = Kubeconfig(kubeconfig).client(timeout=5)
                    if not registered:
                        registered = _register(
                            client,
                            name,
                            ip,
                            flags.get("node-labels", ""),
                            flags.get("provider-id", ""),
                            external_cloud=flags.get("cloud-provider") == "external",
                        )
                    if registered:
                        runtime.refresh(force=True)
                        try:
                            for ds in _network_daemonsets(client):
                                runtime.run_network_pod(ds, name)
                        except (ApiError, DoubleError, OSError) as exc:
                            sys.stderr.write(f"kubelet: cannot sync the network DaemonSet pods: {exc}\n")
                        ready = runtime.ready_condition()
                        if ready["status"] != last_ready["status"]:
                            last_ready.update(ready, lastTransitionTime=now_rfc3339())
                        ready["lastTransitionTime"] = last_ready["lastTransitionTime"]
                        client.request(
                            "PATCH",
                            f"/api/v1/nodes/{name}/status",
                            {"status": {"nodeInfo": _node_info(), "conditions": [ready]}},
                            "application/merge-patch+json",
                        )
                    next_beat = time.monotonic() + 10
                except ApiError as exc:
                    if exc.status == 404:
                        registered = False
                    sys.stderr.write(f"kubelet: node status update failed: {exc}\n")
                    next_beat = time.monotonic() + 2
                except DoubleError as exc:
                    sys.stderr.write(f"kubelet: node status update failed: {exc}\n")
                    next_beat = time.monotonic() + 2
            stop.wait(1)
    finally:
        pods.stop_all()
    return 0


# What the CRI Version call answered at kubelet start (nodeInfo.containerRuntimeVersion).
RUNTIME_VERSION = "double"


def _node_info() -> dict[str, str]:
    u = os.uname()
    return {
        "kubeletVersion": f"v{DOUBLE_VERSION}",
        "kubeProxyVersion": f"v{DOUBLE_VERSION}",
        "containerRuntimeVersion": f"containerd://{RUNTIME_VERSION}",
        "kernelVersion": u.release,
        "operatingSystem": "linux",
        "architecture": "amd64",
        "osImage": _os_image(),
        # v1.NodeSystemInfo fields every kubelet posts (clients such as the Python client require them)
        "machineID": _read_id("/etc/machine-id"),
        "systemUUID": _read_id("/sys/class/dmi/id/product_uuid"),
        "bootID": _read_id("/proc/sys/kernel/random/boot_id"),
    }


def _read_id(path: str) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return ""


def _os_image() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    return "Linux"


def _register(
    client: ApiClient, name: str, ip: str, labels: str, provider_id: str = "", external_cloud: bool = False
) -> bool:
    lab = {
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "beta.kubernetes.io/os": "linux",
        "beta.kubernetes.io/arch": "amd64",
    }
    for pair in filter(None, labels.split(",")):
        k, _, v = pair.partition("=")
        lab[k] = v
    node = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": lab},
        "spec": _node_spec(provider_id, external_cloud),
        "status": {
            "addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": name}],
            "nodeInfo": _node_info(),
        },
    }
    try:
        client.request("POST", "/api/v1/nodes", node)
        sys.stderr.write(f"kubelet: successfully registered node {name}\n")
    except ApiError as exc:
        if exc.status != 409:
            raise
    return True


def _node_spec(provider_id: str, external_cloud: bool) -> dict[str, Any]:
    """The registered Node's spec: ``providerID`` from --provider-id; with --cloud-provider=external
    the taint a cloud controller manager lifts once it has initialised the Node (kubernetes/kubernetes
    pkg/kubelet/kubelet_node_status.go ``initialNode``: ``if kl.externalCloudProvider`` appends
    ``cloudproviderapi.TaintExternalCloudProvider`` = node.cloudprovider.kubernetes.io/uninitialized,
    value "true", NoSchedule; staging/src/k8s.io/cloud-provider/api/well_known_taints.go)."""
    spec: dict[str, Any] = {"providerID": provider_id} if provider_id else {}
    if external_cloud:
        spec["taints"] = [
            {"key": "node.cloudprovider.kubernetes.io/uninitialized", "value": "true", "effect": "NoSchedule"}
        ]
    return spec


def _serve_kubelet_api(port: int) -> None:
    """Port 10250 (HTTPS, self-signed serving certificate like the kubelet's own)."""
    pki = KUBELET_DIR / "pki"
    crt, key = pki / "kubelet.crt", pki / "kubelet.key"
    try:
        if not crt.exists():
            pki.mkdir(parents=True, exist_ok=True)
            _openssl(
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                str(key),
                "-out",
                str(crt),
                "-days",
                "365",
                "-subj",
                f"/CN={_hostname()}@{int(time.time())}",
            )
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(crt), str(key))
        srv = ThreadingHTTPServer(("0.0.0.0", port), _Healthz)
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
        _serve_background(srv)
    except (OSError, DoubleError) as exc:
        sys.stderr.write(f"kubelet: cannot serve :{port}: {exc}\n")


# ---------------------------------------------------------------------------------------
# Entry point: busybox-style dispatch on the program name
# ---------------------------------------------------------------------------------------


def apiserver_main(argv: list[str]) -> int:
    try:
        from . import kube_apiserver
    except ImportError:  # the zipapp: top-level modules
        import kube_apiserver  # type: ignore[no-redef]
    return kube_apiserver.apiserver_main(argv)


def self_path() -> str:
    """The executable this program runs from: the zipapp (``/usr/bin/kubelet``) or this file."""
    here = os.path.abspath(__file__)
    parent = os.path.dirname(here)
    return parent if os.path.isfile(parent) else here


PROGRAMS = {
    "kubeadm": kubeadm_main,
    "kubelet": kubelet_main,
    "kube-apiserver": apiserver_main,
}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv if argv is None else argv
    prog = os.environ.get("KORAL_DOUBLE_PROG") or os.path.basename(args[0])
    fn = PROGRAMS.get(prog)
    if fn is None:
        sys.stderr.write(f"k8s_double: run me as one of {sorted(PROGRAMS)} (got {prog!r})\n")
        return 2
    if prog == "kubeadm":
        return fn(args[1:])
    try:
        return fn(args[1:])
    except DoubleError as exc:
        msg = str(exc)
        sys.stderr.write((msg if msg.startswith(("error", "Error")) else f"error: {msg}") + "\n")
        return 1


if __name__ == "__main__":
    sys.exit(main())
