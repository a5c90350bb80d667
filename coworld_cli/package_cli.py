"""Package commands: `build` (hydrate a template from a Compose build) and `convert` (another generation)."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.markup import escape

from coworld_cli import output as out  # its consoles are made on first use: `out.console`
from coworld_cli.output import (
    EXIT_FAILED,
    JSON_OPTION,
    fail_contract,
    fail_usage,
    output_file,
    print_json,
    usable_path,
    write_output,
)
from coworld_pipeline.contract.problems import ContractError


def register(app: typer.Typer) -> None:
    @app.command()
    def build(
        compose_file: Path = typer.Argument(..., help="Compose file whose services build the images."),
        template: Path = typer.Argument(..., help="Manifest template ({{SERVICE_IMAGE}} placeholders)."),
        version: str = typer.Argument(..., help="game.version to write (PEP 440)."),
        output: Path = typer.Argument(..., help="Where to write the hydrated manifest."),
        as_json: bool = JSON_OPTION,
    ) -> None:
        """Run the Compose build, tag images by content, write the hydrated manifest (CONTRACT §2.10)."""
        from coworld_pipeline.runtime.build import BuildError
        from coworld_pipeline.runtime.build import build as run_build

        if not usable_path(compose_file, "compose file", as_json).is_file():
            fail_usage(f"no compose file at {compose_file}", as_json)
        usable_path(template, "manifest template", as_json)
        output_file(output, "output", "json", as_json)
        try:
            result = run_build(compose_file, template, version, output)
        except ContractError as exc:
            fail_contract(exc, as_json)
        except BuildError as exc:
            if as_json:
                print_json({"ok": False, "error": str(exc)})
            else:
                out.err_console.print(f"[bold red]build failed:[/] {escape(str(exc))}")
            raise typer.Exit(EXIT_FAILED) from None
        if as_json:
            print_json(result.to_json())
            return
        for before, after in result.images.items():
            out.console.print(f"{before} -> {after}", markup=False)
        out.console.print(f"[bold green]wrote[/] {escape(str(result.output))}")

    @app.command()
    def convert(
        manifest: str = typer.Argument(..., help="Manifest path or URL (any generation)."),
        contract: str = typer.Option(..., "--contract", help="Target generation: 0.1.11 | 0.1.64."),
        output: Path = typer.Option(..., "--output", "-o", help="Where to write the converted manifest."),
        as_json: bool = JSON_OPTION,
    ) -> None:
        """Write the manifest for another generation; say what could not be carried over."""
        from coworld_cli.episode_cli import load_manifest_or_exit
        from coworld_pipeline.contract.convert import TARGETS
        from coworld_pipeline.contract.convert import convert as run_convert

        if contract not in TARGETS:
            fail_usage(f"--contract must be one of {', '.join(TARGETS)} (got {contract!r})", as_json)
        output = output_file(output, "--output", "json", as_json)
        m = load_manifest_or_exit(manifest, as_json)
        try:
            result = run_convert(m, contract)
        except ContractError as exc:
            fail_contract(exc, as_json)
        except ValueError as exc:
            fail_usage(str(exc), as_json)
        write_output(output, (json.dumps(result.manifest, indent=2) + "\n").encode(), "--output", as_json)
        if as_json:
            print_json({"ok": True, "output": str(output), **result.to_json()})
            return
        out.console.print(f"[bold green]wrote[/] {escape(str(output))} for contract {escape(contract)}")
        for note in result.notes:
            out.console.print(f"  - {note}", markup=False)
