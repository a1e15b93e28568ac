"""Checks a rendered request against the pulled schema, in words a user can act on (docs/validation.md).

jsonschema finds the problems; we translate them: `oneOf`/`anyOf` are resolved to the variant the
request means (a `type` discriminator, or the variant whose required keys are present) and that
variant's own problems are reported — never "is not valid under any of the given schemas". Keys the
schema does not define are errors (or, with `unknown_keys: warn`, warnings) with the closest known name.
`format` is an annotation: a value that fails it is a warning, never an error.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from msgspec import Struct

from intuned_runs.formats import format_problem
from intuned_runs.precompiled import packaged_check
from intuned_runs.problems import Severity
from intuned_runs.suggest import did_you_mean

# jsonschema only words errors: a valid repository never loads it (docs/performance.md, What a plan loads).
if TYPE_CHECKING:
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import ValidationError

Path = tuple[str | int, ...]
_TYPE_NAMES = {
    "object": "an object",
    "array": "a list",
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "a boolean (true/false)",
    "null": "null",
}


class Finding(Struct, frozen=True):
    path: Path  # of the offending value (for a missing key: the key that is missing)
    address: Path  # the node to point at (for a missing key: the mapping that lacks it)
    severity: Severity
    message: str


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "list" if isinstance(value, list) else "object"


def _not_json(value: Any, at: Path) -> Iterator[Finding]:
    """What a JSON body cannot carry: a non-string key (`1: a`) or a non-finite number (`.inf`)."""
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                where = (*at, str(key))
                yield Finding(where, where, "error", f"key {key!r} must be a string: quote it")
            yield from _not_json(item, (*at, str(key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _not_json(item, (*at, index))
    elif isinstance(value, float) and not math.isfinite(value):
        yield Finding(at, at, "error", "must be a finite number: JSON has no Infinity or NaN")


def _variants(schema: dict[str, Any]) -> tuple[str, list[dict[str, Any]]] | None:
    for keyword in ("oneOf", "anyOf"):
        if isinstance(schema.get(keyword), list):
            return keyword, schema[keyword]
    return None


def _discriminator(variants: list[dict[str, Any]]) -> str | None:
    """The property whose single-valued enum tells the variants apart (`type` for sink)."""
    for name in ("type", "kind"):
        if all(len(v.get("properties", {}).get(name, {}).get("enum", [])) == 1 for v in variants):
            return name
    return None


def select_variant(schema: dict[str, Any], instance: Any) -> tuple[dict[str, Any] | None, str | None]:
    """(variant the instance means, or None; a label such as 's3' for messages)."""
    found = _variants(schema)
    if found is None or not isinstance(instance, dict):
        return None, None
    _, variants = found
    key = _discriminator(variants)
    if key is not None:
        for variant in variants:
            value = variant["properties"][key]["enum"][0]
            if instance.get(key) == value:
                return variant, str(value)
        return None, None
    for variant in variants:
        required = variant.get("required", [])
        if required and all(k in instance for k in required):
            return variant, None
    return None, None


# Keywords whose meaning is the same in fastjsonschema (drafts 4-7) and in JSON Schema 2020-12. A schema
# using anything else (prefixItems, unevaluatedProperties, $dynamicRef, ...) gets no fast path.
_FAST_KEYWORDS = frozenset(
    {
        "$schema",
        "$comment",
        "type",
        "properties",
        "required",
        "additionalProperties",
        "items",
        "enum",
        "const",
        "oneOf",
        "anyOf",
        "allOf",
        "not",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "minItems",
        "maxItems",
        "minLength",
        "maxLength",
        "pattern",
        "minProperties",
        "maxProperties",
        "uniqueItems",
        "multipleOf",
        "format",
        "default",
        "description",
        "title",
        "example",
        "examples",
    }
)


def _keywords_known(schema: Any, in_properties: bool = False) -> bool:
    if isinstance(schema, list):
        return all(_keywords_known(s) for s in schema)
    if not isinstance(schema, dict):
        return True
    if in_properties:  # keys are property names, values are schemas
        return all(_keywords_known(s) for s in schema.values())
    for key, value in schema.items():
        if key not in _FAST_KEYWORDS:
            return False
        if key in ("default", "example", "examples", "enum", "const", "description", "title"):
            continue
        if not _keywords_known(value, in_properties=key == "properties"):
            return False
    return True


def _compiled(schema: dict[str, Any]) -> Callable[[Any], bool] | None:
    """A compiled check answering "is this valid?" ~25x faster than jsonschema, for the common case
    (docs/performance.md: a plan of 10,000 runs). Defaults are never written into the request (use_default=False)
    and `format` stays an annotation (use_formats=False). The packaged schema's is shipped ready-made
    (docs/performance.md, What a plan loads)."""
    shipped = packaged_check(schema)
    if shipped is not None:
        return shipped
    if not _keywords_known(schema):
        return None
    from fastjsonschema import JsonSchemaException
    from fastjsonschema import compile as compile_fast

    try:
        validate: Callable[[Any], Any] = compile_fast(schema, use_default=False, use_formats=False)
    except Exception:
        return None

    def valid(request: Any) -> bool:
        try:
            validate(request)
        except JsonSchemaException:
            return False  # jsonschema finds and words the problems
        return True

    return valid


class RequestChecker:
    """One validator per schema, built once; `check` is called once per run. `unknown_keys` is the
    severity of keys the schema does not define (config `unknown_keys`, docs/validation.md)."""

    def __init__(self, schema: dict[str, Any], unknown_keys: Severity = "error") -> None:
        self.schema = schema
        self.unknown_keys = unknown_keys
        self._validators: dict[int, Draft202012Validator] = {}
        self._fast = _compiled(schema)

    def _validator(self, schema: dict[str, Any]) -> Draft202012Validator:
        validator = self._validators.get(id(schema))
        if validator is None:
            from jsonschema import Draft202012Validator  # only to word errors (docs/performance.md, What a plan loads)

            validator = self._validators[id(schema)] = Draft202012Validator(schema)
        return validator

    def check(self, request: Any) -> list[Finding]:
        root: Path = ("request",)
        if not isinstance(request, dict):
            return [Finding(root, root, "error", f"must be a mapping (got {json_type(request)})")]
        unsendable = list(_not_json(request, root))
        if unsendable:  # the schema cannot judge what JSON cannot carry (and hashing would fail)
            return unsendable
        findings = [] if self._fast_valid(request) else list(self._errors(self.schema, request, root, "request"))
        findings += self._annotations(self.schema, request, root)
        return findings

    def _fast_valid(self, request: Any) -> bool:
        return self._fast is not None and self._fast(request)

    def _errors(self, schema: dict[str, Any], instance: Any, at: Path, what: str) -> Iterator[Finding]:
        validator = self._validator(schema)
        if validator.is_valid(instance):
            return
        for error in sorted(validator.iter_errors(instance), key=lambda e: [str(p) for p in e.path]):
            yield from self._translate(error, at, what)

    def _translate(self, error: ValidationError, at: Path, what: str) -> Iterator[Finding]:
        path: Path = (*at, *error.absolute_path)
        keyword, instance = error.validator, error.instance
        value: Any = error.validator_value
        subject = str(path[-1]) if len(path) > len(at) else what
        if keyword in ("oneOf", "anyOf"):
            schema: Any = error.schema
            yield from self._variant_errors(schema, instance, path, subject)
        elif keyword == "required":
            for key in value:  # jsonschema reports each missing key in its own error
                if isinstance(instance, dict) and key not in instance and repr(key) in error.message:
                    yield Finding((*path, key), path, "error", f"{subject} is missing required '{key}'")
        elif keyword == "type":
            types = [value] if isinstance(value, str) else list(value)
            wanted = " or ".join(_TYPE_NAMES.get(t, t) for t in types)
            yield Finding(path, path, "error", f"must be {wanted} (got {json_type(instance)})")
        elif keyword in ("enum", "const"):
            options = value if keyword == "enum" else [value]
            yield Finding(path, path, "error", f"must be {' or '.join(json.dumps(o) for o in options)}")
        elif keyword == "minItems":
            yield Finding(path, path, "error", f"must have at least {value} item{'s' if value != 1 else ''}")
        elif keyword in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"):
            word = {
                "minimum": "at least",
                "exclusiveMinimum": "more than",
                "maximum": "at most",
                "exclusiveMaximum": "less than",
            }[keyword]
            yield Finding(path, path, "error", f"must be {word} {value}")
        else:
            yield Finding(path, path, "error", error.message)

    def _variant_errors(self, schema: dict[str, Any], instance: Any, path: Path, subject: str) -> Iterator[Finding]:
        found = _variants(schema)
        assert found is not None
        _, variants = found
        if not isinstance(instance, dict):
            yield Finding(path, path, "error", f"must be an object (got {json_type(instance)})")
            return
        variant, label = select_variant(schema, instance)
        key = _discriminator(variants)
        if variant is None and key is not None:
            names = ", ".join(str(v["properties"][key]["enum"][0]) for v in variants)
            where = (*path, key) if key in instance else path
            yield Finding((*path, key), where, "error", f"must be one of {names}")
            return
        if variant is None:
            needs = sorted(
                (v["required"][0], str(v.get("title", "")).split(" ")[0].lower()) for v in variants if v.get("required")
            )
            choices = " or ".join(f"'{k}' ({label})" if label else f"'{k}'" for k, label in needs)
            yield Finding(path, path, "error", f"needs {choices}")
            return
        name = f"{label} {subject}" if label else subject
        for finding in self._errors(variant, instance, path, name):
            if (
                variant.get("title", "").lower().startswith("runtime")
                and finding.path[-1:] == ("autoRecreate",)
                and finding.severity == "error"
            ):
                finding = Finding(
                    finding.path,
                    finding.address,
                    "error",
                    "autoRecreate must be true for runtime-input AuthSessions",
                )
            yield finding

    def known_properties(self, schema: dict[str, Any], instance: Any) -> dict[str, Any] | None:
        """Properties of an object schema (for oneOf: the selected variant; for anyOf: the union)."""
        found = _variants(schema)
        if found is not None:
            keyword, variants = found
            if keyword == "anyOf":
                union: dict[str, Any] = {}
                for variant in variants:
                    for name, sub in variant.get("properties", {}).items():
                        union.setdefault(name, sub)
                chosen, _ = select_variant(schema, instance)
                if chosen is not None:
                    union.update(chosen.get("properties", {}))
                return union or None
            chosen, _ = select_variant(schema, instance)
            return None if chosen is None else chosen.get("properties")
        properties = schema.get("properties")
        return properties if isinstance(properties, dict) else None

    def _annotations(self, schema: dict[str, Any], instance: Any, at: Path) -> Iterator[Finding]:
        """What the schema's validity does not say: unknown keys and failed formats."""
        message = format_problem(schema.get("format"), instance)
        if message is not None:
            yield Finding(at, at, "warning", message)
        if isinstance(instance, list) and isinstance(schema.get("items"), dict):
            for index, item in enumerate(instance):
                yield from self._annotations(schema["items"], item, (*at, index))
            return
        if not isinstance(instance, dict):
            return
        properties = self.known_properties(schema, instance)
        if properties is None:
            return  # a free map such as `parameters` or `headers`
        for key, value in instance.items():
            sub = properties.get(key)
            if sub is None:
                path = (*at, key)
                message = f"unknown key '{key}'{did_you_mean(str(key), properties)}"
                yield Finding(path, path, self.unknown_keys, message)
            elif isinstance(sub, dict):
                yield from self._annotations(sub, value, (*at, key))


