"""Validation: type each bronze batch, check it with pandera, split valid rows from quarantined ones.

Every row of a batch ends up in exactly one place: rows_in == rows_valid + rows_quarantined.
A batch whose quarantine rate exceeds the domain's limit is held: its rows stay out of silver.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import pandera.polars as pa
import polars as pl

from lakehouse.declarations.domain import Column, Source
from lakehouse.io import read_json_records, write_json_atomic, write_parquet_atomic
from lakehouse.lake.ingestion import BATCH_COLUMNS, manifest
from lakehouse.paths import LakePaths

POLARS_TYPES: dict[str, pl.DataType] = {
    "int64": pl.Int64(),
    "float64": pl.Float64(),
    "string": pl.String(),
    "bool": pl.Boolean(),
    "date": pl.Date(),
    "datetime": pl.Datetime("us"),
}
TRUE_TEXT = ("true", "1", "yes", "t", "y")
FALSE_TEXT = ("false", "0", "no", "f", "n")


@dataclass
class ValidatedBatch:
    """The outcome of validating one batch."""

    valid: pl.DataFrame
    quarantined: pl.DataFrame
    report: dict[str, Any]


def cast_column(column: Column, raw: pl.Expr, raw_dtype: pl.DataType) -> pl.Expr:
    """An expression typing one raw column; values that do not parse, or would change, become null."""
    target = POLARS_TYPES[column.dtype]
    if raw_dtype != pl.String:
        cast = raw.cast(target, strict=False)
        if not (raw_dtype.is_numeric() or raw_dtype == pl.Boolean):
            return cast
        # Lossless only: a value that does not come back the same (5.5 into an integer, 2**60 into a float)
        # becomes null, so the row is quarantined with its raw value instead of silently changed.
        kept = cast.cast(raw_dtype, strict=False) == raw
        if raw_dtype.is_float():
            kept = kept | raw.is_nan()
        return pl.when(kept).then(cast)
    text = raw.str.strip_chars()
    if column.unit:
        text = text.str.strip_suffix(column.unit.strip()).str.strip_chars()
    text = pl.when(text == "").then(None).otherwise(text)
    if column.dtype == "bool":
        lowered = text.str.to_lowercase()
        return pl.when(lowered.is_in(TRUE_TEXT)).then(True).when(lowered.is_in(FALSE_TEXT)).then(False)
    if column.dtype == "date":
        return text.str.to_date("%Y-%m-%d", strict=False)
    if column.dtype == "datetime":
        # Naive times are UTC already; one with an offset ("...Z", "...+01:00") becomes that UTC time, as
        # a zoned Parquet timestamp does in the cast above.
        return text.str.to_datetime(time_unit="us", strict=False, time_zone="UTC").dt.replace_time_zone(None)
    return text.cast(target, strict=False)


def build_schema(source: Source, now: datetime) -> pa.DataFrameSchema:
    """The pandera schema of a source's typed rows: types, ranges, categories, uniqueness, no future times."""
    columns = {}
    for c in source.columns:
        checks = []
        if c.ge is not None:
            checks.append(pa.Check.ge(c.ge))
        if c.le is not None:
            checks.append(pa.Check.le(c.le))
        if c.isin is not None:
            checks.append(pa.Check.isin(list(c.isin)))
        if c.not_in_future:
            limit: date | datetime = now.date() if c.dtype == "date" else now
            checks.append(
                pa.Check(
                    lambda d, limit=limit: d.lazyframe.select(pl.col(d.key) <= limit),
                    name="not_in_future",
                    error=f"later than now ({limit})",
                )
            )
        columns[c.name] = pa.Column(POLARS_TYPES[c.dtype], checks=checks, nullable=c.nullable)
    key = list(source.unique_key)
    unique_key = pa.Check(
        lambda d: d.lazyframe.select(pl.struct(key).is_first_distinct()),
        name="unique_key",
        error=f"duplicate key ({', '.join(key)})",
    )
    return pa.DataFrameSchema(columns, checks=[unique_key], strict=False, name=source.name)


