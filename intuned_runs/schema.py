"""The Run API request-body schema: pulled from the OpenAPI document, shipped inside the package (docs/schema.md)."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from intuned_runs.errors import SchemaError
from intuned_runs.files import write_atomic

PACKAGE_SCHEMAS = Path(__file__).parent / "schemas"
PACKAGED_SPEC = PACKAGE_SCHEMAS / "openapi" / "run-start.yaml"
PACKAGED_SCHEMA = PACKAGE_SCHEMAS / "run-start.schema.json"
SPEC_RELPATH = Path("schemas/openapi/run-start.yaml")
SCHEMA_RELPATH = Path("schemas/run-start.schema.json")
START_PATH = "/{workspaceId}/projects/{projectName}/run/start"
DIALECT = "https://json-schema.org/draft/2020-12/schema"


def _read_spec(spec: str) -> tuple[str, str]:
    """Return (text, name) of an OpenAPI document given as a path or an http(s) URL."""
    if spec.startswith(("http://", "https://")):
        import httpx

        try:
            response = httpx.get(spec, timeout=30, follow_redirects=True)
            response.raise_for_status()
        except httpx.HTTPError as e:
            raise SchemaError(f"cannot fetch {spec}: {e}") from e
        return response.text, spec
    try:
        return Path(spec).read_text(encoding="utf-8"), spec
    except (OSError, UnicodeDecodeError) as e:
        raise SchemaError(f"cannot read {spec}: {e}") from e


def _inline_refs(node: Any, document: dict[str, Any], seen: tuple[str, ...] = ()) -> Any:
    """Replace local `$ref`s by their targets so the schema is self-contained."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            if not ref.startswith("#/"):
                raise SchemaError(f"external $ref {ref!r} is not supported")
            if ref in seen:
                raise SchemaError(f"recursive $ref {ref!r} is not supported")
            target: Any = document
            for part in ref[2:].split("/"):
                part = part.replace("~1", "/").replace("~0", "~")
                if not isinstance(target, dict) or part not in target:
                    raise SchemaError(f"$ref {ref!r} points nowhere")
                target = target[part]
            rest = {k: v for k, v in node.items() if k != "$ref"}
            return _inline_refs({**target, **rest}, document, (*seen, ref))
        return {k: _inline_refs(v, document, seen) for k, v in node.items()}
    if isinstance(node, list):
        return [_inline_refs(v, document, seen) for v in node]
    return node


def extract(spec_text: str, source: str) -> dict[str, Any]:
    """The request-body schema of the start endpoint, with `$schema` and `$comment` first."""
    from intuned_runs import documents

    try:
        # OpenAPI 3.1 is YAML 1.2 (or JSON): `1.10` stays "1.10", `yes` stays a string, dates stay text.
        parsed = documents.parse(spec_text, source)
        document = parsed.value
    except documents.DocumentError as e:  # one line, addressed, like every other problem
        where = f":{e.line}:{e.col}" if e.line is not None else ""
        raise SchemaError(f"{source}{where}: not valid YAML/JSON: {e.message}") from e
    try:
        body = document["paths"][START_PATH]["post"]["requestBody"]
        body = _inline_refs(body, document)
        schema = body["content"]["application/json"]["schema"]
        # As written: an unquoted `1.10` is a number to YAML, but the version is its text.
        version = documents.scalar_text(parsed.node, ("info", "version")) or str(document["info"]["version"])
    except (KeyError, TypeError) as e:
        raise SchemaError(f"{source} has no JSON request body for POST {START_PATH}") from e
    if not isinstance(schema, dict):
        raise SchemaError(f"{source}: the request body schema is not an object")
    return {
        "$schema": DIALECT,
        "$comment": f"Request body of POST {START_PATH}, pulled from {source} (info.version {version})",
        **{k: v for k, v in schema.items() if k not in ("$schema", "$comment")},
    }


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def pull(repository: Path, spec: str | None, check: bool) -> tuple[Path, str]:
    """Write (or with `check`, compare) the pulled schema. Returns (path, what it was before): `missing`,
    `out of date` or `up to date`."""
    if spec is None:
        local = repository / SPEC_RELPATH
        spec_path = local if local.is_file() else PACKAGED_SPEC
        text, _ = _read_spec(str(spec_path))
        source = SPEC_RELPATH.as_posix()  # stable: the same wherever the repository lives
    else:
        text, source = _read_spec(spec)
    wanted = render(extract(text, source))
    target = repository / SCHEMA_RELPATH
    try:
        current = target.read_text(encoding="utf-8")
    except OSError:
        current = None
    was = "missing" if current is None else "up to date" if current == wanted else "out of date"
    if was != "up to date" and not check:
        try:
            write_atomic(target, wanted.encode("utf-8"))
        except OSError as e:
            raise SchemaError(f"cannot write {target}: {e.strerror}") from e
    return target, was


@lru_cache(maxsize=8)
def load(path: str | None = None) -> dict[str, Any]:
    """The pulled schema: the packaged one, or the file the config's `schema:` names."""
    file = Path(path) if path else PACKAGED_SCHEMA
    try:
        schema = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise SchemaError(f"cannot read schema {file}: {e}") from e
    if not isinstance(schema, dict):
        raise SchemaError(f"schema {file} is not a JSON object")
    return schema


def version(schema: dict[str, Any]) -> str:
    """The spec's info.version recorded in the `$comment` (state keeps it, docs/plan.md)."""
    comment = str(schema.get("$comment", ""))
    marker = "(info.version "
    start = comment.rfind(marker)
    return comment[start + len(marker) : comment.rfind(")")] if start >= 0 else "unknown"
