"""State entries as `state list` and `state show` print them (docs/state.md, state commands)."""

from __future__ import annotations

import json
from collections.abc import Sequence

from intuned_runs import FORMAT_VERSION
from intuned_runs.state.model import Entry, Submission


def _entry_dict(key: str, entry: Entry) -> dict[str, object]:
    return {"key": key, **entry.to_json()}


def describe(entry: Entry) -> str:
    if entry.is_tombstone:
        return f"removed {entry.removed_at}"
    if entry.unknown is not None:
        return f"unknown since {entry.unknown.since} ({entry.unknown.reason})"
    status = f"  {entry.status}" if entry.status else ""
    return f"{entry.run_id or '-'}{status}  submitted {entry.submitted_at or '-'}"


def list_lines(entries: Sequence[tuple[str, Entry]]) -> list[str]:
    return [f"{key}  {describe(entry)}" for key, entry in entries]


def list_json(entries: Sequence[tuple[str, Entry]]) -> str:
    document = {"format_version": FORMAT_VERSION, "entries": [_entry_dict(k, e) for k, e in entries]}
    return json.dumps(document, indent=2, ensure_ascii=False)


def history_line(item: Submission) -> str:
    """`SUBMITTED_AT  RUN_ID  STATUS  FINGERPRINT`, `-` for what is not known, `adopted` after an adoption."""
    adopted = "  adopted" if item.adopted else ""
    return f"{item.submitted_at}  {item.run_id or '-'}  {item.status or '-'}  {item.fingerprint}{adopted}"


def show_lines(key: str, entry: Entry) -> list[str]:
    lines = [key]
    for name, value in entry.to_json().items():
        if name == "history" and entry.history:
            lines.append("  history:")
            lines += [f"    {history_line(item)}" for item in entry.history]
        elif name != "request":
            lines.append(f"  {name}: {json.dumps(value, ensure_ascii=False)}")
    lines.append("  request:")
    lines += [f"    {line}" for line in json.dumps(entry.request, indent=2, ensure_ascii=False).splitlines()]
    return lines


def show_json(key: str, entry: Entry) -> str:
    return json.dumps(_entry_dict(key, entry), indent=2, ensure_ascii=False)
