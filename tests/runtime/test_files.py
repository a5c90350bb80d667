"""Files written whole or not at all (runtime/files.py): the old file or the new one, no temporary."""

from __future__ import annotations

from pathlib import Path

import pytest

from coworld_pipeline.runtime.files import replace_whole, write_whole


def test_a_write_replaces_the_file_and_makes_its_directory(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "out.json"
    write_whole(target, b"old")
    write_whole(target, b"new")
    assert target.read_bytes() == b"new"
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.json"]


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "stats.parquet"
    target.write_bytes(b"old")

    def half_then_fail(tmp: Path) -> None:
        tmp.write_bytes(b"half")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        replace_whole(target, half_then_fail)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["stats.parquet"]
