"""`lakehouse dataset add` inference: quirky real-world files become a dataset file validation agrees with."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from lakehouse.declarations.datasets import (
    DatasetSpec,
    DatasetSpecError,
    FeatureSpec,
    load_spec,
    save_spec,
    spec_from_dict,
    to_domain,
)
from lakehouse.lake.dataset_inference import check_spec_against_data, infer_spec
from lakehouse.lake.ingestion import RejectedFile, read_landing_file
from lakehouse.lake.validation import validate_frame
from tests.quirky_data import write_quirky_dataset

EXPECTED_TYPES = {
    "amount": "float64",
    "discount": "float64",
    "is_new_device": "bool",
    "merchant_category": "string",
    "currency": "string",
    "account_age_days": "int64",
    "prev_chargebacks": "int64",
}
VARIANTS = {"inline_int_ids": {}, "separate_labels_string_ids": {"separate_labels": True, "string_ids": True}}


@pytest.fixture(scope="module", params=list(VARIANTS))
def quirky(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The quirky dataset in one variant, and the spec inferred from it with the user's --drop."""
    data = write_quirky_dataset(tmp_path_factory.mktemp(request.param), rows=3000, **VARIANTS[request.param])
    spec, lines = infer_spec(
        "fraud",
        data["files"],
        data["entity"],
        data["timestamp"],
        data["label"],
        labels_files=data["labels_files"] or None,
        labels_key=data["key"],
        drop=data["drop"],
    )
    return {**data, "spec": spec, "lines": lines, "variant": request.param}


def _features(spec: DatasetSpec) -> dict[str, FeatureSpec]:
    return {f.name: f for f in spec.features}


def test_inferred_types_read_units_booleans_and_categories(quirky: dict) -> None:
    spec, features = quirky["spec"], _features(quirky["spec"])
    assert {n: f.type for n, f in features.items()} == EXPECTED_TYPES
    assert features["discount"].unit == "%" and features["discount"].observed["max"] == 60
    assert "Électronique" in features["merchant_category"].categories
    assert set(features["currency"].categories) == {"EUR €", "GBP £", "USD $", "JPY ¥"}
    assert not features["merchant_category"].enforce_categories  # observed, never enforced by default
    assert features["amount"].nullable and features["currency"].nullable  # features default to nullable
    assert features["amount"].min is None and features["amount"].observed["min"] > 0  # ranges are observations
    assert spec.entity_type == ("string" if quirky["variant"].startswith("separate") else "int64")
    assert spec.positive == "1.0"  # a float-typed label: the value that reads as 1
    assert (spec.labels is not None) == quirky["variant"].startswith("separate")


def test_unique_per_row_identifiers_are_dropped_and_said_so(quirky: dict) -> None:
    spec, lines = quirky["spec"], quirky["lines"]
    assert set(quirky["drop"]) <= set(spec.drop)
    if spec.labels is None:  # with separate labels the per-row id is the join key, not a column to drop
        assert "event_id" in spec.drop
        assert any("event_id" in line and "identifier" in line for line in lines)
    assert not {"event_id", *quirky["drop"]} & set(_features(spec))


def test_id_like_and_leaked_columns_are_flagged_but_kept_without_drop(tmp_path: Path) -> None:
    data = write_quirky_dataset(tmp_path, rows=1000)
    spec, lines = infer_spec("fraud", data["files"], data["entity"], data["timestamp"], data["label"])
    text = "\n".join(lines)
    assert {"device_id", "outcome_note", "vendor_score"} <= set(_features(spec))
    assert "'device_id' looks like an identifier" in text
    assert "'outcome_note' goes with a single label class" in text


def test_inferred_spec_round_trips_through_dict_and_yaml(quirky: dict, tmp_path: Path) -> None:
    spec = quirky["spec"]
    assert spec_from_dict(spec.to_dict()) == spec
    assert load_spec(save_spec(spec, tmp_path)) == spec
    assert "Électronique" in (tmp_path / "fraud.yaml").read_text(encoding="utf-8")  # readable, not escaped


