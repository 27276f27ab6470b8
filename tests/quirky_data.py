"""A seeded events dataset with the quirks real user files have, for `lakehouse dataset add` tests.

Card-payment events (one row per payment): an integer or string customer id, a millisecond event time
without time zone, features written the way exports write them ("40%", "True"/"False", categories with
spaces and currency signs, missing values), a float-typed label ("0.0"/"1.0") that depends on the
features through a logistic model, and columns that must never be used: a per-row id, a device id,
a note that restates the label, and a vendor's own fraud score. One CSV per month (the last month as
Parquet), labels inline or in separate files that lag the events.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import polars as pl

ENTITY, TIMESTAMP, LABEL, KEY = "customer_id", "event_time", "is_fraud", "event_id"
DROP = ["device_id", "outcome_note", "vendor_score"]  # a shared id, a leak and a vendor's prediction
CATEGORIES = ["Grocery & Food", "Électronique", "Travel agency", "Gas station", "Online – digital"]
CATEGORY_RISK = np.array([-0.4, 0.6, 0.5, -0.2, 0.9])
CURRENCIES = ["EUR €", "GBP £", "USD $", "JPY ¥"]
LABEL_LAG_DAYS = 3  # separate labels arrive later: the newest events have none yet
INTERCEPT = -3.6  # puts the positive rate near 15% without drift (about 25% with it)


def _missing(rng: np.random.Generator, values: pl.Series, share: float) -> pl.Series:
    """The values with a random share set to null (an empty field in CSV)."""
    return values.scatter(np.flatnonzero(rng.random(len(values)) < share), None)


def write_quirky_dataset(
    folder: Path,
    rows: int = 3000,
    seed: int = 0,
    drift: bool = False,
    start: str = "2024-01-01",
    days: int = 60,
    separate_labels: bool = False,
    string_ids: bool = False,
    label_delay_days: float | None = None,
) -> dict:
    """Write the dataset's files under folder; return their paths and the roles of its columns."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    span_ms = days * 86_400_000
    # Strictly increasing times, so (customer, time) is unique as the inline source requires.
    offsets = np.sort(rng.integers(0, span_ms - rows, rows)) + np.arange(rows)
    times = pl.Series(TIMESTAMP, np.datetime64(start, "ms") + offsets.astype("timedelta64[ms]"))
    customers = rng.integers(1, max(rows // 5, 2) + 1, rows)

    amount = np.round(rng.lognormal(3.5, 1.0, rows) * (3.0 if drift else 1.0), 2)
    discount = rng.choice([0, 5, 10, 20, 40, 60], rows, p=[0.4, 0.2, 0.15, 0.12, 0.08, 0.05])
    new_device = rng.random(rows) < 0.2
    category = rng.integers(0, len(CATEGORIES), rows)
    currency = rng.choice(len(CURRENCIES), rows, p=[0.5, 0.2, 0.2, 0.1])
    age_days = rng.integers(0, 3000, rows)
    chargebacks = rng.poisson(0.3, rows)
    # Risk with thresholds and an interaction, so trees beat the logistic baseline: mid-size payments
    # (worth stealing, small enough to pass checks), big discounts on a new device, brand-new accounts.
    # The drift scales amounts under the same rule: inputs shift, and the positive rate with them.
    mid_size = (amount > 60) & (amount < 300)
    logit = (
        INTERCEPT
        + 2.5 * mid_size
        + 0.3 * new_device
        + 2.0 * new_device * (discount >= 40)
        + CATEGORY_RISK[category]
        + 0.7 * chargebacks
        + 1.2 * (age_days < 90)
    )
    fraud = rng.random(rows) < 1 / (1 + np.exp(-logit))

    ids = pl.Series(ENTITY, customers)
    events = pl.DataFrame(
        {
            KEY: f"evt-{seed}-" + pl.Series(np.arange(rows)).cast(pl.String).str.zfill(7),
            ENTITY: "C-" + ids.cast(pl.String).str.zfill(6) if string_ids else ids,
            TIMESTAMP: times,
            "amount": _missing(rng, pl.Series(amount), 0.02),
            "discount": _missing(rng, pl.Series(discount).cast(pl.String) + "%", 0.05),
            "is_new_device": _missing(rng, pl.Series(np.where(new_device, "True", "False")), 0.01),
            "merchant_category": _missing(rng, pl.Series(np.array(CATEGORIES)[category]), 0.01),
            "currency": pl.Series(np.array(CURRENCIES)[currency]),
            "account_age_days": _missing(rng, pl.Series(age_days), 0.03),
            "prev_chargebacks": pl.Series(chargebacks),
            "device_id": pl.Series(rng.integers(1, max(rows // 3, 2), rows)),
            "outcome_note": pl.Series(np.where(fraud, "fraud confirmed", "no issue")),
            "vendor_score": pl.Series(np.round(np.clip(1 / (1 + np.exp(-logit)) + rng.normal(0, 0.1, rows), 0, 1), 3)),
            LABEL: pl.Series(fraud.astype(float)),
        }
    )
    labels = events.select(KEY, LABEL, TIMESTAMP)
    if separate_labels:
        events = events.drop(LABEL)
    else:
        events = events.with_columns(_missing(rng, events[LABEL], 0.01))  # a few events not yet labelled

    months = events[TIMESTAMP].dt.strftime("%Y-%m")
    files, labels_files = [], []
    unique_months = months.unique(maintain_order=True).to_list()
    for i, month in enumerate(unique_months):
        part = events.filter(months == month)
        if i == len(unique_months) - 1 and len(unique_months) > 1:
            path = folder / f"events-{month}.parquet"  # typed columns: a datetime, a float label, text "40%"
            part.write_parquet(path)
        else:
            path = folder / f"events-{month}.csv"
            part.with_columns(pl.col(TIMESTAMP).dt.strftime("%Y-%m-%d %H:%M:%S%.3f")).write_csv(path)
        files.append(path)
    if separate_labels:
        columns = [KEY, LABEL]
        if label_delay_days is None:
            cutoff = events[TIMESTAMP].max() - timedelta(days=LABEL_LAG_DAYS)
            known = labels.filter(pl.col(TIMESTAMP) <= cutoff)
        else:
            # Each label known label_delay_days (0.5x to 1.5x) after its event, written in a labelled_at column;
            # only those known by the newest event are in the files.
            delay = pl.Series(rng.uniform(0.5, 1.5, labels.height) * label_delay_days * 86_400_000).cast(pl.Int64)
            labels = labels.with_columns(labelled_at=pl.col(TIMESTAMP) + pl.duration(milliseconds=delay))
            known = labels.filter(pl.col("labelled_at") <= events[TIMESTAMP].max())
            known = known.with_columns(pl.col("labelled_at").dt.strftime("%Y-%m-%d %H:%M:%S"))
            columns.append("labelled_at")
        label_months = known[TIMESTAMP].dt.strftime("%Y-%m")
        for month in label_months.unique(maintain_order=True).to_list():
            path = folder / "labels" / f"labels-{month}.csv"
            path.parent.mkdir(exist_ok=True)
            known.filter(label_months == month).select(columns).write_csv(path)
            labels_files.append(path)
    return {
        "files": files,
        "labels_files": labels_files,
        "entity": ENTITY,
        "timestamp": TIMESTAMP,
        "label": LABEL,
        "key": KEY if separate_labels else None,
        "row_id": KEY,
        "drop": list(DROP),
        "positive": "1.0",
        "positive_rate": float(fraud.mean()),
    }
