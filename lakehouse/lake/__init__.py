"""Landing files to lake tables: bronze batches, validation, silver, feature tables, the DuckDB catalog."""
