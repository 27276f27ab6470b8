"""Validation: pandera rules per source; every row is either valid or quarantined with its reason."""

from __future__ import annotations

from datetime import datetime

import polars as pl
import pytest

from lakehouse.demos.churn.domain import CHURN
from lakehouse.lake.ingestion import ingest_source
from lakehouse.lake.silver import build_silver
from lakehouse.lake.validation import release_batches, validate_frame, validate_new_batches

NOW = datetime(2026, 1, 1)
PAYMENTS = CHURN.source("payments")


def raw_payments(rows: list[tuple]) -> pl.DataFrame:
    cols = ["payment_id", "customer_id", "charged_at", "amount", "failed"]
    return pl.DataFrame([dict(zip(cols, r, strict=True)) for r in rows], schema={c: pl.String for c in cols})


def reasons_of(rows: list[tuple]) -> dict[str, str]:
    valid, quarantined = validate_frame(raw_payments(rows), PAYMENTS, now=NOW)
    assert valid.height + quarantined.height == len(rows)
    return dict(zip(quarantined["payment_id"].fill_null("<null>"), quarantined["_reason"], strict=True))


def test_valid_rows_are_typed():
    valid, quarantined = validate_frame(
        raw_payments([("P1", "7", "2025-03-01 10:00:00", "9.99", "True")]), PAYMENTS, now=NOW
    )
    assert quarantined.height == 0
    assert valid.schema["customer_id"] == pl.Int64 and valid.schema["charged_at"] == pl.Datetime("us")
    assert valid.row(0)[:5] == ("P1", 7, datetime(2025, 3, 1, 10), 9.99, True)


def test_times_with_a_utc_offset_are_stored_as_their_utc_time():
    valid, quarantined = validate_frame(
        raw_payments(
            [
                ("P1", "7", "2025-03-01T10:00:00+02:00", "9.99", "True"),
                ("P2", "7", "2025-03-01T10:00:00Z", "1.5", "False"),
            ]
        ),
        PAYMENTS,
        now=NOW,
    )
    assert quarantined.height == 0 and valid.schema["charged_at"] == pl.Datetime("us")
    assert valid["charged_at"].to_list() == [datetime(2025, 3, 1, 8), datetime(2025, 3, 1, 10)]


def test_each_rule_quarantines_the_row_with_the_failing_check():
    found = reasons_of(
        [
            ("P1", "1", "2025-01-01 10:00:00", "9.99", "false"),
            ("P2", "abc", "2025-01-01 10:00:00", "9.99", "false"),  # wrong type
            ("P3", "3", "2099-01-01 00:00:00", "9.99", "false"),  # future timestamp
            ("P4", "4", "2025-01-01 10:00:00", "-5", "false"),  # out of range
            ("P1", "5", "2025-01-01 10:00:00", "1.00", "false"),  # duplicate key
            (None, "6", "2025-01-01 10:00:00", "1.00", "false"),  # missing value
            ("P7", "7", "2025-01-01 10:00:00", "1.00", "maybe"),  # not a boolean
        ]
    )
    assert "P2" in found and "customer_id: not a valid int64 ('abc')" in found["P2"]
    assert "charged_at: later than now" in found["P3"]
    assert "amount: greater_than_or_equal_to(0)" in found["P4"]
    assert found["P1"] == "duplicate key (payment_id)"  # the first P1 stays valid
    assert found["<null>"] == "payment_id: missing value"
    assert "failed: not a valid bool ('maybe')" in found["P7"]
    assert len(found) == 6


def test_unknown_categories_are_quarantined():
    customers = CHURN.source("customers")
    raw = pl.DataFrame(
        {
            "customer_id": ["1", "2"],
            "updated_at": ["2025-01-01 00:00:00"] * 2,
            "signup_date": ["2024-05-01"] * 2,
            "plan": ["basic", "platinum"],
            "monthly_price": ["9.99", "9.99"],
            "region": ["north", "mars"],
            "age_band": ["25-34"] * 2,
            "channel": ["organic"] * 2,
        }
    )
    valid, quarantined = validate_frame(raw, customers, now=NOW)
    assert valid["customer_id"].to_list() == [1]
    assert "plan: isin" in quarantined["_reason"][0] and "region: isin" in quarantined["_reason"][0]


def land_payments(paths, name: str, rows: list[tuple]) -> None:
    folder = paths.landing / "payments"
    folder.mkdir(parents=True, exist_ok=True)
    raw_payments(rows).write_csv(folder / name)


def test_every_batch_balances_and_a_mostly_bad_batch_is_held_out_of_silver(paths):
    good = [(f"P{i}", str(i), "2025-01-01 10:00:00", "9.99", "false") for i in range(1, 21)]
    bad = [(f"Q{i}", "x", "2025-01-01 10:00:00", "9.99", "false") for i in range(10)] + good[:2]
    land_payments(paths, "payments_2025-01-01.csv", good)
    land_payments(paths, "payments_2025-01-02.csv", bad)
    ingest_source(paths, PAYMENTS)
    reports = {r["file"]: r for r in validate_new_batches(paths, PAYMENTS, max_quarantine_rate=0.05, min_held_rows=5)}
    for r in reports.values():
        assert r["rows_in"] == r["rows_valid"] + r["rows_quarantined"]
    assert reports["payments_2025-01-01.csv"]["status"] == "published"
    held = reports["payments_2025-01-02.csv"]
    assert held["status"] == "held" and held["rows_quarantined"] == 10 and held["rows_valid"] == 2
    stats = build_silver(paths, PAYMENTS)
    assert stats["rows"] == 20 and stats["held_batches"] == [held["batch_id"]]
    quarantine = pl.read_parquet(paths.quarantine("payments") / f"{held['batch_id']}.parquet")
    assert quarantine.height == 10 and set(quarantine["_batch_id"]) == {held["batch_id"]}
    # After review, a person releases the batch: its 2 valid rows (duplicates of P1, P2) reach silver.
    release_batches(paths, "payments", [held["batch_id"]])
    assert build_silver(paths, PAYMENTS)["rows_in"] == 22


