"""Ingestion: every landing file becomes one bronze batch or one rejection record with a clear reason."""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path

import polars as pl
import pytest

from lakehouse.demos.churn.domain import CHURN
from lakehouse.lake.ingestion import ingest_source, manifest, rejected_files

PAYMENTS = CHURN.source("payments")
USAGE = CHURN.source("usage")
HEADER = "payment_id,customer_id,charged_at,amount,failed\n"
GOOD_ROWS = "P1,1,2025-01-01 10:00:00,9.99,false\nP2,2,2025-01-01 11:00:00,19.99,true\n"


def land(paths, name: str, content: bytes | str, source: str = "payments") -> Path:
    folder = paths.landing / source
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def reasons(paths) -> dict[str, str]:
    return {r["file"]: r["reason"] for r in rejected_files(paths)}


def test_a_landing_file_becomes_one_bronze_batch_with_manifest_record(paths):
    land(paths, "payments_2025-01-01.csv", HEADER + GOOD_ROWS)
    result = ingest_source(paths, PAYMENTS)
    assert len(result.ingested) == 1
    [record] = manifest(paths, "payments")
    assert record["rows"] == 2 and record["file"] == "payments_2025-01-01.csv" and len(record["sha256"]) == 64
    bronze = pl.read_parquet(paths.bronze("payments") / f"{record['batch_id']}.parquet")
    assert bronze["payment_id"].to_list() == ["P1", "P2"]
    assert bronze["_row"].to_list() == [1, 2]


def test_the_same_content_is_ingested_once_even_under_another_name(paths):
    land(paths, "payments_2025-01-01.csv", HEADER + GOOD_ROWS)
    ingest_source(paths, PAYMENTS)
    land(paths, "payments_copy.csv", HEADER + GOOD_ROWS)
    again = ingest_source(paths, PAYMENTS)
    assert again.ingested == []
    assert {r["file"] for r in again.skipped} == {"payments_2025-01-01.csv", "payments_copy.csv"}
    assert "same content as payments_2025-01-01.csv" in again.skipped[1]["reason"]
    assert len(manifest(paths)) == 1


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "empty file (0 bytes)"),
        (HEADER, "no data rows (header only)"),
        (HEADER.replace("\n", ",note\n") + "P1,1,2025-01-01 10:00:00,9.99,false,hi\n", "unexpected columns ['note']"),
        (HEADER.replace(",failed", "") + "P1,1,2025-01-01 10:00:00,9.99\n", "missing required columns ['failed']"),
        ((HEADER + "P1,1,2025-01-01 10:00:00,9.99,caf\xe9\n").encode("latin-1"), "not valid UTF-8: byte 0xe9"),
    ],
    ids=["empty", "header-only", "unknown-column", "missing-column", "non-utf8"],
)
def test_unreadable_files_are_rejected_with_a_clear_reason_and_others_still_ingest(paths, content, expected):
    land(paths, "payments_bad.csv", content)
    land(paths, "payments_good.csv", HEADER + GOOD_ROWS)
    result = ingest_source(paths, PAYMENTS)
    assert [r["file"] for r in result.ingested] == ["payments_good.csv"]
    assert expected in reasons(paths)["payments_bad.csv"]
    assert sum(b["rows"] for b in manifest(paths)) == 2  # the good file lost nothing


def test_a_truncated_parquet_file_is_rejected(paths):
    good = pl.DataFrame(
        {
            "customer_id": [1],
            "usage_date": [date(2025, 1, 1)],
            "sessions": [1],
            "minutes": [2.0],
            "data_mb": [3.0],
            "errors": [0],
        }
    )
    full = paths.root / "full.parquet"
    full.parent.mkdir(parents=True, exist_ok=True)
    good.write_parquet(full)
    land(paths, "usage_2025-01-01.parquet", full.read_bytes()[:-40], source="usage")
    result = ingest_source(paths, USAGE)
    assert result.ingested == []
    assert "unreadable Parquet (truncated or corrupt)" in reasons(paths)["usage_2025-01-01.parquet"]


def test_paths_escaping_the_landing_folder_are_rejected_without_being_read(paths, tmp_path):
    secret = tmp_path / "secret.csv"
    secret.write_text(HEADER + GOOD_ROWS)
    land(paths, "payments_2025-01-01.csv", HEADER + GOOD_ROWS)
    traversal = str(paths.landing / "payments" / ".." / ".." / ".." / "secret.csv")
    result = ingest_source(paths, PAYMENTS, files=[traversal, "../../secret.csv"])
    assert result.ingested == []
    assert len(result.rejected) == 2
    assert all("outside the landing folder" in r["reason"] for r in result.rejected)


def test_symlinks_out_of_landing_and_unsafe_names_are_rejected(paths, tmp_path):
    secret = tmp_path / "secret.csv"
    secret.write_text(HEADER + GOOD_ROWS)
    (paths.landing / "payments").mkdir(parents=True)
    os.symlink(secret, paths.landing / "payments" / "payments_link.csv")
    land(paths, "pay;ments $(x).csv", HEADER + GOOD_ROWS)
    result = ingest_source(paths, PAYMENTS)
    assert result.ingested == []
    found = reasons(paths)
    assert "outside the landing folder" in found[str(paths.landing / "payments" / "payments_link.csv")]
    assert "unsafe file name" in found[str(paths.landing / "payments" / "pay;ments $(x).csv")]


def test_a_rejected_file_is_not_retried_but_reported_as_skipped(paths):
    land(paths, "payments_bad.csv", b"")
    ingest_source(paths, PAYMENTS)
    again = ingest_source(paths, PAYMENTS)
    assert again.rejected == [] and "rejected: empty file" in again.skipped[0]["reason"]


def test_bytes_rejected_for_their_name_are_ingested_when_saved_again_under_a_valid_name(paths):
    """A rejection never stands for an ingestion: every landing file ends in a batch or in its own rejection."""
    land(paths, "notes.txt", HEADER + GOOD_ROWS)
    first = ingest_source(paths, PAYMENTS)
    assert [r["file"] for r in first.rejected] == ["notes.txt"] and "unsupported file type" in reasons(paths)[
        "notes.txt"
    ]
    land(paths, "payments_2025-05-07.csv", HEADER + GOOD_ROWS)
    second = ingest_source(paths, PAYMENTS)
    assert [r["file"] for r in second.ingested] == ["payments_2025-05-07.csv"]
    assert [r["file"] for r in second.skipped] == ["notes.txt"]  # the same name and bytes: rejected already
    # Bytes already ingested are skipped under any name, as a copy of an ingested file.
    land(paths, "notes-copy.md", HEADER + GOOD_ROWS)
    third = ingest_source(paths, PAYMENTS)
    [copy] = [r for r in third.skipped if r["file"] == "notes-copy.md"]
    assert third.rejected == [] and "same content as payments_2025-05-07.csv" in copy["reason"]
    assert len(manifest(paths, "payments")) == 1
