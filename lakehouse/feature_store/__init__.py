"""Feast: objects and configuration per domain, online materialization, online stores."""
