"""Infer a dataset file from the user's data: what `lakehouse dataset add` writes and prints.

Each column's type is chosen by asking validation's own parser (lakehouse.lake.validation.cast_column) whether it
reads every value, so what is inferred here is exactly what validation accepts later. Ranges and
categories go into the file as observations (never enforced); everything is printed for the user to
check, and can be overridden by editing the file.
"""

from __future__ import annotations

import glob
import math
import re
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

import polars as pl

from lakehouse.declarations.datasets import (
    COLUMN,
    RESERVED,
    DatasetSpec,
    DatasetSpecError,
    FeatureSpec,
    LabelsSpec,
    spec_from_dict,
)
from lakehouse.declarations.domain import Column
from lakehouse.lake.validation import cast_column

SAMPLE_ROWS = 200_000  # enough to see every category and range; the head of each file, split evenly
MAX_CATEGORIES = 50
MIN_ROWS_FOR_IDENTIFIER = 20  # in a handful of rows every column looks unique
# A case may be its own entity (a loan with no customer id): then the entity is the labels' join key.
CASE_IS_ENTITY = {"entity", "labels key"}
MAX_BAD_TIMESTAMP_SHARE = 0.05  # more unparseable times than this would hold every batch (Domain.max_quarantine_rate)
FORMATS = ("csv", "parquet")
LEADING_ZERO = r"^[+-]?0\d"  # "01234": a code, not a number (typing it would lose the zero)
NUMBER_WITH_UNIT = r"^[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?\s*(\D{1,8}?)$"
ZONE_SUFFIX = r"\d(Z|[+-]\d{2}:?\d{2})$"  # "...10:22:01+01:00", "...10:22:01Z"
ID_NAME = re.compile(r"(^|_)id$|[a-z]Id$|ID$")
POSITIVE_TEXT = ("1", "true", "yes", "y", "t", "positive")


def expand_files(patterns: Iterable[str | Path]) -> list[Path]:
    """The data files named by paths, folders or globs; DatasetSpecError if one names nothing readable."""
    found: list[Path] = []
    for pattern in patterns:
        path = Path(pattern)
        if path.is_dir():
            matches = sorted(
                p
                for p in path.iterdir()
                if p.is_file() and not p.name.startswith(".") and p.suffix.lower().lstrip(".") in FORMATS
            )
        elif path.exists():
            matches = [path]
        elif any(ch in str(pattern) for ch in "*?["):
            matches = sorted(Path(p) for p in glob.glob(str(pattern), recursive=True) if Path(p).is_file())
        else:
            raise DatasetSpecError(f"{pattern}: no such file")
        if not matches:
            raise DatasetSpecError(f"{pattern}: matched no {' or '.join(FORMATS)} files")
        for p in matches:
            if p.suffix.lower().lstrip(".") not in FORMATS:
                raise DatasetSpecError(f"{p}: unsupported file type {p.suffix!r}; expected one of {list(FORMATS)}")
        found += [p for p in matches if p not in found]
    return found


def _count_rows(path: Path) -> int:
    if path.suffix.lower() == ".csv":
        return pl.scan_csv(path, infer_schema=False).select(pl.len()).collect().item()
    return pl.scan_parquet(path).select(pl.len()).collect().item()


