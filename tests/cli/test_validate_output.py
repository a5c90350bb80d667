"""`coworld validate`'s human summary prints an author's names as text, whatever markup they hold."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MANIFEST = REPO / "examples" / "orchard" / "coworld_manifest.json"
MARKUP = "[/] [bold]x[/bold] [link=http://evil]y"


def test_validate_summary_prints_markup_in_names_verbatim(tmp_path: Path) -> None:
    manifest = json.loads(MANIFEST.read_text())
    manifest["game"]["description"] = MARKUP
    manifest["game"]["owner"] = MARKUP
    manifest["variants"][0]["name"] = MARKUP
    path = tmp_path / "coworld_manifest.json"
    path.write_text(json.dumps(manifest))
    proc = subprocess.run(
        [sys.executable, "-m", "coworld_cli.main", "validate", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"COLUMNS": "400", "PATH": "/usr/bin:/bin", "COWORLD_HOME": str(tmp_path / "home")},
    )
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    # Printed as written: the description line, the owner and the variant's name in the table.
    assert proc.stdout.count("[/] [bold]x[/bold]") >= 3, proc.stdout
