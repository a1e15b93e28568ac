"""JSON Schemas of run files and of the config, for editors and third-party validators (`schema export`,
docs/schema.md).

They describe the shape of the files as the user writes them, before rendering: wherever a value may be
templated, a template string (one holding `{{`) is accepted too. They are built from the pulled request
schema and the loaders' own names (`runs.TRIGGERS`, `names.NAME`, `config.KEYS`), so they cannot drift from
what the tool accepts; `intuned-runs validate` stays the authority for everything a schema cannot say
(templates, selectors, keys unique across files).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from intuned_runs import schema as schema_module
from intuned_runs.config import KEYS as CONFIG_KEYS
from intuned_runs.errors import SchemaError
from intuned_runs.files import write_atomic
from intuned_runs.names import NAME
from intuned_runs.runs import FILE_KEYS, RUN_KEYS, TRIGGERS

RUNS_FILE = "runs-file.schema.json"
CONFIG_FILE = "config.schema.json"
NAMES = (RUNS_FILE, CONFIG_FILE)
ID_BASE = "urn:intuned-runs:schema:"  # a stable name, not a place: the schemas ship with the tool

TEMPLATE_REF = {"$ref": "#/$defs/template"}
TEMPLATE = {
    "type": "string",
    "pattern": r"\{\{",
    "description": "A Jinja template, rendered before validation (docs/templating.md): a value that is exactly one "
    "{{ expression }} keeps the expression's type, so it may stand where a number, a boolean, a list or a map "
    "is expected.",
}
ANNOTATIONS = ("title", "description", "default", "examples")
KEY_PATTERN = "^" + NAME.pattern + "$"


def templated(node: Any, *, partial: bool = False) -> Any:
    """`node` (a schema) with a template string allowed in its place and in place of every value inside it.
    `partial` drops `required` (a request completed by the file's `defaults`). `oneOf` becomes `anyOf`: a
    template string matches every branch, and "exactly one" would then refuse it."""
    if not isinstance(node, dict):
        return node
    wrapper = {k: node[k] for k in ANNOTATIONS if k in node}
    if "example" in node and "examples" not in wrapper:
        wrapper["examples"] = [node["example"]]
    inner = {k: v for k, v in _inner(node, partial).items() if k not in ANNOTATIONS}  # said once, outside
    wrapper["anyOf"] = [inner, TEMPLATE_REF]
    return wrapper


def _inner(node: dict[str, Any], partial: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in ("properties", "patternProperties"):
            out[key] = {name: templated(child, partial=partial) for name, child in value.items()}
        elif key in ("items", "additionalProperties", "contains") and isinstance(value, dict):
            out[key] = templated(value, partial=partial)
        elif key == "prefixItems":
            out[key] = [templated(child, partial=partial) for child in value]
        elif key in ("anyOf", "oneOf", "allOf"):
            combined = "allOf" if key == "allOf" else "anyOf"
            branches = [_inner(child, partial) for child in value]
            if combined in out:  # both anyOf and oneOf: keep both conditions
                out.setdefault("allOf", []).append({"anyOf": branches})
            else:
                out[combined] = branches
        elif key == "required" and partial:
            continue
        elif key == "format":
            # An annotation (docs/validation.md, Formats): a value that fails it is a warning of validate,
            # so the schema must not refuse it either.
            continue
        elif key == "example":
            out.setdefault("examples", [value])  # OpenAPI's `example`; JSON Schema says `examples`
        elif key in ("$schema", "$comment"):
            continue
        else:
            out[key] = copy.deepcopy(value)
    if "properties" in node and "additionalProperties" not in node:
        # A key the API does not define is an error by default (docs/validation.md, Unknown keys).
        out["additionalProperties"] = False
    return out


def _choice(description: str, inner: dict[str, Any], **annotations: Any) -> dict[str, Any]:
    return {"description": description, **annotations, "anyOf": [inner, TEMPLATE_REF]}


def _run_properties(request_ref: str) -> dict[str, Any]:
    key_part = {"type": "string", "pattern": KEY_PATTERN}
    return {
        "name": _choice(
            "The run's name: letters, digits, '.', '_' and '-', starting with a letter or digit, at most 128. "
            "With the project it makes the run's key PROJECT/NAME, unique across the repository.",
            key_part,
        ),
        "project": _choice(
            "The Intuned project (one URL path segment, same characters as a name). From the run, the file's "
            "defaults or the config's default_project.",
            key_part,
        ),
        "labels": _choice(
            "Labels for selectors (label:KEY=VALUE): strings to strings (quote numbers). Not part of the fingerprint.",
            {"type": "object", "additionalProperties": {"type": "string"}},
        ),
        "trigger": _choice(
            "When apply submits the run: on-change (the definition is new or changed), always (every apply), "
            "manual (only with --run). Not part of the fingerprint.",
            {"enum": list(TRIGGERS)},
            default="on-change",
        ),
        "matrix": _choice(
            "One run per combination (cartesian product) of these lists, at most 10,000 per entry; "
            "templates see the current combination as matrix.KEY.",
            {
                "type": "object",
                "minProperties": 1,
                "additionalProperties": _choice(
                    "A non-empty list of scalars or maps.",
                    {
                        "type": "array",
                        "minItems": 1,
                        "items": {"type": ["string", "number", "boolean", "null", "object"]},
                    },
                ),
            },
        ),
        "request": {"$ref": request_ref},
    }


def runs_file_schema(request: dict[str, Any]) -> dict[str, Any]:
    """The schema of a run file, with `request` the pulled request schema, templated."""
    version = schema_module.version(request)
    strict_run: dict[str, Any] = {
        "type": "object",
        "description": "One run, or one per combination of its matrix.",
        "properties": _run_properties("#/$defs/request"),
        "required": ["name", "request"],
        "additionalProperties": False,
    }
    # With `defaults.request` the file's requests are completed by the merge: no field is required of a run.
    completed_run = {
        **strict_run,
        "properties": _run_properties("#/$defs/partialRequest"),
        "required": ["name"],
    }
    defaults = _run_properties("#/$defs/partialRequest")
    assert set(RUN_KEYS) == set(defaults) and set(FILE_KEYS) == {"defaults", "moved", "runs"}
    request_description = (
        f"The Run API request body (info.version {version}), sent as written after rendering. Any value may "
        "be a template."
    )
    return {
        "$schema": schema_module.DIALECT,
        "$id": ID_BASE + RUNS_FILE.removesuffix(".schema.json"),
        "$comment": f"Generated by `intuned-runs schema export` from the request schema of info.version {version}.",
        "title": "intuned-runs run file",
        "description": "Run definitions under runs_dir (docs/run-files.md). `intuned-runs validate` checks "
        "what a schema cannot: templates, keys unique across files, moved entries.",
        "type": ["object", "null"],
        "properties": {
            "defaults": {
                "description": "Deep-merged under every run of this file (maps merge, the run wins; lists and "
                "scalars replace). Any run key but name and matrix.",
                "type": ["object", "null"],
                "properties": {k: v for k, v in defaults.items() if k not in ("name", "matrix")},
                "additionalProperties": False,
            },
            "moved": {
                "description": "Renames: the state entry of `from` moves to `to`, so a renamed run keeps its "
                "history instead of running again. `to` must be defined and `from` no longer.",
                "type": ["array", "null"],
                "items": {
                    "type": "object",
                    "properties": {
                        "from": {
                            "description": "The old key PROJECT/NAME.",
                            "type": "string",
                            "pattern": "^[^/]*/[^/]*$",
                        },
                        "to": {
                            "description": "The new key PROJECT/NAME.",
                            "type": "string",
                            "pattern": "^[^/]*/[^/]*$",
                        },
                    },
                    "required": ["from", "to"],
                    "additionalProperties": False,
                },
            },
            "runs": {"description": "The run entries of this file.", "type": ["array", "null"]},
        },
        "additionalProperties": False,
        "if": {"required": ["defaults"], "properties": {"defaults": {"type": "object", "required": ["request"]}}},
        "then": {"properties": {"runs": {"items": {"$ref": "#/$defs/completedRun"}}}},
        "else": {"properties": {"runs": {"items": {"$ref": "#/$defs/run"}}}},
        "$defs": {
            "template": TEMPLATE,
            "run": strict_run,
            "completedRun": completed_run,
            "request": {**templated(request), "description": request_description},
            "partialRequest": {
                **templated(request, partial=True),
                "description": request_description + " Fields may come from the file's defaults.",
            },
        },
    }


def _config_properties() -> dict[str, Any]:
    string = {"type": "string"}
    return {
        "workspace_id": _choice(
            "The Intuned workspace, a UUID. Needed by apply, status and watch --apply.",
            {"type": ["string", "null"], "pattern": "^[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}$"},
        ),
        "base_url": _choice(
            "The Run API's base URL, absolute http(s); apply requires https unless the host is loopback.",
            {"type": "string", "pattern": "^[hH][tT][tT][pP][sS]?://"},
            default="https://app.intuned.io/api/v1/workspace",
        ),
        "runs_dir": _choice("The directory searched for run files.", string, default="runs.d"),
        "state": _choice(
            "The state: a file path, or a postgresql:// or s3:// URL of a shared backend.",
            string,
            default=".intuned-runs/state.json",
        ),
        "schema": _choice(
            "The path of an alternative pulled request schema; null for the packaged one.",
            {"type": ["string", "null"]},
            default=None,
        ),
        "default_project": _choice(
            "The project of runs that name none (no '/').", {"type": ["string", "null"], "pattern": "^[^/]+$"}
        ),
        "max_submit": _choice(
            "Without a TTY, apply refuses a plan that submits more runs than this.",
            {"type": "integer", "minimum": 0},
            default=100,
        ),
        "env_allow": _choice(
            "Globs of the environment variables templates may read through env. A name that looks like a "
            "credential must be listed by its exact name.",
            {"type": "array", "items": string},
        ),
        "unknown_keys": _choice(
            "Keys the Run API schema does not define: errors, or warnings (for a field newer than the schema).",
            {"enum": ["error", "warn"]},
            default="error",
        ),
        "vars": _choice(
            "Values for templates, as vars.KEY; merged key by key across environments.", {"type": "object"}
        ),
    }


def config_schema() -> dict[str, Any]:
    layer = _config_properties()
    assert set(CONFIG_KEYS) - {"environments"} <= set(layer), "describe every config key"
    return {
        "$schema": schema_module.DIALECT,
        "$id": ID_BASE + CONFIG_FILE.removesuffix(".schema.json"),
        "$comment": "Generated by `intuned-runs schema export`.",
        "title": "intuned-runs configuration (intuned-runs.yaml)",
        "description": "Every key is optional; every string value is a template (docs/configuration.md).",
        "type": ["object", "null"],
        "properties": {
            **layer,
            "environments": {
                "description": "Named environments, selected with --env NAME (or INTUNED_RUNS_ENV); each may set "
                "any top-level key but environments.",
                "type": ["object", "null"],
                "additionalProperties": {
                    "type": "object",
                    "properties": layer,
                    "additionalProperties": False,
                },
            },
        },
        "additionalProperties": False,
        "$defs": {"template": TEMPLATE},
    }


def documents(request: dict[str, Any]) -> dict[str, str]:
    """File name → text of each exported schema (2-space JSON, trailing newline, like `schema pull`)."""
    return {
        RUNS_FILE: schema_module.render(runs_file_schema(request)),
        CONFIG_FILE: schema_module.render(config_schema()),
    }


def export(directory: Path, request: dict[str, Any]) -> list[tuple[Path, bool]]:
    """Write the schemas into `directory`; returns (path, changed) of each."""
    written = []
    for name, text in documents(request).items():
        target = directory / name
        try:
            changed = target.read_text(encoding="utf-8") != text
        except OSError:
            changed = True
        if changed:
            try:
                write_atomic(target, text.encode("utf-8"))
            except OSError as e:
                raise SchemaError(f"cannot write {target}: {e.strerror}") from e
        written.append((target, changed))
    return written
