"""Fingerprints (SPEC §6): SHA-256 over canonical JSON of {project, name, request}, with the spec's
documented defaults filled in, so writing a default out, reordering keys or rotating a secret (the
request is the redacted view) is not a change."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from intuned_runs.validation import select_variant

# Bump when the rules below change: stored fingerprints are then recomputed from stored requests.
FINGERPRINT_VERSION = 1


def with_defaults(value: Any, schema: dict[str, Any]) -> Any:
    """A copy of `value` with every absent property that has a schema `default` filled in.

    For oneOf/anyOf the variant is chosen as validation chooses it. With the Run API spec this gives
    exactly SPEC §6's list: retry {maximumAttempts: 3}, saveTrace true, requestTimeout 600, authSession
    autoRecreate/checkAttempts/createAttempts/requestTimeout, sink skipOnFail false.
    """
    if not isinstance(value, dict):
        return value
    variant, _ = select_variant(schema, value)
    if variant is not None:
        schema = variant
    properties = schema.get("properties")
    if not isinstance(properties, dict):
        return value
    filled = dict(value)
    for name, sub in properties.items():
        if not isinstance(sub, dict):
            continue
        if name in filled:
            filled[name] = with_defaults(filled[name], sub)
        elif "default" in sub:
            filled[name] = with_defaults(sub["default"], sub)
    return filled


def _integral(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _integral(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_integral(v) for v in value]
    return value


def canonical(value: Any) -> bytes:
    return json.dumps(_integral(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def fingerprint(project: str, name: str, request: Any, schema: dict[str, Any]) -> str:
    body = {"project": project, "name": name, "request": with_defaults(request, schema)}
    return "sha256:" + hashlib.sha256(canonical(body)).hexdigest()


def changes(before: Any, after: Any, schema: dict[str, Any], path: str = "request") -> list[dict[str, Any]]:
    """Field-level differences of two requests as the fingerprint sees them (defaults filled)."""
    return _diff(_integral(with_defaults(before, schema)), _integral(with_defaults(after, schema)), path)


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
