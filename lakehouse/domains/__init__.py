"""Domain declarations, one module per domain."""