def read_sample(files: list[Path], limit: int = SAMPLE_ROWS, optional: Iterable[str] = ()) -> tuple[pl.DataFrame, int]:
    """Up to `limit` rows of the files as text (CSV read as written, Parquet values as text), and the total rows.

    Files after the first may lack the `optional` columns (read as nulls); any other difference is an error.
    """
    optional = set(optional)
    frames: list[pl.DataFrame] = []
    total = 0
    per_file = math.ceil(limit / max(len(files), 1))
    for path in files:
        try:
            total += _count_rows(path)
            if path.suffix.lower() == ".csv":
                frame = pl.read_csv(path, infer_schema=False, n_rows=per_file)
            else:
                frame = pl.read_parquet(path, n_rows=per_file)
                nested = [c for c, t in frame.schema.items() if t.is_nested() or t == pl.Binary]
                if nested:
                    raise DatasetSpecError(
                        f"{path}: columns {nested} hold lists, structs or bytes; drop them "
                        "from the file (features are numbers, booleans or text)"
                    )
                # Text like a CSV's, so one set of rules types both (1.0 -> "1.0", True -> "true").
                frame = frame.with_columns(pl.all().cast(pl.String))
        except DatasetSpecError:
            raise
        except Exception as e:  # polars raises several types for malformed files
            raise DatasetSpecError(f"{path}: unreadable {path.suffix.lstrip('.')} file: {e}") from None
        if frame.height == 0:
            raise DatasetSpecError(f"{path}: no data rows")
        if frames:
            absent = [c for c in frames[0].columns if c not in frame.columns and c in optional]
            frame = frame.with_columns(pl.lit(None, pl.String).alias(c) for c in absent)
        if frames and set(frame.columns) != set(frames[0].columns):
            first = frames[0].columns
            raise DatasetSpecError(
                f"{path}: columns differ from {files[0].name} (only here: {[c for c in frame.columns if c not in first]}; "
                f"missing here: {[c for c in first if c not in frame.columns]}); every file of a dataset needs the same columns"
            )
        frames.append(frame.select(frames[0].columns) if frames else frame)  # columns in any order, as ingestion
    return pl.concat(frames, how="vertical"), total


def _present(values: pl.Series) -> pl.Series:
    """Where a value is written (validation reads empty text as missing)."""
    return values.str.strip_chars().fill_null("") != ""


def _typed(values: pl.Series, dtype: str, unit: str = "") -> pl.Series:
    """The values typed exactly as validation types them; unparseable values become null."""
    column = Column(values.name or "value", dtype, unit=unit)  # type: ignore[arg-type]
    return pl.DataFrame({"value": values}).select(cast_column(column, pl.col("value"), pl.String)).to_series()


def _unparsed(values: pl.Series, dtype: str, unit: str = "") -> pl.Series:
    """The written values validation cannot read as dtype."""
    return values.filter(_present(values) & _typed(values, dtype, unit).is_null())


def _infer_type(values: pl.Series) -> tuple[str, str, str]:
    """(type, unit, why) for a text column: the narrowest type validation reads every written value as."""
    written = values.filter(_present(values)).str.strip_chars()
    if written.is_empty():
        return "string", "", "always empty"
    if written.str.contains(LEADING_ZERO).any():
        return (
            "string",
            "",
            f"codes with leading zeros (e.g. {written.filter(written.str.contains(LEADING_ZERO))[0]!r})",
        )
    for dtype in ("int64", "bool", "float64"):  # int before bool: a 0/1 column stays a count
        if _unparsed(written, dtype).is_empty():
            return dtype, "", ""
    units = written.str.extract(NUMBER_WITH_UNIT, 1)
    suffixes = units.drop_nulls().str.strip_chars().unique()
    if units.null_count() == 0 and len(suffixes.filter(suffixes != "")) == 1:
        unit = suffixes.filter(suffixes != "")[0]
        if _unparsed(written, "float64", unit).is_empty():
            return "float64", unit, ""
    numeric = written.cast(pl.Float64, strict=False).is_not_null().mean() or 0.0
    if numeric >= 0.9:  # mostly numbers: say which values keep it text, the user may want to fix them
        bad = written.filter(written.cast(pl.Float64, strict=False).is_null()).unique(maintain_order=True).head(3)
        return "string", "", f"{numeric:.0%} numbers, but not {', '.join(repr(v) for v in bad)}"
    return "string", "", ""


