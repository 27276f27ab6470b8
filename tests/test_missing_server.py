"""A server test without its server skips on a laptop, saying why, and fails in CI (CI=true): CI must run it."""

from __future__ import annotations

import pytest

from tests.conftest import missing_server


def test_a_missing_server_skips_locally_and_fails_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no Redis at x"):
        missing_server("no Redis at x")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true, so a missing server is a failure"):
        missing_server("no Redis at x")
