"""Ingestion: each landing file becomes one immutable bronze batch, recorded in a manifest.

A file already ingested (same SHA-256) is skipped, and so is a file rejected before under the same
name with the same bytes; a file that cannot be read is recorded as rejected with the reason. Nothing here deletes or edits a landing file.
"""

from __future__ import annotations

import hashlib
import io
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl

from lakehouse.declarations.domain import Source
from lakehouse.io import read_json_records, write_json_atomic, write_parquet_atomic
from lakehouse.paths import LakePaths

SAFE_FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
BATCH_COLUMNS = ("_batch_id", "_row")


class RejectedFile(Exception):
    """A landing file that cannot become a batch; the message says why."""


@dataclass
class IngestResult:
    """What one ingestion pass did with each file it looked at."""

    ingested: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)


def sha256_file(path: Path) -> str:
    """The hex SHA-256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def landing_files(paths: LakePaths, folder_name: str) -> list[Path]:
    """Candidate files in a landing folder (a source's landing_folder), by name (hidden, temporary and folders excluded)."""
    folder = paths.landing_folder(folder_name)
    if not folder.exists():
        return []
    return sorted(p for p in folder.iterdir() if not p.name.startswith(".") and not p.is_dir())


def manifest(paths: LakePaths, source: str | None = None) -> list[dict[str, Any]]:
    """The batch manifest (one record per batch), optionally for one source."""
    records = read_json_records(paths.manifest)
    return [r for r in records if source is None or r["source"] == source]


def rejected_files(paths: LakePaths, source: str | None = None) -> list[dict[str, Any]]:
    """Records of landing files that could not become batches."""
    records = read_json_records(paths.rejected)
    return [r for r in records if source is None or r["source"] == source]


def check_landing_path(paths: LakePaths, folder_name: str, path: Path) -> Path:
    """The resolved path of a landing file, or RejectedFile if it escapes its landing folder."""
    folder = paths.landing_folder(folder_name).resolve()
    candidate = path if path.is_absolute() else paths.landing_folder(folder_name) / path
    if not SAFE_FILE_NAME.match(candidate.name):
        raise RejectedFile(f"unsafe file name {candidate.name!r}: use letters, digits, '.', '_' and '-' only")
    resolved = candidate.resolve()
    if resolved.parent != folder:
        raise RejectedFile(f"path {str(path)!r} resolves outside the landing folder {str(folder)!r}")
    if not resolved.is_file():
        raise RejectedFile(f"{str(path)!r} is not a file")
    return resolved


def read_landing_file(path: Path, source: Source) -> pl.DataFrame:
    """Parse a landing file into a frame (CSV columns stay text), or raise RejectedFile saying why."""
    suffix = path.suffix.lower().lstrip(".")
    if suffix not in source.formats:
        raise RejectedFile(f"unsupported file type {path.suffix!r}; expected one of {list(source.formats)}")
    data = path.read_bytes()
    if not data:
        raise RejectedFile("empty file (0 bytes)")
    if suffix == "csv":
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as e:
            line = data[: e.start].count(b"\n") + 1
            raise RejectedFile(
                f"not valid UTF-8: byte 0x{data[e.start]:02x} at offset {e.start} (line {line})"
            ) from None
        try:
            # Everything stays text in bronze: typing is validation's job, so no value is lost here.
            df = pl.read_csv(io.BytesIO(data), infer_schema=False, raise_if_empty=True)
        except Exception as e:  # polars raises several types for malformed CSV
            raise RejectedFile(f"unreadable CSV: {e}") from None
    else:
        try:
            import pyarrow.parquet as pq

            df = pl.from_arrow(pq.read_table(io.BytesIO(data)))
        except Exception as e:
            raise RejectedFile(f"unreadable Parquet (truncated or corrupt): {e}") from None
    assert isinstance(df, pl.DataFrame)
    if df.height == 0:
        raise RejectedFile("no data rows (header only)")
    expected, found = source.column_names, df.columns
    missing = [c for c in expected if c not in found and c not in source.optional_columns]
    unknown = [c for c in found if c not in expected and c not in source.ignored_columns]
    if missing:
        raise RejectedFile(f"missing required columns {missing}; expected {expected}")
    if unknown:
        raise RejectedFile(f"unexpected columns {unknown}; expected {expected}")
    # Not known yet when the file was written: nulls, typed and judged by validation like any missing value.
    df = df.with_columns(pl.lit(None, pl.String).alias(c) for c in source.optional_columns if c not in found)
    return df.select(expected)


def _record_rejection(paths: LakePaths, source: str, file: str, sha: str, reason: str) -> dict[str, Any]:
    record = {
        "source": source,
        "file": file,
        "sha256": sha,
        "reason": reason,
        "rejected_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    # One record per name and content: the same bytes rejected under another name are another rejection.
    name = hashlib.sha256(Path(file).name.encode()).hexdigest()[:8]
    write_json_atomic(record, paths.rejected / f"{source}-{sha[:16]}-{name}.json")
    return record


@dataclass
class LandingMemory:
    """What became of earlier landing files: ingested by content, rejected by name and content.

    A rejection never stands for an ingestion: the same bytes under a valid name (a `notes.txt` saved
    again as `payments_2025-05-07.csv`) are read again, while a copy of an ingested file is not.
    """

    ingested: dict[str, dict[str, Any]]  # sha256 -> manifest record
    rejected: dict[tuple[str, str], dict[str, Any]]  # (file name, sha256) -> rejection record

    @classmethod
    def load(cls, paths: LakePaths, source: str) -> LandingMemory:
        return cls(
            {r["sha256"]: r for r in manifest(paths, source)},
            {(Path(r["file"]).name, r["sha256"]): r for r in rejected_files(paths, source)},
        )

    def earlier(self, name: str, sha: str) -> dict[str, Any] | None:
        """The record of the same content ingested, or of the same file rejected; None if it is new."""
        return self.ingested.get(sha) or self.rejected.get((name, sha))


def ingest_file(paths: LakePaths, source: Source, path: Path, known: LandingMemory) -> tuple[str, dict]:
    """Ingest one landing file; returns ("ingested" | "skipped" | "rejected", record)."""
    try:
        resolved = check_landing_path(paths, source.landing_folder, path)
    except RejectedFile as e:
        # The bytes were never read, so the record is keyed by the path the caller gave.
        sha = hashlib.sha256(str(path).encode()).hexdigest()
        return "rejected", _record_rejection(paths, source.name, str(path), sha, str(e))
    sha = sha256_file(resolved)
    earlier = known.earlier(resolved.name, sha)
    if earlier is not None:
        what = f"batch {earlier['batch_id']}" if "batch_id" in earlier else f"rejected: {earlier['reason']}"
        return "skipped", {
            "source": source.name,
            "file": resolved.name,
            "sha256": sha,
            "reason": f"same content as {earlier['file']} ({what})",
        }
    try:
        df = read_landing_file(resolved, source)
    except RejectedFile as e:
        record = _record_rejection(paths, source.name, resolved.name, sha, str(e))
        known.rejected[(resolved.name, sha)] = record
        return "rejected", record
    batch_id = f"{source.name}-{sha[:16]}"
    df = df.with_columns(pl.lit(batch_id).alias("_batch_id"), pl.int_range(1, df.height + 1).alias("_row"))
    stat = resolved.stat()
    # Bronze first, then the manifest: a batch exists only once its manifest record does.
    write_parquet_atomic(df, paths.bronze(source.name) / f"{batch_id}.parquet")
    record = {
        "batch_id": batch_id,
        "source": source.name,
        "file": resolved.name,
        "sha256": sha,
        "rows": df.height,
        "bytes": stat.st_size,
        "format": resolved.suffix.lstrip(".").lower(),
        "arrived_at": datetime.fromtimestamp(stat.st_mtime, UTC).isoformat(timespec="seconds"),
        "ingested_at": datetime.now(UTC).isoformat(timespec="microseconds"),
    }
    write_json_atomic(record, paths.manifest / f"{batch_id}.json")
    known.ingested[sha] = record
    return "ingested", record


def ingest_source(paths: LakePaths, source: Source, files: list[str] | None = None) -> IngestResult:
    """Ingest the given landing files of a source (default: every file in its landing folder)."""
    known = LandingMemory.load(paths, source.name)
    candidates = [Path(f) for f in files] if files else landing_files(paths, source.landing_folder)
    result = IngestResult()
    for path in candidates:
        status, record = ingest_file(paths, source, path, known)
        getattr(result, status).append(record)
    return result