def _number(value: Any) -> Any:
    """A plain int or float for YAML (no numpy or polars scalars, no NaN)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return int(value) if float(value).is_integer() and not isinstance(value, bool) else round(float(value), 6)


def _describe_column(values: pl.Series) -> tuple[FeatureSpec, str, str]:
    """A feature's spec from its values, a one-line summary, and a note (why it is text, or '')."""
    dtype, unit, why = _infer_type(values)
    present = _present(values)
    missing = 1 - (present.mean() or 0.0)
    observed: dict[str, Any] = {"missing": round(missing, 4)} if missing else {}
    categories: tuple[str, ...] = ()
    if dtype in ("int64", "float64"):
        typed = _typed(values, dtype, unit).fill_nan(None) if dtype == "float64" else _typed(values, dtype)
        observed |= {"min": _number(typed.min()), "max": _number(typed.max())}
        summary = f"min {observed['min']}, max {observed['max']}"
    elif dtype == "bool":
        observed["true"] = round(_typed(values, "bool").mean() or 0.0, 4)
        summary = f"{observed['true']:.1%} true"
    else:
        written = values.filter(present).str.strip_chars()
        distinct = written.unique().sort()
        observed["distinct"] = len(distinct)
        if 0 < len(distinct) <= MAX_CATEGORIES:
            categories = tuple(distinct.to_list())
            summary = (
                f"{len(distinct)} categories: "
                + ", ".join(repr(c) for c in categories[:8])
                + (", ..." if len(categories) > 8 else "")
            )
        else:
            summary = f"{len(distinct):,} distinct values (too many to list as categories)"
    if missing:
        summary += f", {missing:.1%} missing"
    # Features stay nullable even if the sample had no gap: LightGBM takes a missing value as missing,
    # and quarantining a row for one empty field would lose the rest of it. Set nullable: false to enforce.
    feature = FeatureSpec(
        name=values.name, type=dtype, nullable=True, unit=unit, categories=categories, observed=observed
    )
    return feature, summary, why


def _label_keys(values: pl.Series, numeric: bool) -> pl.Series:
    """Label values compared as the label SQL compares them: "1" equals "1.0", "Yes" equals "yes"; null if empty."""
    written = values.str.strip_chars()
    keys = written.cast(pl.Float64, strict=False) if numeric else written.str.to_lowercase()
    return pl.select(pl.when(_present(values)).then(keys)).to_series()


def _label_classes(values: pl.Series) -> dict[Any, tuple[str, int]]:
    """The label's classes: compared value -> (value as first written, rows); float keys when all are numbers."""
    written = values.filter(_present(values)).str.strip_chars()
    numeric = written.cast(pl.Float64, strict=False).null_count() == 0
    frame = pl.DataFrame({"key": _label_keys(written, numeric), "text": written})
    counts = frame.group_by("key", maintain_order=True).agg(pl.col("text").first(), pl.len())
    return {row["key"]: (row["text"], row["len"]) for row in counts.iter_rows(named=True)}


def _label_problem(column: str, classes: dict[Any, tuple[str, int]]) -> str | None:
    """Why a label column is not binary, naming the values found; None if it is."""
    if len(classes) == 2:
        return None
    shown = [repr(text) for text, _ in list(classes.values())[:10]]
    values = ", ".join(shown) + (f" and {len(classes) - 10} more" if len(classes) > 10 else "")
    if not classes:
        return f"label {column!r} has no values"
    return f"label {column!r} has {len(classes)} distinct values ({values}); a binary label needs exactly two"


def _choose_positive(
    column: str, classes: dict[Any, tuple[str, int]], positive: str | None, given_as: str = "--positive"
) -> tuple[str, str]:
    """(the positive value as written, why it was chosen); DatasetSpecError if a given value is not a class."""
    if positive is not None:
        key = (
            float(positive)
            if isinstance(next(iter(classes)), float) and _is_number(positive)
            else positive.strip().lower()
        )
        if key not in classes:
            found = ", ".join(repr(t) for t, _ in classes.values())
            raise DatasetSpecError(f"{given_as} {positive!r} is not a value of label {column!r} (found {found})")
        return classes[key][0], "as given"
    for key, (text, _) in classes.items():
        if key == 1.0 if isinstance(key, float) else key in POSITIVE_TEXT:
            return text, "it reads as 1/true/yes"
    text = min(classes.values(), key=lambda tc: tc[1])[0]
    return text, "the minority class; pass --positive to choose the other"


