"""The catalogue: Coworlds and policies users upload, and their submissions to leagues."""

from __future__ import annotations

from typing import Annotated

import typer

from coworld_cli.league import render
from coworld_cli.league.options import AsJson, Db, Home, LeagueRequired
from coworld_cli.league.session import league_service
from coworld_cli.output import parse_env_pairs, print_json
from coworld_cli.secret_env import SecretEnv, SecretEnvFile, resolve_secret_env


def upload_coworld(
    manifest: Annotated[str, typer.Argument(help="Path of coworld_manifest.json.")],
    db: Db = None,
    home: Home = None,
    as_json: AsJson = False,
) -> None:
    """Validate and store a Coworld manifest (idempotent per content hash)."""
    with league_service(db, home, as_json, {"the manifest path": manifest}, creates=True) as svc:
        cw = svc.upload_coworld(manifest)
    if as_json:
        print_json(cw.to_json())
        return
    verb = "uploaded" if cw.created else "already uploaded"
    render.line("{}:{} " + verb + ": {}", cw.name, cw.version, cw.id)
    render.line(
        "hash {}; variants {}; players {}", cw.manifest_hash, ", ".join(cw.variants), ", ".join(cw.players)
    )


def coworlds(db: Db = None, home: Home = None, as_json: AsJson = False) -> None:
    """List uploaded Coworlds."""
    with league_service(db, home, as_json) as svc:
        rows = svc.coworlds()
    if as_json:
        print_json([c.to_json() for c in rows])
        return
    render.table(
        "coworlds",
        ["id", "name", "version", "variants", "hash", "uploaded"],
        [[c.id, c.name, c.version, ", ".join(c.variants), c.manifest_hash[:19], c.created_at] for c in rows],
    )


def upload_policy(
    image: Annotated[
        str, typer.Argument(help="Player image (the process runtime ignores it and runs --run).")
    ],
    name: Annotated[str, typer.Option("--name", "-n", help="Policy name.")],
    run: Annotated[
        list[str] | None, typer.Option("--run", help="argv element (repeatable); replaces the image command.")
    ] = None,
    env: Annotated[list[str] | None, typer.Option("--env", help="Public KEY=VALUE (repeatable).")] = None,
    secret_env: SecretEnv = None,
    secret_env_file: SecretEnvFile = None,
    db: Db = None,
    home: Home = None,
    as_json: AsJson = False,
) -> None:
    """Create the next version of a policy (name:vN)."""
    env_map = parse_env_pairs(env or [], "--env", as_json)
    secret_map = resolve_secret_env(secret_env, secret_env_file, as_json)  # stored encrypted
    with league_service(db, home, as_json, {"the image": image, "--name": name}, creates=True) as svc:
        pv = svc.upload_policy(image, name, run=run or [], env=env_map, secret_env=secret_map)
    if as_json:
        print_json(pv.to_json())
        return
    render.line("policy {} created: {}", pv.label, pv.id)
    if pv.secret_env_keys:
        render.line("secret env (encrypted): {}", ", ".join(pv.secret_env_keys))


def policies(db: Db = None, home: Home = None, as_json: AsJson = False) -> None:
    """List policy versions (secret env: key names only)."""
    with league_service(db, home, as_json) as svc:
        rows = svc.policies()
    if as_json:
        print_json([p.to_json() for p in rows])
        return
    render.table(
        "policy versions",
        ["policy", "id", "image", "run", "secret env", "created"],
        [[p.label, p.id, p.image, " ".join(p.run), ", ".join(p.secret_env_keys), p.created_at] for p in rows],
    )


def submit(
    policy: Annotated[str, typer.Argument(help="NAME, NAME:vN or a policy version id.")],
    league: LeagueRequired,
    db: Db = None,
    home: Home = None,
    as_json: AsJson = False,
) -> None:
    """Submit a policy version to a league."""
    with league_service(db, home, as_json, {"the policy": policy, "--league": league}) as svc:
        sub = svc.submit(policy, league)
    if as_json:
        print_json(sub.to_json())
        return
    render.line(
        "submission {}: {}; membership {} ({})",
        sub.id,
        sub.status,
        sub.league_policy_membership_id,
        sub.membership_status,
    )


def register(app: typer.Typer) -> None:
    app.command("upload-coworld")(upload_coworld)
    app.command("coworlds")(coworlds)
    app.command("upload-policy")(upload_policy)
    app.command("policies")(policies)
    app.command("submit")(submit)
