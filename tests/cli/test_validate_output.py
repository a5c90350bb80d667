"""`coworld validate`'s human summary prints an author's names as text, whatever markup or control
characters they hold."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MANIFEST = REPO / "examples" / "orchard" / "coworld_manifest.json"
MARKUP = "[/] [bold]x[/bold] [link=http://evil]y"


def _validate(path: Path, home: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "coworld_cli.main", "validate", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"COLUMNS": "400", "PATH": "/usr/bin:/bin", "COWORLD_HOME": str(home), **env},
    )


def test_validate_summary_prints_markup_in_names_verbatim(tmp_path: Path) -> None:
    manifest = json.loads(MANIFEST.read_text())
    manifest["game"]["description"] = MARKUP
    manifest["game"]["owner"] = MARKUP
    manifest["variants"][0]["name"] = MARKUP
    path = tmp_path / "coworld_manifest.json"
    path.write_text(json.dumps(manifest))
    proc = _validate(path, tmp_path / "home")
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    # Printed as written: the description line, the owner and the variant's name in the table.
    assert proc.stdout.count("[/] [bold]x[/bold]") >= 3, proc.stdout


def test_control_sequences_in_names_are_shown_not_obeyed_on_a_terminal(tmp_path: Path) -> None:
    """A manifest is someone else's input: its names cannot clear, recolour or retitle the reader's
    terminal. Rich's own styling still reaches it; piped output stays byte for byte."""
    clear, red, title = "\x1b[2J", "\x1b[31m", "\x1b]0;pwned\x07"
    manifest = json.loads(MANIFEST.read_text())
    manifest["game"]["description"] = f"wipe{clear}here"
    manifest["game"]["owner"] = f"own{title}er"
    manifest["variants"][0]["name"] = f"v{red}red"
    path = tmp_path / "coworld_manifest.json"
    path.write_text(json.dumps(manifest))

    terminal = _validate(path, tmp_path / "home", FORCE_COLOR="1")  # Rich: writing to a terminal
    assert terminal.returncode == 0, terminal.stderr
    for raw in (clear, red, title):
        assert raw not in terminal.stdout
    assert "wipe\\x1b[2Jhere" in terminal.stdout and "v\\x1b[31mred" in terminal.stdout
    assert "own\\x1b]0;pwned" in terminal.stdout  # (Rich drops the BEL itself)
    assert "\x1b[1;32mvalid\x1b[0m" in terminal.stdout  # its own colours are still sent

    piped = _validate(path, tmp_path / "home")
    assert piped.returncode == 0, piped.stderr
    assert f"wipe{clear}here" in piped.stdout and "\x1b[1;32m" not in piped.stdout
