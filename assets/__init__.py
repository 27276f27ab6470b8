"""The Dagster code location: wiring only. The logic lives in the lakehouse package."""