def validate_frame(raw: pl.DataFrame, source: Source, now: datetime | None = None) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Split a raw batch into typed valid rows and quarantined raw rows, each with a `_reason`."""
    now = now or datetime.now(UTC).replace(tzinfo=None)
    ignored = [c for c in source.ignored_columns if c in raw.columns]  # kept in bronze and quarantine, not typed
    typed = raw.drop(ignored).with_columns(
        [cast_column(c, pl.col(c.name), raw.schema[c.name]).alias(c.name) for c in source.columns]
    )
    reasons: list[list[str]] = [[] for _ in range(raw.height)]
    unparsed: dict[str, pl.Series] = {}
    for c in source.columns:
        present = raw[c.name].cast(pl.String).str.strip_chars().fill_null("") != ""
        unparsed[c.name] = present & typed[c.name].is_null()
        for i in unparsed[c.name].arg_true():
            reasons[i].append(f"{c.name}: not a valid {c.dtype} ({raw[c.name][i]!r})")
    try:
        build_schema(source, now).validate(typed, lazy=True)
    except pa.errors.SchemaErrors as e:
        for case in e.failure_cases.iter_rows(named=True):
            index, column, check = case["index"], case["column"], case["check"]
            if index is None:
                raise  # not a row-level failure: the declaration itself is wrong
            if case["schema_context"] == "DataFrameSchema":
                reasons[index].append(check)
            elif not unparsed[column][index]:  # an unparsed value is already reported with its raw text
                reasons[index].append(f"{column}: missing value" if check == "not_nullable" else f"{column}: {check}")
    is_bad = pl.Series("_bad", [bool(r) for r in reasons], dtype=pl.Boolean)
    valid = typed.filter(~is_bad)
    quarantined = (
        raw.with_columns(pl.all().exclude(BATCH_COLUMNS).cast(pl.String))
        .with_columns(pl.Series("_reason", ["; ".join(r) for r in reasons], dtype=pl.String))
        .filter(is_bad)
    )
    return valid, quarantined


def validate_batch(
    paths: LakePaths, source: Source, batch: dict[str, Any], max_quarantine_rate: float, min_held_rows: int = 1
) -> dict:
    """Validate one bronze batch, write its valid and quarantined rows, and return its report."""
    raw = pl.read_parquet(paths.bronze(source.name) / f"{batch['batch_id']}.parquet")
    valid, quarantined = validate_frame(raw, source)
    valid = valid.with_columns(pl.lit(batch["ingested_at"]).alias("_ingested_at"))
    rate = quarantined.height / raw.height if raw.height else 0.0
    report = {
        "batch_id": batch["batch_id"],
        "source": source.name,
        "file": batch["file"],
        "rows_in": raw.height,
        "rows_valid": valid.height,
        "rows_quarantined": quarantined.height,
        "quarantine_rate": round(rate, 6),
        "max_quarantine_rate": max_quarantine_rate,
        # Held batches never reach silver: write-audit-publish for the whole batch.
        "status": "held" if rate > max_quarantine_rate and quarantined.height >= min_held_rows else "published",
        "top_reasons": (
            quarantined.get_column("_reason").str.split("; ").explode().value_counts(sort=True).head(5).rows()
            if quarantined.height
            else []
        ),
        "validated_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    if report["rows_in"] != report["rows_valid"] + report["rows_quarantined"]:
        raise AssertionError(f"row accounting broken for {batch['batch_id']}: {report}")
    write_parquet_atomic(valid, paths.validated(source.name) / f"{batch['batch_id']}.parquet")
    write_parquet_atomic(
        quarantined.with_columns(pl.lit(source.name).alias("_source")),
        paths.quarantine(source.name) / f"{batch['batch_id']}.parquet",
    )
    # The report is written last: a batch counts as validated only once its report exists.
    write_json_atomic(report, paths.validation_reports(source.name) / f"{batch['batch_id']}.json")
    return report


def validation_reports(paths: LakePaths, source: str) -> list[dict[str, Any]]:
    """Every batch's validation report for a source."""
    return read_json_records(paths.validation_reports(source))


def published_batches(paths: LakePaths, source_names: list[str]) -> list[dict[str, Any]]:
    """Manifest records of the batches whose validation published them (held or failed batches excluded)."""
    published = {
        r["batch_id"] for s in source_names for r in validation_reports(paths, s) if r["status"] == "published"
    }
    return [b for b in manifest(paths) if b["batch_id"] in published]


def validate_new_batches(
    paths: LakePaths, source: Source, max_quarantine_rate: float, min_held_rows: int = 1
) -> list[dict]:
    """Validate every batch of a source that has no validation report yet; return their reports."""
    done = {r["batch_id"] for r in validation_reports(paths, source.name)}
    return [
        validate_batch(paths, source, batch, max_quarantine_rate, min_held_rows)
        for batch in manifest(paths, source.name)
        if batch["batch_id"] not in done
    ]


def release_batches(paths: LakePaths, source: str, batch_ids: list[str]) -> list[dict[str, Any]]:
    """Publish held batches a person has reviewed: their valid rows go to silver on its next build."""
    released = []
    for batch_id in batch_ids:
        report_path = paths.validation_reports(source) / f"{batch_id}.json"
        if not report_path.exists():
            raise ValueError(f"no validation report for batch {batch_id!r} of source {source!r}")
        report = json.loads(report_path.read_text())
        if report["status"] != "held":
            raise ValueError(f"batch {batch_id!r} is {report['status']}, not held")
        report |= {"status": "published", "released_at": datetime.now(UTC).isoformat(timespec="seconds")}
        write_json_atomic(report, report_path)
        released.append(report)
    return released
