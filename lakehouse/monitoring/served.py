"""What the service served: logged feature JSON parsed back into typed frames, and UTC-naive timestamps."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import polars as pl


def _number(value: Any) -> float | None:
    if value is None or isinstance(value, (dict, list)):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def _column(values: list[Any], dtype: pl.DataType) -> pl.Series:
    """JSON values as a column of the reference dtype (integers only when every value is whole)."""
    if dtype.is_numeric():
        numbers = pl.Series(values=[_number(v) for v in values], dtype=pl.Float64)
        if dtype.is_integer():
            whole = numbers.drop_nulls()
            if whole.is_empty() or bool(((whole % 1) == 0).all() & whole.is_finite().all()):
                return numbers.cast(dtype, strict=False)
        return numbers
    if dtype in (pl.String, pl.Categorical) or isinstance(dtype, pl.Enum):
        return pl.Series(values=[None if v is None else str(v) for v in values], dtype=pl.String)
    if dtype == pl.Boolean:
        return pl.Series(values=[v if isinstance(v, bool) else None for v in values], dtype=pl.Boolean)
    return pl.Series(values=values, strict=False).cast(dtype, strict=False)


def served_features(log: pl.DataFrame, schema: Mapping[str, pl.DataType], entity_key: str) -> pl.DataFrame:
    """The features served with each successful prediction, as typed columns matching `schema`.

    Rows with an error, no feature JSON or JSON that does not parse are dropped. Output columns: the
    entity key, logged_at and model_version (when the log has them), then every feature of `schema`.
    """
    keep = log.filter(pl.col("features").is_not_null())
    if "error" in keep.columns:
        keep = keep.filter(pl.col("error").is_null())
    parsed, rows = [], []
    for i, text in enumerate(keep["features"].to_list()):
        try:
            # Python's parser, not polars': the service's json.dumps writes NaN, which strict JSON lacks.
            value = json.loads(text)
        except (TypeError, ValueError):
            continue
        if isinstance(value, dict):
            parsed.append(value)
            rows.append(i)
    meta = [c for c in (entity_key, "logged_at", "model_version") if c in keep.columns]
    out = keep.select(meta)[rows] if rows else keep.select(meta).clear()
    columns = [_column([p.get(f) for p in parsed], dtype).alias(f) for f, dtype in schema.items()]
    return out.with_columns(columns) if columns else out


def _naive_utc(column: str) -> pl.Expr:
    """A datetime column as naive UTC microseconds (the lake's convention), whatever its zone."""
    return pl.col(column).dt.convert_time_zone("UTC").dt.replace_time_zone(None).cast(pl.Datetime("us"))


def to_naive_utc(frame: pl.DataFrame, column: str) -> pl.DataFrame:
    dtype = frame.schema[column]
    if isinstance(dtype, pl.Datetime) and dtype.time_zone is not None:
        return frame.with_columns(_naive_utc(column))
    return frame.with_columns(pl.col(column).cast(pl.Datetime("us")))
