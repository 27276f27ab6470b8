"""Atomic writes: a write that dies half-way leaves nothing a reader would pick up."""

from __future__ import annotations

import duckdb
import polars as pl
import pytest

from lakehouse.io import copy_file_atomic, copy_to_parquet_atomic, parquet_glob, write_parquet_atomic


def test_a_failed_parquet_write_leaves_no_file_and_keeps_the_old_one(tmp_path, monkeypatch):
    target = tmp_path / "t.parquet"
    write_parquet_atomic(pl.DataFrame({"a": [1]}), target)

    def die_half_way(self, path, **kwargs):
        open(path, "wb").write(b"PAR1 half a file")
        raise OSError("killed")

    monkeypatch.setattr(pl.DataFrame, "write_parquet", die_half_way)
    with pytest.raises(OSError):
        write_parquet_atomic(pl.DataFrame({"a": [2]}), target)
    monkeypatch.undo()
    assert pl.read_parquet(target)["a"].to_list() == [1]
    assert [p.name for p in tmp_path.iterdir()] == ["t.parquet"]


def test_a_failed_duckdb_copy_leaves_no_file(tmp_path):
    target = tmp_path / "t.parquet"
    with duckdb.connect() as con, pytest.raises(duckdb.Error):
        copy_to_parquet_atomic(con, "SELECT 1 / 0 AS x, error('boom')", target)
    assert not target.exists()
    assert duckdb.sql(f"SELECT count(*) FROM glob('{parquet_glob(tmp_path)}')").fetchall() == [(0,)]


def test_an_atomic_copy_replaces_the_target_and_leaves_no_temporary_file(tmp_path):
    source, target = tmp_path / "a.parquet", tmp_path / "out" / "b.parquet"
    write_parquet_atomic(pl.DataFrame({"x": [1, 2]}), source)
    write_parquet_atomic(pl.DataFrame({"x": [9]}), target)
    assert copy_file_atomic(source, target) == target
    assert target.read_bytes() == source.read_bytes()
    assert [f.name for f in target.parent.iterdir()] == ["b.parquet"]
