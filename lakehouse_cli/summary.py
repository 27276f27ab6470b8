"""A short account of what is in the lake: rows per layer, quarantine, features online."""

from __future__ import annotations

from typing import Any

import duckdb

from lakehouse.declarations.domain import Domain
from lakehouse.feature_store.feast_objects import online_store_url, store_locations
from lakehouse.feature_store.materialization import materialization_state
from lakehouse.lake.ingestion import manifest, rejected_files
from lakehouse.lake.validation import validation_reports
from lakehouse.paths import LakePaths


def _count(path) -> int | None:
    if not path.exists():
        return None
    with duckdb.connect() as con:
        return con.execute(f"SELECT count(*) FROM read_parquet('{path}')").fetchall()[0][0]


def online_entity_count(paths: LakePaths) -> int | None:
    """Distinct entity keys in the sqlite online store (0 before the first materialization; None on Redis)."""
    import sqlite3

    if online_store_url():
        return None  # the production profile's Redis is shared and not scanned here
    db = paths.online_store_db
    if not db.exists():
        return 0
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
        tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        keys: set[bytes] = set()
        for t in tables:
            keys |= {r[0] for r in con.execute(f'SELECT DISTINCT entity_key FROM "{t}"')}
    return len(keys)


def lake_summary(paths: LakePaths, domain: Domain) -> dict[str, Any]:
    """Row counts per layer and source, quarantine and rejection counts, and online coverage."""
    sources = {}
    for s in domain.sources:
        reports = validation_reports(paths, s.name)
        sources[s.name] = {
            "batches": len(manifest(paths, s.name)),
            "rejected_files": len(rejected_files(paths, s.name)),
            "bronze_rows": sum(b["rows"] for b in manifest(paths, s.name)),
            "valid_rows": sum(r["rows_valid"] for r in reports),
            "quarantined_rows": sum(r["rows_quarantined"] for r in reports),
            "held_batches": sum(r["status"] == "held" for r in reports),
            "silver_rows": _count(paths.silver(s.name)),
        }
    return {
        "domain": domain.name,
        "data_root": str(paths.root),
        "sources": sources,
        "features": {v.name: _count(paths.features(v.name)) for v in domain.feature_views},
        "feast": store_locations(paths),
        "online_windows": materialization_state(paths),
        "online_entities": online_entity_count(paths),
        "label_events": _count(paths.labels(domain.name)),
        "training_rows": _count(paths.training_set(domain.name)),
    }


def format_summary(summary: dict[str, Any]) -> str:
    """The summary as a plain-text table for the terminal."""
    lines = [
        f"{summary['domain']} (data root: {summary['data_root']})",
        "",
        f"{'source':<14}{'batches':>8}{'rejected':>9}{'bronze':>10}{'valid':>10}{'quarant.':>9}{'held':>5}{'silver':>10}",
    ]
    for name, s in summary["sources"].items():
        lines.append(
            f"{name:<14}{s['batches']:>8}{s['rejected_files']:>9}{s['bronze_rows']:>10,}{s['valid_rows']:>10,}"
            f"{s['quarantined_rows']:>9,}{s['held_batches']:>5}{(s['silver_rows'] or 0):>10,}"
        )
    lines += ["", f"{'feature view':<22}{'offline rows':>13}  online up to"]
    for view, rows in summary["features"].items():
        end = summary["online_windows"].get(view)
        lines.append(f"{view:<22}{(rows or 0):>13,}  {end[:19] if end else 'not materialized'}")
    online = summary["online_entities"]
    lines.append(f"entities in the online store: {'not counted (Redis)' if online is None else f'{online:,}'}")
    lines.append(f"Feast registry {summary['feast']['registry']}; online store {summary['feast']['online_store']}")
    lines += ["", f"label events: {summary['label_events'] or 0:,}   training rows: {summary['training_rows'] or 0:,}"]
    return "\n".join(lines)
