"""The `lakehouse` command line: drives the Dagster code location headlessly, above the core."""
