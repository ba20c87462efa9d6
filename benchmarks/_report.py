"""Shared output of the benchmark scripts: a plain table on stdout and a JSON file in ``benchmarks/results``."""
from __future__ import annotations

import json
import platform
from pathlib import Path


def report(rows: list[dict], name: str) -> None:
    """Print ``rows`` as a ``|``-separated table and write them, with the machine, to ``results/<name>.json``."""
    keys = list(rows[0])
    print(" | ".join(keys))
    for row in rows:
        print(" | ".join(str(row.get(k)) for k in keys))
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    payload = {"machine": platform.platform(), "processor": platform.processor(), "rows": rows}
    (out / f"{name}.json").write_text(json.dumps(payload, indent=2))
