"""Filters of the cloud_provider role: the CloudStack Kubernetes Provider's cloud-config and the
Secret that carries it.

``cloud_provider_cloud_config(api_url, api_key, secret_key, project_id='', zone='',
ssl_no_verify=False)``: the gcfg ``[Global]`` section the provider reads (apache/cloudstack-
kubernetes-provider cloudstack.go ``CSConfig``: api-url, api-key, secret-key, ssl-no-verify,
project-id, zone); optional keys are left out when empty.

``cloud_provider_secret(cloud_config, name, namespace, key)``: a v1 Secret manifest with the
config under ``data`` (base64). ``data``, not ``stringData``: the API server never stores
stringData, so kubectl apply of a stringData Secret reports "configured" on every run.
"""

from __future__ import annotations

import base64
import re
from typing import Any

import yaml
from ansible.errors import AnsibleFilterError

# gcfg values: a value with a quote, backslash, ';' or '#' or surrounding blanks must be quoted;
# keys and secrets koral writes never contain a newline.
_PLAIN = re.compile(r"^[^\s\"\\;#][^\"\\;#\n]*(?<!\s)$")


def _value(field: str, value: Any) -> str:
    text = str(value)
    if "\n" in text or "\r" in text:
        raise AnsibleFilterError(f"cloud_provider: {field} must be one line")
    if _PLAIN.match(text):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def cloud_provider_cloud_config(
    api_url: str,
    api_key: str,
    secret_key: str,
    project_id: str = "",
    zone: str = "",
    ssl_no_verify: bool = False,
) -> str:
    for field, value in (("api_url", api_url), ("api_key", api_key), ("secret_key", secret_key)):
        if not value:
            # cloudstack.go newCSCloud: "no cloud provider config given" without all three.
            raise AnsibleFilterError(f"cloud_provider: {field} must not be empty")
    lines = [
        "[Global]",
        f"api-url = {_value('api_url', api_url)}",
        f"api-key = {_value('api_key', api_key)}",
        f"secret-key = {_value('secret_key', secret_key)}",
    ]
    if project_id:
        lines.append(f"project-id = {_value('project_id', project_id)}")
    if zone:
        lines.append(f"zone = {_value('zone', zone)}")
    lines.append(f"ssl-no-verify = {'true' if ssl_no_verify else 'false'}")
    return "\n".join(lines) + "\n"


def cloud_provider_secret(cloud_config: str, name: str, namespace: str, key: str) -> str:
    # str(): Ansible hands its own (tagged) string types, which yaml.safe_dump refuses.
    name, namespace, key, cloud_config = str(name), str(namespace), str(key), str(cloud_config)
    manifest = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {"app.kubernetes.io/managed-by": "koral"},
        },
        "type": "Opaque",
        "data": {key: base64.b64encode(cloud_config.encode()).decode()},
    }
    return str(yaml.safe_dump(manifest, sort_keys=False))


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {
            "cloud_provider_cloud_config": cloud_provider_cloud_config,
            "cloud_provider_secret": cloud_provider_secret,
        }
