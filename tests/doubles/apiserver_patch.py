"""Patches as the API server applies them (PATCH with each content type).

- ``application/merge-patch+json``: RFC 7386 (staging/src/k8s.io/apimachinery/pkg/util/jsonmergepatch,
  evanphx/json-patch MergePatch).
- ``application/json-patch+json``: RFC 6902 add/remove/replace/move/copy/test.
- ``application/strategic-merge-patch+json``: staging/src/k8s.io/apimachinery/pkg/util/strategicpatch/
  patch.go for the built-in types our manifests use: maps merge, ``null`` deletes, lists of objects
  with a ``patchMergeKey`` (the MERGE_KEYS table, from the ``patchMergeKey`` struct tags of
  staging/src/k8s.io/api/core/v1/types.go) merge by key, other lists are replaced; directives
  ``$patch: replace|delete``, ``$retainKeys``, ``$setElementOrder/<list>``,
  ``$deleteFromPrimitiveList/<list>``.
- ``application/apply-patch+yaml`` (server-side apply): see :func:`server_side_apply`.

Stdlib only: shipped inside the doubles' zipapp.
"""

from __future__ import annotations

import copy
from typing import Any

# field name -> merge key (patchStrategy:"merge" patchMergeKey:"...") in core/v1 and apps/v1.
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "volumes": "name",
    "env": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "imagePullSecrets": "name",
    "hostAliases": "ip",
    "conditions": "type",
    "topologySpreadConstraints": "topologyKey",
    "ownerReferences": "uid",
    "taints": "key",
    "resourceClaims": "name",
}
# lists of objects merged by key only where the key field is present (ports: containerPort / port).
PORT_KEYS = ("containerPort", "port")
PRIMITIVE_MERGE = {"finalizers"}  # patchStrategy:"merge" lists of strings


class PatchError(ValueError):
    pass


def merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError(f"invalid JSON pointer {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _parent(doc: Any, parts: list[str]) -> Any:
    cur = doc
    for p in parts[:-1]:
        if isinstance(cur, list):
            cur = cur[int(p)]
        elif isinstance(cur, dict) and p in cur:
            cur = cur[p]
        else:
            raise PatchError(f"doc is missing path: /{'/'.join(parts)}: missing value")
    return cur


def json_patch(doc: Any, ops: Any) -> Any:
    if not isinstance(ops, list):
        raise PatchError("json patch must be a list of operations")
    out = copy.deepcopy(doc)
    for op in ops:
        kind, parts = op.get("op"), _pointer(op.get("path", ""))
        if kind == "test":
            par = _parent(out, parts)
            cur = par[int(parts[-1])] if isinstance(par, list) else par.get(parts[-1])
            if cur != op.get("value"):
                raise PatchError(f"testing value /{'/'.join(parts)} failed")
            continue
        if kind in ("move", "copy"):
            src = _pointer(op.get("from", ""))
            sp = _parent(out, src)
            val = copy.deepcopy(sp[int(src[-1])] if isinstance(sp, list) else sp[src[-1]])
            if kind == "move":
                sp.pop(int(src[-1]) if isinstance(sp, list) else src[-1])
            kind, op = "add", {**op, "value": val}
        if not parts:
            if kind in ("add", "replace"):
                out = copy.deepcopy(op.get("value"))
                continue
            raise PatchError("cannot remove the document root")
        par = _parent(out, parts)
        last = parts[-1]
        if isinstance(par, list):
            idx = len(par) if last == "-" else int(last)
            if kind == "add":
                par.insert(idx, copy.deepcopy(op.get("value")))
            elif kind == "remove":
                par.pop(idx)
            elif kind == "replace":
                par[idx] = copy.deepcopy(op.get("value"))
            else:
                raise PatchError(f"Unexpected kind: {kind}")
        elif isinstance(par, dict):
            if kind == "add":
                par[last] = copy.deepcopy(op.get("value"))
            elif kind in ("remove", "replace"):
                if last not in par:
                    raise PatchError(f"doc is missing key: /{'/'.join(parts)}: missing value")
                if kind == "remove":
                    del par[last]
                else:
                    par[last] = copy.deepcopy(op.get("value"))
            else:
                raise PatchError(f"Unexpected kind: {kind}")
        else:
            raise PatchError(f"doc is missing path: /{'/'.join(parts)}")
    return out


def _list_key(name: str, items: list[Any]) -> str | None:
    if name in MERGE_KEYS:
        return MERGE_KEYS[name]
    if name == "ports":
        for k in PORT_KEYS:
            if items and all(isinstance(i, dict) and k in i for i in items):
                return k
    return None


def strategic_merge(target: Any, patch: Any) -> Any:
    """Apply a strategic merge patch to ``target`` (a map)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    if patch.get("$patch") == "delete":
        return None
    out = copy.deepcopy(target) if isinstance(target, dict) else {}
    retain = patch.get("$retainKeys")
    for k, v in patch.items():
        if k in ("$retainKeys", "$patch") or k.startswith("$setElementOrder/"):
            continue
        if k.startswith("$deleteFromPrimitiveList/"):
            field = k.split("/", 1)[1]
            out[field] = [x for x in out.get(field) or [] if x not in (v or [])]
            continue
        if v is None:
            out.pop(k, None)
        elif isinstance(v, dict):
            merged = strategic_merge(out.get(k), v)
            if merged is None:
                out.pop(k, None)
            else:
                out[k] = merged
        elif isinstance(v, list):
            out[k] = _merge_list(k, out.get(k), v)
        else:
            out[k] = copy.deepcopy(v)
    if isinstance(retain, list):
        out = {k: v for k, v in out.items() if k in retain}
    for k, order in patch.items():
        if k.startswith("$setElementOrder/") and isinstance(out.get(k.split("/", 1)[1]), list):
            field = k.split("/", 1)[1]
            out[field] = _order(field, out[field], order)
    return out


def _order(field: str, items: list[Any], order: list[Any]) -> list[Any]:
    key = _list_key(field, [o for o in order if isinstance(o, dict)] or items)
    ident = (lambda x: x.get(key) if isinstance(x, dict) else x) if key else (lambda x: x)
    rank = {repr(ident(o)): i for i, o in enumerate(order)}
    return sorted(items, key=lambda x: rank.get(repr(ident(x)), len(rank)))


def _merge_list(field: str, current: Any, patch: list[Any]) -> list[Any]:
    cur = list(current) if isinstance(current, list) else []
    if field in PRIMITIVE_MERGE:
        return cur + [x for x in patch if x not in cur]
    key = _list_key(field, [p for p in patch if isinstance(p, dict)])
    if key is None or not all(isinstance(p, dict) for p in patch):
        if any(isinstance(p, dict) and p.get("$patch") == "replace" for p in patch):
            return [p for p in patch if not (isinstance(p, dict) and "$patch" in p)]
        return copy.deepcopy(patch)
    if any(p.get("$patch") == "replace" for p in patch):
        return [copy.deepcopy(p) for p in patch if "$patch" not in p]
    out = cur
    for p in patch:
        idx = next((i for i, c in enumerate(out) if isinstance(c, dict) and c.get(key) == p.get(key)), None)
        if p.get("$patch") == "delete":
            if idx is not None:
                out.pop(idx)
            continue
        if idx is None:
            out.append(strategic_merge({}, p))
        else:
            out[idx] = strategic_merge(out[idx], p)
    return out


# --- server-side apply ------------------------------------------------------------------
# staging/src/k8s.io/apiserver/pkg/endpoints/handlers/fieldmanager + sigs.k8s.io/structured-merge-diff:
# the applied configuration is merged into the live object; fields this manager applied last time
# and no longer sets are removed; managedFields records the manager's field set (FieldsV1).
# Simplifications (docs/conformance/apiserver.md): lists are atomic unless they have a merge key;
# conflicts with other managers are not detected.


def field_set(obj: Any, name: str = "") -> dict[str, Any]:
    """FieldsV1 of ``obj``: {"f:a": {"f:b": {}}}; keyed list items as k:{"key":"value"}."""
    out: dict[str, Any] = {}
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k in ("apiVersion", "kind"):
                continue
            sub = f"f:{k}"
            out[sub] = field_set(v, k)
    elif isinstance(obj, list):
        key = _list_key(name, [i for i in obj if isinstance(i, dict)])
        if key and all(isinstance(i, dict) for i in obj):
            for i in obj:
                out[f'k:{{"{key}":{_json_scalar(i.get(key))}}}'] = {".": {}, **field_set(i)}
    return out


def _json_scalar(v: Any) -> str:
    import json

    return json.dumps(v, separators=(",", ":"))


def _prune(live: Any, old_cfg: Any, new_cfg: Any, name: str = "") -> Any:
    """Remove from ``live`` what ``old_cfg`` set and ``new_cfg`` no longer sets."""
    if isinstance(live, dict) and isinstance(old_cfg, dict):
        new = new_cfg if isinstance(new_cfg, dict) else {}
        for k, v in old_cfg.items():
            if k not in live:
                continue
            if k not in new:
                del live[k]
            else:
                live[k] = _prune(live[k], v, new[k], k)
    elif isinstance(live, list) and isinstance(old_cfg, list):
        key = _list_key(name, [i for i in old_cfg if isinstance(i, dict)])
        if key and isinstance(new_cfg, list):
            gone = {repr(i.get(key)) for i in old_cfg if isinstance(i, dict)} - {
                repr(i.get(key)) for i in new_cfg if isinstance(i, dict)
            }
            return [i for i in live if not (isinstance(i, dict) and repr(i.get(key)) in gone)]
    return live


def _apply_merge(live: Any, cfg: Any, name: str = "") -> Any:
    if isinstance(cfg, dict):
        out = copy.deepcopy(live) if isinstance(live, dict) else {}
        for k, v in cfg.items():
            out[k] = _apply_merge(out.get(k), v, k)
        return out
    if isinstance(cfg, list):
        key = _list_key(name, [i for i in cfg if isinstance(i, dict)])
        if key and isinstance(live, list) and all(isinstance(i, dict) for i in cfg):
            out = copy.deepcopy(live)
            for item in cfg:
                idx = next(
                    (i for i, c in enumerate(out) if isinstance(c, dict) and c.get(key) == item.get(key)),
                    None,
                )
                if idx is None:
                    out.append(copy.deepcopy(item))
                else:
                    out[idx] = _apply_merge(out[idx], item)
            return out
    return copy.deepcopy(cfg)


def server_side_apply(
    live: dict[str, Any] | None, cfg: dict[str, Any], old_cfg: dict[str, Any] | None
) -> dict[str, Any]:
    """The object after applying ``cfg`` (``old_cfg``: what this manager applied last time)."""
    base = copy.deepcopy(live) if live is not None else {}
    if old_cfg:
        base = _prune(base, old_cfg, cfg)
    return dict(_apply_merge(base, cfg))