def _is_positive(values: pl.Series, classes: dict[Any, tuple[str, int]], positive_text: str) -> pl.Series:
    """1 where a label value is the positive class, 0 where it is the other, null where there is none."""
    numeric = isinstance(next(iter(classes)), float)
    key = float(positive_text) if numeric else positive_text.lower()
    return (_label_keys(values, numeric) == key).cast(pl.Int8)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _timestamp_check(column: str, values: pl.Series) -> tuple[str | None, list[str], pl.Series]:
    """(problem or None, notes, parsed times) for the event-time column, parsed as validation parses it."""
    written = int(_present(values).sum())
    example = "write it like 2024-01-03 10:22:01.123"
    first = values.filter(_present(values)).str.strip_chars().head(1).to_list()
    try:
        parsed = _typed(values, "datetime")
    except pl.exceptions.ComputeError:  # polars guesses the format from the first value, and gives up on some
        return f"timestamp {column!r} is not parseable as a date-time (e.g. {first[0]!r}); {example}", [], values
    unparsed = values.filter(_present(values) & parsed.is_null())
    if written == 0:
        return f"timestamp {column!r} is always empty", [], parsed
    if len(unparsed) / written > MAX_BAD_TIMESTAMP_SHARE:
        offsets = {bool(re.search(ZONE_SUFFIX, v.strip())) for v in (first[0], unparsed[0])}
        if len(offsets) == 2 and parsed.is_not_null().any():  # polars reads all times the way the first is written
            return (
                (
                    f"timestamp {column!r} mixes times with and without a UTC offset (e.g. {unparsed[0]!r}); "
                    "write every time the same way"
                ),
                [],
                parsed,
            )
        return (
            (
                f"timestamp {column!r} is not parseable as a date-time in {len(unparsed):,} of {written:,} rows "
                f"(e.g. {unparsed[0]!r}); {example}"
            ),
            [],
            parsed,
        )
    notes = []
    if first and re.search(ZONE_SUFFIX, first[0].strip()):
        notes.append(f"times carry a UTC offset (e.g. {first[0]!r}): stored as UTC times without one")
    if first and not re.match(r"\d{4}-\d{2}-\d{2}", first[0]):
        notes.append(
            f"times are not written year-first (e.g. {first[0]!r}): check the range above, day and month may be swapped"
        )
    if len(unparsed):
        notes.append(
            f"{len(unparsed):,} rows have a timestamp that does not parse (e.g. {unparsed[0]!r}): "
            "validation will quarantine them"
        )
    if written < len(values):
        notes.append(f"{len(values) - written:,} rows have no timestamp: validation will quarantine them")
    return None, notes, parsed


