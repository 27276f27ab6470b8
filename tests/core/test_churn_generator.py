"""The churn demo's synthetic data generator: deterministic, well-formed, realistic, and corrupt on request."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lakehouse.demos.churn.generator import SOURCES, Drift, GeneratorConfig, day_of, generate, parse_drift

SMALL = GeneratorConfig(customers=300, days=40, seed=3)
COLUMNS = {
    "customers": ["customer_id", "updated_at", "signup_date", "plan", "monthly_price", "region", "age_band", "channel"],
    "usage": ["customer_id", "usage_date", "sessions", "minutes", "data_mb", "errors"],
    "payments": ["payment_id", "customer_id", "charged_at", "amount", "failed"],
    "tickets": ["ticket_id", "customer_id", "opened_at", "category", "resolved_at", "updated_at"],
    "cancellations": ["customer_id", "cancelled_at", "reason"],
}
USAGE_SCHEMA = pa.schema(
    [
        ("customer_id", pa.int64()),
        ("usage_date", pa.date32()),
        ("sessions", pa.int64()),
        ("minutes", pa.float64()),
        ("data_mb", pa.float64()),
        ("errors", pa.int64()),
    ]
)


def files(root: Path) -> dict[str, bytes]:
    """Every landing file's bytes by relative path."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def read(root: Path, source: str) -> pl.DataFrame:
    """All of a clean source's files as one frame (CSV columns typed by polars)."""
    paths = sorted((root / source).iterdir())
    if source == "usage":
        return pl.concat([pl.read_parquet(p) for p in paths])
    frames = [
        pl.read_csv(
            p,
            schema_overrides={
                "payment_id": pl.String,
                "ticket_id": pl.String,
                "resolved_at": pl.String,
                "failed": pl.String,
            },
        )
        for p in paths
        if p.read_bytes().count(b"\n") > 1
    ]
    return pl.concat(frames)


