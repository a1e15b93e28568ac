"""Fingerprints (docs/plan.md): SHA-256 over canonical JSON of {project, name, request}, with the spec's
documented defaults filled in, so writing a default out, reordering keys or rotating a secret (the
request is the redacted view) is not a change."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from intuned_runs.validation import select_variant

# Bump when the rules below change: stored fingerprints are then recomputed from stored requests.
FINGERPRINT_VERSION = 1


def normalized(value: Any, schema: dict[str, Any] | None) -> Any:
    """A copy of `value` as the fingerprint sees it, in one walk: every absent property that has a
    schema `default` filled in, and integral floats written as integers.

    For oneOf/anyOf the variant is chosen as validation chooses it. With the Run API spec the defaults
    are exactly the list of docs/plan.md, Fingerprint: retry {maximumAttempts: 3}, saveTrace true, requestTimeout 600,
    authSession autoRecreate/checkAttempts/createAttempts/requestTimeout, sink skipOnFail false.
    """
    if isinstance(value, dict):
        properties = None
        if schema is not None:
            variant, _ = select_variant(schema, value)
            properties = (variant or schema).get("properties")
        if not isinstance(properties, dict):
            return {k: normalized(v, None) for k, v in value.items()}
        out = {k: normalized(v, properties.get(k)) for k, v in value.items()}
        for name, sub in properties.items():
            if name not in out and isinstance(sub, dict) and "default" in sub:
                out[name] = normalized(sub["default"], sub)
        return out
    if isinstance(value, list):
        items = schema.get("items") if schema is not None else None
        return [normalized(v, items if isinstance(items, dict) else None) for v in value]
    if type(value) is float and value.is_integer():
        return int(value)
    return value


def canonical(value: Any) -> bytes:
    """Canonical JSON (docs/plan.md): sorted keys, no spaces, UTF-8. `value` is already `normalized`."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def fingerprint(project: str, name: str, request: Any, schema: dict[str, Any]) -> str:
    body = {"project": project, "name": name, "request": normalized(request, schema)}
    return "sha256:" + hashlib.sha256(canonical(body)).hexdigest()


def changes(before: Any, after: Any, schema: dict[str, Any], path: str = "request") -> list[dict[str, Any]]:
    """Field-level differences of two requests as the fingerprint sees them (defaults filled)."""
    return _diff(normalized(before, schema), normalized(after, schema), path)


_ABSENT = object()


def _diff(before: Any, after: Any, path: str) -> list[dict[str, Any]]:
    if isinstance(before, dict) and isinstance(after, dict):
        out: list[dict[str, Any]] = []
        for key in sorted(set(before) | set(after), key=str):
            out += _diff(before.get(key, _ABSENT), after.get(key, _ABSENT), f"{path}.{key}")
        return out
    if isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        out = []
        for index, (b, a) in enumerate(zip(before, after, strict=True)):
            out += _diff(b, a, f"{path}[{index}]")
        return out
    if before is not _ABSENT and after is not _ABSENT and type(before) is type(after) and before == after:
        return []
    change: dict[str, Any] = {"path": path}
    if before is not _ABSENT:
        change["before"] = before
    if after is not _ABSENT:
        change["after"] = after
    return [change]
