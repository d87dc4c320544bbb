"""Merge a cluster's admin kubeconfig into the user's kubeconfig, and take it out again.

Follows kind (kubernetes-sigs/kind pkg/cluster/internal/kubeconfig/internal/kubeconfig/):

- which file (paths.go): ``$KUBECONFIG`` is a list of files (empty and repeated entries dropped);
  a merge goes to the first file that exists, else the last one; without ``$KUBECONFIG`` it is
  ``~/.kube/config``. A removal looks at every file of the list.
- merge.go: the cluster, user and context entries named ``koral-NAME`` are replaced in place when
  present and appended otherwise; every other entry and field is kept; the current context changes
  only when asked; ``apiVersion``/``kind`` are added to a file that has none.
- remove.go: only the ``koral-NAME`` entries go, and the current context is unset if it was
  ``koral-NAME``.
- lock.go: ``FILE.lock`` created exclusively (client-go's tools/clientcmd/loader.go lock, so kubectl
  and kind see it), 5 tries 100 ms apart; the file is written with mode 0600.

Unlike kind the write is atomic (a temporary file in the same directory renamed over the file,
symlinks followed), so an interrupted merge never leaves half a kubeconfig.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from koral_ansible.errors import OperationError

KUBECONFIG_ENV = "KUBECONFIG"
LOCK_TRIES = 5
LOCK_WAIT = 0.1
SECTIONS = (("clusters", "cluster"), ("users", "user"), ("contexts", "context"))


def entry_name(cluster: str) -> str:
    """The name of the cluster, user and context entries of a koral cluster."""
    return f"koral-{cluster}"


def config_paths(environ: Mapping[str, str] | None = None) -> list[Path]:
    """The kubeconfig files kubectl reads (kind's paths())."""
    env = os.environ if environ is None else environ
    seen: list[str] = []
    for item in env.get(KUBECONFIG_ENV, "").split(os.pathsep):
        if item and item not in seen:
            seen.append(item)
    if seen:
        return [Path(p).expanduser() for p in seen]
    return [Path(env.get("HOME") or Path.home()) / ".kube" / "config"]


def merge_path(environ: Mapping[str, str] | None = None) -> Path:
    """The file a merge writes to (kind's pathForMerge): the first that exists, else the last."""
    paths = config_paths(environ)
    return next((p for p in paths if p.is_file()), paths[-1])


def merge(
    cluster: str, source: Path, set_current: bool = False, environ: Mapping[str, str] | None = None
) -> Path:
    """Put ``source``'s cluster, user and context into the user's kubeconfig as ``koral-NAME``."""
    name = entry_name(cluster)
    entries = _entries(source, name)
    target = merge_path(environ)
    with _locked(target):
        config = _read(target)
        for (section, _), entry in zip(SECTIONS, entries, strict=True):
            items = config[section]
            at = next((i for i, item in enumerate(items) if item.get("name") == name), None)
            if at is None:
                items.append(entry)
            else:
                items[at] = entry
        if set_current:
            config["current-context"] = name
        _write(target, config)
    return target


def remove(cluster: str, environ: Mapping[str, str] | None = None) -> tuple[list[Path], list[str]]:
    """Take the ``koral-NAME`` entries out of every kubeconfig file.

    Returns the files changed and, for files that could not be changed (damaged, locked), one
    message each: the other files are still cleaned."""
    name = entry_name(cluster)
    changed: list[Path] = []
    problems: list[str] = []
    for path in config_paths(environ):
        try:
            if path.is_file() and _remove_from(path, name):
                changed.append(path)
        except OperationError as exc:
            problems.append(exc.message)
    return changed, problems


def _remove_from(path: Path, name: str) -> bool:
    if not _mentions(_read(path), name):
        return False  # no lock (and no ~/.kube) for files that do not hold the cluster
    with _locked(path):
        config = _read(path)
        if not _mentions(config, name):
            return False
        for section, _ in SECTIONS:
            config[section] = [item for item in config[section] if item.get("name") != name]
        if config.get("current-context") == name:
            config["current-context"] = ""
        _write(path, config)
    return True


def _mentions(config: dict[str, Any], name: str) -> bool:
    return config.get("current-context") == name or any(
        item.get("name") == name for section, _ in SECTIONS for item in config[section]
    )


def _entries(source: Path, name: str) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """The cluster, user and context entries of a one-cluster kubeconfig (kubeadm's admin.conf),
    renamed to ``name``: the current context's, else the first context's."""
    config = _read(source)
    contexts = config["contexts"]
    if not contexts:
        raise OperationError(f"{source} has no context to merge")
    current = config.get("current-context")
    context = next((c for c in contexts if c.get("name") == current), contexts[0])
    body = dict(context.get("context") or {})
    found = []
    for section, key in SECTIONS[:2]:
        wanted = body.get(key)
        entry = next((e for e in config[section] if e.get("name") == wanted), None)
        if entry is None or not isinstance(entry.get(key), dict):
            raise OperationError(f"{source}: context {context.get('name')!r} names no {key} in {section}")
        found.append({"name": name, key: entry[key]})
    body.update(cluster=name, user=name)
    return found[0], found[1], {"name": name, "context": body}


def _read(path: Path) -> dict[str, Any]:
    """A kubeconfig as a dict with list sections (a missing or empty file is an empty config)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        text = ""
    except OSError as exc:
        raise OperationError(f"cannot read kubeconfig {path}: {exc.strerror}") from None
    try:
        config = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise OperationError(f"kubeconfig {path} is not valid YAML ({exc}); nothing changed") from None
    if not isinstance(config, dict):
        raise OperationError(f"kubeconfig {path} is not a mapping; nothing changed")
    for section, _ in SECTIONS:
        items = config.get(section) or []
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise OperationError(f"kubeconfig {path}: {section} is not a list of entries; nothing changed")
        config[section] = items
    return config


def _write(path: Path, config: dict[str, Any]) -> None:
    """Write atomically with mode 0600 (through a symlink to the file it points at)."""
    config.setdefault("apiVersion", "v1")
    config.setdefault("kind", "Config")
    ordered: dict[str, Any] = {k: config[k] for k in ("apiVersion", "kind") if k in config}
    ordered.update(config)
    real = Path(os.path.realpath(path))
    real.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{real.name}.", suffix=".tmp", dir=real.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            yaml.safe_dump(ordered, fh, sort_keys=False, default_flow_style=False)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, real)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """client-go's kubeconfig lock: ``FILE.lock`` created exclusively, removed after."""
    lock = Path(f"{path}.lock")
    lock.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    for attempt in range(LOCK_TRIES):
        try:
            os.close(os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
            break
        except FileExistsError:
            if attempt == LOCK_TRIES - 1:
                raise OperationError(
                    f"kubeconfig {path} is locked ({lock} exists); remove it if no kubectl is running"
                ) from None
            time.sleep(LOCK_WAIT)
    try:
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            lock.unlink()