def cancellation_days(root: Path) -> dict[int, date]:
    """Each cancelled customer's cancellation day."""
    df = read(root, "cancellations")
    return {c: date.fromisoformat(t[:10]) for c, t in df.select("customer_id", "cancelled_at").iter_rows()}


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small clean landing folder, generated once."""
    root = tmp_path_factory.mktemp("clean")
    generate(root, SMALL)
    return root


def test_same_seed_gives_identical_bytes_and_another_seed_does_not(clean: Path, tmp_path: Path) -> None:
    generate(tmp_path / "again", SMALL)
    generate(tmp_path / "other", GeneratorConfig(customers=300, days=40, seed=4))
    assert files(tmp_path / "again") == files(clean)
    other = files(tmp_path / "other")
    shared = other.keys() & files(clean).keys()
    assert shared and all(other[k] != v for k, v in files(clean).items() if k in shared and k.startswith("usage"))


def test_one_file_per_source_per_day_with_events_and_exact_columns(clean: Path) -> None:
    days = [SMALL.start + timedelta(d) for d in range(SMALL.days)]
    for source in SOURCES:
        paths = sorted((clean / source).iterdir())
        suffix = "parquet" if source == "usage" else "csv"
        assert all(p.name == f"{source}_{day_of(p).isoformat()}.{suffix}" for p in paths)
        assert [day_of(p) for p in paths] == sorted({day_of(p) for p in paths}) and set(map(day_of, paths)) <= set(days)
        if source == "usage":  # someone uses the product every day
            assert [day_of(p) for p in paths] == days
        for p in paths:
            if source == "usage":
                assert pq.read_schema(p).remove_metadata() == USAGE_SCHEMA
            else:
                assert p.read_text(encoding="utf-8").splitlines()[0] == ",".join(COLUMNS[source])


def test_returns_rows_written_and_reports_progress(tmp_path: Path) -> None:
    messages: list[str] = []
    rows = generate(tmp_path, SMALL, progress=messages.append)
    assert rows == {s: read(tmp_path, s).height for s in SOURCES}
    assert rows["customers"] >= SMALL.customers and rows["usage"] > SMALL.customers * SMALL.days * 0.5
    assert 8 <= len(messages) <= 12 and messages[-1].startswith("day 40/40:")


def test_values_are_well_formed(clean: Path) -> None:
    customers, usage, payments = read(clean, "customers"), read(clean, "usage"), read(clean, "payments")
    assert customers["plan"].is_in(["basic", "standard", "premium"]).all()
    assert customers["region"].is_in(["north", "south", "east", "west"]).all()
    day0 = pl.read_csv(clean / "customers" / "customers_2025-01-01.csv")
    assert day0.height == SMALL.customers and day0["customer_id"].is_unique().all()
    assert day0["signup_date"].str.to_date().min() < date(2024, 1, 1)  # tenure varies
    for p in (clean / "customers").iterdir():
        assert pl.read_csv(p)["customer_id"].is_unique().all()
    assert usage["sessions"].min() >= 1 and usage["errors"].min() >= 0 and usage["data_mb"].min() >= 0
    assert 0 <= usage["minutes"].min() and usage["minutes"].max() <= 1440
    assert usage.select("customer_id", "usage_date").is_unique().all()
    assert payments["payment_id"].is_unique().all() and payments["payment_id"].str.contains(r"^P\d+$").all()
    assert set(payments["failed"]) == {"true", "false"}
    assert read(clean, "cancellations")["customer_id"].is_unique().all()  # a customer cancels at most once


def test_cancelled_customers_produce_nothing_afterwards(clean: Path) -> None:
    cancelled = cancellation_days(clean)
    assert len(cancelled) > 5
    day = pl.DataFrame({"customer_id": list(cancelled), "cancel_day": list(cancelled.values())})
    usage = read(clean, "usage").join(day, on="customer_id")
    assert usage.filter(pl.col("usage_date") >= pl.col("cancel_day")).height == 0
    assert usage.height > 0
    payments = read(clean, "payments").join(day, on="customer_id")
    assert payments.filter(pl.col("charged_at").str.to_date("%Y-%m-%d %H:%M:%S") >= pl.col("cancel_day")).height == 0
    tickets = read(clean, "tickets").join(day, on="customer_id")
    assert tickets.filter(pl.col("updated_at").str.to_date("%Y-%m-%d %H:%M:%S") > pl.col("cancel_day")).height == 0


def test_tickets_open_and_resolve_in_separate_rows(tmp_path: Path) -> None:
    generate(tmp_path, GeneratorConfig(customers=1000, days=40, seed=3))
    tickets = read(tmp_path, "tickets")
    assert tickets["category"].is_in(["billing", "technical", "account", "cancellation"]).all()
    per_ticket = tickets.group_by("ticket_id").agg(pl.len().alias("rows"), pl.col("resolved_at").max())
    assert per_ticket["rows"].max() == 2  # an opening row, then a resolution row
    assert per_ticket["resolved_at"].is_null().sum() > 0  # some tickets are still open at the end (empty)


def test_bad_rows_are_malformed_in_several_ways_and_leave_the_truth_alone(clean: Path, tmp_path: Path) -> None:
    generate(tmp_path, GeneratorConfig(customers=300, days=40, seed=3, bad_row_rate=0.1))
    kinds, changed, total = set(), 0, 0
    for source in SOURCES:
        for p in sorted((tmp_path / source).iterdir()):
            original = clean / source / p.name
            if source == "usage":
                bad, good = pq.read_table(p).to_pylist(), pq.read_table(original).to_pylist()
                assert len(bad) == len(good)
                for b, g in zip(bad, good):
                    total += 1
                    if b == g:
                        continue
                    changed += 1
                    kinds.add(
                        "missing_id"
                        if b["customer_id"] is None
                        else "negative"
                        if b["sessions"] < 0 or b["minutes"] < 0
                        else "future"
                        if b["usage_date"].year == 2099
                        else "duplicate"
                    )
                continue
            bad, good = p.read_text().splitlines(), original.read_text().splitlines()
            assert len(bad) == len(good) and bad[0] == good[0]
            for b, g in zip(bad[1:], good[1:]):
                total += 1
                if b == g:
                    continue
                changed += 1
                fields = b.split(",")
                kinds.add(
                    "missing_id"
                    if "" in fields[:2] and fields != g.split(",")
                    else "future"
                    if ",2099-" in b
                    else "non_numeric"
                    if "abc" in fields
                    else "unknown_category"
                    if {"platinum", "mars", "maybe", "lottery", "aliens"} & set(fields)
                    else "negative"
                    if ",-" in b
                    else "duplicate"
                )
    assert 0.05 < changed / total < 0.15
    assert kinds == {"missing_id", "negative", "future", "duplicate", "non_numeric", "unknown_category"}
    usage = read(tmp_path, "usage")
    assert usage.filter(pl.col("customer_id").is_not_null()).select("customer_id", "usage_date").is_duplicated().any()
    # the simulation itself is unchanged: the same rows, only some of them replaced
    assert read(tmp_path, "cancellations").height == read(clean, "cancellations").height


def test_bad_files_are_malformed(tmp_path: Path) -> None:
    generate(tmp_path, GeneratorConfig(customers=300, days=40, seed=3, bad_file_rate=1.0))
    kinds = set()
    for source in SOURCES:
        for p in sorted((tmp_path / source).iterdir()):
            data = p.read_bytes()
            if not data:
                kinds.add("empty")
            elif source == "usage":
                try:
                    names = pq.read_schema(p).names
                except Exception:
                    kinds.add("truncated")
                    continue
                assert names != COLUMNS[source]
                kinds.add("extra_column" if len(names) > len(COLUMNS[source]) else "missing_column")
            else:
                try:
                    lines = data.decode("utf-8").splitlines()
                except UnicodeDecodeError:
                    assert b"\xe9" in data
                    kinds.add("non_utf8")
                    continue
                header = lines[0].split(",")
                assert header != COLUMNS[source] or len(lines) == 1
                kinds.add(
                    "header_only"
                    if header == COLUMNS[source]
                    else "extra_column"
                    if len(header) > len(COLUMNS[source])
                    else "missing_column"
                )
    assert kinds == {"empty", "header_only", "extra_column", "missing_column", "truncated", "non_utf8"}


def test_a_window_writes_only_its_days_with_the_same_bytes(tmp_path: Path) -> None:
    config = GeneratorConfig(customers=300, days=40, seed=3, bad_row_rate=0.05, bad_file_rate=0.1)
    generate(tmp_path / "full", config)
    generate(
        tmp_path / "window",
        GeneratorConfig(
            customers=300, days=40, seed=3, bad_row_rate=0.05, bad_file_rate=0.1, first_day=10, last_day=19
        ),
    )
    full, window = files(tmp_path / "full"), files(tmp_path / "window")
    wanted = {date(2025, 1, 11) + timedelta(d) for d in range(10)}
    assert {day_of(Path(k)) for k in window} == wanted and len(window) <= 10 * len(SOURCES)
    assert all(window[k] == full[k] for k in window)


def test_invalid_window_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        generate(tmp_path, GeneratorConfig(customers=50, days=10, first_day=5, last_day=10))


def churn_by_plan(root: Path, plan: str, from_day: date) -> float:
    """Share of the plan's customers active on from_day who cancel on it or later."""
    customers = read(root, "customers").sort("updated_at").group_by("customer_id").agg(pl.col("plan").first())
    cancelled = cancellation_days(root)
    on_plan = customers.filter(pl.col("plan") == plan)["customer_id"]
    active = [c for c in on_plan if cancelled.get(c, from_day) >= from_day]
    return sum(c in cancelled for c in active) / len(active)


