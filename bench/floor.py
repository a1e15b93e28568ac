"""The plan floor of docs/performance.md: the least work any `intuned-runs plan` must do, as a bare script.

A fresh process that reads every file under DIR/runs.d with `yaml.load(f, Loader=yaml.CSafeLoader)`,
validates each run's `request` with one `jsonschema.Draft202012Validator` built once from the packaged
`intuned_runs/schemas/run-start.schema.json` (read as JSON, no format checker), and hashes each with
SHA-256 of its sorted-keys compact JSON. It reads the requests raw: templated strings are just strings.
The benchmark times this whole process (interpreter start-up and imports included), best of 5, against a
fresh `intuned-runs plan` on the same repository.

    python3 bench/floor.py DIR                # one pass; prints its in-process time
    python3 bench/floor.py DIR --best-of 5    # wall time of 5 fresh processes; prints the best

Exit 0 when every request is valid, 1 otherwise.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path

import jsonschema
import yaml
from harness import SCHEMA_PATH


def floor(repo: Path, schema_path: Path = SCHEMA_PATH) -> tuple[int, int, int, str]:
    """Read, validate and hash every run of `repo`; returns (files, runs, invalid, digest of all hashes)."""
    validator = jsonschema.Draft202012Validator(json.loads(schema_path.read_text(encoding="utf-8")))
    paths = sorted(p for p in (repo / "runs.d").rglob("*") if p.is_file() and p.suffix in (".yaml", ".yml"))
    fingerprints = []
    invalid = 0
    for path in paths:
        with path.open("rb") as f:
            doc = yaml.load(f, Loader=yaml.CSafeLoader)
        for run in (doc or {}).get("runs") or []:
            req = run["request"]
            if next(validator.iter_errors(req), None) is not None:
                invalid += 1
            canonical = json.dumps(req, sort_keys=True, separators=(",", ":"))
            fingerprints.append(hashlib.sha256(canonical.encode()).hexdigest())
    digest = hashlib.sha256("".join(fingerprints).encode()).hexdigest()
    return len(paths), len(fingerprints), invalid, digest


def best_of(repo: Path, times: int) -> float | None:
    """Best wall time, in seconds, of `times` fresh processes each running one floor pass (None: failed)."""
    best = float("inf")
    for _ in range(times):
        start = time.perf_counter()
        if subprocess.run([sys.executable, __file__, str(repo)], stdout=subprocess.DEVNULL).returncode:
            return None
        best = min(best, time.perf_counter() - start)
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dir", type=Path, metavar="DIR", help="repository holding runs.d/")
    parser.add_argument("--schema", type=Path, default=SCHEMA_PATH, help="JSON Schema of the request body")
    parser.add_argument("--best-of", type=int, metavar="K", help="time K fresh processes, print the best")
    args = parser.parse_args(argv)
    if args.best_of:
        seconds = best_of(args.dir, args.best_of)
        if seconds is None:
            return 1
        print(f"floor: best of {args.best_of} fresh processes: {seconds * 1000:.1f} ms wall")
        return 0
    start = time.perf_counter()
    files, runs, invalid, digest = floor(args.dir, args.schema)
    elapsed = time.perf_counter() - start
    print(
        f"floor: {runs} runs in {files} files read, validated and hashed in {elapsed * 1000:.1f} ms "
        f"({invalid} invalid) digest {digest[:16]}"
    )
    return 1 if invalid else 0


if __name__ == "__main__":
    sys.exit(main())
