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
from lakehouse.paths import DATA_ROOT_ENV, LakePaths
from lakehouse_cli.main import main


def land(paths: LakePaths, files: list[Path]) -> None:
    folder = paths.landing / "orders"
    for f in files:
        shutil.copy(f, folder / f.name)


@pytest.mark.slow
def test_run_takes_the_sensors_retraining_decision_and_says_what_it_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    paths = LakePaths(tmp_path / "data")
    monkeypatch.setenv(DATA_ROOT_ENV, str(paths.root))
    monkeypatch.setenv("DAGSTER_HOME", str(paths.root / "dagster"))
    monkeypatch.setenv(DATASETS_ENV, str(tmp_path / "datasets"))
    first = write_quirky_dataset(tmp_path / "raw", rows=3000, seed=5, days=60)
    add = ["dataset", "add", "orders", "--source", str(tmp_path / "raw" / "events-*"), "--entity", first["entity"]]
    add += ["--timestamp", first["timestamp"], "--label", first["label"], "--drop", *first["drop"]]
    assert main(add) == 0
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
    assert "error: monitoring found orders/feature_drift:drift_check (--fail-on-checks)" in err

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