def test_validation_types_raw_batches_as_inferred_and_quarantines_nothing(quirky: dict) -> None:
    spec = quirky["spec"]
    domain = to_domain(spec)
    source = domain.source("fraud")
    for path in quirky["files"]:  # one CSV (all text) and one Parquet (typed columns), dropped columns and all
        raw = read_landing_file(path, source)
        valid, quarantined = validate_frame(raw, source)
        assert quarantined.height == 0, quarantined["_reason"].head(5).to_list()
        assert valid.schema["discount"] == pl.Float64 and valid.schema["is_new_device"] == pl.Boolean
        if path.suffix == ".csv":
            text = raw.with_row_index()
            row = text.filter(pl.col("discount") == "40%", pl.col("is_new_device") == "True")["index"][0]
            assert valid["discount"][row] == 40.0 and valid["is_new_device"][row] is True
            assert valid["event_time"][row] == datetime.strptime(raw["event_time"][row], "%Y-%m-%d %H:%M:%S.%f")
    if spec.labels:
        labels = domain.source("fraud_labels")
        for path in quirky["labels_files"]:
            _, quarantined = validate_frame(read_landing_file(path, labels), labels)
            assert quarantined.height == 0


def test_check_spec_against_data_is_clean_for_the_inferred_spec(quirky: dict) -> None:
    spec = quirky["spec"]
    assert check_spec_against_data(spec, quirky["files"], quirky["labels_files"] or None) == []


def test_check_spec_against_data_names_what_a_hand_edit_broke(quirky: dict) -> None:
    spec = quirky["spec"]
    features = [replace(f, type="int64") if f.name == "amount" else f for f in spec.features]
    features.append(FeatureSpec("loyalty_tier", "string"))
    edited = replace(
        spec, features=tuple(features), drop=tuple(c for c in spec.drop if c != "vendor_score"), positive="yes"
    )
    problems = "\n".join(check_spec_against_data(edited, quirky["files"], quirky["labels_files"] or None))
    assert "feature 'loyalty_tier' is not a column of the data" in problems
    assert "column 'vendor_score' is in the data but neither a feature nor dropped" in problems
    assert "feature 'amount' is int64 but" in problems and "do not read as one" in problems
    assert "positive 'yes' is not a value of label 'is_fraud'" in problems
    renamed = replace(spec, entity="client", timestamp="when")
    problems = "\n".join(check_spec_against_data(renamed, quirky["files"], quirky["labels_files"] or None))
    assert "entity column 'client' is not in the data" in problems
    assert "timestamp column 'when' is not in the data" in problems


def test_check_spec_against_data_finds_bad_labels_and_times(tmp_path: Path) -> None:
    data = write_quirky_dataset(tmp_path / "ok", rows=500, days=20)
    spec, _ = infer_spec("fraud", data["files"], data["entity"], data["timestamp"], data["label"], drop=data["drop"])
    broken = pl.read_csv(data["files"][0], infer_schema=False).with_columns(
        pl.lit("Jan 3 2024").alias("event_time"), pl.col("is_fraud").replace({"0.0": "maybe"})
    )
    broken.head(10).with_columns(pl.lit("0.0").alias("is_fraud")).vstack(broken).write_csv(tmp_path / "broken.csv")
    problems = "\n".join(check_spec_against_data(spec, [tmp_path / "broken.csv"]))
    assert "timestamp 'event_time' is not parseable" in problems and "'Jan 3 2024'" in problems
    assert "label 'is_fraud' has 3 distinct values" in problems and "'maybe'" in problems