def test_a_price_rise_raises_that_plans_churn(tmp_path: Path) -> None:
    base = GeneratorConfig(customers=1500, days=70, seed=5)
    rise = GeneratorConfig(
        customers=1500, days=70, seed=5, drifts=(Drift("price_rise", start_day=20, plan="basic", magnitude=0.5),)
    )
    generate(tmp_path / "base", base)
    generate(tmp_path / "rise", rise)
    start = date(2025, 1, 21)
    before, after = churn_by_plan(tmp_path / "base", "basic", start), churn_by_plan(tmp_path / "rise", "basic", start)
    assert after > before * 1.5 and after - before > 0.04
    assert churn_by_plan(tmp_path / "rise", "premium", start) == pytest.approx(
        churn_by_plan(tmp_path / "base", "premium", start), abs=0.01
    )
    rise_day = pl.read_csv(tmp_path / "rise" / "customers" / "customers_2025-01-21.csv")
    assert (rise_day["plan"] == "basic").sum() > 400  # one update row per affected customer


def test_usage_drop_lowers_that_regions_usage(tmp_path: Path) -> None:
    drift = Drift("usage_drop", start_day=20, region="north", magnitude=0.5)
    generate(tmp_path / "base", SMALL)
    generate(tmp_path / "drop", GeneratorConfig(customers=300, days=40, seed=3, drifts=(drift,)))
    north = read(tmp_path / "base", "customers").filter(pl.col("region") == "north")["customer_id"].unique()

    def minutes(root: Path) -> float:
        usage = read(root, "usage").filter(
            pl.col("customer_id").is_in(north.implode()), pl.col("usage_date") >= date(2025, 1, 21)
        )
        return usage["minutes"].sum()

    assert minutes(tmp_path / "drop") < 0.7 * minutes(tmp_path / "base")


