"""Rendered runs as YAML documents or one JSON document (docs/validation.md, render)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from intuned_runs import FORMAT_VERSION
from intuned_runs.runs import Run


def run_dict(run: Run) -> dict[str, Any]:
    return {
        "key": run.key,
        "project": run.project,
        "name": run.name,
        "labels": dict(run.labels),
        "trigger": run.trigger,
        "source": {"file": run.source.file, "line": run.source.line},
        "request": run.request,
    }


def render_json(runs: Iterable[Run]) -> str:
    return json.dumps(
        {"format_version": FORMAT_VERSION, "runs": [run_dict(r) for r in runs]}, indent=2, ensure_ascii=False
    )


def render_yaml(runs: Iterable[Run]) -> str:
    """helmfile-template style: one YAML document per run that reads back to the same values."""
    import yaml

    from intuned_runs.documents import plain_scalar

    class Dumper(yaml.SafeDumper):
        pass

    def string(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
        # PyYAML quotes by YAML 1.1 rules; also quote what a YAML 1.2 reader (this tool) would not
        # read back as this string, such as 0o17 or 1e3.
        quote = value and not isinstance(plain_scalar(value), str)
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="'" if quote else None)

    Dumper.add_representer(str, string)
    documents = []
    for run in runs:
        # No line folding: a folded secret could slip past the redactor, which sees whole lines.
        body = yaml.dump(
            run_dict(run),
            Dumper=Dumper,
            sort_keys=False,
            allow_unicode=True,
            default_flow_style=False,
            width=float("inf"),
        )
        documents.append(f"---\n# Source: {run.source.file}:{run.source.line}\n{body}")
    return "".join(documents).rstrip("\n")