def test_a_few_bad_rows_in_a_small_file_do_not_hold_it(paths):
    rows = [("P1", "1", "2025-01-01 10:00:00", "9.99", "false"), ("P2", "x", "2025-01-01 10:00:00", "1", "false")]
    land_payments(paths, "payments_2025-01-01.csv", rows)
    ingest_source(paths, PAYMENTS)
    [report] = validate_new_batches(paths, PAYMENTS, max_quarantine_rate=0.05, min_held_rows=5)
    assert report["quarantine_rate"] == 0.5 and report["status"] == "published"


def test_silver_keeps_the_newest_version_of_a_key(paths):
    tickets = CHURN.source("tickets")
    folder = paths.landing / "tickets"
    folder.mkdir(parents=True)
    header = "ticket_id,customer_id,opened_at,category,resolved_at,updated_at\n"
    (folder / "tickets_2025-01-01.csv").write_text(header + "T1,1,2025-01-01 09:00:00,billing,,2025-01-01 09:00:00\n")
    (folder / "tickets_2025-01-03.csv").write_text(
        header + "T1,1,2025-01-01 09:00:00,billing,2025-01-03 12:00:00,2025-01-03 12:00:00\n"
    )
    ingest_source(paths, tickets)
    validate_new_batches(paths, tickets, 0.05)
    stats = build_silver(paths, tickets)
    silver = pl.read_parquet(paths.silver("tickets"))
    assert stats["duplicates_collapsed"] == 1
    assert silver["resolved_at"].to_list() == [datetime(2025, 1, 3, 12)]


def test_releasing_a_batch_that_is_not_held_is_refused(paths):
    import pytest

    land_payments(paths, "payments_2025-01-01.csv", [("P1", "1", "2025-01-01 10:00:00", "9.99", "false")])
    ingest_source(paths, PAYMENTS)
    [report] = validate_new_batches(paths, PAYMENTS, 0.05)
    with pytest.raises(ValueError, match="is published, not held"):
        release_batches(paths, "payments", [report["batch_id"]])
    with pytest.raises(ValueError, match="no validation report"):
        release_batches(paths, "payments", ["payments-nope"])


# Every declared numeric or boolean type against every Parquet physical type a producer may write, with
# values at the edges: a value is kept exactly or its row is quarantined, never silently changed.
PHYSICAL_VALUES = {
    pl.Int8: [0, -128, 127],
    pl.Int32: [0, -(2**31), 2**31 - 1],
    pl.Int64: [0, 2**53 + 1, -(2**63)],
    pl.UInt8: [0, 255],
    pl.UInt64: [0, 2**63, 2**64 - 1],
    pl.Float32: [0.0, 5.5, -1.25, 16777216.0, 3.4e38],
    pl.Float64: [0.0, 5.5, 3.7, 1e300, -0.0, 2.0**53 + 2],
    pl.Boolean: [True, False],
}


@pytest.mark.parametrize("declared", ["int64", "float64", "bool"])
@pytest.mark.parametrize("physical", list(PHYSICAL_VALUES), ids=str)
def test_a_typed_value_is_kept_exactly_or_its_row_is_quarantined_never_changed(declared, physical):
    from lakehouse.declarations.domain import Column, Source

    source = Source("s", "", (Column("id", "int64"), Column("x", declared)), unique_key=("id",), silver_key=("id",))
    values = PHYSICAL_VALUES[physical]
    raw = pl.DataFrame(
        {"id": list(range(len(values))), "x": pl.Series(values, dtype=physical), "_batch_id": "b", "_row": 1}
    )
    valid, quarantined = validate_frame(raw, source)
    assert valid.height + quarantined.height == raw.height
    for row in valid.iter_rows(named=True):
        original = raw["x"][row["id"]]  # as stored in the physical type
        assert row["x"] == original and float(row["x"]) == float(original), (physical, original, row["x"])
    for reason in quarantined["_reason"]:
        assert reason.startswith(f"x: not a valid {declared}")


def test_fractional_ids_and_counts_in_parquet_are_quarantined_as_in_csv():
    """Parquet floats 5.5 and 3.7 into integer columns: the same verdict as the CSV text "5.5" and "3.7"."""
    usage = CHURN.source("usage")
    rows = {
        "customer_id": [1.0, 3.7],
        "usage_date": ["2025-01-01", "2025-01-01"],
        "sessions": [5.0, 5.5],
        "minutes": [1.0, 2.0],
        "data_mb": [1.0, 2.0],
        "errors": [0, 0],
        "_batch_id": ["b", "b"],
        "_row": [1, 2],
    }
    from_parquet = validate_frame(pl.DataFrame(rows), usage)
    # The text a CSV producer writes: whole numbers without a fraction.
    text = {
        k: [str(int(v)) if isinstance(v, float) and v.is_integer() else str(v) for v in vs]
        if k not in ("_batch_id", "_row")
        else vs
        for k, vs in rows.items()
    }
    from_csv = validate_frame(pl.DataFrame(text), usage)
    for valid, quarantined in (from_parquet, from_csv):
        assert valid["customer_id"].to_list() == [1] and valid["sessions"].to_list() == [5]
        [reason] = quarantined["_reason"].to_list()
        assert "customer_id: not a valid int64" in reason and "sessions: not a valid int64" in reason
