"""Models: a tuned LightGBM candidate, the champion/challenger gate, and a model card per version."""

import dagster as dg

from assets.keys import PROMOTION_GATE_CHECK, DomainKeys
from assets.pools import LAKE_POOL
from assets.resources import LakehouseResource
from lakehouse.declarations.domain import Domain
from lakehouse.ml.candidates import TrainingOptions, gate_candidate, latest_candidate, model_card, train_candidate
from lakehouse.ml.training import LgbParams


class TrainingConfig(dg.Config):
    """LightGBM hyperparameters (tuning starts from them), the tuning budget and the gate's settings."""

    # Defaults come from LgbParams, the one place they are declared.
    num_leaves: int = LgbParams.num_leaves
    learning_rate: float = LgbParams.learning_rate
    min_data_in_leaf: int = LgbParams.min_data_in_leaf
    feature_fraction: float = LgbParams.feature_fraction
    lambda_l2: float = LgbParams.lambda_l2
    num_boost_round: int = LgbParams.num_boost_round
    early_stopping_rounds: int = LgbParams.early_stopping_rounds
    tune: bool = True  # seeded Optuna search; off = train once with the values above
    trials: int = 15
    timeout_seconds: float = 90.0
    warm_start: bool = False  # try the champion's hyperparameters first (sensor-triggered retraining does)
    seed: int = LgbParams.seed
    min_auc_gain: float = 0.0  # the AUC gain over the champion whose 95% interval must lie above this
    slice_tolerance: float = 0.03  # the largest AUC drop allowed in any slice

    def options(self) -> TrainingOptions:
        fields = self.model_dump()
        hyper = (
            "num_leaves",
            "learning_rate",
            "min_data_in_leaf",
            "feature_fraction",
            "lambda_l2",
            "num_boost_round",
            "early_stopping_rounds",
        )
        return TrainingOptions(params={k: fields.pop(k) for k in hyper}, **fields)


def candidate_asset(domain: Domain) -> dg.AssetsDefinition:
    """Train, tune and evaluate a LightGBM candidate on the point-in-time training set."""
    keys = DomainKeys.of(domain)

    @dg.asset(
        key=keys.model_candidate,
        deps=[keys.training_set],
        group_name=keys.group("models"),
        pool=LAKE_POOL,
        description=f"A tuned LightGBM candidate for '{domain.prediction}', evaluated on the newest window.",
        kinds={"lightgbm", "bentoml"},
    )
    def _candidate(context: dg.AssetExecutionContext, config: TrainingConfig, lakehouse: LakehouseResource):
        from lakehouse.ml.training import TrainingDataError

        try:
            record = train_candidate(lakehouse.paths, domain, config.options(), progress=context.log.info)
        except TrainingDataError as e:
            # Nothing is saved or promoted: the champion keeps serving.
            raise dg.Failure(description=f"training refused: {e}") from e
        test = record["metrics"]["test"]
        trials = "| trial | valid AUC | seconds | params |\n|---|---|---|---|\n" + "\n".join(
            f"| {t['number']} | {t['valid_auc']:.4f} | {t['seconds']:.1f} | `{t['params']}` |" for t in record["trials"]
        )
        return dg.MaterializeResult(
            metadata={
                "model": record["tag"],
                "reused_existing_version": record["reused_existing_version"],
                "same_training_set": record.get("same_training_set", False),
                "test_roc_auc": test["roc_auc"],
                "test_pr_auc": test["pr_auc"],
                "test_log_loss": test["log_loss"],
                "test_brier": test["brier"],
                "precision": test["precision"],
                "recall": test["recall"],
                "f1": test["f1"],
                "threshold": record["threshold"]["threshold"],
                "expected_value_per_entity": test["expected_value"],
                "expected_value_at_0_5": test["expected_value_at_0_5"],
                **{f"baseline_{k}_roc_auc": v["roc_auc"] for k, v in record["baselines"].items()},
                "rows": dg.MetadataValue.json(record["rows"]),
                "split": dg.MetadataValue.json(record["split"]),
                "confusion_matrix": dg.MetadataValue.md(
                    f"| {domain.label_name} | predicted 1 | predicted 0 |\n|---|---|---|\n| actual 1 | {test['tp']} | {test['fn']} |\n"
                    f"| actual 0 | {test['fp']} | {test['tn']} |"
                ),
                "tuning_trials": dg.MetadataValue.md(trials if record["trials"] else "tuning off"),
                "top_features": dg.MetadataValue.json(dict(list(record["importance"].items())[:10])),
                **{f"plot_{k}": dg.MetadataValue.path(v) for k, v in record["plots"].items()},
                "training_seconds": record["training_seconds"],
                "model_sha256": record["model_sha256"],
            }
        )

    return _candidate


