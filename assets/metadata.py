"""Helpers that turn plain records into Dagster metadata (tables, schemas, markdown)."""

from typing import Any

import dagster as dg

from lakehouse.declarations.domain import Source
from lakehouse.lake.validation import POLARS_TYPES


def records_table(records: list[dict[str, Any]], columns: list[str]) -> dg.TableMetadataValue:
    """A Dagster table of some fields of a list of records."""
    schema = dg.TableSchema(columns=[dg.TableColumn(c, "string") for c in columns])
    rows = [dg.TableRecord({c: str(r.get(c, "")) for c in columns}) for r in records]
    return dg.MetadataValue.table(rows, schema=schema)


def source_schema(source: Source) -> dg.TableSchema:
    """The typed column schema of a source, with its constraints as descriptions."""
    columns = []
    for c in source.columns:
        rules = [f"{k} {v}" for k, v in (("in", c.isin), (">=", c.ge), ("<=", c.le)) if v is not None]
        rules += ["not in future"] if c.not_in_future else []
        columns.append(
            dg.TableColumn(
                c.name,
                str(POLARS_TYPES[c.dtype]),
                description="; ".join([c.description, *rules]).strip("; "),
                constraints=dg.TableColumnConstraints(nullable=c.nullable),
            )
        )
    return dg.TableSchema(columns=columns)


def markdown_list(items: list[str], empty: str = "none") -> dg.MarkdownMetadataValue:
    """A markdown bullet list (or a word saying there is nothing)."""
    return dg.MetadataValue.md("\n".join(f"- {i}" for i in items) if items else empty)
