"""The retraining decision: fire on new data or failed monitoring checks, within guardrails.

The Dagster sensor gathers a RetrainState from the instance and the lake and calls decide(); the
decision (fired or skipped, with its reason) is shown on the sensor's tick and kept under
<data root>/monitoring/<domain>/ for `lakehouse status`. No Dagster import here.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lakehouse.declarations.domain import Domain, RetrainPolicy
from lakehouse.io import write_json_atomic
from lakehouse.lake.validation import published_batches
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
    new_batches: list[str]  # published batch ids that model did not see
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
    """The retraining decision for one sensor tick; guardrails first, then failed checks, then new data."""
    if state.in_flight:
        return Decision(False, f"a retraining run is already in flight ({', '.join(state.in_flight)})", "")
    since = state.seconds_since_last_request
    if since is not None and since < policy.cooldown_seconds:
        return Decision(
            False,
            f"cooldown: the last retraining was requested {since:.0f}s ago (cooldown {policy.cooldown_seconds:.0f}s)",
            "",
        )
    for check in state.failed_checks:
        if check.name not in policy.retrain_on_failed_checks:
            continue
        if not state.new_batches and state.last_trained:
            # Same inputs give the same model byte for byte: only new data can answer a failed check.
            return Decision(
                False,
                f"{check.name} failed, but no batch arrived since {state.last_trained} was "
                f"trained: retraining would reproduce it",
                "",
            )
        if state.last_trigger == check.name and len(state.new_batches) < policy.min_new_batches:
            # The last retraining answered this check and the gate kept the champion (the check still
            # fails against it): another try needs as much new data as a routine retraining.
            return Decision(
                False,
                f"{check.name} still fails after the retraining it triggered; "
                f"{len(state.new_batches)} new published batches since, waiting for "
                f"{policy.min_new_batches}",
                "",
            )
        detail = f": {check.description}" if check.description else ""
        return Decision(
            True,
            f"{check.name} failed (evaluation {check.evaluation_id}){detail}",
            check.name,
            run_key=f"retrain:{check.name}:{check.evaluation_id}",
        )
    fingerprint = hashlib.sha256("\n".join(sorted(state.new_batches)).encode()).hexdigest()[:16]
    if state.last_trained is None:
        if not state.new_batches:
            return Decision(False, "no model yet and no published batches to train on", "")
        return Decision(
            True,
            f"no model trained yet; {len(state.new_batches)} published batches",
            "first_model",
            run_key=f"retrain:first_model:{fingerprint}",
        )
    if len(state.new_batches) >= policy.min_new_batches:
        return Decision(
            True,
            f"{len(state.new_batches)} new published batches since {state.last_trained} "
            f"(minimum {policy.min_new_batches})",
            "new_data",
            run_key=f"retrain:new_data:{fingerprint}",
        )
    return Decision(
        False,
        f"{len(state.new_batches)} new published batches since {state.last_trained} "
        f"(need {policy.min_new_batches}); no failed monitoring check",
        "",
    )


def new_batches(paths: LakePaths, domain: Domain, trained_batches: set[str]) -> list[str]:
    """Published batches of the domain's sources that are not among a model's training inputs."""
    return sorted(
        b["batch_id"]
        for b in published_batches(paths, [s.name for s in domain.sources])
        if b["batch_id"] not in trained_batches
    )


def decisions_dir(paths: LakePaths, domain: Domain) -> Path:
    return paths.monitoring(domain.name)


def record_decision(paths: LakePaths, domain: Domain, decision: Decision, state: RetrainState) -> dict[str, Any]:
    """Keep the newest decision (last_retraining_decision.json) and append fired ones to a history file."""
    record = {
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        **asdict(decision),
        "new_batches": len(state.new_batches),
        "last_trained": state.last_trained,
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
