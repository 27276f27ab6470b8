"""`lakehouse run NAME`: update, then the retraining sensor's own decision, acted on (or not) and explained."""

from __future__ import annotations

import shutil
from pathlib import Path

import polars as pl
import pytest
from quirky_data import write_quirky_dataset

from lakehouse.declarations.datasets import DATASETS_ENV
from lakehouse.domains import get_domain
from lakehouse.ml import model_registry
from lakehouse.monitoring.retraining import last_decision
from lakehouse.paths import LakePaths
from lakehouse_cli.main import main


@pytest.fixture(autouse=True)
def datasets_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Dataset files under tmp_path/datasets (the data root is conftest's `paths`)."""
    monkeypatch.setenv(DATASETS_ENV, str(tmp_path / "datasets"))


def add_orders(raw: Path, data: dict) -> int:
    """`lakehouse dataset add orders` over the event files of a quirky dataset written to raw."""
    add = ["dataset", "add", "orders", "--source", str(raw / "events-*"), "--entity", data["entity"]]
    return main(add + ["--timestamp", data["timestamp"], "--label", data["label"], "--drop", *data["drop"]])


def land(paths: LakePaths, files: list[Path]) -> None:
    folder = paths.landing / "orders"
    for f in files:
        shutil.copy(f, folder / f.name)


@pytest.mark.slow
def test_run_takes_the_sensors_retraining_decision_and_says_what_it_found(
    paths: LakePaths, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    first = write_quirky_dataset(tmp_path / "raw", rows=3000, seed=5, days=60)
    assert add_orders(tmp_path / "raw", first) == 0
    capsys.readouterr()
    spec = tmp_path / "datasets" / "orders.yaml"  # no cooldown: each run below may retrain at once
    spec.write_text(spec.read_text() + "retraining:\n  cooldown_seconds: 0\n")

    # The first run: no model yet, so the policy asks for one and the run trains it.
    assert main(["run", "orders"]) == 0
    out = capsys.readouterr().out
    assert "retraining: no model trained yet" in out and "; done" in out
    champion = model_registry.champion(paths, "orders")
    assert champion is not None and last_decision(paths, get_domain("orders"))["trigger"] == "first_model"

    # Nothing new: the decision says so (not a cooldown), nothing is trained, the run succeeds.
    assert main(["run", "orders"]) == 0
    out = capsys.readouterr().out
    assert "no retraining: 0 new label events since" in out
    assert model_registry.champion(paths, "orders") == champion

    # A later period with a shifted amount: drift is a finding, not a failure; new labels make retraining
    # due, and --no-retrain records that decision without acting on it.
    later = write_quirky_dataset(tmp_path / "raw_later", rows=2500, seed=6, drift=True, start="2024-03-01", days=20)
    land(paths, later["files"])
    assert main(["run", "orders", "--no-retrain"]) == 0
    out = capsys.readouterr().out
    assert "finding: orders/feature_drift:drift_check failed" in out
    assert "retraining due (drift_check failed" in out and "not run: --no-retrain" in out
    recorded = last_decision(paths, get_domain("orders"))
    assert recorded["fire"] and recorded["new_labels"] > 0
    assert len(model_registry.list_models(paths, "orders")) == 1  # nothing trained

    # For CI: the same finding can fail the command, with its cause on one line.
    assert main(["run", "orders", "--no-retrain", "--fail-on-checks"]) == 3
    err = capsys.readouterr().err
    assert "error: monitoring found orders/feature_drift:drift_check" in err and "(--fail-on-checks)" in err

    # Production files without the outcome: accepted (label unknown yet), scored data grows, no new label events.
    newest = write_quirky_dataset(tmp_path / "raw_newest", rows=600, seed=7, start="2024-04-01", days=10)
    [csv] = [f for f in newest["files"] if f.suffix == ".csv"]
    unlabelled = tmp_path / "events-unlabelled.csv"
    pl.read_csv(csv, infer_schema=False).drop(newest["label"]).write_csv(unlabelled)
    before = recorded["new_labels"]
    unknown_before = pl.read_parquet(paths.silver("orders"))[newest["label"]].null_count()
    land(paths, [unlabelled])
    assert main(["run", "orders", "--no-retrain"]) == 0
    out = capsys.readouterr().out
    assert "rejected" not in out.split("dataset orders")[0]
    assert last_decision(paths, get_domain("orders"))["new_labels"] == before
    unknown = pl.read_parquet(paths.silver("orders"))[newest["label"]].null_count()
    assert unknown - unknown_before == pl.read_csv(unlabelled).height


def _raw_rows(files: list[Path], entity: str, timestamp: str, label: str) -> pl.DataFrame:
    """The cases of raw files as written: entity, event time, label (1 for the positive '1.0')."""
    frames = []
    for f in files:
        raw = pl.read_parquet(f) if f.suffix == ".parquet" else pl.read_csv(f, infer_schema=False)
        frames.append(
            raw.select(
                pl.col(entity).cast(pl.Int64, strict=False),
                pl.col(timestamp)
                .cast(pl.String)
                .str.to_datetime(time_unit="us", strict=False)
                .alias("event_timestamp"),
                (pl.col(label).cast(pl.String).str.strip_chars() == "1.0").cast(pl.Int64).alias("y"),
                pl.col(label).is_null().alias("unknown"),
            )
        )
    return pl.concat(frames)


@pytest.mark.slow
def test_event_grain_scores_every_new_case_once_and_judges_it_against_its_own_label(
    paths: LakePaths, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from sklearn.metrics import roc_auc_score

    from lakehouse.monitoring.results import latest_result

    first = write_quirky_dataset(tmp_path / "raw", rows=3000, seed=5, days=60)
    assert add_orders(tmp_path / "raw", first) == 0
    assert "grain: event" in capsys.readouterr().out
    assert main(["run", "orders"]) == 0
    champion = model_registry.champion(paths, "orders")
    history = paths.score_history("orders")
    # What the champion learned from is not scored as if it were new.
    assert not list(history.glob("*.parquet"))

    # The next period lands: every case in it is scored once, with its key and the model version.
    later = write_quirky_dataset(tmp_path / "raw_later", rows=2500, seed=6, start="2024-03-01", days=20)
    land(paths, later["files"])
    assert main(["run", "orders", "--no-retrain"]) == 0
    scored = pl.concat([pl.read_parquet(f) for f in history.glob("*.parquet")])
    raw = _raw_rows(later["files"], later["entity"], later["timestamp"], later["label"])
    assert scored.height == raw.height and scored["model_version"].unique().to_list() == [champion]
    assert scored.join(raw, on=[later["entity"], "event_timestamp"], how="anti").is_empty()

    # Live performance on the labelled cases equals a hand computation on the raw files.
    judged = scored.join(raw.filter(~pl.col("unknown")), on=[later["entity"], "event_timestamp"])
    expected = roc_auc_score(judged["y"].to_numpy(), judged["score"].to_numpy())
    [version] = [v for v in latest_result(paths, get_domain("orders"), "performance")["by_version"]]
    assert version["model_version"] == champion and version["labelled"] == judged.height
    assert version["roc_auc"] == pytest.approx(expected, abs=1e-9)

    # Nothing new: nothing is scored again.
    assert main(["run", "orders", "--no-retrain"]) == 0
    assert pl.concat([pl.read_parquet(f) for f in history.glob("*.parquet")]).height == scored.height


@pytest.mark.slow
def test_a_case_that_is_its_own_entity_joins_its_labels_by_that_key(
    paths: LakePaths, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """A loan with no customer id: --entity and --labels-key name the same column."""
    data = write_quirky_dataset(tmp_path / "raw", rows=3000, seed=9, days=60, separate_labels=True, label_delay_days=5)
    key = data["key"]
    add = ["dataset", "add", "loans", "--source", str(tmp_path / "raw" / "events-*"), "--entity", key]
    add += [
        "--timestamp",
        data["timestamp"],
        "--label",
        data["label"],
        "--labels",
        str(tmp_path / "raw" / "labels" / "*"),
    ]
    add += ["--labels-key", key, "--drop", data["entity"], *data["drop"]]
    assert main(add) == 0, capsys.readouterr().err
    assert main(["run", "loans"]) == 0
    out = capsys.readouterr().out
    assert "champion loans_model:" in out and "labels: final 8 days after their event" in out  # 95% within 1.45 x 5
    domain = get_domain("loans")
    assert domain.entity_key == key and [c.name for c in domain.source("loans").columns].count(key) == 1