def test_churn_is_learnable_from_failed_payments(tmp_path: Path) -> None:
    generate(tmp_path, GeneratorConfig(customers=2000, days=90, seed=11))
    cancelled = cancellation_days(tmp_path)
    payments = read(tmp_path, "payments").with_columns(pl.col("charged_at").str.to_date("%Y-%m-%d %H:%M:%S"))
    failures = payments.filter(pl.col("failed") == "true").select("customer_id", "charged_at")
    first_seen = (
        read(tmp_path, "customers")
        .group_by("customer_id")
        .agg(pl.col("updated_at").min().str.to_date("%Y-%m-%d %H:%M:%S"))
    )
    rates = {True: [0, 0], False: [0, 0]}
    for snapshot in (date(2025, 2, 15), date(2025, 2, 22), date(2025, 3, 1)):
        failed = set(failures.filter(pl.col("charged_at") < snapshot)["customer_id"])
        for c in first_seen.filter(pl.col("updated_at") < snapshot)["customer_id"]:
            if cancelled.get(c, snapshot) < snapshot:
                continue
            churned = c in cancelled and cancelled[c] < snapshot + timedelta(30)
            rates[c in failed][0] += churned
            rates[c in failed][1] += 1
    with_failures, without = rates[True][0] / rates[True][1], rates[False][0] / rates[False][1]
    assert 0.01 < without < 0.08  # a few percent of customers cancel within 30 days
    assert with_failures > 2 * without


def test_a_day_without_events_writes_no_file_rather_than_an_empty_one(clean: Path) -> None:
    for source in SOURCES:
        for p in (clean / source).iterdir():
            assert p.stat().st_size > 0
            if p.suffix == ".csv":
                assert p.read_bytes().count(b"\n") > 1, p
    cancellation_days = {day_of(p) for p in (clean / "cancellations").iterdir()}
    assert len(cancellation_days) < SMALL.days  # a small business has quiet days


def test_a_longer_run_writes_the_same_bytes_for_the_days_both_cover(tmp_path: Path) -> None:
    """Extending a simulation (as a live producer does) never rewrites files already delivered."""
    generate(tmp_path / "short", GeneratorConfig(customers=200, days=30, seed=5, bad_row_rate=0.01))
    generate(tmp_path / "long", GeneratorConfig(customers=200, days=45, seed=5, bad_row_rate=0.01))
    short, long = files(tmp_path / "short"), files(tmp_path / "long")
    assert short and all(long[k] == v for k, v in short.items())
    assert len(long) > len(short)


def cancellation_rows(root: Path) -> dict[str, date]:
    """Every cancellation row (as its CSV line) and the day of the file it landed in."""
    return {
        line: day_of(p) for p in sorted((root / "cancellations").iterdir()) for line in p.read_text().splitlines()[1:]
    }


def test_a_label_delay_moves_every_cancellation_k_days_later_and_loses_none(tmp_path: Path) -> None:
    """Labels arrive late: a cancellation lands in the file K days after it happened; nothing else moves."""
    k = 4
    generate(tmp_path / "now", GeneratorConfig(customers=500, days=40, seed=3))
    generate(tmp_path / "late", GeneratorConfig(customers=500, days=40 + k, seed=3, label_delay_days=k))
    now, late = cancellation_rows(tmp_path / "now"), cancellation_rows(tmp_path / "late")
    assert len(now) > 10 and late.keys() == now.keys()  # the same rows, none lost or doubled
    assert all(late[row] == day + timedelta(k) for row, day in now.items())
    assert all(date.fromisoformat(row.split(",")[1][:10]) == day for row, day in now.items())
    for source in set(SOURCES) - {"cancellations"}:  # every other source is untouched
        assert files(tmp_path / "late" / source).items() >= files(tmp_path / "now" / source).items()


def test_a_label_delay_from_a_day_leaves_earlier_cancellations_on_their_day(tmp_path: Path) -> None:
    generate(tmp_path / "now", GeneratorConfig(customers=500, days=40, seed=3))
    generate(
        tmp_path / "late", GeneratorConfig(customers=500, days=43, seed=3, label_delay_days=3, label_delay_from=20)
    )
    now, late = cancellation_rows(tmp_path / "now"), cancellation_rows(tmp_path / "late")
    switch = date(2025, 1, 21)
    assert late.keys() == now.keys()
    assert all(late[row] == (day if day < switch else day + timedelta(3)) for row, day in now.items())


def test_drift_specs_parse_and_bad_ones_say_what_is_expected() -> None:
    assert parse_drift("price_rise:60:basic:") == Drift("price_rise", start_day=60, plan="basic")
    assert parse_drift("usage_drop:7::south:0.4") == Drift("usage_drop", start_day=7, region="south", magnitude=0.4)
    for bad in ("price_rise:60", "tax_rise:60:basic:", "price_rise:x:basic:", "price_rise:60:gold:"):
        with pytest.raises(ValueError, match="KIND:DAY|needs a plan"):
            parse_drift(bad)
