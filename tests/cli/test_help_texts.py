"""Every option and argument of every `coworld` command says what it is for in `--help`."""

from __future__ import annotations

import typer

from coworld_cli import main


def test_every_option_has_help_text() -> None:
    for register in (
        main.register_episode_commands,
        main.register_role_commands,
        main.register_knowledge_commands,
        main.register_serve_commands,
        main.register_league_commands,
    ):
        register()
    missing: list[str] = []

    def walk(command: object, path: list[str]) -> None:
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, [*path, name])
        for param in getattr(command, "params", []):
            if param.name != "help" and not (getattr(param, "help", None) or "").strip():
                missing.append(f"coworld {' '.join(path)} {param.opts[0]}")

    walk(typer.main.get_command(main.app), [])
    assert missing == [], "options without help text:\n" + "\n".join(missing)