def _events(tmp_path: Path, name: str = "events.csv", **overrides: list) -> Path:
    """A small events CSV; overrides replace or add columns."""
    n = 40
    columns = {
        "user_id": [str(i % 7) for i in range(n)],
        "ts": [f"2024-01-{1 + i % 28:02d} 10:00:{i:02d}.250" for i in range(n)],
        "plan": ["basic", "pro"] * (n // 2),
        "churned": ["no"] * (n - 8) + ["yes"] * 8,
        "ref": ["a"] * n,
    }
    columns.update(overrides)
    path = tmp_path / name
    pl.DataFrame(columns).write_csv(path)
    return path


def _infer(path: Path, **kwargs):
    args = {"entity": "user_id", "timestamp": "ts", "label": "churned", **kwargs}
    return infer_spec("subs", [path], args.pop("entity"), args.pop("timestamp"), args.pop("label"), **args)


@pytest.mark.parametrize(
    ("overrides", "kwargs", "message"),
    [
        (
            {},
            {"entity": "customer"},
            "entity column 'customer' is not in the data (columns: user_id, ts, plan, churned, ref)",
        ),
        ({}, {"timestamp": "time"}, "timestamp column 'time' is not in the data"),
        (
            {"ts": ["1704277321"] * 40},
            {},
            "timestamp 'ts' is not parseable as a date-time in 40 of 40 rows "
            "(e.g. '1704277321'); write it like 2024-01-03 10:22:01.123",
        ),
        (
            {"ts": ["2024-01-03 10:22:01"] * 30 + ["yesterday"] * 10},
            {},
            "timestamp 'ts' is not parseable as a date-time in 10 of 40 rows (e.g. 'yesterday')",
        ),
        (
            {"ts": ["2024-01-03 10:22:01"] * 30 + ["2024-01-03T10:22:01+01:00"] * 10},
            {},
            "timestamp 'ts' mixes times with and without a UTC offset (e.g. '2024-01-03T10:22:01+01:00')",
        ),
        (
            {"ts": ["2024-01-03T10:22:01Z"] * 30 + ["2024-01-03 10:22:01"] * 10},
            {},
            "timestamp 'ts' mixes times with and without a UTC offset (e.g. '2024-01-03 10:22:01')",
        ),
        (
            {"churned": ["no", "yes", "unknown", "no"] * 10},
            {},
            "label 'churned' has 3 distinct values ('no', 'yes', 'unknown'); a binary label needs exactly two",
        ),
        ({"churned": ["no"] * 40}, {}, "label 'churned' has 1 distinct values ('no')"),
        ({}, {"label": "cancelled"}, "label column 'cancelled' is not in the data"),
        ({}, {"drop": ["vendor_score"]}, "--drop 'vendor_score' is not a column of the data"),
        ({}, {"drop": ["ts"]}, "--drop 'ts' is the timestamp column"),
        ({}, {"positive": "maybe"}, "--positive 'maybe' is not a value of label 'churned' (found 'no', 'yes')"),
        (
            {"Plan Name (€)": ["a"] * 40},
            {},
            "column 'Plan Name (€)': use letters, digits and '_'; rename it in the data, "
            "or pass --drop 'Plan Name (€)'",
        ),
        ({"score": ["1"] * 40}, {}, "column 'score': a name the lakehouse uses itself"),
    ],
)
def test_bad_input_gives_a_clear_error(tmp_path: Path, overrides: dict, kwargs: dict, message: str) -> None:
    with pytest.raises(DatasetSpecError) as raised:
        _infer(_events(tmp_path, **overrides), **kwargs)
    assert message in str(raised.value)
    assert str(raised.value).startswith("dataset 'subs': ")


def test_times_with_a_utc_offset_are_accepted_and_said_to_become_utc(tmp_path: Path) -> None:
    spec, lines = _infer(_events(tmp_path, ts=[f"2024-01-{1 + i % 28:02d}T10:00:{i:02d}+01:00" for i in range(40)]))
    assert spec.timestamp == "ts"
    assert any(
        "times carry a UTC offset (e.g. '2024-01-01T10:00:00+01:00'): stored as UTC times without one" in line
        for line in lines
    )
    assert any("timestamp 'ts': 2024-01-01 09:00:00" in line for line in lines)  # the range, in UTC


def test_missing_files_and_empty_globs_are_errors(tmp_path: Path) -> None:
    with pytest.raises(DatasetSpecError, match="no such file"):
        _infer(tmp_path / "nope.csv")
    with pytest.raises(DatasetSpecError, match=r"matched no csv or parquet files"):
        _infer(tmp_path / "events-*.csv")


def test_labels_key_must_be_in_events_and_label_files(tmp_path: Path) -> None:
    events = _events(tmp_path, event_ref=[f"e{i}" for i in range(40)])
    pl.read_csv(events, infer_schema=False).drop("churned").write_csv(events)  # the label is in the label files
    pl.DataFrame({"event_ref": [f"e{i}" for i in range(30)], "churned": ["0", "1"] * 15}).write_csv(tmp_path / "l.csv")
    pl.DataFrame({"ref_id": ["e1"], "churned": ["1"]}).write_csv(tmp_path / "wrong.csv")
    spec, lines = _infer(events, labels_files=[tmp_path / "l.csv"], labels_key="event_ref")
    assert spec.labels is not None and spec.labels.key == "event_ref" and spec.positive == "1"
    assert any("75.0% of sampled events have a label so far" in line for line in lines)
    pl.read_csv(events, infer_schema=False).with_columns(churned=pl.lit("")).write_csv(tmp_path / "with_label.csv")
    spec, lines = _infer(tmp_path / "with_label.csv", labels_files=[tmp_path / "l.csv"], labels_key="event_ref")
    assert "churned" in spec.drop and "churned" not in _features(spec)  # ingestion lets it in, the model never sees it
    with pytest.raises(DatasetSpecError, match="labels key 'event_ref' is not in the label files"):
        _infer(events, labels_files=[tmp_path / "wrong.csv"], labels_key="event_ref")
    with pytest.raises(DatasetSpecError, match="labels key 'order_ref' is not in the event files"):
        _infer(events, labels_files=[tmp_path / "l.csv"], labels_key="order_ref")


def test_positive_class_defaults_to_the_minority_unless_one_reads_as_true(tmp_path: Path) -> None:
    spec, lines = _infer(_events(tmp_path, churned=["stayed"] * 30 + ["left"] * 10))
    assert spec.positive == "left" and any("the minority class" in line for line in lines)
    spec, _ = _infer(_events(tmp_path, churned=["no"] * 10 + ["Yes"] * 30))
    assert spec.positive == "Yes"  # reads as yes, though it is the majority
    spec, _ = _infer(_events(tmp_path, churned=["stayed"] * 30 + ["left"] * 10), positive="stayed")
    assert spec.positive == "stayed"


def test_codes_with_leading_zeros_and_mostly_numeric_text_stay_strings(tmp_path: Path) -> None:
    path = _events(
        tmp_path,
        user_id=[f"{i:05d}" for i in range(40)],
        zip=[f"0{1000 + i % 5}" for i in range(40)],
        rating=[str(i % 5) for i in range(39)] + ["N/A"],
    )
    spec, lines = _infer(path)
    features = _features(spec)
    assert spec.entity_type == "string" and features["zip"].type == "string" and features["rating"].type == "string"
    assert any("'rating' is kept as text: 98% numbers, but not 'N/A'" in line for line in lines)


def test_quirky_generator_is_fast_and_has_a_learnable_drifting_signal(tmp_path: Path) -> None:
    import lightgbm as lgb
    from sklearn.metrics import roc_auc_score

    started = time.perf_counter()
    data = write_quirky_dataset(tmp_path / "big", rows=50_000)
    assert time.perf_counter() - started < 2.0
    assert 0.10 <= data["positive_rate"] <= 0.30
    frame = pl.read_csv(data["files"][0], infer_schema=False)
    frame = frame.filter(pl.col("is_fraud").is_not_null())
    x = frame.select(
        pl.col("amount").cast(pl.Float64),
        pl.col("discount").str.strip_suffix("%").cast(pl.Float64),
        (pl.col("is_new_device") == "True").cast(pl.Float64),
        pl.col("prev_chargebacks").cast(pl.Float64),
    ).to_numpy()
    y = (frame["is_fraud"] == "1.0").to_numpy()
    half = len(y) // 2
    model = lgb.LGBMClassifier(n_estimators=50, verbose=-1).fit(x[:half], y[:half])
    assert roc_auc_score(y[half:], model.predict_proba(x[half:])[:, 1]) > 0.7
    drifted = write_quirky_dataset(tmp_path / "drift", rows=5000, drift=True)
    amount = [
        pl.read_csv(d["files"][0], infer_schema=False)["amount"].cast(pl.Float64).median() for d in (data, drifted)
    ]
    assert amount[1] > 2 * amount[0] and drifted["positive_rate"] > data["positive_rate"]
    assert np.isfinite(amount).all()


def test_later_files_may_lack_an_inline_label_but_nothing_else(tmp_path: Path) -> None:
    """Production files do not know their outcome yet: the label column may be absent, and reads as null."""
    data = write_quirky_dataset(tmp_path / "raw", rows=2000, seed=4)
    later = write_quirky_dataset(tmp_path / "later", rows=500, seed=5, start="2024-03-01", days=10)
    [csv] = [f for f in later["files"] if f.suffix == ".csv"]
    unlabelled = tmp_path / "later" / "zz-unlabelled.csv"
    pl.read_csv(csv, infer_schema=False).drop(later["label"]).write_csv(unlabelled)
    files = [*data["files"], unlabelled]
    args = (data["entity"], data["timestamp"], data["label"])
    spec, _ = infer_spec("orders", files, *args, drop=data["drop"])
    assert check_spec_against_data(spec, files) == []
    source = to_domain(spec).source("orders")
    raw = read_landing_file(unlabelled, source)
    valid, quarantined = validate_frame(raw, source)
    assert quarantined.height == 0 and valid.height == raw.height == 500
    assert valid[data["label"]].null_count() == 500  # not known yet, not a bad row

    # Any other missing column is still refused, with the same clear message as before.
    other = tmp_path / "later" / "zz-other.csv"
    pl.read_csv(unlabelled, infer_schema=False).drop(data["timestamp"]).write_csv(other)
    with pytest.raises(DatasetSpecError, match="every file of a dataset needs the same columns"):
        infer_spec("orders", [*data["files"], other], *args, drop=data["drop"])
    with pytest.raises(RejectedFile, match="missing required columns"):
        read_landing_file(other, source)
    # With labels in their own files the event files carry no label, so nothing is optional there.
    assert check_spec_against_data(spec, [*data["files"], other]) != []


@pytest.mark.parametrize(("cadence", "delay_days", "expected"), [("daily", 1, (1, 2)), ("monthly", 30, (40, 46))])
def test_the_label_horizon_is_inferred_from_when_labels_became_known(
    tmp_path: Path, cadence: str, delay_days: float, expected: tuple[int, int]
) -> None:
    """Labels that come a day or a month after their event: live performance waits each dataset's own delay."""
    data = write_quirky_dataset(
        tmp_path / cadence, rows=3000, seed=8, days=120, separate_labels=True, label_delay_days=delay_days
    )
    spec, lines = infer_spec(
        "loans",
        data["files"],
        data["entity"],
        data["timestamp"],
        data["label"],
        labels_files=data["labels_files"],
        labels_key=data["key"],
        drop=data["drop"],
    )
    # Delays are spread over 0.5x to 1.5x of the cadence: 95% within about 1.45x.
    assert spec.labels.time == "labelled_at" and expected[0] <= spec.label_horizon_days <= expected[1]
    assert any("live performance waits" in line for line in lines)
    domain = to_domain(spec)
    assert domain.label_horizon.days == spec.label_horizon_days
    assert check_spec_against_data(spec, data["files"], data["labels_files"]) == []
    labels = domain.source("loans_labels")
    assert labels.version_column == "labelled_at"  # a corrected label: the newest known one wins
    for path in data["labels_files"]:
        _, quarantined = validate_frame(read_landing_file(path, labels), labels)
        assert quarantined.height == 0


def test_without_label_times_a_label_counts_as_final_when_it_lands(quirky: dict) -> None:
    """Inline labels are known with their event; separate label files without a time column say so."""
    spec = quirky["spec"]
    assert spec.label_horizon_days == 0
    if spec.labels:
        assert spec.labels.time is None and any("no label-time column" in line for line in quirky["lines"])


def test_the_grain_is_inferred_from_how_often_an_entity_has_a_row(quirky: dict, tmp_path: Path) -> None:
    """Cases (a few rows per customer) are event grain; an entity reported every day is snapshot grain."""
    assert quirky["spec"].grain == "event" and any(line.startswith("grain: event") for line in quirky["lines"])
    rng = np.random.default_rng(0)
    days = pl.date_range(datetime(2024, 1, 1), datetime(2024, 1, 30), "1d", eager=True)
    daily = pl.DataFrame({"account": np.repeat(np.arange(1, 61), len(days)), "day": np.tile(days.to_numpy(), 60)})
    daily = daily.with_columns(
        snapshot_at=pl.col("day").cast(pl.Datetime("ms")).dt.strftime("%Y-%m-%d %H:%M:%S"),
        balance=pl.Series(rng.normal(100, 20, daily.height)).round(2),
        churned=pl.Series(rng.random(daily.height) < 0.1).cast(pl.Int64),
    ).drop("day")
    daily.write_csv(tmp_path / "states.csv")
    spec, lines = infer_spec("accounts", [tmp_path / "states.csv"], "account", "snapshot_at", "churned")
    assert spec.grain == "snapshot" and any("100% of the 30 days" in line for line in lines)
    given, _ = infer_spec("accounts", [tmp_path / "states.csv"], "account", "snapshot_at", "churned", grain="event")
    assert given.grain == "event"
