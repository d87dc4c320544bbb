"""Where the cloud is and who we are: the same conventions as ``cs`` and ngine_io.cloudstack.

``CLOUDSTACK_ENDPOINT``, ``CLOUDSTACK_KEY`` and ``CLOUDSTACK_SECRET`` win when the endpoint is
set; otherwise the profile ``CLOUDSTACK_REGION`` (default ``cloudstack``) is read from
``~/.cloudstack.ini``, ``./cloudstack.ini`` and ``$CLOUDSTACK_CONFIG`` (the last file read wins).
Optional ``CLOUDSTACK_TIMEOUT`` / ``timeout`` and ``CLOUDSTACK_VERIFY`` / ``verify`` are honoured
too. The node template (the spec has no field for it) comes from ``KORAL_CLOUDSTACK_TEMPLATE``
or the profile key ``koral_template``.

The secret is kept out of ``repr`` and never put in messages.
"""

from __future__ import annotations

import os
from configparser import ConfigParser
from configparser import Error as IniError
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlsplit

from koral_ansible.errors import InputError

TEMPLATE_ENV = "KORAL_CLOUDSTACK_TEMPLATE"
JOB_TIMEOUT_ENV = "KORAL_CLOUDSTACK_JOB_TIMEOUT"


@dataclass(frozen=True)
class CloudConfig:
    endpoint: str
    key: str
    secret: str = field(repr=False)
    timeout: float = 30.0  # one HTTP request
    verify: bool | str = True
    template: str | None = None
    job_timeout: float = 3600.0  # CKS's cluster timeouts are one hour
    poll_interval: float = 0.5  # first async-job poll; grows by poll_backoff up to poll_max
    poll_backoff: float = 1.5
    poll_max: float = 5.0
    retries: int = 4  # transient HTTP errors
    max_inflight_jobs: int = 0  # async jobs running at once (0: no limit; 1: one after another)
    retry_delay: float = 1.0
    profile: str | None = None

    @property
    def where(self) -> str:
        """The endpoint without credentials or query (safe to show)."""
        parts = urlsplit(self.endpoint)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.scheme}://{host}{port}{parts.path}"

    def with_(self, **changes: object) -> CloudConfig:
        return replace(self, **changes)  # type: ignore[arg-type]


def _ini_paths() -> list[Path]:
    paths = [Path.home() / ".cloudstack.ini", Path.cwd() / "cloudstack.ini"]
    if os.environ.get("CLOUDSTACK_CONFIG"):
        paths.append(Path(os.environ["CLOUDSTACK_CONFIG"]).expanduser())
    return paths


def _verify(raw: str | None) -> bool | str:
    if raw is None or raw == "":
        return True
    if raw.lower() in ("false", "no", "0", "off"):
        return False
    if raw.lower() in ("true", "yes", "1", "on"):
        return True
    return raw  # a CA bundle path


def _number(raw: str | None, default: float, name: str) -> float:
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise InputError(name, f"must be a number of seconds (got {raw!r})") from None
    if value <= 0:
        raise InputError(name, f"must be a positive number of seconds (got {raw!r})")
    return value


def load_config(region: str | None = None) -> CloudConfig:
    """Read the credentials; InputError naming what is missing (never showing the secret)."""
    env = os.environ
    template = env.get(TEMPLATE_ENV) or None
    job_timeout = _number(env.get(JOB_TIMEOUT_ENV), 3600.0, JOB_TIMEOUT_ENV)
    if env.get("CLOUDSTACK_ENDPOINT"):
        for name in ("CLOUDSTACK_KEY", "CLOUDSTACK_SECRET"):
            if not env.get(name):
                raise InputError(
                    name,
                    "must be set together with CLOUDSTACK_ENDPOINT (API key and secret key "
                    "of a CloudStack/Mold account)",
                )
        return _checked(
            CloudConfig(
                endpoint=env["CLOUDSTACK_ENDPOINT"],
                key=env["CLOUDSTACK_KEY"],
                secret=env["CLOUDSTACK_SECRET"],
                timeout=_number(env.get("CLOUDSTACK_TIMEOUT"), 30.0, "CLOUDSTACK_TIMEOUT"),
                verify=_verify(env.get("CLOUDSTACK_VERIFY")),
                template=template,
                job_timeout=job_timeout,
            )
        )
    profile = region or env.get("CLOUDSTACK_REGION") or "cloudstack"
    paths = _ini_paths()
    ini = ConfigParser(interpolation=None)
    try:
        read = ini.read([str(p) for p in paths])
    except IniError as exc:
        raise InputError("cloudstack.ini", f"cannot be parsed: {type(exc).__name__}") from None
    if not read:
        raise InputError(
            "CLOUDSTACK_ENDPOINT",
            "is not set and no cloudstack.ini was found (tried "
            + ", ".join(str(p) for p in paths)
            + "); set CLOUDSTACK_ENDPOINT/CLOUDSTACK_KEY/CLOUDSTACK_SECRET or write a profile",
        )
    if not ini.has_section(profile):
        known = ", ".join(ini.sections()) or "none"
        raise InputError(
            "CLOUDSTACK_REGION", f"profile [{profile}] not found in cloudstack.ini (profiles: {known})"
        )
    sect = ini[profile]
    for key in ("endpoint", "key", "secret"):
        if not sect.get(key):
            raise InputError(f"cloudstack.ini [{profile}] {key}", "is required (endpoint, key and secret)")
    return _checked(
        CloudConfig(
            endpoint=sect["endpoint"],
            key=sect["key"],
            secret=sect["secret"],
            timeout=_number(sect.get("timeout"), 30.0, f"cloudstack.ini [{profile}] timeout"),
            verify=_verify(sect.get("verify")),
            template=template or sect.get("koral_template") or None,
            job_timeout=job_timeout,
            profile=profile,
        )
    )


def _checked(cfg: CloudConfig) -> CloudConfig:
    parts = urlsplit(cfg.endpoint)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InputError("CLOUDSTACK_ENDPOINT", "must be a URL like https://cloud.example.com/client/api")
    return cfg
