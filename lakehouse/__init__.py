"""The lakehouse core: domain declarations, transformations, validation, features and the CLI.

It never imports Dagster or BentoML, so the command line and services start fast.
"""
