"""Drift, live performance and skew checks, and the retraining policy they feed."""