def _auc(score: pl.Series, positive: pl.Series) -> float | None:
    """ROC AUC of a numeric column against a 0/1 label (ties averaged); None without both classes."""
    frame = pl.DataFrame({"s": score, "y": positive}).drop_nulls()
    n_pos = int(frame["y"].sum())
    n_neg = frame.height - n_pos
    if not n_pos or not n_neg:
        return None
    ranks = frame["s"].rank("average")
    return float((ranks.filter(frame["y"] == 1).sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _leak_note(feature: FeatureSpec, values: pl.Series, positive: pl.Series) -> str | None:
    """A warning when a column gives the label away in the sample (a leak, or an outcome recorded later)."""
    if feature.type in ("int64", "float64", "bool"):
        auc = _auc(_typed(values, feature.type, feature.unit).cast(pl.Float64), positive)
        if auc is not None and (auc >= 0.99 or auc <= 0.01):
            return f"{feature.name!r} separates the label almost perfectly (ROC AUC {max(auc, 1 - auc):.3f})"
        return None
    if not feature.categories or len(feature.categories) < 2:
        return None
    frame = pl.DataFrame({"v": values.str.strip_chars(), "y": positive}).drop_nulls()
    if frame.is_empty() or frame["y"].n_unique() < 2:
        return None
    pure = frame.group_by("v").agg(pl.col("y").n_unique() == 1)["y"].all()
    return f"every value of {feature.name!r} goes with a single label class" if pure else None


def infer_spec(
    name: str,
    files: list[Path],
    entity: str,
    timestamp: str,
    label: str,
    *,
    labels_files: list[Path] | None = None,
    labels_key: str | None = None,
    positive: str | None = None,
    drop: Iterable[str] = (),
    costs: tuple[float, float] | None = None,
    grain: str | None = None,
) -> tuple[DatasetSpec, list[str]]:
    """The dataset file inferred from the data, and lines saying what was inferred (for printing)."""
    where = f"dataset {name!r}"
    files = expand_files(files)
    events, total = read_sample(files, optional=() if labels_files else (label,))
    lines = [
        f"read {len(files)} file{'s' if len(files) > 1 else ''} ({total:,} rows"
        + (f", inferred from the first {events.height:,}" if events.height < total else "")
        + "): "
        + ", ".join(p.name for p in files)
    ]
    drop = list(dict.fromkeys(drop))
    columns = events.columns
    problems = []
    if bool(labels_files) != bool(labels_key):
        problems.append("separate labels need both --labels (the label files) and --labels-key (the join column)")
    for role, column in (("entity", entity), ("timestamp", timestamp)):
        if column not in columns:
            problems.append(f"{role} column {column!r} is not in the data (columns: {', '.join(columns)})")
    labels_frame = None
    label_time, horizon = None, 0  # with inline labels, a label is known with its event
    if labels_files and labels_key:
        labels_files = expand_files(labels_files)
        labels_frame, _ = read_sample(labels_files)
        if labels_key not in columns:
            problems.append(f"labels key {labels_key!r} is not in the event files (columns: {', '.join(columns)})")
        for column, what in ((labels_key, "labels key"), (label, "label column")):
            if column not in labels_frame.columns:
                problems.append(
                    f"{what} {column!r} is not in the label files (columns: {', '.join(labels_frame.columns)})"
                )
    elif label not in columns:
        problems.append(
            f"label column {label!r} is not in the data (columns: {', '.join(columns)}); "
            "if labels come in separate files, give --labels and --labels-key"
        )
    named: list[tuple[str, str | None]] = [
        ("entity", entity),
        ("timestamp", timestamp),
        ("label", label),
        ("labels key", labels_key),
    ]
    roles: dict[str, str] = {}
    for role, given in named:
        if given is not None and given in roles and {roles[given], role} != CASE_IS_ENTITY:
            problems.append(f"{given!r} cannot be both the {roles[given]} and the {role} column")
        elif given is not None:
            roles[given] = role
    for column in drop:
        if column not in columns:
            problems.append(f"--drop {column!r} is not a column of the data (columns: {', '.join(columns)})")
        elif column in roles:
            problems.append(f"--drop {column!r} is the {roles[column]} column; it cannot be dropped")
    if problems:
        raise DatasetSpecError(f"{where}: " + "; ".join(problems))

    entity_type = "int64"
    entity_values = events[entity]
    if not _unparsed(entity_values, "int64").is_empty() or entity_values.str.contains(LEADING_ZERO).any():
        entity_type = "string"
    missing_entities = int((~_present(entity_values)).sum())
    lines.append(
        f"entity {entity!r}: {entity_type}, {entity_values.filter(_present(entity_values)).n_unique():,} "
        "distinct in the sample"
        + (f"; {missing_entities:,} rows have none (validation will quarantine them)" if missing_entities else "")
    )
    problem, notes, times = _timestamp_check(timestamp, events[timestamp])
    if problem:
        raise DatasetSpecError(f"{where}: {problem}")
    lines.append(f"timestamp {timestamp!r}: {times.min()} .. {times.max()}")
    lines += [f"  {n}" for n in notes]

    label_values = labels_frame[label] if labels_frame is not None else events[label]
    classes = _label_classes(label_values)
    problem = _label_problem(label, classes)
    if problem:
        raise DatasetSpecError(f"{where}: {problem}")
    try:
        positive_text, reason = _choose_positive(label, classes, positive)
    except DatasetSpecError as e:
        raise DatasetSpecError(f"{where}: {e}") from None
    counts = {text: n for text, n in classes.values()}
    labelled = sum(counts.values())
    lines.append(
        f"label {label!r}: "
        + ", ".join(f"{t!r} {n:,}" for t, n in counts.items())
        + f" ({counts[positive_text] / labelled:.1%} positive); positive class {positive_text!r} ({reason})"
    )
    unlabelled = label_values.len() - labelled
    if unlabelled:
        lines.append(f"  {unlabelled:,} rows have no label yet: they are kept for features, not for training")

    # The label as 0/1 per sampled event, for the leak check (joined by key when labels are separate).
    if labels_frame is not None and labels_key:
        keyed = labels_frame.select(pl.col(labels_key).str.strip_chars(), pl.col(label).alias("_label"))
        duplicates = keyed.height - keyed[labels_key].n_unique()
        keyed = keyed.unique(labels_key, keep="first", maintain_order=True)
        event_labels = events.select(pl.col(labels_key).str.strip_chars()).join(keyed, on=labels_key, how="left")[
            "_label"
        ]
        lines.append(
            f"labels: joined by {labels_key!r} from {len(labels_files or [])} file(s); "
            f"{_present(event_labels).mean():.1%} of sampled events have a label so far"
        )
        if duplicates:
            lines.append(f"  {duplicates:,} label rows repeat a key: validation keeps the first per batch")
        if label in columns and label not in drop:
            drop.append(label)  # ingestion must accept it in event files, and the model must never see it
            lines.append(f"  {label!r} is also in the event files: dropped there (the label files hold the label)")
        extra = [c for c in labels_frame.columns if c not in (labels_key, label)]
        time_columns = [c for c in extra if _mostly_times(labels_frame[c])]
        if len(time_columns) == 1:
            label_time = time_columns[0]
            extra.remove(label_time)
            horizon = _label_horizon(events, labels_frame, labels_key, timestamp, label_time, lines)
        else:
            lines.append(
                "  no label-time column in the label files: a label counts as final when it lands "
                "(add one, or set label_horizon_days)"
            )
        if extra:
            lines.append(
                f"  label files also have {extra}: ingestion accepts only {labels_key!r}, {label!r} and a label "
                "time; remove the others from label files"
            )
    else:
        event_labels = label_values
    is_positive = _is_positive(event_labels, classes, positive_text)

    excluded = {entity, timestamp, label, *drop, *([labels_key] if labels_key else [])}
    features, summaries, auto_dropped, suggestions = [], [], [], []
    for column in columns:
        if column in excluded:
            continue
        if not COLUMN.match(column) or column.lower() in RESERVED:
            problems.append(
                f"column {column!r}: "
                + ("use letters, digits and '_'" if not COLUMN.match(column) else "a name the lakehouse uses itself")
                + f"; rename it in the data, or pass --drop {column!r}"
            )
            continue
        feature, summary, why = _describe_column(events[column])
        written = events[column].filter(_present(events[column]))
        unique_per_row = (
            feature.type in ("int64", "string")
            and events.height >= MIN_ROWS_FOR_IDENTIFIER
            and written.len() == events.height
            and written.n_unique() == events.height
        )
        if unique_per_row:
            auto_dropped.append(column)
            continue
        if ID_NAME.search(column):
            suggestions.append(f"{column!r} looks like an identifier ({summary}); if it is, add it to drop")
        leak = _leak_note(feature, events[column], is_positive)
        if leak:
            suggestions.append(f"{leak}: a leak or an outcome recorded after the event? if so, add it to drop")
        if why:
            suggestions.append(f"{column!r} is kept as text: {why}")
        if feature.observed.get("distinct") == 1 or (
            feature.observed.get("min") is not None and feature.observed["min"] == feature.observed["max"]
        ):
            suggestions.append(f"{column!r} has a single value in the sample: it carries no signal")
        features.append(feature)
        summaries.append(summary)
    if problems:
        raise DatasetSpecError(f"{where}: " + "; ".join(problems))
    if not features:
        raise DatasetSpecError(f"{where}: no feature columns left after excluding entity, timestamp, label and drop")

    width = max(len(f.name) for f in features)
    lines.append(f"features ({len(features)}; ranges and categories are observations, not enforced):")
    for f, summary in zip(features, summaries, strict=True):
        kind = f.type + (f" in {f.unit!r}" if f.unit else "")
        lines.append(f"  {f.name:<{width}}  {kind:<15} {summary}")
    if drop or auto_dropped:
        lines.append(
            "dropped: "
            + ", ".join(
                [
                    *(f"{c} (--drop)" for c in drop),
                    *(f"{c} (a different value in every row: an identifier)" for c in auto_dropped),
                ]
            )
        )
    given = grain is not None
    grain, why = (grain, "given") if given else _infer_grain(events[entity], times)
    lines.append(
        (
            "grain: event (each row is one case: scored once when it lands, judged against its own label)"
            if grain == "event"
            else "grain: snapshot (rows are an entity's periodic states: the entities active on the newest day are scored)"
        )
        + f"; {why}"
        + ("" if given else f" (--grain {'snapshot' if grain == 'event' else 'event'} to change)")
    )
    if suggestions:
        lines.append("check these (edit the file to change anything):")
        lines += [f"  {s}" for s in suggestions]

    spec = DatasetSpec(
        name=name,
        entity=entity,
        timestamp=timestamp,
        label=label,
        positive=positive_text,
        features=tuple(features),
        entity_type=entity_type,
        labels=LabelsSpec(key=labels_key, label=label, time=label_time) if labels_key else None,
        label_horizon_days=horizon,
        grain=grain,
        drop=tuple(drop + auto_dropped),
        files=tuple(str(p) for p in [*files, *(labels_files or [])]),
    )
    if costs:
        spec = replace(spec, costs=(float(costs[0]), float(costs[1])))
    # The same checks a hand-written file gets (name, reserved columns, clashes), and a proof it round-trips.
    return spec_from_dict(spec.to_dict(), where), lines


SNAPSHOT_COVERAGE = 0.5  # an entity with a row on at least this share of the days is reported daily


def _infer_grain(entities: pl.Series, times: pl.Series) -> tuple[str, str]:
    """Snapshot when the typical entity has a row on most days of the data (its periodic state), else event."""
    days = pl.DataFrame({"entity": entities, "day": times.dt.date()}).drop_nulls().unique()
    if days.is_empty():
        return "event", "no dated rows to tell"
    span = (days["day"].max() - days["day"].min()).days + 1
    coverage = float(days.group_by("entity").len()["len"].median()) / span
    if span >= 7 and coverage >= SNAPSHOT_COVERAGE:
        return "snapshot", f"the typical {entities.name} has a row on {coverage:.0%} of the {span} days"
    return "event", f"the typical {entities.name} has rows on {coverage:.0%} of the {span} days: rows are cases"


def _mostly_times(values: pl.Series) -> bool:
    """Whether a text column reads as date-times in almost every written row."""
    written = values.filter(_present(values))
    if written.is_empty():
        return False
    try:
        parsed = _typed(written, "datetime")
    except pl.exceptions.ComputeError:
        return False
    return parsed.is_not_null().mean() >= 1 - MAX_BAD_TIMESTAMP_SHARE


def _label_horizon(
    events: pl.DataFrame, labels: pl.DataFrame, key: str, timestamp: str, label_time: str, lines: list[str]
) -> int:
    """Days after its event by which 95% of labels were known (the label horizon); says what it measured."""
    delays = (
        events.select(pl.col(key).str.strip_chars(), _typed(events[timestamp], "datetime").alias("_event"))
        .join(
            labels.select(pl.col(key).str.strip_chars(), _typed(labels[label_time], "datetime").alias("_known")),
            on=key,
        )
        .select(((pl.col("_known") - pl.col("_event")).dt.total_seconds() / 86_400).alias("days"))
        .drop_nulls()["days"]
    )
    if delays.is_empty():
        lines.append(f"  label time {label_time!r}: no sampled event has a label yet to measure its delay")
        return 0
    early = int((delays < 0).sum())
    p95 = float(delays.quantile(0.95))
    horizon = max(math.ceil(p95), 0)
    lines.append(
        f"  label time {label_time!r}: labels become known a median {float(delays.median()):.1f} days after their "
        f"event, 95% within {p95:.1f}: live performance waits {horizon} days (label_horizon_days)"
        + (f"; {early:,} labels predate their event (check the column)" if early else "")
    )
    return horizon


def check_spec_against_data(spec: DatasetSpec, files: list[Path], labels_files: list[Path] | None = None) -> list[str]:
    """Problems between a (hand-edited) dataset file and the data it describes; empty when they agree."""
    try:
        events, _ = read_sample(expand_files(files), optional=() if spec.labels else (spec.label,))
    except DatasetSpecError as e:
        return [str(e)]
    columns = events.columns
    problems = []
    label_in_events = spec.labels is None
    required = {
        spec.entity: "entity",
        spec.timestamp: "timestamp",
        **({spec.label: "label"} if label_in_events else {spec.labels.key: "labels key"}),
    }  # type: ignore[union-attr]
    for column, role in required.items():
        if column not in columns:
            problems.append(f"{role} column {column!r} is not in the data (columns: {', '.join(columns)})")
    for f in spec.features:
        if f.name not in columns:
            problems.append(f"feature {f.name!r} is not a column of the data (columns: {', '.join(columns)})")
    described = {*required, *(f.name for f in spec.features), *spec.drop}
    for column in columns:
        if column not in described:
            problems.append(
                f"column {column!r} is in the data but neither a feature nor dropped: "
                "list it under features or add it to drop"
            )
    for column in spec.drop:
        if column not in columns:
            problems.append(f"dropped column {column!r} is not in the data (harmless; remove it from drop)")
    if spec.timestamp in columns:
        problem, _, _ = _timestamp_check(spec.timestamp, events[spec.timestamp])
        if problem:
            problems.append(problem)
    for f in spec.features:
        if f.name in columns:
            problems += _feature_problems(f, events[f.name])

    label_values = None
    if label_in_events:
        label_values = events[spec.label] if spec.label in columns else None
    elif not labels_files:
        problems.append(f"labels come in separate files (key {spec.labels.key!r}), but no label files were given")  # type: ignore[union-attr]
    else:
        try:
            labels_frame, _ = read_sample(expand_files(labels_files))
        except DatasetSpecError as e:
            return problems + [str(e)]
        named = [(spec.labels.key, "labels key"), (spec.labels.label, "label column")]  # type: ignore[union-attr]
        if spec.labels.time:  # type: ignore[union-attr]
            named.append((spec.labels.time, "label time"))  # type: ignore[union-attr]
        for column, what in named:
            if column not in labels_frame.columns:
                problems.append(
                    f"{what} {column!r} is not in the label files (columns: {', '.join(labels_frame.columns)})"
                )
        extra = [c for c in labels_frame.columns if c not in {column for column, _ in named}]
        if extra:
            problems.append(
                f"label files have columns {extra} besides the key, the label and the label time; ingestion rejects them"
            )
        if spec.labels.label in labels_frame.columns:  # type: ignore[union-attr]
            label_values = labels_frame[spec.labels.label]  # type: ignore[union-attr]
    if label_values is not None:
        classes = _label_classes(label_values)
        problem = _label_problem(label_values.name, classes)
        if problem:
            problems.append(problem)
        else:
            try:
                _choose_positive(label_values.name, classes, spec.positive, given_as="positive")
            except DatasetSpecError as e:
                problems.append(str(e))
    return problems


def _feature_problems(feature: FeatureSpec, values: pl.Series) -> list[str]:
    """Values of a feature that validation would quarantine: unreadable, missing, or outside enforced limits."""
    problems = []
    unparsed = _unparsed(values, feature.type, feature.unit)
    if len(unparsed):
        problems.append(
            f"feature {feature.name!r} is {feature.type}"
            + (f" in {feature.unit!r}" if feature.unit else "")
            + f" but {len(unparsed):,} of {values.len():,} sampled values do not read as one "
            f"(e.g. {unparsed[0]!r}): validation would quarantine those rows"
        )
    missing = int((~_present(values)).sum())
    if missing and not feature.nullable:
        problems.append(
            f"feature {feature.name!r} is not nullable but {missing:,} sampled values are missing "
            "(set nullable: true, or those rows are quarantined)"
        )
    typed = _typed(values, feature.type, feature.unit) if feature.type != "bool" else None
    if typed is not None and feature.type != "string":
        for limit, outside in ((feature.min, typed < (feature.min or 0)), (feature.max, typed > (feature.max or 0))):
            if limit is not None and outside.sum():
                problems.append(
                    f"feature {feature.name!r}: {int(outside.sum()):,} sampled values are outside "
                    f"[{feature.min}, {feature.max}]"
                )
    if feature.enforce_categories and feature.categories and typed is not None:
        unknown = typed.drop_nulls().filter(~typed.drop_nulls().is_in(list(feature.categories))).unique()
        if len(unknown):
            problems.append(
                f"feature {feature.name!r}: values {unknown.head(5).to_list()} are not among its enforced categories"
            )
    return problems
