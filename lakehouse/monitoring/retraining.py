"""The retraining decision: fire on new data or failed monitoring checks, within guardrails.

The Dagster sensor gathers a RetrainState from the instance and the lake and calls decide(); the
decision (fired or skipped, with its reason) is shown on the sensor's tick and kept under
<data root>/monitoring/<domain>/ for `lakehouse status`. No Dagster import here.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lakehouse.declarations.domain import Domain, RetrainPolicy
from lakehouse.io import write_json_atomic
from lakehouse.paths import LakePaths


@dataclass(frozen=True)
class FailedCheck:
    """A monitoring check whose newest evaluation failed after the last training."""

    name: str
    evaluation_id: int
    description: str = ""


@dataclass(frozen=True)
class RetrainState:
    """What the decision looks at."""

    last_trained: str | None  # the newest candidate's model tag (None: never trained)
    new_labels: int  # label events its training set did not hold (new cases or changed labels)
    trained_rows: int = 0  # rows of that training set
    failed_checks: list[FailedCheck] = field(default_factory=list)
    in_flight: list[str] = field(default_factory=list)  # run ids of retraining runs not finished yet
    seconds_since_last_request: float | None = None  # since the last retraining run was requested
    last_trigger: str | None = None  # what the last retraining run was requested for


@dataclass(frozen=True)
class Decision:
    """Fire (with a run key that deduplicates the trigger) or skip, and why."""

    fire: bool
    reason: str
    trigger: str  # "drift_check", "performance_check", "new_data", "first_model", or "" when skipped
    run_key: str | None = None


def decide(state: RetrainState, policy: RetrainPolicy) -> Decision:
    """The retraining decision for one sensor tick: the evidence (failed checks, new labels), then the guardrails."""
    wanted = _evidence(state, policy)
    if not wanted.fire:
        return wanted
    if state.in_flight:
        return Decision(False, f"a retraining run is already in flight ({', '.join(state.in_flight)})", "")
    since = state.seconds_since_last_request
    if since is not None and since < policy.cooldown_seconds:
        return Decision(
            False,
            f"cooldown: the last retraining was requested {since:.0f}s ago (cooldown {policy.cooldown_seconds:.0f}s); "
            f"due: {wanted.reason}",
            "",
        )
    return wanted


def _evidence(state: RetrainState, policy: RetrainPolicy) -> Decision:
    """What the evidence asks for, guardrails aside: failed checks first (with new labels), then new labels."""
    needed = policy.labels_needed(state.trained_rows)
    for check in state.failed_checks:
        if check.name not in policy.retrain_on_failed_checks:
            continue
        if not state.new_labels and state.last_trained:
            # The same training set gives the same model byte for byte: only new labels can answer a failed check.
            return Decision(
                False,
                f"{check.name} failed, but no new label event since {state.last_trained} was trained: "
                "retraining would reproduce it",
                "",
            )
        if state.last_trigger == check.name and state.new_labels < needed:
            # The last retraining answered this check and the gate kept the champion (the check still
            # fails against it): another try needs as much new evidence as a routine retraining.
            return Decision(
                False,
                f"{check.name} still fails after the retraining it triggered; "
                f"{state.new_labels} new label events since, waiting for {needed}",
                "",
            )
        detail = f": {check.description}" if check.description else ""
        return Decision(
            True,
            f"{check.name} failed (evaluation {check.evaluation_id}){detail}",
            check.name,
            run_key=f"retrain:{check.name}:{check.evaluation_id}",
        )
    if state.last_trained is None:
        if not state.new_labels:
            return Decision(False, "no model yet and no label events to train on", "")
        return Decision(
            True,
            f"no model trained yet; {state.new_labels} label events",
            "first_model",
            run_key=f"retrain:first_model:{state.new_labels}",
        )
    if state.new_labels >= needed:
        return Decision(
            True,
            f"{state.new_labels} new label events since {state.last_trained} was trained (minimum {needed})",
            "new_data",
            run_key=f"retrain:new_data:{state.last_trained}:{state.new_labels}",
        )
    return Decision(
        False,
        f"{state.new_labels} new label events since {state.last_trained} was trained "
        f"(need {needed}); no failed monitoring check",
        "",
    )


def decisions_dir(paths: LakePaths, domain: Domain) -> Path:
    return paths.monitoring(domain.name)


def record_decision(paths: LakePaths, domain: Domain, decision: Decision, state: RetrainState) -> dict[str, Any]:
    """Keep the newest decision (last_retraining_decision.json) and append fired ones to a history file."""
    record = {
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        **asdict(decision),
        "new_labels": state.new_labels,
        "labels_needed": domain.retraining.labels_needed(state.trained_rows),
        "last_trained": state.last_trained,
        "trained_rows": state.trained_rows,
        "failed_checks": [c.name for c in state.failed_checks],
    }
    folder = decisions_dir(paths, domain)
    write_json_atomic(record, folder / "last_retraining_decision.json")
    if decision.fire:
        with (folder / "retraining_requests.jsonl").open("a") as f:
            f.write(json.dumps(record) + "\n")
    return record


def last_decision(paths: LakePaths, domain: Domain) -> dict[str, Any] | None:
    path = decisions_dir(paths, domain) / "last_retraining_decision.json"
    return json.loads(path.read_text()) if path.exists() else None
