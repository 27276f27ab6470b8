"""Deterministic synthetic data for the churn demo: raw landing files, one per source per simulated day.

Every customer carries hidden traits (engagement, weekday pattern, financial stress, error proneness,
a time at which they start to disengage). Each day the simulation decides, in this order, who cancels
(from a hidden hazard over what happened up to yesterday), who signs up or changes plan, who uses the
product, who is charged and who opens or gets a resolved support ticket. Draws come from one random
stream per (day, purpose) and are made for every customer whether active or not, so a drift or a
different output window changes only what it must. Corruption uses streams of its own.
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

SOURCES = ("customers", "usage", "payments", "tickets", "cancellations")
COLUMNS = {
    "customers": ("customer_id", "updated_at", "signup_date", "plan", "monthly_price", "region", "age_band", "channel"),
    "usage": ("customer_id", "usage_date", "sessions", "minutes", "data_mb", "errors"),
    "payments": ("payment_id", "customer_id", "charged_at", "amount", "failed"),
    "tickets": ("ticket_id", "customer_id", "opened_at", "category", "resolved_at", "updated_at"),
    "cancellations": ("customer_id", "cancelled_at", "reason"),
}

PLANS = ("basic", "standard", "premium")
BASE_PRICES = np.array([9.99, 19.99, 34.99])
REGIONS = ("north", "south", "east", "west")
AGE_BANDS = ("18-24", "25-34", "35-44", "45-54", "55+")
CHANNELS = ("organic", "paid_search", "social", "referral", "partner")
TICKET_CATEGORIES = ("billing", "technical", "account", "cancellation")
REASONS = ("price", "usage", "support", "payment", "other")

DAY = 86_400  # seconds
NEVER = np.iinfo(np.int64).max // 4
SIGNUP_HORIZON_DAYS = 365  # new signups are drawn over a fixed year, so a longer run never rewrites history
NEW_SIGNUP_SHARE = 0.9  # new signups per year, as a share of the initial customers
PLAN_CHANGE_RATE = 0.0005  # per active customer per day
RETRY_AFTER_DAYS = 3
MAX_MINUTES = 1200.0  # a day's minutes are capped below 24 h

# The hidden churn hazard: logit of the daily probability that an active customer cancels.
CHURN_BASE = -10.1
W_DECLINE = 9.0  # usage decline, 0..1 (squared): expected sessions, last 7 days vs the 30 days before
W_FAILED = 2.0  # per failed payment in the last 90 days (up to 3)
W_TICKETS = 0.9  # per currently open ticket (up to 3)
W_PRICE = 3.0  # price relative to the plan's original base price, minus 1
W_NEW = 1.0  # tenure under 90 days
CHANNEL_EFFECT = np.array([0.0, 0.25, 0.35, -0.3, -0.1])
FRAILTY_SD = 0.4  # hidden per-customer propensity
ENGAGEMENT = 5.0  # median expected sessions per day
DISENGAGE_AFTER = 300  # mean days from signup (or day -40) until a customer starts to disengage
DISENGAGE_DAYS = (10, 30)  # range of the time constant of the decay of a disengaging customer's usage

# Malformed data.
BAD_ROW_KINDS = {
    "customers": ("negative", "unknown_category", "missing_id", "future_timestamp", "duplicate_key", "non_numeric"),
    "usage": ("negative", "missing_id", "future_timestamp", "duplicate_key"),
    "payments": ("negative", "unknown_category", "missing_id", "future_timestamp", "duplicate_key", "non_numeric"),
    "tickets": ("unknown_category", "missing_id", "future_timestamp", "duplicate_key", "non_numeric"),
    "cancellations": ("unknown_category", "missing_id", "future_timestamp", "duplicate_key", "non_numeric"),
}
CSV_FIELDS = {  # source: (key columns, timestamp, numeric, (category column, unknown value)..., text field)
    "customers": (
        ("customer_id", "updated_at"),
        "updated_at",
        "monthly_price",
        (("plan", "platinum"), ("region", "mars")),
        "region",
    ),
    "payments": (("payment_id",), "charged_at", "amount", (("failed", "maybe"),), "payment_id"),
    "tickets": (("ticket_id", "updated_at"), "opened_at", "customer_id", (("category", "lottery"),), "category"),
    "cancellations": (("customer_id",), "cancelled_at", "customer_id", (("reason", "aliens"),), "reason"),
}
BAD_FILE_KINDS = ("empty", "header_only", "extra_column", "missing_column", "truncated", "non_utf8")
EXTRA_COLUMN = "unexpected_col"


@dataclass(frozen=True)
class Drift:
    """A behaviour change injected from a given day on."""

    kind: Literal["price_rise", "usage_drop"]
    start_day: int  # 0-based simulated day index from which it applies
    plan: str | None = None  # price_rise: which plan (e.g. "basic"); price * (1 + magnitude)
    region: str | None = None  # usage_drop: which region; sessions/minutes/data * (1 - magnitude)
    magnitude: float = 0.25


@dataclass(frozen=True)
class GeneratorConfig:
    """Size, seed, drifts, corruption and output window of one simulation."""

    customers: int = 2000  # customers at the start; about 0.9x as many more sign up over a year
    days: int = 120
    start: date = date(2025, 1, 1)
    seed: int = 42
    drifts: tuple[Drift, ...] = ()
    bad_row_rate: float = 0.0  # fraction of rows per file replaced with malformed rows
    bad_file_rate: float = 0.0  # probability that a (source, day) file is written malformed instead
    first_day: int = 0  # only write files for simulated days in [first_day, last_day]; the simulation
    # itself always runs from day 0 so output is identical whatever the window
    last_day: int | None = None
    label_delay_days: int = 0  # cancellations of day d land in the file of day d + this (labels arrive late)
    label_delay_from: int = 0  # ... for cancellations on days >= this; earlier ones land on their own day


# The fields that define the simulated world (what a continuation must reuse); the rest is an output window.
WORLD_FIELDS = (
    "customers",
    "start",
    "seed",
    "drifts",
    "bad_row_rate",
    "bad_file_rate",
    "label_delay_days",
    "label_delay_from",
)


def config_record(config: GeneratorConfig) -> dict:
    """The world-defining fields of a config as JSON-ready values."""
    record = {k: v for k, v in asdict(config).items() if k in WORLD_FIELDS}
    record["start"] = config.start.isoformat()
    return record


def config_from_record(record: dict) -> GeneratorConfig:
    """The config a record (from config_record) describes, with the default output window."""
    values = {k: v for k, v in record.items() if k in WORLD_FIELDS}
    values["start"] = date.fromisoformat(values["start"])
    values["drifts"] = tuple(Drift(**d) for d in values.get("drifts", ()))
    return GeneratorConfig(**values)


def parse_drift(spec: str) -> Drift:
    """A drift from KIND:DAY:PLAN:REGION[:MAGNITUDE], e.g. price_rise:60:basic: or usage_drop:60::south:0.3."""
    parts = spec.split(":")
    if len(parts) not in (4, 5) or parts[0] not in ("price_rise", "usage_drop") or not parts[1].isdigit():
        raise ValueError(
            f"drift {spec!r} is not KIND:DAY:PLAN:REGION[:MAGNITUDE] with KIND price_rise or "
            "usage_drop and DAY a simulated day index"
        )
    magnitude = {"magnitude": float(parts[4])} if len(parts) == 5 and parts[4] else {}
    drift = Drift(
        kind="price_rise" if parts[0] == "price_rise" else "usage_drop",
        start_day=int(parts[1]),
        plan=parts[2] or None,
        region=parts[3] or None,
        **magnitude,
    )
    check_drift(drift)
    return drift


def check_drift(drift: Drift) -> None:
    """Raise ValueError unless the drift names a known plan (price_rise) or region (usage_drop)."""
    if (drift.kind == "price_rise" and drift.plan not in PLANS) or (
        drift.kind == "usage_drop" and drift.region not in REGIONS
    ):
        raise ValueError(f"drift {drift} needs a plan in {PLANS} or a region in {REGIONS}")


def day_of(path: Path) -> date:
    """The simulated day a landing file holds, parsed from its name (e.g. usage_2025-01-31.parquet)."""
    match = re.search(r"(\d{4}-\d{2}-\d{2})", Path(path).name)
    if match is None:
        raise ValueError(f"no YYYY-MM-DD date in file name {Path(path).name!r}")
    return date.fromisoformat(match.group(1))


def _sigmoid(x: np.ndarray) -> np.ndarray:
    """The logistic function."""
    return 1.0 / (1.0 + np.exp(-x))


class _Simulation:
    """The hidden state of every customer, advanced one day at a time."""

    def __init__(self, config: GeneratorConfig):
        """Draw every customer's fixed traits up front."""
        self.seed, self.start, self.drifts = config.seed, config.start, config.drifts
        rng = np.random.default_rng(config.seed)
        n_new = round(config.customers * NEW_SIGNUP_SHARE)
        signup = np.concatenate(
            [np.sort(rng.integers(-730, 1, config.customers)), np.sort(rng.integers(1, SIGNUP_HORIZON_DAYS, n_new))]
        )
        n = self.n = len(signup)
        self.signup_day = signup
        self.customer_id = np.arange(1, n + 1, dtype=np.int64)
        self.plan = rng.choice(3, n, p=[0.45, 0.35, 0.20])
        self.discount = rng.choice([0.0, 0.05, 0.10, 0.20], n, p=[0.70, 0.10, 0.12, 0.08])
        self.region = rng.choice(4, n, p=[0.30, 0.25, 0.25, 0.20])
        self.age_band = rng.choice(5, n, p=[0.15, 0.30, 0.25, 0.17, 0.13])
        self.channel = rng.choice(5, n, p=[0.40, 0.20, 0.15, 0.15, 0.10])
        self.engagement = rng.lognormal(np.log(ENGAGEMENT), 0.5, n)  # expected sessions per day
        weekend = np.array([(config.start + timedelta(i)).weekday() >= 5 for i in range(7)])
        weekly = np.exp(np.outer(rng.normal(0, 0.3, n), weekend) + rng.normal(0, 0.1, (n, 7)))
        self.weekly = weekly / weekly.mean(axis=1, keepdims=True)  # column i: weekday of start + i days
        self.minutes_per_session = rng.lognormal(np.log(12), 0.4, n)
        self.mb_per_minute = rng.lognormal(np.log(3), 0.5, n)
        self.error_rate = rng.lognormal(np.log(0.02), 1.0, n)  # errors per session
        self.stress = rng.normal(0, 1, n)  # latent financial stress
        self.frailty = rng.normal(0, FRAILTY_SD, n) + CHANNEL_EFFECT[self.channel]
        # Initial customers who disengaged long ago would have left already: none start before day -40.
        self.disengage_day = np.maximum(signup, -40) + 14 + rng.exponential(DISENGAGE_AFTER, n)
        self.disengage_days = rng.uniform(*DISENGAGE_DAYS, n)  # decay time constant
        signup_dates = np.datetime64(config.start, "D") + signup
        self.bill_day = np.minimum((signup_dates - signup_dates.astype("datetime64[M]")).astype(int) + 1, 28)
        self.list_price = BASE_PRICES.copy()  # current price per plan; a price rise raises it
        self.price = np.round(self.list_price[self.plan] * (1 - self.discount), 2)
        self.cancel_day = np.full(n, NEVER)
        # Running history: expected sessions of the last 37 days, failed payments of the last 90 days.
        self.intensity_ring = np.zeros((n, 37), dtype=np.float32)
        for day in range(-37, 0):  # the hidden past of the initial customers
            self.intensity_ring[:, day % 37] = np.where(signup <= day, self._intensity(day), 0)
        self.failed_ring = np.zeros((n, 90), dtype=np.uint8)
        self.failed_90 = np.zeros(n, np.int64)
        self.last_failed_day = np.full(n, -NEVER)
        self.retry_day = np.full(n, NEVER)
        self.retry_amount = np.zeros(n)
        self.open_tickets = np.zeros(n, np.int64)
        # Open tickets: id, customer index, opened and resolution time (seconds since start), category.
        self.tickets = {k: np.zeros(0, np.int64) for k in ("id", "cust", "opened", "resolves", "category")}
        self.next_payment, self.next_ticket = 1, 1

    def _rng(self, day: int, purpose: int) -> np.random.Generator:
        """The random stream of one (day, purpose): independent of every other draw."""
        return np.random.default_rng([self.seed, day, purpose])

    def _intensity(self, day: int) -> np.ndarray:
        """Expected sessions per day of every customer, before weekday pattern and drifts."""
        decay = np.exp(-np.maximum(day - self.disengage_day, 0) / self.disengage_days)
        return self.engagement * np.maximum(decay, 0.03)

    def _decline(self, day: int) -> np.ndarray:
        """Decline in 0..1 of expected sessions over the last 7 days vs the 30 days before (0 without history)."""
        history = day - self.signup_day
        before = np.clip(history - 7, 0, 30)
        last_7 = [(day - k) % 37 for k in range(1, 8)]
        recent = self.intensity_ring[:, last_7].sum(axis=1) / 7
        earlier = (self.intensity_ring.sum(axis=1) - recent * 7) / np.maximum(before, 1)
        return np.where(before >= 7, np.clip(1 - (recent + 0.01) / (earlier + 0.01), 0, 1), 0.0)

    def step(self, day: int) -> dict[str, dict[str, np.ndarray]]:
        """Advance one day; return that day's raw events per source."""
        decline = self._decline(day)
        cancellations = self._cancel(day, decline)
        active = (self.signup_day <= day) & (self.cancel_day == NEVER)
        customers = self._sign_up_and_reprice(day, active)
        usage, errors = self._use(day, active)
        payments, failed_today = self._charge(day, active)
        tickets = self._support(day, active, decline, errors)
        self.failed_90 += failed_today - self.failed_ring[:, day % 90]
        self.failed_ring[:, day % 90] = failed_today
        self.active_count = int(active.sum())
        return {
            "customers": customers,
            "usage": usage,
            "payments": payments,
            "tickets": tickets,
            "cancellations": cancellations,
        }

    def _cancel(self, day: int, decline: np.ndarray) -> dict[str, np.ndarray]:
        """Draw today's cancellations from the hidden hazard over what happened up to yesterday."""
        n, rng = self.n, self._rng(day, 1)
        u, seconds, pick = rng.random(n), rng.integers(0, DAY, n), rng.random(n)
        drivers = np.column_stack(
            [  # in the order of REASONS
                # Non-additive on purpose, as real churn is: a decline matters more the steeper it is, and
                # twice as much for customers still in their first 90 days.
                W_PRICE * (self.price / BASE_PRICES[self.plan] - 1),
                W_DECLINE * decline**2 * (1 + (day - self.signup_day < 90)),
                W_TICKETS * np.minimum(self.open_tickets, 3),
                W_FAILED * np.minimum(self.failed_90, 3),
                W_NEW * (day - self.signup_day < 90) + self.frailty,
            ]
        )
        eligible = (self.signup_day < day) & (self.cancel_day == NEVER) & (day > 0)  # day 0 lists everyone first
        churned = np.flatnonzero(eligible & (u < _sigmoid(CHURN_BASE + drivers.sum(axis=1))))
        self.cancel_day[churned] = day
        weights = np.maximum(drivers[churned], 0)
        weights[:, -1] = 0.5  # "other"
        shares = weights.cumsum(axis=1)
        reason = (shares < (pick[churned] * shares[:, -1])[:, None]).sum(axis=1)
        cancelled_at = day * DAY + seconds[churned]
        cancel_time = np.full(n, NEVER)
        cancel_time[churned] = cancelled_at
        t = self.tickets  # a cancelling customer's open tickets are closed when they cancel
        t["resolves"] = np.minimum(t["resolves"], cancel_time[t["cust"]])
        return {"cust": churned, "at": cancelled_at, "reason": reason}

    def _sign_up_and_reprice(self, day: int, active: np.ndarray) -> dict[str, np.ndarray]:
        """Apply price rises and plan changes; return the customers whose record is new or changed."""
        n = self.n
        new = active & (self.signup_day == day) if day > 0 else active.copy()
        changed = np.zeros(n, bool)
        for drift in self.drifts:
            if drift.kind == "price_rise" and drift.start_day == day:
                p = PLANS.index(drift.plan)
                self.list_price[p] *= 1 + drift.magnitude
                hit = active & ~new & (self.plan == p)
                self.price[hit] = np.round(self.price[hit] * (1 + drift.magnitude), 2)
                changed |= hit
        signups = new & (self.signup_day > 0)
        self.price[signups] = np.round(self.list_price[self.plan] * (1 - self.discount), 2)[signups]
        rng = self._rng(day, 2)
        switch = active & ~new & (rng.random(n) < PLAN_CHANGE_RATE)
        other_plan = (self.plan + rng.integers(1, 3, n)) % 3
        self.plan[switch] = other_plan[switch]
        self.price[switch] = np.round(self.list_price[other_plan] * (1 - self.discount), 2)[switch]
        rows = np.flatnonzero(new | changed | switch)
        return {"cust": rows, "at": day * DAY + rng.integers(0, DAY, n)[rows]}

    def _use(self, day: int, active: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Draw today's usage; return the rows of customers with a session, and everyone's errors."""
        n, rng = self.n, self._rng(day, 3)
        intensity = self._intensity(day)
        for drift in self.drifts:
            if drift.kind == "usage_drop" and day >= drift.start_day:
                hit = self.region == REGIONS.index(drift.region)
                intensity = np.where(hit, intensity * (1 - drift.magnitude), intensity)
        sessions = rng.poisson(intensity * self.weekly[:, day % 7])
        minutes = rng.gamma(3.0 * np.maximum(sessions, 1), self.minutes_per_session / 3)
        minutes = np.minimum(np.where(sessions > 0, minutes, 0.0), MAX_MINUTES)
        data_mb = minutes * self.mb_per_minute * rng.lognormal(0, 0.3, n)
        errors = rng.poisson(sessions * self.error_rate)
        self.intensity_ring[:, day % 37] = np.where(active, intensity, 0)
        used = np.flatnonzero(active & (sessions > 0))
        return {
            "cust": used,
            "sessions": sessions[used],
            "minutes": np.round(minutes[used], 2),
            "data_mb": np.round(data_mb[used], 2),
            "errors": errors[used],
        }, errors

    def _charge(self, day: int, active: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Charge monthly on the billing day and retry failed charges; return the payments and failures."""
        n, rng = self.n, self._rng(day, 4)
        u_charge, u_retry = rng.random(n), rng.random(n)
        t_charge, t_retry = rng.integers(0, DAY, n), rng.integers(0, DAY, n)
        due = np.flatnonzero(active & (self.bill_day == (self.start + timedelta(day)).day))
        retry = np.flatnonzero(active & (self.retry_day == day))
        self.retry_day[self.retry_day <= day] = NEVER
        charge_failed = u_charge[due] < _sigmoid(-3.3 + 1.2 * self.stress[due])
        retry_failed = u_retry[retry] < _sigmoid(-2.3 + 1.2 * self.stress[retry])
        self.retry_day[due[charge_failed]] = day + RETRY_AFTER_DAYS
        self.retry_amount[due[charge_failed]] = self.price[due[charge_failed]]
        cust = np.concatenate([due, retry])
        at = day * DAY + np.concatenate([t_charge[due], t_retry[retry]])
        order = np.lexsort((cust, at))
        cust, at = cust[order], at[order]
        amount = np.concatenate([self.price[due], self.retry_amount[retry]])[order]
        failed = np.concatenate([charge_failed, retry_failed])[order]
        ids = np.arange(self.next_payment, self.next_payment + len(cust))
        self.next_payment += len(cust)
        failed_today = np.bincount(cust[failed], minlength=n)
        self.last_failed_day[failed_today > 0] = day
        return {"id": ids, "cust": cust, "at": at, "amount": amount, "failed": failed}, failed_today

    def _support(self, day: int, active: np.ndarray, decline: np.ndarray, errors: np.ndarray) -> dict[str, np.ndarray]:
        """Open tickets (more often after errors and failed payments) and resolve due ones; return the rows."""
        n, rng, end_of_day = self.n, self._rng(day, 5), (day + 1) * DAY
        recent_failure = day - self.last_failed_day <= 7
        logit = -6.0 + 0.45 * np.minimum(errors, 6) + 1.6 * recent_failure + 1.0 * (decline > 0.5)
        opens = active & (rng.random(n) < _sigmoid(logit))
        u_cat, fallback = rng.random(n), rng.choice(4, n, p=[0.3, 0.3, 0.3, 0.1])
        category = np.where(
            recent_failure & (u_cat < 0.7),
            0,
            np.where((errors > 0) & (u_cat < 0.6), 1, np.where((decline > 0.5) & (u_cat < 0.5), 3, fallback)),
        )
        opened_at = day * DAY + rng.integers(0, DAY, n)
        u_delay = rng.random(n)  # most within hours, some within a week, some stay open for weeks
        delay = np.where(
            u_delay < 0.6,
            rng.exponential(6 * 3600, n),
            np.where(u_delay < 0.9, rng.uniform(DAY, 7 * DAY, n), rng.uniform(7 * DAY, 45 * DAY, n)),
        )
        tix = np.flatnonzero(opens)
        tix = tix[np.lexsort((tix, opened_at[tix]))]
        new = {
            "id": np.arange(self.next_ticket, self.next_ticket + len(tix)),
            "cust": tix,
            "opened": opened_at[tix],
            "resolves": opened_at[tix] + 60 + delay[tix].astype(np.int64),
            "category": category[tix],
        }
        self.next_ticket += len(tix)
        old = self.tickets
        done, same_day = old["resolves"] < end_of_day, new["resolves"] < end_of_day
        rows = {k: np.concatenate([v[done], new[k]]) for k, v in old.items()}
        resolved_at = np.where(np.concatenate([np.ones(done.sum(), bool), same_day]), rows["resolves"], -1)
        updated_at = np.where(resolved_at >= 0, resolved_at, rows["opened"])
        order = np.lexsort((rows["id"], updated_at))
        self.open_tickets += np.bincount(new["cust"][~same_day], minlength=n)
        self.open_tickets -= np.bincount(old["cust"][done], minlength=n)
        self.tickets = {k: np.concatenate([v[~done], new[k][~same_day]]) for k, v in old.items()}
        return {
            "id": rows["id"][order],
            "cust": rows["cust"][order],
            "opened": rows["opened"][order],
            "category": rows["category"][order],
            "resolved": resolved_at[order],
            "at": updated_at[order],
        }


def _timestamps(start: date, seconds: np.ndarray) -> list[str]:
    """'YYYY-MM-DD HH:MM:SS' texts of seconds since the start's midnight."""
    stamps = np.datetime64(start, "s") + np.asarray(seconds, dtype=np.int64).astype("timedelta64[s]")
    return [s.replace("T", " ") for s in np.datetime_as_string(stamps, unit="s").tolist()]


def _money(values: np.ndarray) -> list[str]:
    """Fixed two-decimal texts."""
    return [f"{v:.2f}" for v in values.tolist()]


def _csv_columns(source: str, events: dict[str, np.ndarray], sim: _Simulation) -> dict[str, list[str]]:
    """A day's events of a CSV source as text columns."""
    ids = [str(i) for i in sim.customer_id[events["cust"]].tolist()]
    if source == "customers":
        c = events["cust"]
        signup = np.datetime64(sim.start, "D") + sim.signup_day[c]
        return {
            "customer_id": ids,
            "updated_at": _timestamps(sim.start, events["at"]),
            "signup_date": np.datetime_as_string(signup, unit="D").tolist(),
            "plan": [PLANS[i] for i in sim.plan[c].tolist()],
            "monthly_price": _money(sim.price[c]),
            "region": [REGIONS[i] for i in sim.region[c].tolist()],
            "age_band": [AGE_BANDS[i] for i in sim.age_band[c].tolist()],
            "channel": [CHANNELS[i] for i in sim.channel[c].tolist()],
        }
    if source == "payments":
        return {
            "payment_id": [f"P{i:09d}" for i in events["id"].tolist()],
            "customer_id": ids,
            "charged_at": _timestamps(sim.start, events["at"]),
            "amount": _money(events["amount"]),
            "failed": ["true" if f else "false" for f in events["failed"].tolist()],
        }
    if source == "tickets":
        resolved = _timestamps(sim.start, np.maximum(events["resolved"], 0))
        return {
            "ticket_id": [f"T{i:08d}" for i in events["id"].tolist()],
            "customer_id": ids,
            "opened_at": _timestamps(sim.start, events["opened"]),
            "category": [TICKET_CATEGORIES[i] for i in events["category"].tolist()],
            "resolved_at": [r if ok else "" for r, ok in zip(resolved, (events["resolved"] >= 0).tolist())],
            "updated_at": _timestamps(sim.start, events["at"]),
        }
    return {
        "customer_id": ids,
        "cancelled_at": _timestamps(sim.start, events["at"]),
        "reason": [REASONS[i] for i in events["reason"].tolist()],
    }


def _csv_bytes(columns: dict[str, list[str]], encoding: str = "utf-8") -> bytes:
    """CSV bytes of text columns (values never need quoting)."""
    lines = [",".join(columns)] + [",".join(row) for row in zip(*columns.values())]
    return ("\n".join(lines) + "\n").encode(encoding)


def _usage_table(events: dict[str, np.ndarray], sim: _Simulation, today: date) -> dict[str, np.ndarray]:
    """A day's usage events as typed columns."""
    return {
        "customer_id": sim.customer_id[events["cust"]],
        "usage_date": np.full(len(events["cust"]), np.datetime64(today, "D")),
        "sessions": events["sessions"].astype(np.int64),
        "minutes": events["minutes"].astype(np.float64),
        "data_mb": events["data_mb"].astype(np.float64),
        "errors": events["errors"].astype(np.int64),
    }


def _parquet_bytes(cols: dict[str, np.ndarray], missing_id: np.ndarray | None = None) -> bytes:
    """Parquet bytes of usage columns (customer_id null where missing_id)."""
    arrays = {k: pa.array(v, mask=missing_id if k == "customer_id" else None) for k, v in cols.items()}
    arrays["usage_date"] = pa.array(cols["usage_date"], type=pa.date32())
    buffer = io.BytesIO()
    pq.write_table(pa.table(arrays), buffer)
    return buffer.getvalue()


def _future(text: str) -> str:
    """The same timestamp or date text in the year 2099."""
    return "2099" + text[4:].replace("-02-29", "-02-28")


def _corrupt_csv_rows(source: str, cols: dict[str, list[str]], rng: np.random.Generator, rate: float) -> None:
    """Replace about `rate` of the rows with malformed ones, in place."""
    n = len(cols["customer_id"])
    bad = np.flatnonzero(rng.random(n) < rate)
    kinds = rng.choice(BAD_ROW_KINDS[source], len(bad))
    others, coins = rng.integers(0, max(n - 1, 1), len(bad)), rng.integers(0, 2, len(bad))
    keys, stamp, numeric, categories, _ = CSV_FIELDS[source]
    for i, kind, other, coin in zip(bad.tolist(), kinds.tolist(), others.tolist(), coins.tolist()):
        if kind == "duplicate_key" and n < 2:
            kind = "missing_id"
        if kind == "negative":
            cols[numeric][i] = "-" + cols[numeric][i]
        elif kind == "unknown_category":
            column, value = categories[coin % len(categories)]
            cols[column][i] = value
        elif kind == "missing_id":
            cols["customer_id"][i] = ""
        elif kind == "future_timestamp":
            cols[stamp][i] = _future(cols[stamp][i])
        elif kind == "duplicate_key":
            j = other + (other >= i)  # any other row
            for key in keys:
                cols[key][i] = cols[key][j]
        else:  # non_numeric
            cols[numeric][i] = "abc"


def _corrupt_usage_rows(cols: dict[str, np.ndarray], rng: np.random.Generator, rate: float) -> np.ndarray:
    """Replace about `rate` of the usage rows with malformed ones, in place; return the null-id mask."""
    n = len(cols["customer_id"])
    missing = np.zeros(n, bool)
    bad = np.flatnonzero(rng.random(n) < rate)
    kinds = rng.choice(BAD_ROW_KINDS["usage"], len(bad))
    others, coins = rng.integers(0, max(n - 1, 1), len(bad)), rng.integers(0, 2, len(bad))
    for i, kind, other, coin in zip(bad.tolist(), kinds.tolist(), others.tolist(), coins.tolist()):
        if kind == "duplicate_key" and n < 2:
            kind = "missing_id"
        if kind == "negative":
            column = "sessions" if coin else "minutes"
            cols[column][i] = -cols[column][i]
        elif kind == "missing_id":
            missing[i] = True
        elif kind == "future_timestamp":
            cols["usage_date"][i] = np.datetime64(_future(str(cols["usage_date"][i])), "D")
        else:  # duplicate_key: the same (customer_id, usage_date) as another row
            cols["customer_id"][i] = cols["customer_id"][other + (other >= i)]
    return missing


def _bad_file(source: str, cols: dict, rng: np.random.Generator) -> bytes:
    """A malformed file of one randomly chosen kind that fits the source and the rows."""
    n = len(cols["customer_id"])
    is_csv = source != "usage"
    kinds = [
        k
        for k in BAD_FILE_KINDS
        if (is_csv or k not in ("header_only", "non_utf8"))
        and (not is_csv or k != "truncated")
        and (n > 0 or k not in ("header_only", "non_utf8"))
    ]
    kind = kinds[rng.integers(len(kinds))]
    if kind == "empty":
        return b""
    dropped = list(cols)[rng.integers(len(cols))]
    if kind == "extra_column":
        cols = {**cols, EXTRA_COLUMN: ["1"] * n if is_csv else np.ones(n, np.int64)}
    elif kind == "missing_column":
        cols = {k: v for k, v in cols.items() if k != dropped}
    elif kind == "header_only":
        cols = {k: [] for k in cols}
    elif kind == "non_utf8":
        text = CSV_FIELDS[source][-1]
        i = int(rng.integers(n))
        cols = {**cols, text: cols[text][:i] + [cols[text][i] + "\xe9"] + cols[text][i + 1 :]}
        return _csv_bytes(cols, encoding="latin-1")
    if is_csv:
        return _csv_bytes(cols)
    if kind == "truncated":
        data = _parquet_bytes(cols)
        return data[: len(data) // 2]
    table = pa.table({k: pa.array(v, type=pa.date32() if k == "usage_date" else None) for k, v in cols.items()})
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()


def _file_bytes(
    source: str, events: dict, sim: _Simulation, today: date, day: int, config: GeneratorConfig
) -> tuple[bytes | None, int]:
    """The bytes of one (source, day) landing file (None: nothing to report) and its data rows."""
    rng = np.random.default_rng([config.seed, day, 100 + SOURCES.index(source)])  # corruption only
    malformed = rng.random() < config.bad_file_rate
    if source == "usage":
        table = _usage_table(events, sim, today)
        rows = len(table["customer_id"])
        if malformed:
            data = _bad_file(source, table, rng)
        else:
            missing = _corrupt_usage_rows(table, rng, config.bad_row_rate) if config.bad_row_rate else None
            data = _parquet_bytes(table, missing)
    else:
        text = _csv_columns(source, events, sim)
        rows = len(text["customer_id"])
        if malformed:
            data = _bad_file(source, text, rng)
        else:
            if config.bad_row_rate:
                _corrupt_csv_rows(source, text, rng, config.bad_row_rate)
            data = _csv_bytes(text)
    if malformed:  # count only the rows a reader can still get out of the file
        readable = data and (source != "usage" or data[-4:] == b"PAR1")
        header_only = source != "usage" and data.count(b"\n") <= 1
        rows = 0 if not readable or header_only else rows
    elif rows == 0:
        return None, 0  # a producer with nothing to report that day writes no file
    return data, rows


@dataclass
class LandingDay:
    """One simulated day: its landing files (source: bytes and data rows) and the customers active that day."""

    day: int
    date: date
    active: int
    files: dict[str, tuple[bytes, int]] = field(default_factory=dict)  # empty outside the output window


def _label_day(day: int, config: GeneratorConfig) -> int:
    """The day whose landing file carries the cancellations of `day`."""
    return day + (config.label_delay_days if day >= config.label_delay_from else 0)


def simulate_days(config: GeneratorConfig) -> Iterator[LandingDay]:
    """Step one simulation from day 0 to the window's last day, lazily; each day's files only inside the window.

    The simulation always starts at day 0, so a day's files are the same whatever the window, and a consumer
    that pauses between days (a live producer) pays for each day once. The config is checked on the call.
    """
    last_day = config.days - 1 if config.last_day is None else config.last_day
    if not 0 <= config.first_day <= last_day < config.days:
        raise ValueError(f"need 0 <= first_day <= last_day < days, got {config.first_day}, {last_day}, {config.days}")
    if config.label_delay_days < 0 or config.label_delay_from < 0:
        raise ValueError("label_delay_days and label_delay_from must be >= 0")
    for drift in config.drifts:
        check_drift(drift)
    return _landing_days(config, last_day)


def _landing_days(config: GeneratorConfig, last_day: int) -> Iterator[LandingDay]:
    """The days of simulate_days."""
    sim = _Simulation(config)
    labels: dict[int, list[dict[str, np.ndarray]]] = {}  # cancellations waiting for the file of their day
    for day in range(last_day + 1):  # the future never changes the past: stop at the window's end
        events = sim.step(day)
        today = config.start + timedelta(day)
        labels.setdefault(_label_day(day, config), []).append(events["cancellations"])
        due = labels.pop(day, [])
        events["cancellations"] = (
            {k: np.concatenate([e[k] for e in due]) for k in due[0]}
            if due
            else {k: v[:0] for k, v in events["cancellations"].items()}
        )
        landing = LandingDay(day, today, sim.active_count)
        if day >= config.first_day:
            for source in SOURCES:
                data, rows = _file_bytes(source, events[source], sim, today, day, config)
                if data is not None:
                    landing.files[source] = (data, rows)
        yield landing


def landing_path(landing_dir: Path, source: str, day: date) -> Path:
    """Where the landing file of a source and day goes."""
    suffix = "parquet" if source == "usage" else "csv"
    return Path(landing_dir) / source / f"{source}_{day.isoformat()}.{suffix}"


def write_landing_day(landing_dir: Path, landing: LandingDay) -> None:
    """Write a day's files, each under a hidden name then renamed: the landing sensor never sees half a file."""
    for source, (data, _) in landing.files.items():
        target = landing_path(landing_dir, source, landing.date)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, target)


def generate(
    landing_dir: Path, config: GeneratorConfig = GeneratorConfig(), progress: Callable[[str], None] | None = None
) -> dict[str, int]:
    """Simulate the churn demo and write one landing file per source per day with events; return rows per source."""
    days = simulate_days(config)  # checks the config before anything is written
    last_day = config.days - 1 if config.last_day is None else config.last_day
    landing_dir = Path(landing_dir)
    for source in SOURCES:
        (landing_dir / source).mkdir(parents=True, exist_ok=True)
    written = dict.fromkeys(SOURCES, 0)
    every = max(1, config.days // 10)
    for landing in days:
        write_landing_day(landing_dir, landing)
        for source, (_, rows) in landing.files.items():
            written[source] += rows
        if progress and ((landing.day + 1) % every == 0 or landing.day == last_day):
            progress(f"day {landing.day + 1}/{config.days}: {landing.active:,} active customers")
    return written
