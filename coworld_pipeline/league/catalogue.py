"""The catalogue: coworlds, policy versions, leagues and submissions (who may play, and where).

Each public function is one transaction on a `Store` and returns a view (views.py). Bad input raises
`LeagueError` before anything is written.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from coworld_pipeline.contract import CoworldManifest
from coworld_pipeline.contract.manifest import check_game_config, load_manifest, manifest_dir
from coworld_pipeline.contract.os_limits import policy_problems
from coworld_pipeline.league import ids, readable, reads, resolve
from coworld_pipeline.league.commissioners import TWO_SLOT_ONLY, is_whole, normalize_config
from coworld_pipeline.league.errors import LeagueError
from coworld_pipeline.league.models import (
    CoworldVersion,
    Division,
    League,
    Membership,
    Policy,
    PolicyVersion,
    Submission,
    utcnow,
)
from coworld_pipeline.league.status import ELIGIBLE, MembershipStatus, SubmissionStatus
from coworld_pipeline.league.unit import Store, json_text, lock_league, record_event
from coworld_pipeline.league.views import CoworldView, LeagueView, PolicyVersionView, SubmissionView

# Supporting roles a league can run on its episodes (the optimizer runs on request, not per league).
LEAGUE_ROLES = ("reporter", "grader", "diagnoser")

DEFAULT_FAILURE_POLICY: dict[str, Any] = {
    "infra_retries": 2,  # extra attempts after an infrastructure failure
    "quarantine_after": 3,  # consecutive player failures
    "failed_slot_budget": 20,  # failed seats per round before the round is failed (None: no limit)
    "episode_timeout_seconds": 600.0,
}


def upload_coworld(store: Store, manifest_path: str | Path) -> CoworldView:
    """Validate and store a manifest (idempotent per content hash). Raises ContractError on problems."""
    manifest = load_manifest(manifest_path)
    if manifest.is_template:
        raise LeagueError("this manifest is a template (no game.version); hydrate it with `coworld build`")
    source = manifest_dir(manifest_path)
    digest = manifest.content_hash

    def fn(s: Session) -> CoworldView:
        cw = s.execute(
            select(CoworldVersion).where(CoworldVersion.content_hash == digest)
        ).scalar_one_or_none()
        created = cw is None
        if cw is None:
            cw = CoworldVersion(
                name=manifest.game.name,
                version=manifest.game.version or "",
                content_hash=digest,
                manifest=manifest.to_json_dict(),
                source_dir=str(source) if source else None,
            )
            s.add(cw)
            s.flush()
            record_event(s, "coworld_uploaded", f"coworld {manifest.label} uploaded", hash=digest)
        elif source and cw.source_dir != str(source):
            cw.source_dir = str(source)
        return reads.coworld_view(cw, created)

    return store.write(fn)


def coworlds(store: Store) -> list[CoworldView]:
    return store.read(
        lambda s: [
            reads.coworld_view(c)
            for c in s.execute(select(CoworldVersion).order_by(CoworldVersion.created_at)).scalars()
        ]
    )


# Far above any sensible setting, and inside every integer the platform stores or compares.
FAILURE_POLICY_BOUNDS = {
    "infra_retries": (0, 100),
    "quarantine_after": (1, 10_000),
    "failed_slot_budget": (0, 10**6),
}


MAX_LEAGUE_NAME_CHARS = 100
MAX_INTERVAL_MINUTES = 366 * 24 * 60
MAX_EPISODE_TIMEOUT_SECONDS = 7 * 24 * 3600


def league_name_problem(name: str) -> str | None:
    """A league's name is in every episode's and round's id (`name.r3.e13`: the CLI, events, Dagster's
    partition keys) and in every table: it must read the same everywhere it is printed or typed."""
    if not name or not name.strip():
        return "it must not be empty"
    if name != name.strip():
        return "it cannot start or end with whitespace"
    if len(name) > MAX_LEAGUE_NAME_CHARS:
        return f"it is at most {MAX_LEAGUE_NAME_CHARS} characters (got {len(name)})"
    if any(not c.isprintable() for c in name):
        return "it cannot contain tabs, newlines, escape sequences or other control characters"
    if "..." in name:
        return "it cannot contain '...' (Dagster reads it as a range of partition keys)"
    if readable.parse_round(name) or readable.parse_episode(name):
        # `coworld results x.r1` would be round 1 of league `x`, never this league.
        return "it cannot look like a round or episode reference (NAME.rN, rN, NAME.rN.eM, rN.eM)"
    return None


def coworld_manifest(store: Store, ref: str) -> dict[str, Any]:
    return store.read(lambda s: dict(resolve.coworld(s, ref).manifest))


def upload_policy(
    store: Store,
    image: str,
    name: str,
    run: list[str] | None = None,
    env: dict[str, str] | None = None,
    secret_env: dict[str, str] | None = None,
) -> PolicyVersionView:
    """Create the next version of policy `name`. An identical runnable is a duplicate (LeagueError)."""
    if not name or not name.strip() or ":" in name:
        raise LeagueError(f"bad policy name {name!r}: it must be non-empty and contain no ':'")
    if ids.looks_like_uuid(name):
        # Every command takes a policy by name or by version id: a name that is an id would be read
        # as that version (maybe another policy's).
        raise LeagueError(f"bad policy name {name[:80]!r}: it looks like a policy version id")
    if not image or not image.strip():
        raise LeagueError("the policy image must not be empty")
    run, env, secret_env = list(run or []), dict(env or {}), dict(secret_env or {})
    refused = policy_problems(image, name, run, env, secret_env)  # what execve would refuse later
    if refused:
        raise LeagueError(f"policy {name[:80]!r} cannot be uploaded as given", [p.as_dict() for p in refused])
    overlap = set(env) & set(secret_env)
    if overlap:
        raise LeagueError(f"keys given both as env and secret env: {', '.join(sorted(overlap))}")
    digest_src = {
        "image": image,
        "run": run,
        "env": env,
        "secret_keys": sorted(secret_env),
        "secret_digest": store.box.digest(secret_env) if secret_env else None,
    }
    runnable_hash = "sha256:" + hashlib.sha256(json_text(digest_src).encode()).hexdigest()
    encrypted = store.box.encrypt(secret_env)

    def fn(s: Session) -> PolicyVersionView:
        policy = s.execute(select(Policy).where(Policy.name == name)).scalar_one_or_none()
        if policy is None:
            policy = Policy(name=name)
            s.add(policy)
            s.flush()
        dup = s.execute(
            select(PolicyVersion).where(
                PolicyVersion.policy_id == policy.id, PolicyVersion.runnable_hash == runnable_hash
            )
        ).scalar_one_or_none()
        if dup is not None:
            raise LeagueError(
                f"duplicate policy version: {name}:v{dup.version} already has this image, run, env "
                "and secret env"
            )
        top = s.execute(
            select(func.max(PolicyVersion.version)).where(PolicyVersion.policy_id == policy.id)
        ).scalar()
        pv = PolicyVersion(
            policy_id=policy.id,
            version=(top or 0) + 1,
            image=image,
            run=run,
            env=env,
            secret_env_keys=sorted(secret_env),
            secret_env_encrypted=encrypted,
            runnable_hash=runnable_hash,
        )
        s.add(pv)
        s.flush()
        record_event(
            s,
            "policy_uploaded",
            f"policy {name}:v{pv.version} uploaded",
            policy_version_id=pv.id,
            secret_env_keys=sorted(secret_env),
        )
        return reads.policy_version_view(pv, name)

    return store.write(fn)


def policies(store: Store) -> list[PolicyVersionView]:
    def fn(s: Session) -> list[PolicyVersionView]:
        rows = s.execute(
            select(PolicyVersion, Policy.name)
            .join(Policy, Policy.id == PolicyVersion.policy_id)
            .order_by(Policy.name, PolicyVersion.version)
        ).all()
        return [reads.policy_version_view(pv, name) for pv, name in rows]

    return store.read(fn)


def _check_league_settings(
    divisions: int,
    interval_minutes: float | None,
    commissioner: str,
    commissioner_config: dict[str, Any] | None,
    config_overrides: dict[str, Any] | None,
    failure_policy: dict[str, Any] | None,
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    if divisions < 1 or divisions > 20:
        raise LeagueError("divisions must be between 1 and 20")
    if interval_minutes is not None and not 0 < interval_minutes <= MAX_INTERVAL_MINUTES:  # NaN too
        raise LeagueError(
            f"--interval-minutes must be more than 0 and at most {MAX_INTERVAL_MINUTES:,} (a year)"
        )
    try:
        config = normalize_config({**(commissioner_config or {}), "strategy": commissioner})
    except ValueError as err:
        raise LeagueError(str(err)) from None
    policy = {**DEFAULT_FAILURE_POLICY, **(failure_policy or {})}
    unknown = set(policy) - set(DEFAULT_FAILURE_POLICY)
    if unknown:
        raise LeagueError(f"unknown failure policy keys: {', '.join(sorted(unknown))}")
    for key, (low, high) in FAILURE_POLICY_BOUNDS.items():
        value = policy[key]
        if value is None and key == "failed_slot_budget":
            continue
        if not is_whole(value) or not low <= value <= high:
            raise LeagueError(f"{key} must be a whole number from {low} to {high:,} (got {value!r})")
    timeout = (failure_policy or {}).get("episode_timeout_seconds")
    number = isinstance(timeout, (int, float)) and not isinstance(timeout, bool)
    if timeout is not None and not (number and 1 <= timeout <= MAX_EPISODE_TIMEOUT_SECONDS):  # NaN, inf
        raise LeagueError(
            f"the episode timeout must be from 1 to {MAX_EPISODE_TIMEOUT_SECONDS:,} seconds (a week)"
        )
    overrides = dict(config_overrides or {})
    if "tokens" in overrides:
        raise LeagueError("config overrides must not set runner-managed tokens")
    return config, policy, overrides


def _check_variants(
    manifest: CoworldManifest, chosen: list[str], overrides: dict[str, Any], strategy: str
) -> None:
    twice = sorted({vid for vid in chosen if chosen.count(vid) > 1})
    if twice:  # each variant is scheduled once per pairing: a repeat would double its episodes
        raise LeagueError(f"variant {twice[0]!r} is given more than once")
    problems = []
    for vid in chosen:
        try:
            variant = manifest.variant(vid)
        except KeyError as err:
            raise LeagueError(str(err.args[0])) from None
        cfg = {**variant.game_config, **overrides}
        problems += check_game_config(manifest, cfg, f"$.league.variants.{vid}.game_config")
        if strategy in TWO_SLOT_ONLY and manifest.slots_for(cfg) != 2:
            raise LeagueError(
                f"the {strategy} commissioner needs 2-slot variants; "
                f"{vid} has {manifest.slots_for(cfg)} slots"
            )
    if problems:
        raise LeagueError(
            "config overrides do not fit the game's config schema", [p.as_dict() for p in problems]
        )


def create_league(
    store: Store,
    name: str,
    coworld: str,
    variants: list[str] | None = None,
    commissioner: str = "round-robin",
    commissioner_config: dict[str, Any] | None = None,
    divisions: int = 1,
    interval_minutes: float | None = None,
    config_overrides: dict[str, Any] | None = None,
    failure_policy: dict[str, Any] | None = None,
    roles: dict[str, str | None] | None = None,
) -> LeagueView:
    """`roles`: {"reporter"|"grader"|"diagnoser": ref or None}, each ref checked against the manifest."""
    problem = league_name_problem(name)
    if problem:
        raise LeagueError(f"bad league name {name[:MAX_LEAGUE_NAME_CHARS]!r}: {problem}")
    config, policy, overrides = _check_league_settings(
        divisions, interval_minutes, commissioner, commissioner_config, config_overrides, failure_policy
    )
    unknown_roles = sorted(set(roles or {}) - set(LEAGUE_ROLES))
    if unknown_roles:
        raise LeagueError(f"unknown league role {unknown_roles[0]!r} (one of {', '.join(LEAGUE_ROLES)})")

    def fn(s: Session) -> LeagueView:
        cw = resolve.coworld(s, coworld)
        manifest = CoworldManifest.model_validate(cw.manifest)
        chosen = list(variants or [manifest.variants[0].id])
        _check_variants(manifest, chosen, overrides, config["strategy"])
        if manifest.episode_timeout_minutes and "episode_timeout_seconds" not in (failure_policy or {}):
            # The game's own bound (0.1.64 `episode_timeout_minutes`) unless the league sets one.
            policy["episode_timeout_seconds"] = float(manifest.episode_timeout_minutes * 60)
        enabled = _check_roles(manifest, roles or {})
        if s.execute(select(League).where(League.name == name)).scalar_one_or_none() is not None:
            raise LeagueError(f"a league named {name!r} already exists")
        league = League(
            name=name,
            coworld_version_id=cw.id,
            variants=chosen,
            commissioner=config["strategy"],
            commissioner_config=config,
            config_overrides=overrides,
            failure_policy=policy,
            interval_minutes=interval_minutes,
            paused=False,
            roles=enabled,
        )
        s.add(league)
        s.flush()
        for level in range(1, divisions + 1):
            s.add(
                Division(
                    league_id=league.id, level=level, name="open" if divisions == 1 else f"division-{level}"
                )
            )
        record_event(
            s,
            "league_created",
            f"league {name} created ({config['strategy']}, variants {', '.join(chosen)})",
            league_id=league.id,
            commissioner_config=config,
            failure_policy=policy,
            config_overrides=overrides,
            roles=enabled,
        )
        s.flush()
        return reads.league_view(s, league)

    return store.write(fn)


def _check_roles(manifest: CoworldManifest, roles: dict[str, str | None]) -> dict[str, str]:
    """The enabled roles ({kind: ref}); a ref the manifest cannot resolve raises LeagueError naming it."""
    from coworld_pipeline.runtime.role_runnables import resolve_role

    enabled: dict[str, str] = {}
    for kind in LEAGUE_ROLES:
        ref = roles.get(kind)
        if ref is None:
            continue
        if not str(ref).strip():
            raise LeagueError(f"the {kind} reference must not be empty (omit it to turn the {kind} off)")
        try:
            resolve_role(kind, manifest, ref)  # type: ignore[arg-type]
        except ValueError as exc:
            raise LeagueError(f"{kind} {ref!r}: {exc}") from None
        enabled[kind] = str(ref)
    return enabled


def set_paused(store: Store, league_ref: str, paused: bool) -> LeagueView:
    def fn(s: Session) -> LeagueView:
        league = lock_league(s, resolve.league(s, league_ref).id)
        changed = league.paused != paused
        league.paused = paused
        word = "paused" if paused else "resumed"
        record_event(
            s,
            f"league_{word}",
            f"league {league.name} {word}" + ("" if changed else " (no change)"),
            league_id=league.id,
        )
        return reads.league_view(s, league)

    return store.write(fn)


def _retire_siblings(
    s: Session, league: League, membership: Membership, pv: PolicyVersion, label: str
) -> None:
    """Other versions of the same policy leave the league: one version per policy plays."""
    siblings = s.execute(
        select(Membership)
        .join(PolicyVersion, PolicyVersion.id == Membership.policy_version_id)
        .where(
            Membership.league_id == league.id,
            PolicyVersion.policy_id == pv.policy_id,
            Membership.id != membership.id,
            Membership.status.in_(ELIGIBLE),
        )
    ).scalars()
    for sib in list(siblings):
        sib.status, sib.status_reason, sib.updated_at = (
            MembershipStatus.RETIRED,
            f"superseded by {label}",
            utcnow(),
        )
        old = resolve.labels(s, [sib.policy_version_id])[sib.policy_version_id]
        record_event(
            s,
            "membership_retired",
            f"{old} retired: superseded by {label}",
            league_id=league.id,
            policy_version_id=sib.policy_version_id,
        )


def submit(store: Store, policy_ref: str, league_ref: str) -> SubmissionView:
    """Enter a policy version into a league (its lowest division, status qualifying).

    Other versions of the same policy in the league are retired (superseded); resubmitting a member
    is a no-op; a quarantined version is refused (upload a fixed version instead).
    """

    def fn(s: Session) -> SubmissionView:
        league_id = resolve.league(s, league_ref).id
        pv = resolve.policy_version(s, policy_ref)
        league = lock_league(s, league_id)
        label = resolve.labels(s, [pv.id])[pv.id]
        # Versions stored before these checks existed: refused here, not as platform errors later.
        keys = {k: "" for k in pv.secret_env_keys or []}
        refused = policy_problems(pv.image, label.rpartition(":")[0], pv.run, pv.env, keys)
        if refused:
            raise LeagueError(f"{label} cannot be run as stored", [p.as_dict() for p in refused])
        existing = s.execute(
            select(Membership).where(Membership.league_id == league.id, Membership.policy_version_id == pv.id)
        ).scalar_one_or_none()
        if existing is not None and existing.status == MembershipStatus.QUARANTINED:
            raise LeagueError(
                f"{label} is quarantined in league {league.name} ({existing.status_reason}); "
                "upload a fixed version and submit that"
            )
        status, notes = SubmissionStatus.ACCEPTED, None
        if existing is not None and existing.status in ELIGIBLE:
            status, notes, membership = (
                SubmissionStatus.ALREADY_MEMBER,
                "already a member; nothing changed",
                existing,
            )
        else:
            if existing is not None:  # retired earlier: re-enter
                membership = existing
                membership.status, membership.status_reason = MembershipStatus.QUALIFYING, "resubmitted"
                membership.consecutive_failures, membership.failure_episode_ids = 0, []
                membership.updated_at = utcnow()
            else:
                bottom = s.execute(
                    select(Division)
                    .where(Division.league_id == league.id)
                    .order_by(Division.level.desc())
                    .limit(1)
                ).scalar_one()
                membership = Membership(
                    league_id=league.id,
                    division_id=bottom.id,
                    policy_version_id=pv.id,
                    status=MembershipStatus.QUALIFYING,
                    status_reason="submitted",
                    consecutive_failures=0,
                    failure_episode_ids=[],
                )
                s.add(membership)
            s.flush()
            _retire_siblings(s, league, membership, pv, label)
        sub = Submission(
            league_id=league.id,
            policy_version_id=pv.id,
            status=status,
            membership_id=membership.id,
            notes=notes,
        )
        s.add(sub)
        s.flush()
        record_event(
            s,
            "policy_submitted",
            f"{label} submitted to {league.name}: {status}",
            league_id=league.id,
            policy_version_id=pv.id,
            division_id=membership.division_id,
        )
        return reads.submission_view(sub, league.name, label, str(membership.status))

    return store.write(fn)


__all__ = [
    "DEFAULT_FAILURE_POLICY",
    "coworld_manifest",
    "coworlds",
    "create_league",
    "policies",
    "set_paused",
    "submit",
    "upload_coworld",
    "upload_policy",
]