# Headers that carry no credential: no literal-credential warning for them.
_PLAIN_HEADERS = {"content-type", "accept", "user-agent", "content-encoding", "accept-encoding", "x-source"}


def literal_credentials(raw: Any) -> list[tuple[Path, str]]:
    """Literal credentials in a run's request (docs/secrets.md): they belong in secret()."""
    if not isinstance(raw, dict):
        return []
    suspects: list[tuple[Path, Any]] = []
    sink = raw.get("sink")
    if isinstance(sink, dict):
        for key in ("secretAccessKey", "accessKeyId"):
            if key in sink:
                suspects.append((("request", "sink", key), sink[key]))
        headers = sink.get("headers")
        if isinstance(headers, dict):
            suspects += [
                (("request", "sink", "headers", k), v)
                for k, v in headers.items()
                if str(k).lower() not in _PLAIN_HEADERS
            ]
    auth = raw.get("authSession")
    if isinstance(auth, dict) and isinstance(auth.get("runtimeInput"), dict):
        suspects += [(("request", "authSession", "runtimeInput", k), v) for k, v in auth["runtimeInput"].items()]
    found = [
        (path, "looks like a literal credential: use {{ secret('NAME') }} and set NAME in the environment")
        for path, value in suspects
        if isinstance(value, str) and value and "secret(" not in value
    ]
    for path, proxy in (
        (("request", "proxy"), raw.get("proxy")),
        (("request", "authSession", "proxy"), auth.get("proxy") if isinstance(auth, dict) else None),
    ):
        if isinstance(proxy, str) and "secret(" not in proxy and "{{" not in proxy:
            try:
                password = urlsplit(proxy).password
            except ValueError:
                password = None
            if password:
                found.append((path, "proxy URL holds a literal password: use {{ secret('NAME') }} for the URL"))
    return found
