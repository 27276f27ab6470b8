"""Prediction logging: a buffered, thread-safe writer of small Parquet files (no BentoML or Dagster import).

`PredictionLogger.log(records)` only appends to an in-memory buffer (a record's `features` may be a
mapping: it is encoded as JSON text when written, off the request path); a background thread writes the
buffer as one Parquet file (atomically: temp name + rename, via lakehouse.io) whenever it holds
`flush_rows` records or its oldest record has waited `flush_seconds`. `close()` stops the thread and
writes whatever is left; call it on clean shutdown. A failed write keeps its records in the buffer for
the next attempt (up to `max_buffer` records; beyond that the oldest are dropped, with a warning).

File names are `<UTC timestamp>-<uuid>.parquet`, so a sort by name is a sort by flush time, and the
dot-prefixed temporary names are never picked up by readers (lakehouse.io.parquet_glob).
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import polars as pl

from lakehouse.io import parquet_glob, write_parquet_atomic
from lakehouse.paths import LakePaths

logger = logging.getLogger(__name__)

SCHEMA: dict[str, pl.DataType] = {
    "request_id": pl.String(),
    "row_index": pl.Int64(),  # position in the request: keeps rows apart when there is no entity id
    "logged_at": pl.Datetime("us", "UTC"),
    "endpoint": pl.String(),
    "entity_id": pl.String(),  # the entity key's value as text (ids may be numbers or strings)
    "features": pl.String(),  # JSON text of the feature values the model was given
    "features_at": pl.Datetime("us", "UTC"),  # newest event time of those features (online lookups only)
    "model_version": pl.String(),
    "score": pl.Float64(),
    "decision": pl.Boolean(),
    "latency_ms": pl.Float64(),
    "error": pl.String(),  # set when no score was produced (e.g. unknown entity)
}


def features_json(values: Mapping[str, Any] | None) -> str | None:
    """Feature values as JSON text (feature order kept; non-JSON types as strings)."""
    return None if values is None else json.dumps(dict(values), default=str)


def to_frame(records: list[dict[str, Any]]) -> pl.DataFrame:
    """Records as a frame of SCHEMA (missing keys are null, unknown keys dropped, feature mappings as JSON text)."""
    columns = {name: [r.get(name) for r in records] for name in SCHEMA}
    columns["features"] = [features_json(v) if isinstance(v, Mapping) else v for v in columns["features"]]
    return pl.DataFrame({name: pl.Series(name, columns[name], dtype=dtype) for name, dtype in SCHEMA.items()})


def empty_frame() -> pl.DataFrame:
    return pl.DataFrame(schema=SCHEMA)


def log_files(folder: Path) -> list[Path]:
    """The finished log files in a folder, oldest first."""
    return sorted(Path(p) for p in Path(folder).glob(Path(parquet_glob(Path(folder))).name))


def read_prediction_log(folder: Path) -> pl.DataFrame:
    """Every row of every finished log file in the folder (empty frame of SCHEMA if none)."""
    files = log_files(folder)
    if not files:
        return empty_frame()
    return pl.concat([pl.read_parquet(f) for f in files], how="diagonal_relaxed").select(list(SCHEMA))


class PredictionLogger:
    """Buffered prediction log: log() never touches the disk; a background thread flushes."""

    def __init__(
        self, folder: Path, flush_rows: int = 500, flush_seconds: float = 2.0, max_buffer: int = 1_000_000
    ) -> None:
        if flush_rows < 1 or flush_seconds <= 0:
            raise ValueError("flush_rows must be >= 1 and flush_seconds > 0")
        self.folder = Path(folder)
        self.flush_rows = flush_rows
        self.flush_seconds = flush_seconds
        self.max_buffer = max_buffer
        self._buffer: list[dict[str, Any]] = []
        self._oldest: float | None = None  # monotonic time the oldest buffered record arrived
        self._cond = threading.Condition()
        self._write_lock = threading.Lock()  # one writer at a time (the thread, or close())
        self._closed = False
        self.files_written = 0
        self.rows_written = 0
        self._thread = threading.Thread(target=self._run, name=f"prediction-log-{self.folder.name}", daemon=True)
        self._thread.start()

    def log(self, records: Iterable[dict[str, Any]]) -> None:
        """Buffer records as they are, not copied (a missing logged_at is set to now, UTC); never touches the disk."""
        now = datetime.now(timezone.utc)
        batch = list(records)
        for r in batch:
            if not r.get("logged_at"):
                r["logged_at"] = now
        if not batch:
            return
        with self._cond:
            if self._closed:
                raise RuntimeError("PredictionLogger is closed")
            if self._oldest is None:
                self._oldest = time.monotonic()
            self._buffer.extend(batch)
            if len(self._buffer) >= self.flush_rows:
                self._cond.notify()

    @property
    def pending(self) -> int:
        with self._cond:
            return len(self._buffer)

    def _due(self) -> bool:
        return bool(self._buffer) and (
            len(self._buffer) >= self.flush_rows
            or self._closed
            or (self._oldest is not None and time.monotonic() - self._oldest >= self.flush_seconds)
        )

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._closed and not self._due():
                    timeout = (
                        None
                        if self._oldest is None
                        else max(self.flush_seconds - (time.monotonic() - self._oldest), 0.0)
                    )
                    self._cond.wait(timeout=timeout if timeout is not None else self.flush_seconds)
                if self._closed:
                    return  # close() writes the rest
            self.flush()

    def flush(self) -> int:
        """Write the current buffer as one file now; returns the rows written (0 if the buffer was empty)."""
        with self._write_lock:
            with self._cond:
                batch, self._buffer, self._oldest = self._buffer, [], None
            if not batch:
                return 0
            try:
                self._write(batch)
            except Exception:
                logger.exception(
                    "prediction log: writing %d records to %s failed; keeping them", len(batch), self.folder
                )
                with self._cond:
                    self._buffer[:0] = batch
                    if len(self._buffer) > self.max_buffer:
                        dropped = len(self._buffer) - self.max_buffer
                        del self._buffer[:dropped]
                        logger.warning("prediction log: buffer full, dropped the %d oldest records", dropped)
                    self._oldest = self._oldest or time.monotonic()
                time.sleep(min(self.flush_seconds, 1.0))  # no hot loop on a persistent error
                return 0
            return len(batch)

    def _write(self, batch: list[dict[str, Any]]) -> Path:
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
        path = self.folder / f"{stamp}-{uuid.uuid4().hex}.parquet"
        write_parquet_atomic(to_frame(batch), path)
        self.files_written += 1
        self.rows_written += len(batch)
        return path

    def close(self, timeout: float = 30.0) -> None:
        """Stop the background thread and write everything buffered. Idempotent."""
        with self._cond:
            if self._closed and not self._buffer:
                return
            self._closed = True
            self._cond.notify_all()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout=timeout)
        if self.flush() == 0 and self.pending:
            logger.error("prediction log: %d records could not be written on close", self.pending)

    def __enter__(self) -> PredictionLogger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


DEDUP_KEY = ["request_id", "entity_id", "row_index"]


def _conform(frame: pl.DataFrame, columns: dict[str, pl.DataType]) -> pl.DataFrame:
    """The frame with exactly these columns and types (columns added since it was written are null)."""
    return frame.select(
        [pl.col(c).cast(t) if c in frame.columns else pl.lit(None, dtype=t).alias(c) for c, t in columns.items()]
    )


def endpoint_summary(log: pl.DataFrame) -> list[dict[str, Any]]:
    """Per endpoint: requests, rows, rows without a score, and request latency (ms, one value per request)."""
    requests = (
        log.unique(subset="request_id", keep="first")
        .group_by("endpoint")
        .agg(
            requests=pl.len(),
            latency_ms_p50=pl.col("latency_ms").quantile(0.5),
            latency_ms_p99=pl.col("latency_ms").quantile(0.99),
            latency_ms_max=pl.col("latency_ms").max(),
        )
    )
    rows = log.group_by("endpoint").agg(rows=pl.len(), errors=pl.col("error").is_not_null().sum())
    return (
        requests.join(rows, on="endpoint")
        .sort("endpoint")
        .select("endpoint", "requests", "rows", "errors", "latency_ms_p50", "latency_ms_p99", "latency_ms_max")
        .to_dicts()
    )


def prediction_log_table(paths: LakePaths, domain: str) -> Path:
    return paths.served_predictions(domain)


def ingest_prediction_log(paths: LakePaths, domain: str) -> dict[str, Any]:
    """Append the log files not yet in the lake table to it (dedup on request_id+entity_id+row_index).

    The table keeps a source_file column, so a file already ingested is not read again. The log files
    are left in place (their retention is not handled here).
    """
    table = prediction_log_table(paths, domain)
    columns = {**SCHEMA, "source_file": pl.String()}
    existing = _conform(pl.read_parquet(table), columns) if table.exists() else pl.DataFrame(schema=columns)
    seen = set(existing["source_file"].unique().to_list())
    new_files = [f for f in log_files(paths.prediction_log(domain)) if f.name not in seen]
    frames = [pl.read_parquet(f).with_columns(source_file=pl.lit(f.name)) for f in new_files]
    new = pl.concat(frames, how="diagonal_relaxed") if frames else existing.clear()
    new = _conform(new, columns)
    combined = pl.concat([existing, new], how="vertical_relaxed")
    out = combined.unique(subset=DEDUP_KEY, keep="first", maintain_order=True).sort("logged_at", maintain_order=True)
    if new_files or not table.exists():
        write_parquet_atomic(out, table)
    scored = out.filter(pl.col("score").is_not_null())
    new_scored = new.filter(pl.col("score").is_not_null())

    def stats(frame: pl.DataFrame, prefix: str) -> dict[str, float]:
        if frame.is_empty():
            return {}
        s = frame["score"]
        return {
            f"{prefix}score_mean": float(s.mean()),
            f"{prefix}score_min": float(s.min()),
            f"{prefix}score_p50": float(s.quantile(0.5)),
            f"{prefix}score_p90": float(s.quantile(0.9)),
            f"{prefix}score_max": float(s.max()),
            f"{prefix}positive_rate": float(frame["decision"].cast(pl.Float64).mean()),
        }

    return {
        "path": table,
        "new_files": len(new_files),
        "rows_in": new.height,
        "rows_before": existing.height,
        "rows_out": out.height,
        "duplicates_dropped": combined.height - out.height,
        "errors": int(out["error"].is_not_null().sum()),
        "requests": out["request_id"].n_unique(),
        "model_versions": sorted(v for v in out["model_version"].unique().to_list() if v is not None),
        "endpoints": endpoint_summary(out),
        **stats(scored, ""),
        **stats(new_scored, "new_"),
    }
