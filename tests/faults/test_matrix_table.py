"""docs/fault-matrix.md cannot rot: every fault of the issue has a row, every row names tests, and
every test it names is collected by pytest under exactly that node id."""

from __future__ import annotations

import re
import subprocess
import sys

from tests.conftest import REPO

TABLE = REPO / "docs" / "fault-matrix.md"
# The fault matrix of issue 12's acceptance: each needs its row.
REQUIRED_FAULTS = (
    "game crash",
    "game hang",
    "game never healthy",
    "bad results",
    "missing results",
    "no replay",
    "player crash",
    "player hang",
    "player never connects",
    "player silent",
    "image missing",
    "CLI SIGKILL",
    "run worker SIGKILL",
    "league database unavailable mid-round",
    "S3 endpoint down",
)
NODE_ID = re.compile(r"`(tests/[\w/]+\.py::[^`\s]+)`")


def table_rows() -> dict[str, list[str]]:
    """fault -> the node ids in its `test` cell, from the `| fault | expected behaviour | test |` table."""
    lines = [line.strip() for line in TABLE.read_text().splitlines() if line.strip().startswith("|")]
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    assert header == ["fault", "expected behaviour", "test"], header
    assert set(lines[1].replace("|", "").strip()) <= {"-", ":", " "}, "the second line must be the separator"
    rows: dict[str, list[str]] = {}
    for line in lines[2:]:
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        assert len(cells) == 3, f"a row of 3 cells expected: {line}"
        fault, behaviour, tests = cells
        assert fault not in rows, f"fault {fault!r} twice"
        assert behaviour, f"row {fault!r} says nothing about what is expected"
        rows[fault] = NODE_ID.findall(tests)
        assert rows[fault], f"row {fault!r} names no test as `tests/....py::test_name`"
    return rows


def collected(files: set[str]) -> set[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *sorted(files)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return {line.strip() for line in proc.stdout.splitlines() if "::" in line}


def test_every_fault_has_a_row() -> None:
    rows = table_rows()
    for fault in REQUIRED_FAULTS:
        assert any(row.startswith(fault) for row in rows), f"no row for {fault!r} in {TABLE}"


def test_every_listed_test_exists() -> None:
    node_ids = {node for nodes in table_rows().values() for node in nodes}
    files = {node.split("::", 1)[0] for node in node_ids}
    missing_files = sorted(f for f in files if not (REPO / f).is_file())
    assert missing_files == [], f"{TABLE.name} names test files that do not exist: {missing_files}"
    missing = sorted(node_ids - collected(files))
    assert missing == [], f"{TABLE.name} names tests that pytest does not collect: {missing}"


def test_the_readme_shows_the_same_table() -> None:
    """The README's fault matrix is the table of docs/fault-matrix.md, line for line."""
    table = [line.strip() for line in TABLE.read_text().splitlines() if line.strip().startswith("|")]
    readme = [line.strip() for line in (REPO / "README.md").read_text().splitlines()]
    start = readme.index(table[0])
    assert readme[start : start + len(table)] == table, "README.md's fault matrix differs from docs/"