def champion_asset(domain: Domain) -> dg.AssetsDefinition:
    """Gate the newest candidate against the champion; promote only a proven-better model."""
    keys = DomainKeys.of(domain)
    key = keys.champion_model

    @dg.asset(
        key=key,
        deps=[keys.model_candidate],
        group_name=keys.group("models"),
        pool=LAKE_POOL,
        description="The champion pointer: moved only when the promotion gate says the candidate is better.",
        kinds={"bentoml"},
        check_specs=[
            dg.AssetCheckSpec(
                PROMOTION_GATE_CHECK,
                asset=key,
                blocking=True,
                description="Challenger vs champion on the same hold-out rows (paired bootstrap AUC, no slice "
                "regression); a first model must beat the baselines. Fails (ERROR) when no champion exists.",
            )
        ],
    )
    def _champion(context: dg.AssetExecutionContext, config: TrainingConfig, lakehouse: LakehouseResource):
        tag = latest_candidate(lakehouse.paths, domain)
        if tag is None:
            raise dg.Failure(description="no model candidate yet: materialize model_candidate first")
        decision = gate_candidate(lakehouse.paths, domain, tag, config.options())
        for reason in decision["reasons"]:
            context.log.info(reason)
        serving = decision["champion"]
        return dg.MaterializeResult(
            metadata={
                "champion": serving or "none",
                "candidate": decision["tag"],
                "promoted": decision["promote"],
                "reasons": dg.MetadataValue.md("\n".join(f"- {r}" for r in decision["reasons"])),
            },
            check_results=[
                dg.AssetCheckResult(
                    check_name=PROMOTION_GATE_CHECK,
                    passed=decision["promote"] or decision["same_as_champion"],
                    # Refusing a challenger while a champion keeps serving is the gate working, not an outage.
                    severity=dg.AssetCheckSeverity.ERROR if serving is None else dg.AssetCheckSeverity.WARN,
                    metadata={
                        "reasons": dg.MetadataValue.md("\n".join(f"- {r}" for r in decision["reasons"])),
                        "champion": serving or "none",
                    },
                    description=("promoted" if decision["promote"] else "refused") + f": {decision['tag']}",
                )
            ],
        )

    return _champion


def model_card_asset(domain: Domain) -> dg.AssetsDefinition:
    """The model card (Markdown and JSON) of the newest model version, with its promotion decision."""
    keys = DomainKeys.of(domain)

    @dg.asset(
        key=keys.model_card,
        deps=[keys.champion_model],
        group_name=keys.group("models"),
        pool=LAKE_POOL,
        description="Intended use, risk category, data versions, metrics vs baselines, slices, threshold, decision.",
        kinds={"markdown"},
    )
    def _card(lakehouse: LakehouseResource):
        tag = latest_candidate(lakehouse.paths, domain)
        if tag is None:
            raise dg.Failure(description="no model candidate yet: materialize model_candidate first")
        files = model_card(lakehouse.paths, domain, tag)
        return dg.MaterializeResult(
            metadata={
                "model": tag,
                "card": dg.MetadataValue.md(files["markdown"].read_text()),
                "markdown": dg.MetadataValue.path(str(files["markdown"])),
                "json": dg.MetadataValue.path(str(files["json"])),
            }
        )

    return _card
