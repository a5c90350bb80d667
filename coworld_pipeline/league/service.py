"""The league service: catalogue, round driving, results. Dagster-free; every call is one short transaction.

Concurrency rules (several processes may drive the same database):

* every write transaction that touches a league locks the league row first (`FOR UPDATE` on
  Postgres; on SQLite all writers are serialized by `BEGIN IMMEDIATE`), so round state, ratings and
  memberships change one transaction at a time;
* an episode is claimed by a conditional update (`pending → running, attempt + 1`) and its outcome
  is recorded only if the row is still `running` with that attempt, so nothing is run or counted twice;
* at most one open round per league is enforced by a unique column (`rounds.open_marker`).

Every scheduler decision is written to `events` in the same transaction as the change it explains.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import and_, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from coworld_pipeline.contract import (
    CoworldManifest,
    EpisodeRequest,
    PlayerSpec,
    parse_manifest,
)
from coworld_pipeline.contract.commissioner import (
    MAX_STATE_BYTES,
    CommissionerProtocolError,
    DivisionInfo,
    EpisodeFailed,
    EpisodeResult,
    EpisodesAccepted,
    EpisodeScore,
    EpisodesRejected,
    LeagueInfo,
    MembershipInfo,
    RecentResult,
    RoundAbort,
    RoundComplete,
    RoundStart,
    ScheduleEpisodes,
    VariantInfo,
    parse_commissioner_message,
    state_size,
)
from coworld_pipeline.contract.manifest import check_game_config, load_manifest, manifest_dir
from coworld_pipeline.league import ids
from coworld_pipeline.league.commissioners import TWO_SLOT_ONLY, make_commissioner, normalize_config
from coworld_pipeline.league.db import make_engine, migrate, run_read, run_write
from coworld_pipeline.league.errors import LeagueError, NotFound
from coworld_pipeline.league.location import league_location
from coworld_pipeline.league.models import (
    CoworldVersion,
    Division,
    EpisodeRequestRow,
    EpisodeSlot,
    Event,
    GraduationChangeRow,
    League,
    Membership,
    Policy,
    PolicyVersion,
    Rating,
    Round,
    RoundResult,
    Submission,
    utcnow,
)
from coworld_pipeline.league.ratings import MU, SIGMA, Standing, apply_episode, credit
from coworld_pipeline.league.secrets import SecretBox, load_or_create_key
from coworld_pipeline.league.standings_reader import standing_rows
from coworld_pipeline.runtime.errors import EpisodeFailure, ErrorType

ELIGIBLE = ("qualifying", "active")
TERMINAL = ("succeeded", "failed", "cancelled")
DEFAULT_FAILURE_POLICY: dict[str, Any] = {
    "infra_retries": 2,  # extra attempts after an infrastructure failure
    "quarantine_after": 3,  # consecutive player failures
    "failed_slot_budget": 20,  # failed seats per round before the round is failed (None: no limit)
    "episode_timeout_seconds": 600.0,
}
FAILURE_POLICY_KEYS = set(DEFAULT_FAILURE_POLICY)


class _RoundFailure(Exception):
    pass


@dataclass
class RoundProgress:
    round_id: str
    status: str
    new_pending: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)
    running: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    done: bool = False
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "round_id": ids.public("round", self.round_id),
            "status": self.status,
            "new_pending": [ids.public("ereq", e) for e in self.new_pending],
            "pending": [ids.public("ereq", e) for e in self.pending],
            "running": [ids.public("ereq", e) for e in self.running],
            "counts": self.counts,
            "done": self.done,
            "error": self.error,
        }


EpisodeRunner = Callable[[EpisodeRequest, Path, dict[int, dict[str, str]]], Any]


def _dt(value: datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") + "Z" if value else None


def _json_text(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


class LeagueService:
    def __init__(self, database_url: str | None = None, home: Path | None = None):
        self.home, self.database_url = league_location(database_url, home)
        self.engine = make_engine(self.database_url)
        migrate(self.engine, self.database_url)
        self._box: SecretBox | None = None

    def close(self) -> None:
        self.engine.dispose()

    # ---- plumbing ---------------------------------------------------------------------------------

    @property
    def box(self) -> SecretBox:
        if self._box is None:
            self._box = SecretBox(load_or_create_key(self.home))
        return self._box

    def _write(self, fn: Callable[[Session], Any], integrity_retries: int = 4) -> Any:
        for attempt in range(integrity_retries):
            try:
                return run_write(self.engine, fn)
            except IntegrityError:
                if attempt + 1 == integrity_retries:
                    raise
        raise AssertionError("unreachable")

    def _read(self, fn: Callable[[Session], Any]) -> Any:
        return run_read(self.engine, fn)

    def episode_workspace(self, ereq_id: str) -> Path:
        return self.home / "episodes" / ids.public("ereq", ids.raw_id("ereq", ereq_id))

    @staticmethod
    def _event(
        s: Session,
        event_type: str,
        headline: str,
        *,
        league_id: str | None = None,
        division_id: str | None = None,
        round_id: str | None = None,
        ereq_id: str | None = None,
        policy_version_id: str | None = None,
        **payload: Any,
    ) -> None:
        s.add(
            Event(
                event_type=event_type,
                headline=headline,
                league_id=league_id,
                division_id=division_id,
                round_id=round_id,
                ereq_id=ereq_id,
                policy_version_id=policy_version_id,
                payload=payload,
            )
        )

    @staticmethod
    def _lock_league(s: Session, league_id: str) -> League:
        league = s.execute(
            select(League).where(League.id == league_id).with_for_update()
        ).scalar_one_or_none()
        if league is None:
            raise NotFound(f"unknown league {ids.public('league', league_id)}")
        return league

    # ---- resolvers ---------------------------------------------------------------------------------

    @staticmethod
    def _league(s: Session, ref: str) -> League:
        raw = ids.raw_id("league", ref)
        league = s.get(League, raw) if ids.looks_like_uuid(raw) else None
        league = league or s.execute(select(League).where(League.name == ref)).scalar_one_or_none()
        if league is None:
            raise NotFound(f"unknown league {ref!r}")
        return league

    @staticmethod
    def _coworld(s: Session, ref: str) -> CoworldVersion:
        raw = ids.raw_id("coworld", ref)
        cw = s.get(CoworldVersion, raw) if ids.looks_like_uuid(raw) else None
        if cw is None and ref.startswith("sha256:"):
            cw = s.execute(
                select(CoworldVersion).where(CoworldVersion.content_hash == ref)
            ).scalar_one_or_none()
        if cw is None:
            name, _, version = ref.partition(":")
            q = select(CoworldVersion).where(CoworldVersion.name == name)
            if version:
                q = q.where(CoworldVersion.version == version)
            cw = s.execute(q.order_by(CoworldVersion.created_at.desc()).limit(1)).scalar_one_or_none()
        if cw is None:
            raise NotFound(f"unknown coworld {ref!r} (upload it with `coworld upload-coworld MANIFEST`)")
        return cw

    @staticmethod
    def _policy_version(s: Session, ref: str) -> PolicyVersion:
        if ids.looks_like_uuid(ref):
            pv = s.get(PolicyVersion, ref)
            if pv is not None:
                return pv
        name, sep, ver = ref.rpartition(":")
        if not sep:
            name, ver = ref, ""
        policy = s.execute(select(Policy).where(Policy.name == name)).scalar_one_or_none()
        if policy is None:
            raise NotFound(
                f"unknown policy {name!r} (upload it with `coworld upload-policy IMAGE --name {name}`)"
            )
        q = select(PolicyVersion).where(PolicyVersion.policy_id == policy.id)
        if ver:
            digits = ver[1:] if ver.startswith("v") else ver
            if not digits.isdigit() or int(digits) < 1:
                raise LeagueError(f"bad policy version {ref!r}: use NAME, NAME:vN or NAME:N with N > 0")
            pv = s.execute(q.where(PolicyVersion.version == int(digits))).scalar_one_or_none()
        else:
            pv = s.execute(q.order_by(PolicyVersion.version.desc()).limit(1)).scalar_one_or_none()
        if pv is None:
            raise NotFound(f"unknown policy version {ref!r}")
        return pv

    @staticmethod
    def _division(s: Session, ref: str, league: League | None = None) -> Division:
        raw = ids.raw_id("division", ref)
        div = s.get(Division, raw) if ids.looks_like_uuid(raw) else None
        if div is None and league is not None:
            div = s.execute(
                select(Division).where(Division.league_id == league.id, Division.name == ref)
            ).scalar_one_or_none()
        if div is None:
            raise NotFound(f"unknown division {ref!r}")
        return div

    @staticmethod
    def _round(s: Session, ref: str) -> Round:
        raw = ids.raw_id("round", ref)
        rnd = s.get(Round, raw) if ids.looks_like_uuid(raw) else None
        if rnd is None:
            raise NotFound(f"unknown round {ref!r}")
        return rnd

    @staticmethod
    def _ereq(s: Session, ref: str) -> EpisodeRequestRow:
        raw = ids.raw_id("ereq", ref)
        e = s.get(EpisodeRequestRow, raw) if ids.looks_like_uuid(raw) else None
        if e is None:
            raise NotFound(f"unknown episode request {ref!r}")
        return e

    def _labels(self, s: Session, pv_ids: list[str]) -> dict[str, str]:
        if not pv_ids:
            return {}
        rows = s.execute(
            select(PolicyVersion.id, Policy.name, PolicyVersion.version)
            .join(Policy, Policy.id == PolicyVersion.policy_id)
            .where(PolicyVersion.id.in_(set(pv_ids)))
        ).all()
        return {r[0]: f"{r[1]}:v{r[2]}" for r in rows}

    # ---- catalogue ---------------------------------------------------------------------------------

    def upload_coworld(self, manifest_path: str | Path) -> dict[str, Any]:
        """Validate and store a manifest (idempotent per content hash). Raises ContractError on problems."""
        manifest = load_manifest(manifest_path)
        if manifest.is_template:
            raise LeagueError(
                "this manifest is a template (no game.version); hydrate it with `coworld build`"
            )
        source = manifest_dir(manifest_path)
        digest = manifest.content_hash

        def fn(s: Session) -> dict[str, Any]:
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
                self._event(s, "coworld_uploaded", f"coworld {manifest.label} uploaded", hash=digest)
            elif source and cw.source_dir != str(source):
                cw.source_dir = str(source)
            return {**self._coworld_json(cw), "created": created}

        return self._write(fn)

    @staticmethod
    def _coworld_json(cw: CoworldVersion) -> dict[str, Any]:
        manifest = cw.manifest
        return {
            "id": ids.public("coworld", cw.id),
            "name": cw.name,
            "version": cw.version,
            "manifest_hash": cw.content_hash,
            "source_dir": cw.source_dir,
            "variants": [v["id"] for v in manifest.get("variants", [])],
            "players": [p["id"] for p in manifest.get("player", [])],
            "created_at": _dt(cw.created_at),
        }

    def coworld_manifest(self, ref: str) -> dict[str, Any]:
        return self._read(lambda s: dict(self._coworld(s, ref).manifest))

    def coworlds(self) -> list[dict[str, Any]]:
        return self._read(
            lambda s: [
                self._coworld_json(c)
                for c in s.execute(select(CoworldVersion).order_by(CoworldVersion.created_at)).scalars()
            ]
        )

    def upload_policy(
        self,
        image: str,
        name: str,
        run: list[str] | None = None,
        env: dict[str, str] | None = None,
        secret_env: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """Create the next version of policy `name`. An identical runnable is a duplicate (LeagueError)."""
        if not name or not name.strip() or ":" in name:
            raise LeagueError(f"bad policy name {name!r}: it must be non-empty and contain no ':'")
        if not image or not image.strip():
            raise LeagueError("the policy image must not be empty")
        run, env, secret_env = list(run or []), dict(env or {}), dict(secret_env or {})
        overlap = set(env) & set(secret_env)
        if overlap:
            raise LeagueError(f"keys given both as env and secret env: {', '.join(sorted(overlap))}")
        digest_src = {
            "image": image,
            "run": run,
            "env": env,
            "secret_keys": sorted(secret_env),
            "secret_digest": self.box.digest(secret_env) if secret_env else None,
        }
        runnable_hash = "sha256:" + hashlib.sha256(_json_text(digest_src).encode()).hexdigest()
        encrypted = self.box.encrypt(secret_env)

        def fn(s: Session) -> dict[str, Any]:
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
                    f"duplicate policy version: {name}:v{dup.version} already has this image, run, "
                    "env and secret env"
                )
            top = (
                s.execute(
                    select(func.max(PolicyVersion.version)).where(PolicyVersion.policy_id == policy.id)
                ).scalar()
                or 0
            )
            pv = PolicyVersion(
                policy_id=policy.id,
                version=top + 1,
                image=image,
                run=run,
                env=env,
                secret_env_keys=sorted(secret_env),
                secret_env_encrypted=encrypted,
                runnable_hash=runnable_hash,
            )
            s.add(pv)
            s.flush()
            self._event(
                s,
                "policy_uploaded",
                f"policy {name}:v{pv.version} uploaded",
                policy_version_id=pv.id,
                secret_env_keys=sorted(secret_env),
            )
            return self._pv_json(pv, name)

        return self._write(fn)

    @staticmethod
    def _pv_json(pv: PolicyVersion, name: str) -> dict[str, Any]:
        return {
            "id": pv.id,
            "policy": {"id": pv.policy_id, "name": name},
            "name": name,
            "version": pv.version,
            "label": f"{name}:v{pv.version}",
            "image": pv.image,
            "run": pv.run,
            "env": pv.env,
            "secret_env_keys": pv.secret_env_keys,  # names only, never values
            "created_at": _dt(pv.created_at),
        }

    def policies(self) -> list[dict[str, Any]]:
        def fn(s: Session) -> list[dict[str, Any]]:
            rows = s.execute(
                select(PolicyVersion, Policy.name)
                .join(Policy, Policy.id == PolicyVersion.policy_id)
                .order_by(Policy.name, PolicyVersion.version)
            ).all()
            return [self._pv_json(pv, name) for pv, name in rows]

        return self._read(fn)

    def create_league(
        self,
        name: str,
        coworld: str,
        variants: list[str] | None = None,
        commissioner: str = "round-robin",
        commissioner_config: dict[str, Any] | None = None,
        divisions: int = 1,
        interval_minutes: float | None = None,
        config_overrides: dict[str, Any] | None = None,
        failure_policy: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        if not name or not name.strip():
            raise LeagueError("the league name must not be empty")
        if divisions < 1 or divisions > 20:
            raise LeagueError("divisions must be between 1 and 20")
        if interval_minutes is not None and interval_minutes <= 0:
            raise LeagueError("--interval-minutes must be positive")
        try:
            config = normalize_config({**(commissioner_config or {}), "strategy": commissioner})
        except ValueError as err:
            raise LeagueError(str(err)) from None
        policy = {**DEFAULT_FAILURE_POLICY, **(failure_policy or {})}
        unknown = set(policy) - FAILURE_POLICY_KEYS
        if unknown:
            raise LeagueError(f"unknown failure policy keys: {', '.join(sorted(unknown))}")
        overrides = dict(config_overrides or {})
        if "tokens" in overrides:
            raise LeagueError("config overrides must not set runner-managed tokens")

        def fn(s: Session) -> dict[str, Any]:
            cw = self._coworld(s, coworld)
            manifest = CoworldManifest.model_validate(cw.manifest)
            chosen = list(variants or [manifest.variants[0].id])
            problems = []
            for vid in chosen:
                try:
                    v = manifest.variant(vid)
                except KeyError as err:
                    raise LeagueError(str(err.args[0])) from None
                cfg = {**v.game_config, **overrides}
                problems += check_game_config(manifest, cfg, f"$.league.variants.{vid}.game_config")
                if config["strategy"] in TWO_SLOT_ONLY and manifest.slots_for(cfg) != 2:
                    raise LeagueError(
                        f"the {config['strategy']} commissioner needs 2-slot variants; {vid} has "
                        f"{manifest.slots_for(cfg)} slots"
                    )
            if problems:
                raise LeagueError(
                    "config overrides do not fit the game's config schema", [p.as_dict() for p in problems]
                )
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
            )
            s.add(league)
            s.flush()
            for level in range(1, divisions + 1):
                s.add(
                    Division(
                        league_id=league.id,
                        level=level,
                        name="open" if divisions == 1 else f"division-{level}",
                    )
                )
            self._event(
                s,
                "league_created",
                f"league {name} created ({config['strategy']}, variants {', '.join(chosen)})",
                league_id=league.id,
                commissioner_config=config,
                failure_policy=policy,
                config_overrides=overrides,
            )
            s.flush()
            return self._league_json(s, league)

        return self._write(fn)

    def _league_json(self, s: Session, league: League) -> dict[str, Any]:
        cw = s.get(CoworldVersion, league.coworld_version_id)
        divs = (
            s.execute(select(Division).where(Division.league_id == league.id).order_by(Division.level))
            .scalars()
            .all()
        )
        counts = dict(
            s.execute(
                select(Membership.status, func.count())
                .where(Membership.league_id == league.id)
                .group_by(Membership.status)
            ).all()
        )
        last = s.execute(
            select(Round).where(Round.league_id == league.id).order_by(Round.round_number.desc()).limit(1)
        ).scalar_one_or_none()
        return {
            "id": ids.public("league", league.id),
            "name": league.name,
            "coworld": {"id": ids.public("coworld", cw.id), "name": cw.name, "version": cw.version},
            "variants": league.variants,
            "commissioner_key": league.commissioner,
            "commissioner_config": league.commissioner_config,
            "config_overrides": league.config_overrides,
            "failure_policy": league.failure_policy,
            "interval_minutes": league.interval_minutes,
            "paused": league.paused,
            "divisions": [
                {"id": ids.public("division", d.id), "name": d.name, "level": d.level} for d in divs
            ],
            "memberships": counts,
            "last_round": None
            if last is None
            else {"id": ids.public("round", last.id), "number": last.round_number, "status": last.status},
            "created_at": _dt(league.created_at),
        }

    def leagues(self, ref: str | None = None) -> list[dict[str, Any]]:
        def fn(s: Session) -> list[dict[str, Any]]:
            if ref:
                return [self._league_json(s, self._league(s, ref))]
            return [
                self._league_json(s, lg)
                for lg in s.execute(select(League).order_by(League.created_at)).scalars()
            ]

        return self._read(fn)

    def set_paused(self, league_ref: str, paused: bool) -> dict[str, Any]:
        def fn(s: Session) -> dict[str, Any]:
            league = self._lock_league(s, self._league(s, league_ref).id)
            changed = league.paused != paused
            league.paused = paused
            word = "paused" if paused else "resumed"
            self._event(
                s,
                f"league_{word}",
                f"league {league.name} {word}" + ("" if changed else " (no change)"),
                league_id=league.id,
            )
            return self._league_json(s, league)

        return self._write(fn)

    def submit(self, policy_ref: str, league_ref: str) -> dict[str, Any]:
        """Enter a policy version into a league (its lowest division, status qualifying).

        Other versions of the same policy in the league are retired (superseded); resubmitting a
        member is a no-op; a quarantined version is refused (upload a fixed version instead).
        """

        def fn(s: Session) -> dict[str, Any]:
            league_id = self._league(s, league_ref).id
            pv = self._policy_version(s, policy_ref)
            league = self._lock_league(s, league_id)
            label = self._labels(s, [pv.id])[pv.id]
            existing = s.execute(
                select(Membership).where(
                    Membership.league_id == league.id, Membership.policy_version_id == pv.id
                )
            ).scalar_one_or_none()
            if existing is not None and existing.status == "quarantined":
                raise LeagueError(
                    f"{label} is quarantined in league {league.name} ({existing.status_reason}); "
                    "upload a fixed version and submit that"
                )
            status, notes = "accepted", None
            if existing is not None and existing.status in ELIGIBLE:
                status, notes, membership = "already_member", "already a member; nothing changed", existing
            else:
                bottom = s.execute(
                    select(Division)
                    .where(Division.league_id == league.id)
                    .order_by(Division.level.desc())
                    .limit(1)
                ).scalar_one()
                if existing is not None:  # retired earlier: re-enter
                    membership = existing
                    membership.status, membership.status_reason = "qualifying", "resubmitted"
                    membership.consecutive_failures, membership.failure_episode_ids = 0, []
                    membership.updated_at = utcnow()
                else:
                    membership = Membership(
                        league_id=league.id,
                        division_id=bottom.id,
                        policy_version_id=pv.id,
                        status="qualifying",
                        status_reason="submitted",
                        consecutive_failures=0,
                        failure_episode_ids=[],
                    )
                    s.add(membership)
                s.flush()
                siblings = (
                    s.execute(
                        select(Membership)
                        .join(PolicyVersion, PolicyVersion.id == Membership.policy_version_id)
                        .where(
                            Membership.league_id == league.id,
                            PolicyVersion.policy_id == pv.policy_id,
                            Membership.id != membership.id,
                            Membership.status.in_(ELIGIBLE),
                        )
                    )
                    .scalars()
                    .all()
                )
                for sib in siblings:
                    sib.status, sib.status_reason, sib.updated_at = (
                        "retired",
                        f"superseded by {label}",
                        utcnow(),
                    )
                    self._event(
                        s,
                        "membership_retired",
                        f"{self._labels(s, [sib.policy_version_id])[sib.policy_version_id]}"
                        f" retired: superseded by {label}",
                        league_id=league.id,
                        policy_version_id=sib.policy_version_id,
                    )
            sub = Submission(
                league_id=league.id,
                policy_version_id=pv.id,
                status=status,
                membership_id=membership.id,
                notes=notes,
            )
            s.add(sub)
            s.flush()
            self._event(
                s,
                "policy_submitted",
                f"{label} submitted to {league.name}: {status}",
                league_id=league.id,
                policy_version_id=pv.id,
                division_id=membership.division_id,
            )
            return {
                "id": ids.public("submission", sub.id),
                "status": status,
                "league": {"id": ids.public("league", league.id), "name": league.name},
                "policy_version": {"id": pv.id, "label": label},
                "league_policy_membership_id": ids.public("membership", membership.id),
                "membership_status": membership.status,
                "notes": notes,
            }

        return self._write(fn)

    # ---- round driving -----------------------------------------------------------------------------

    def due_leagues(self, now: datetime | None = None) -> list[str]:
        """Leagues with an interval, not paused, no open round, whose last round started >= interval ago."""
        now = now or utcnow()

        def fn(s: Session) -> list[str]:
            out = []
            leagues = (
                s.execute(
                    select(League).where(League.paused.is_(False), League.interval_minutes.is_not(None))
                )
                .scalars()
                .all()
            )
            for league in leagues:
                last = s.execute(
                    select(Round)
                    .where(Round.league_id == league.id)
                    .order_by(Round.round_number.desc())
                    .limit(1)
                ).scalar_one_or_none()
                if last is not None and last.status == "running":
                    continue
                if last is None or last.started_at + timedelta(minutes=league.interval_minutes) <= now:
                    out.append(league.id)
            return out

        return self._read(fn)

    def open_round(self, league_id: str, trigger: str = "manual") -> str | None:
        """Open the next round and run the commissioner's first step; None (with an event) if refused."""

        def fn(s: Session) -> str | None:
            league = self._lock_league(s, self._league(s, league_id).id)
            refuse = None
            if league.paused:
                refuse = "league is paused"
            open_round = s.execute(
                select(Round).where(Round.league_id == league.id, Round.status == "running")
            ).scalar_one_or_none()
            if refuse is None and open_round is not None:
                refuse = (
                    f"round {open_round.round_number} is still open ({ids.public('round', open_round.id)})"
                )
            if refuse is None:
                per_div = dict(
                    s.execute(
                        select(Membership.division_id, func.count())
                        .where(Membership.league_id == league.id, Membership.status.in_(ELIGIBLE))
                        .group_by(Membership.division_id)
                    ).all()
                )
                if not any(n >= 2 for n in per_div.values()):
                    refuse = (
                        f"fewer than 2 eligible entrants in every division (eligible: "
                        f"{sum(per_div.values())}); submit policies with `coworld submit`"
                    )
            if refuse is not None:
                self._event(
                    s,
                    "round_refused",
                    f"no round opened for {league.name}: {refuse}",
                    league_id=league.id,
                    trigger=trigger,
                    reason=refuse,
                )
                return None
            number = (
                s.execute(select(func.max(Round.round_number)).where(Round.league_id == league.id)).scalar()
                or 0
            ) + 1
            rnd = Round(
                league_id=league.id,
                round_number=number,
                status="running",
                trigger=trigger,
                open_marker=league.id,
                commissioner=league.commissioner,
                failed_slots=0,
            )
            s.add(rnd)
            s.flush()
            self._event(
                s,
                "round_opened",
                f"round {number} of {league.name} opened ({trigger})",
                league_id=league.id,
                round_id=rnd.id,
                trigger=trigger,
            )
            start = self._round_start(s, league, rnd)
            try:
                self._pump(s, league, rnd, [start.to_json_dict()])
                self._maybe_close(s, league, rnd)
            except _RoundFailure as err:
                self._fail_round(s, league, rnd, str(err))
            return rnd.id

        try:
            return self._write(fn)
        except IntegrityError:  # another process opened a round at the same moment
            return None

    def _round_start(self, s: Session, league: League, rnd: Round) -> RoundStart:
        manifest = CoworldManifest.model_validate(s.get(CoworldVersion, league.coworld_version_id).manifest)
        divs = (
            s.execute(select(Division).where(Division.league_id == league.id).order_by(Division.level))
            .scalars()
            .all()
        )
        members = (
            s.execute(
                select(Membership)
                .where(Membership.league_id == league.id, Membership.status.in_(ELIGIBLE))
                .order_by(Membership.created_at, Membership.id)
            )
            .scalars()
            .all()
        )
        recent_rounds = (
            s.execute(
                select(Round)
                .where(Round.league_id == league.id, Round.status == "completed")
                .order_by(Round.round_number.desc())
                .limit(3)
            )
            .scalars()
            .all()
        )
        recent = []
        for r in recent_rounds:
            for rr in s.execute(select(RoundResult).where(RoundResult.round_id == r.id)).scalars():
                recent.append(
                    RecentResult(
                        round_id=r.id,
                        division_id=rr.division_id,
                        round_number=r.round_number,
                        policy_version_id=rr.policy_version_id,
                        rank=rr.rank,
                        score=rr.score,
                    )
                )
        carry = None
        if recent_rounds and recent_rounds[0].carry_state:
            carry = json.loads(recent_rounds[0].carry_state)
        variants = []
        for vid in league.variants:
            v = manifest.variant(vid)
            cfg = {**v.game_config, **league.config_overrides}
            variants.append(
                VariantInfo(id=v.id, name=v.name, game_config=cfg, slot_count=manifest.slots_for(cfg))
            )
        return RoundStart(
            round_id=rnd.id,
            round_number=rnd.round_number,
            league=LeagueInfo(id=league.id, commissioner_config=league.commissioner_config),
            divisions=[DivisionInfo(id=d.id, name=d.name, level=d.level) for d in divs],
            memberships=[
                MembershipInfo(id=m.id, division_id=m.division_id, policy_version_id=m.policy_version_id)
                for m in members
            ],
            recent_results=recent,
            variants=variants,
            state=carry,
        )

    def round_start_message(self, round_id: str) -> dict[str, Any]:
        """The `round_start` a container commissioner would receive for this round."""

        def fn(s: Session) -> dict[str, Any]:
            rnd = self._round(s, round_id)
            return self._round_start(s, s.get(League, rnd.league_id), rnd).to_json_dict()

        return self._read(fn)

    def _pump(self, s: Session, league: League, rnd: Round, inbound: list[dict[str, Any]]) -> list[str]:
        """Deliver messages to the in-process commissioner and act on everything it sends back."""
        commissioner = make_commissioner(league.commissioner, league.commissioner_config)
        state = json.loads(rnd.commissioner_state) if rnd.commissioner_state else None
        queue = list(inbound)
        new_ids: list[str] = []
        while queue:
            msg = queue.pop(0)
            try:
                state, out = commissioner.handle(msg, state)
            except Exception as exc:  # a commissioner bug or an impossible config fails the round, visibly
                raise _RoundFailure(
                    f"commissioner failed handling {msg.get('type')}: {type(exc).__name__}: {exc}"
                ) from None
            for raw in out:
                answers, created = self._from_commissioner(s, league, rnd, raw)
                new_ids += created
                queue += answers
        text = _json_text(state)
        if len(text.encode()) > MAX_STATE_BYTES:
            raise _RoundFailure(
                f"commissioner working state is {len(text.encode())} bytes; the limit is {MAX_STATE_BYTES}"
            )
        rnd.commissioner_state = text
        return new_ids

    def commissioner_message(self, round_id: str, message: Any) -> list[dict[str, Any]]:
        """Accept one message from a commissioner for an open round (the `/round` driver's entry point).

        Returns the platform's answers (`episodes_accepted` / `episodes_rejected`). Invalid messages
        raise CommissionerProtocolError and change nothing.
        """

        def fn(s: Session) -> list[dict[str, Any]]:
            rnd = self._round(s, round_id)
            league = self._lock_league(s, rnd.league_id)
            s.refresh(rnd)
            if rnd.status != "running":
                raise LeagueError(f"round {ids.public('round', rnd.id)} is {rnd.status}, not open")
            answers, _ = self._from_commissioner(s, league, rnd, message, strict=True)
            return answers

        return self._write(fn)

    def _from_commissioner(
        self, s: Session, league: League, rnd: Round, raw: Any, strict: bool = False
    ) -> tuple[list[dict[str, Any]], list[str]]:
        try:
            msg = parse_commissioner_message(raw)
        except CommissionerProtocolError as err:
            oversize = (
                isinstance(raw, dict)
                and raw.get("type") == "round_complete"
                and state_size(raw.get("state")) > MAX_STATE_BYTES
            )
            if not oversize:
                self._event(
                    s,
                    "commissioner_message_rejected",
                    f"invalid message from the commissioner: {err}",
                    league_id=league.id,
                    round_id=rnd.id,
                    problems=[p.as_dict() for p in err.problems],
                )
                if strict:
                    raise
                raise _RoundFailure(f"invalid message from the commissioner: {err}") from None
            size = state_size(raw.get("state"))
            self._event(
                s,
                "commissioner_state_rejected",
                f"round_complete state is {size} bytes (limit "
                f"{MAX_STATE_BYTES}): results kept, state not persisted",
                league_id=league.id,
                round_id=rnd.id,
                size=size,
            )
            msg = parse_commissioner_message({**raw, "state": None})
        if isinstance(msg, RoundComplete):
            rnd.complete_message = msg.to_json_dict()
            self._event(
                s,
                "round_complete_received",
                "commissioner sent round_complete",
                league_id=league.id,
                round_id=rnd.id,
                divisions=len(msg.results),
                graduation_changes=len(msg.graduation_changes),
            )
            return [], []
        assert isinstance(msg, ScheduleEpisodes)
        return self._accept_schedule(s, league, rnd, msg)

    def _accept_schedule(
        self, s: Session, league: League, rnd: Round, msg: ScheduleEpisodes
    ) -> tuple[list[dict[str, Any]], list[str]]:
        manifest = CoworldManifest.model_validate(s.get(CoworldVersion, league.coworld_version_id).manifest)
        members = {
            m.policy_version_id: m
            for m in s.execute(select(Membership).where(Membership.league_id == league.id)).scalars()
        }
        used = set(
            s.execute(
                select(EpisodeRequestRow.request_id).where(EpisodeRequestRow.round_id == rnd.id)
            ).scalars()
        )
        has_seed = "seed" in (manifest.game.config_schema.get("properties") or {})
        accepted: list[str] = []
        errors: dict[str, str] = {}
        created: list[str] = []
        for ep in msg.episodes:
            reason = None
            if ep.request_id in used:
                reason = f"duplicate request_id {ep.request_id!r} in this round"
            elif ep.variant_id not in league.variants:
                reason = (
                    f"unknown variant {ep.variant_id!r} (this league plays: {', '.join(league.variants)})"
                )
            if reason is None:
                cfg = {**manifest.variant(ep.variant_id).game_config, **league.config_overrides}
                slots = manifest.slots_for(cfg)
                if len(ep.policy_version_ids) != slots:
                    reason = (
                        f"wrong slot count: variant {ep.variant_id} has {slots} slots, got "
                        f"{len(ep.policy_version_ids)} policy versions"
                    )
            if reason is None:
                for pv in ep.policy_version_ids:
                    m = members.get(pv)
                    if m is None:
                        reason = f"unknown policy version {pv} (not a member of league {league.name})"
                    elif m.status not in ELIGIBLE:
                        reason = f"policy version {pv} is {m.status} ({m.status_reason})"
                    if reason:
                        break
            if reason is None and len({members[pv].division_id for pv in ep.policy_version_ids}) != 1:
                reason = "policy versions from different divisions cannot share an episode"
            if reason is not None:
                errors[ep.request_id] = reason
                continue
            used.add(ep.request_id)
            seed = (
                ep.seed
                if ep.seed is not None
                else int.from_bytes(hashlib.sha256(f"{rnd.id}:{ep.request_id}".encode()).digest()[:4], "big")
                & 0x7FFFFFFF
            )
            if has_seed:
                cfg = {**cfg, "seed": seed}
            row = EpisodeRequestRow(
                round_id=rnd.id,
                league_id=league.id,
                division_id=members[ep.policy_version_ids[0]].division_id,
                request_id=ep.request_id,
                variant_id=ep.variant_id,
                seed=seed,
                game_config=cfg,
                policy_version_ids=list(ep.policy_version_ids),
                tags=dict(ep.tags),
                status="pending",
                attempt=0,
                attempt_errors=[],
                reported=False,
            )
            s.add(row)
            s.flush()
            for slot, pv in enumerate(ep.policy_version_ids):
                s.add(EpisodeSlot(ereq_id=row.id, slot=slot, policy_version_id=pv))
            accepted.append(ep.request_id)
            created.append(row.id)
        answers: list[dict[str, Any]] = []
        if accepted:
            answers.append(EpisodesAccepted(request_ids=accepted).to_json_dict())
            self._event(
                s,
                "episodes_scheduled",
                f"{len(accepted)} episode(s) scheduled in round {rnd.round_number}",
                league_id=league.id,
                round_id=rnd.id,
                request_ids=accepted,
                ereq_ids=[ids.public("ereq", e) for e in created],
            )
        if errors:
            answers.append(EpisodesRejected(request_ids=list(errors), errors=errors).to_json_dict())
            self._event(
                s,
                "episodes_rejected",
                f"{len(errors)} episode(s) rejected: "
                + "; ".join(f"{k}: {v}" for k, v in list(errors.items())[:3]),
                league_id=league.id,
                round_id=rnd.id,
                errors=errors,
            )
        return answers, created

    def advance_round(self, round_id: str) -> RoundProgress:
        """Report finished episodes to the commissioner, act on its answers, close the round when done."""

        def fn(s: Session) -> RoundProgress:
            rnd = self._round(s, round_id)
            league = self._lock_league(s, rnd.league_id)
            s.refresh(rnd)
            new_ids: list[str] = []
            if rnd.status == "running":
                try:
                    budget = league.failure_policy.get("failed_slot_budget")
                    if budget is not None and rnd.failed_slots > budget:
                        raise _RoundFailure(
                            f"failed-slot budget exceeded: {rnd.failed_slots} failed seats > "
                            f"{budget} allowed per round"
                        )
                    unreported = (
                        s.execute(
                            select(EpisodeRequestRow)
                            .where(
                                EpisodeRequestRow.round_id == rnd.id,
                                EpisodeRequestRow.status.in_(TERMINAL),
                                EpisodeRequestRow.reported.is_(False),
                            )
                            .order_by(EpisodeRequestRow.finished_at, EpisodeRequestRow.id)
                        )
                        .scalars()
                        .all()
                    )
                    inbound = [self._report_message(e) for e in unreported]
                    for e in unreported:
                        e.reported = True
                    if inbound:
                        new_ids = self._pump(s, league, rnd, inbound)
                    self._maybe_close(s, league, rnd)
                except _RoundFailure as err:
                    self._fail_round(s, league, rnd, str(err))
            return self._progress(s, rnd, new_ids)

        return self._write(fn)

    def _report_message(self, e: EpisodeRequestRow) -> dict[str, Any]:
        if e.status == "succeeded":
            return EpisodeResult(
                request_id=e.request_id,
                scores=[
                    EpisodeScore(policy_version_id=pv, score=float(sc))
                    for pv, sc in zip(e.policy_version_ids, e.scores or [], strict=True)
                ],
                game_results=e.results,
            ).to_json_dict()
        err = e.error or {}
        slot = err.get("slot")
        blamed = (
            e.policy_version_ids[slot] if isinstance(slot, int) and err.get("blame") == "player" else None
        )
        return EpisodeFailed(
            request_id=e.request_id,
            error=f"{err.get('error_type', e.status)}: {err.get('message', '')}"[:2000],
            error_type=err.get("error_type"),
            failed_policy_index=slot if blamed else None,
            failed_policy_version_id=blamed,
        ).to_json_dict()

    def _progress(self, s: Session, rnd: Round, new_ids: list[str]) -> RoundProgress:
        rows = s.execute(
            select(EpisodeRequestRow.id, EpisodeRequestRow.status).where(EpisodeRequestRow.round_id == rnd.id)
        ).all()
        counts: dict[str, int] = {}
        for _, st in rows:
            counts[st] = counts.get(st, 0) + 1
        return RoundProgress(
            round_id=rnd.id,
            status=rnd.status,
            new_pending=new_ids,
            pending=sorted(i for i, st in rows if st == "pending"),
            running=sorted(i for i, st in rows if st == "running"),
            counts=counts,
            done=rnd.status != "running",
            error=rnd.error,
        )

    def _maybe_close(self, s: Session, league: League, rnd: Round) -> None:
        open_rows = (
            s.execute(
                select(EpisodeRequestRow).where(
                    EpisodeRequestRow.round_id == rnd.id, EpisodeRequestRow.status.in_(("pending", "running"))
                )
            )
            .scalars()
            .all()
        )
        unreported = s.execute(
            select(func.count())
            .select_from(EpisodeRequestRow)
            .where(
                EpisodeRequestRow.round_id == rnd.id,
                EpisodeRequestRow.status.in_(TERMINAL),
                EpisodeRequestRow.reported.is_(False),
            )
        ).scalar()
        if rnd.complete_message is None:
            if not open_rows and not unreported:
                raise _RoundFailure(
                    "commissioner stalled: no episode is pending and it sent no round_complete"
                )
            return
        pending = [e for e in open_rows if e.status == "pending"]
        if pending:  # the commissioner is finished: what it left unplayed is cancelled
            for e in pending:
                self._cancel(e, "the commissioner completed the round without it")
            self._event(
                s,
                "episodes_cancelled",
                f"{len(pending)} pending episode(s) cancelled: round_complete already received",
                league_id=league.id,
                round_id=rnd.id,
                ereq_ids=[ids.public("ereq", e.id) for e in pending],
            )
        if any(e.status == "running" for e in open_rows):
            return
        self._finish_round(
            s,
            league,
            rnd,
            RoundComplete.model_validate({k: v for k, v in rnd.complete_message.items() if k != "type"}),
        )

    @staticmethod
    def _cancel(e: EpisodeRequestRow, reason: str) -> None:
        e.status = "cancelled"
        e.error = {"error_type": "cancelled", "message": reason, "blame": "platform", "slot": None}
        e.error_type = "cancelled"
        e.finished_at = utcnow()

    def _finish_round(self, s: Session, league: League, rnd: Round, msg: RoundComplete) -> None:
        divisions = {
            d.id: d for d in s.execute(select(Division).where(Division.league_id == league.id)).scalars()
        }
        members = {
            m.id: m for m in s.execute(select(Membership).where(Membership.league_id == league.id)).scalars()
        }
        by_pv = {m.policy_version_id: m for m in members.values()}
        skipped = []
        recorded = 0
        for div_result in msg.results:
            if div_result.division_id not in divisions:
                skipped.append(f"unknown division {div_result.division_id}")
                continue
            for r in div_result.rankings:
                m = by_pv.get(r.policy_version_id)
                if m is None or m.division_id != div_result.division_id:
                    skipped.append(f"{r.policy_version_id} is not in division {div_result.division_id}")
                    continue
                s.add(
                    RoundResult(
                        round_id=rnd.id,
                        division_id=div_result.division_id,
                        policy_version_id=r.policy_version_id,
                        rank=r.rank,
                        score=r.score,
                        result_metadata=r.result_metadata,
                    )
                )
                recorded += 1
        if skipped:
            self._event(
                s,
                "rankings_rejected",
                f"{len(skipped)} ranking row(s) ignored",
                league_id=league.id,
                round_id=rnd.id,
                reasons=skipped[:50],
            )
        labels = self._labels(s, [m.policy_version_id for m in members.values()])
        for change in msg.graduation_changes:
            m = members.get(change.membership_id)
            reason = None
            if m is None:
                reason = f"unknown membership {change.membership_id}"
            elif change.to_division_id not in divisions:
                reason = f"unknown division {change.to_division_id}"
            elif m.status not in ELIGIBLE:
                reason = f"membership is {m.status}"
            if reason:
                self._event(
                    s,
                    "graduation_rejected",
                    f"graduation change ignored: {reason}",
                    league_id=league.id,
                    round_id=rnd.id,
                    change=change.model_dump(),
                )
                continue
            assert m is not None
            if m.division_id == change.to_division_id:
                continue
            s.add(
                GraduationChangeRow(
                    round_id=rnd.id,
                    membership_id=m.id,
                    from_division_id=m.division_id,
                    to_division_id=change.to_division_id,
                    reason=change.reason,
                )
            )
            old, new = divisions[m.division_id], divisions[change.to_division_id]
            self._event(
                s,
                "graduation",
                f"{labels.get(m.policy_version_id)} {old.name} → {new.name}: {change.reason}",
                league_id=league.id,
                round_id=rnd.id,
                division_id=new.id,
                policy_version_id=m.policy_version_id,
                from_division_id=old.id,
            )
            m.division_id = change.to_division_id
            m.updated_at = utcnow()
        rnd.status = "completed"
        rnd.open_marker = None
        rnd.completed_at = utcnow()
        rnd.round_display = msg.round_display
        rnd.carry_state = _json_text(msg.state) if msg.state is not None else None
        counts = dict(
            s.execute(
                select(EpisodeRequestRow.status, func.count())
                .where(EpisodeRequestRow.round_id == rnd.id)
                .group_by(EpisodeRequestRow.status)
            ).all()
        )
        self._event(
            s,
            "round_completed",
            f"round {rnd.round_number} of {league.name} completed: "
            f"{counts.get('succeeded', 0)} rated, {counts.get('failed', 0)} failed, "
            f"{counts.get('cancelled', 0)} cancelled episode(s)",
            league_id=league.id,
            round_id=rnd.id,
            episodes=counts,
            rankings=recorded,
        )
        for div in divisions.values():
            top = self._standings_rows(s, league, div)[:5]
            if top:
                self._event(
                    s,
                    "standings_updated",
                    f"{div.name}: "
                    + ", ".join(f"{r['rank']}. {r['label']} ({r['rating']:.2f})" for r in top),
                    league_id=league.id,
                    round_id=rnd.id,
                    division_id=div.id,
                    top=[{k: r[k] for k in ("label", "rating", "episodes")} for r in top],
                )

    def _fail_round(self, s: Session, league: League, rnd: Round, reason: str) -> None:
        """Fail the round: abort the commissioner, cancel what has not started, keep what was played."""
        commissioner = make_commissioner(league.commissioner, league.commissioner_config)
        if rnd.commissioner_state:
            try:
                state, _ = commissioner.handle(
                    RoundAbort(reason=reason).to_json_dict(), json.loads(rnd.commissioner_state)
                )
                rnd.commissioner_state = _json_text(state)
            except Exception:  # the round is failing anyway
                pass
        pending = (
            s.execute(
                select(EpisodeRequestRow).where(
                    EpisodeRequestRow.round_id == rnd.id, EpisodeRequestRow.status == "pending"
                )
            )
            .scalars()
            .all()
        )
        for e in pending:
            self._cancel(e, f"round failed: {reason}")
            e.reported = True
        rnd.status = "failed"
        rnd.open_marker = None
        rnd.error = reason
        rnd.completed_at = utcnow()
        self._event(
            s,
            "round_failed",
            f"round {rnd.round_number} of {league.name} failed: {reason}",
            league_id=league.id,
            round_id=rnd.id,
            reason=reason,
            cancelled=len(pending),
        )

    def cancel_round(self, round_id: str, reason: str = "cancelled by user") -> dict[str, Any]:
        def fn(s: Session) -> dict[str, Any]:
            rnd = self._round(s, round_id)
            league = self._lock_league(s, rnd.league_id)
            s.refresh(rnd)
            if rnd.status != "running":
                raise LeagueError(f"round {ids.public('round', rnd.id)} is {rnd.status}, not open")
            self._fail_round(s, league, rnd, reason)
            rnd.status = "cancelled"
            return self._round_json(s, rnd)

        return self._write(fn)

    # ---- episodes -----------------------------------------------------------------------------------

    def pending_episodes(self, round_id: str) -> list[str]:
        raw = ids.raw_id("round", round_id)
        return self._read(
            lambda s: list(
                s.execute(
                    select(EpisodeRequestRow.id)
                    .where(EpisodeRequestRow.round_id == raw, EpisodeRequestRow.status == "pending")
                    .order_by(EpisodeRequestRow.created_at, EpisodeRequestRow.id)
                ).scalars()
            )
        )

    def prepare_episode(self, ereq_id: str) -> tuple[EpisodeRequest, dict[int, dict[str, str]], Path]:
        """The runnable request, the per-slot secret env (decrypted) and the workspace of one episode."""

        def fn(s: Session) -> tuple[EpisodeRequest, dict[int, dict[str, str]], Path, str | None]:
            e = self._ereq(s, ereq_id)
            league = s.get(League, e.league_id)
            cw = s.get(CoworldVersion, league.coworld_version_id)
            manifest = parse_manifest(cw.manifest, source=f"coworld {cw.name}:{cw.version}")
            pvs = {
                pv.id: pv
                for pv in s.execute(
                    select(PolicyVersion).where(PolicyVersion.id.in_(set(e.policy_version_ids)))
                ).scalars()
            }
            labels = self._labels(s, list(pvs))
            players, secrets = [], {}
            for slot, pv_id in enumerate(e.policy_version_ids):
                pv = pvs[pv_id]
                players.append(PlayerSpec(image=pv.image, run=list(pv.run), env=dict(pv.env)))
                if pv.secret_env_encrypted:
                    secrets[slot] = self.box.decrypt(pv.secret_env_encrypted)
            tags = {
                "league_id": ids.public("league", league.id),
                "round_id": ids.public("round", e.round_id),
                "episode_request_id": ids.public("ereq", e.id),
                **{k: str(v) for k, v in (e.tags or {}).items()},
            }
            request = EpisodeRequest(
                manifest=manifest,
                game_config=dict(e.game_config),
                players=players,
                episode_tags=tags,
                policy_names=[labels[p] for p in e.policy_version_ids],
            )
            return request, secrets, self.episode_workspace(e.id), cw.source_dir

        request, secrets, workspace, _ = self._read(fn)
        return request, secrets, workspace

    def _claim(self, ereq_raw: str) -> int | None:
        def fn(s: Session) -> int | None:
            res = s.execute(
                update(EpisodeRequestRow)
                .where(EpisodeRequestRow.id == ereq_raw, EpisodeRequestRow.status == "pending")
                .values(status="running", attempt=EpisodeRequestRow.attempt + 1, claimed_at=utcnow())
                .execution_options(synchronize_session=False)
            )
            if res.rowcount != 1:
                return None
            return s.execute(
                select(EpisodeRequestRow.attempt).where(EpisodeRequestRow.id == ereq_raw)
            ).scalar()

        return self._write(fn)

    def execute_episode(
        self,
        ereq_id: str,
        runtime_name: str = "process",
        artifact_store: Any = None,
        episode_runner: EpisodeRunner | None = None,
    ) -> str:
        """Claim, run and record one pending episode; returns its status afterwards.

        An episode that is not pending (already running elsewhere or terminal) is not run again.
        `episode_runner(request, workspace, secret_env_by_slot)` replaces the real runtime (tests).
        """
        raw = ids.raw_id("ereq", ereq_id)
        attempt = self._claim(raw)
        if attempt is None:
            return self._read(lambda s: self._ereq(s, raw).status)
        try:
            request, secrets, workspace = self.prepare_episode(raw)
            source_dir = self._read(
                lambda s: (
                    s.get(
                        CoworldVersion, s.get(League, self._ereq(s, raw).league_id).coworld_version_id
                    ).source_dir
                )
            )
            timeout = float(
                self._read(
                    lambda s: s.get(League, self._ereq(s, raw).league_id).failure_policy.get(
                        "episode_timeout_seconds", 600.0
                    )
                )
            )
            _archive_attempt(workspace, attempt)
            if episode_runner is not None:
                outcome = episode_runner(request, workspace, secrets)
            else:
                outcome = self._run_real(
                    raw, request, workspace, secrets, runtime_name, source_dir, timeout, artifact_store
                )
        except Exception as exc:  # never leave the row running because the platform failed
            outcome = _FailedOutcome(
                self.episode_workspace(raw),
                EpisodeFailure(ErrorType.PLATFORM_ERROR, f"{type(exc).__name__}: {exc}", phase="prepare"),
            )
        if artifact_store is not None:
            try:
                outcome.artifacts = artifact_store.put_episode_dir(
                    ids.public("ereq", raw), Path(outcome.workspace)
                )
            except Exception as exc:
                outcome.artifacts = {"error": f"artifact upload failed: {exc}"}
        return self.record_outcome(raw, attempt, outcome)

    @staticmethod
    def _run_real(
        raw: str,
        request: EpisodeRequest,
        workspace: Path,
        secrets: dict[int, dict[str, str]],
        runtime_name: str,
        source_dir: str | None,
        timeout: float,
        artifact_store: Any,
    ) -> Any:
        from coworld_pipeline.runtime import EpisodeOptions, make_runtime, run_episode

        runtime = make_runtime(runtime_name, base_dir=Path(source_dir) if source_dir else None)
        # Probes re-check the game's side of the contract on every episode (about 0.1 s) and connect a
        # /global viewer as a spectator would: games may wait for one before exiting (Orchard does).
        options = EpisodeOptions(timeout_seconds=timeout, secret_env=secrets, probes=True, purpose="league")
        if artifact_store is not None:
            options.game_output_uris = artifact_store.game_output_uris(ids.public("ereq", raw))
            options.fetch_output = artifact_store.output_fetcher(ids.public("ereq", raw))
        return run_episode(request, workspace, runtime, options)

    def record_outcome(self, ereq_id: str, attempt: int, outcome: Any) -> str:
        """Record one attempt's outcome; ignored (and logged) unless the row is running with this attempt."""
        raw = ids.raw_id("ereq", ereq_id)

        def fn(s: Session) -> str:
            league_id = s.execute(
                select(EpisodeRequestRow.league_id).where(EpisodeRequestRow.id == raw)
            ).scalar()
            if league_id is None:
                raise NotFound(f"unknown episode request {ereq_id!r}")
            league = self._lock_league(s, league_id)
            e = s.execute(select(EpisodeRequestRow).where(EpisodeRequestRow.id == raw)).scalar_one()
            s.refresh(e)
            if e.status != "running" or e.attempt != attempt:
                self._event(
                    s,
                    "late_result_ignored",
                    f"outcome of attempt {attempt} ignored: episode is {e.status} at attempt {e.attempt}",
                    league_id=league.id,
                    round_id=e.round_id,
                    ereq_id=e.id,
                )
                return e.status
            rnd = s.get(Round, e.round_id)
            e.workspace = str(getattr(outcome, "workspace", "") or self.episode_workspace(e.id))
            e.wall_seconds = getattr(outcome, "wall_seconds", None)
            e.artifacts = getattr(outcome, "artifacts", None)
            failure = getattr(outcome, "error", None)
            scores = getattr(outcome, "scores", None)
            if failure is None and (scores is None or len(scores) != len(e.policy_version_ids)):
                failure = EpisodeFailure(
                    ErrorType.PLATFORM_ERROR,
                    f"episode reported success without one score per slot (scores={scores!r})",
                )
            if failure is None:
                self._record_success(
                    s, league, e, [float(x) for x in scores], getattr(outcome, "results", None)
                )
            else:
                self._record_failure(s, league, rnd, e, attempt, failure)
            return e.status

        return self._write(fn)

    def _record_success(
        self, s: Session, league: League, e: EpisodeRequestRow, scores: list[float], results: Any
    ) -> None:
        e.status, e.scores, e.results, e.error, e.error_type = "succeeded", scores, results, None, None
        e.finished_at = utcnow()
        for slot_row in s.execute(select(EpisodeSlot).where(EpisodeSlot.ereq_id == e.id)).scalars():
            slot_row.score = scores[slot_row.slot]
        credited = credit(e.policy_version_ids, scores)
        div = s.execute(select(Division).where(Division.id == e.division_id).with_for_update()).scalar_one()
        rows = {}
        for pv in credited:
            row = s.get(Rating, (div.id, pv))
            if row is None:
                row = Rating(
                    division_id=div.id,
                    policy_version_id=pv,
                    mu=MU,
                    sigma=SIGMA,
                    episodes=0,
                    wins=0,
                    score_sum=0.0,
                )
                s.add(row)
            rows[pv] = row
        table = {pv: Standing(r.mu, r.sigma, r.episodes, r.wins, r.score_sum) for pv, r in rows.items()}
        before = {pv: (st.mu, st.sigma) for pv, st in table.items()}
        rated = apply_episode(table, credited)
        labels = self._labels(s, list(credited))
        if rated:
            div.rating_seq += 1
            e.rated_seq = div.rating_seq
            for pv, row in rows.items():
                st = table[pv]
                row.mu, row.sigma, row.episodes, row.wins, row.score_sum = (
                    st.mu,
                    st.sigma,
                    st.episodes,
                    st.wins,
                    st.score_sum,
                )
                row.updated_at = utcnow()
        for m in s.execute(
            select(Membership).where(
                Membership.league_id == league.id, Membership.policy_version_id.in_(list(credited))
            )
        ).scalars():
            m.consecutive_failures, m.failure_episode_ids = 0, []
            if m.status == "qualifying":
                m.status, m.status_reason, m.updated_at = "active", "completed a first episode", utcnow()
                self._event(
                    s,
                    "membership_activated",
                    f"{labels[m.policy_version_id]} is active (first episode completed)",
                    league_id=league.id,
                    policy_version_id=m.policy_version_id,
                )
        self._event(
            s,
            "episode_rated" if rated else "episode_unrated",
            (
                f"episode {e.request_id} rated: "
                if rated
                else f"episode {e.request_id} not rated (one entrant): "
            )
            + ", ".join(f"{labels[pv]}={sc:g}" for pv, sc in credited.items()),
            league_id=league.id,
            round_id=e.round_id,
            ereq_id=e.id,
            division_id=e.division_id,
            seats=[
                {"slot": i, "policy_version_id": pv, "label": labels[pv], "score": scores[i]}
                for i, pv in enumerate(e.policy_version_ids)
            ],
            credited={labels[pv]: sc for pv, sc in credited.items()},
            ratings={
                labels[pv]: {"mu_before": before[pv][0], "mu": table[pv].mu, "sigma": table[pv].sigma}
                for pv in credited
            }
            if rated
            else {},
        )

    def _record_failure(
        self,
        s: Session,
        league: League,
        rnd: Round,
        e: EpisodeRequestRow,
        attempt: int,
        failure: EpisodeFailure,
    ) -> None:
        err = failure.to_json()
        e.error, e.error_type = err, err["error_type"]
        e.attempt_errors = [*list(e.attempt_errors or []), {**err, "attempt": attempt}]
        policy = league.failure_policy
        labels = self._labels(s, e.policy_version_ids)
        if failure.infrastructure:
            retries = int(policy.get("infra_retries", 2))
            if attempt <= retries and rnd.status == "running":
                e.status = "pending"
                self._event(
                    s,
                    "episode_retried",
                    f"episode {e.request_id} attempt {attempt} failed "
                    f"({failure.error_type.value}, blame {failure.blame}); retry {attempt} of {retries}",
                    league_id=league.id,
                    round_id=e.round_id,
                    ereq_id=e.id,
                    error=err,
                    attempt=attempt,
                )
                return
            e.status, e.finished_at = "failed", utcnow()
            rnd.failed_slots += len(e.policy_version_ids)
            self._event(
                s,
                "episode_failed",
                f"episode {e.request_id} failed after {attempt} attempt(s) "
                f"({failure.error_type.value}, blame {failure.blame}): not rated, no entrant charged",
                league_id=league.id,
                round_id=e.round_id,
                ereq_id=e.id,
                error=err,
                workspace=e.workspace,
            )
            return
        e.status, e.finished_at = "failed", utcnow()
        rnd.failed_slots += 1
        slot = (
            failure.slot if failure.slot is not None and 0 <= failure.slot < len(e.policy_version_ids) else 0
        )
        pv = e.policy_version_ids[slot]
        m = s.execute(
            select(Membership).where(Membership.league_id == league.id, Membership.policy_version_id == pv)
        ).scalar_one_or_none()
        self._event(
            s,
            "episode_failed",
            f"episode {e.request_id} failed: {labels[pv]} in slot {slot} "
            f"({failure.error_type.value}); not rated",
            league_id=league.id,
            round_id=e.round_id,
            ereq_id=e.id,
            policy_version_id=pv,
            error=err,
            workspace=e.workspace,
            log=str(Path(e.workspace or "") / "logs" / f"policy_agent_{slot}.log"),
        )
        if m is None:
            return
        m.consecutive_failures += 1
        m.failure_episode_ids = [*list(m.failure_episode_ids or []), e.id]
        m.updated_at = utcnow()
        limit = int(policy.get("quarantine_after", 3))
        if m.consecutive_failures >= limit and m.status in ELIGIBLE:
            self._quarantine(s, league, m, labels[pv], failure)

    def _quarantine(
        self, s: Session, league: League, m: Membership, label: str, failure: EpisodeFailure
    ) -> None:
        failing = (
            s.execute(select(EpisodeRequestRow).where(EpisodeRequestRow.id.in_(m.failure_episode_ids)))
            .scalars()
            .all()
        )
        evidence = []
        for f in failing:
            slots = [i for i, pv in enumerate(f.policy_version_ids) if pv == m.policy_version_id]
            slot = (f.error or {}).get("slot")
            slot = slot if slot in slots else slots[0]
            ws = Path(f.workspace or self.episode_workspace(f.id))
            evidence.append(
                {
                    "ereq_id": ids.public("ereq", f.id),
                    "error_type": f.error_type,
                    "message": (f.error or {}).get("message", "")[:500],
                    "slot": slot,
                    "workspace": str(ws),
                    "log": str(ws / "logs" / f"policy_agent_{slot}.log"),
                    "error_info": str(ws / "error_info.json"),
                }
            )
        m.status = "quarantined"
        m.status_reason = (
            f"{m.consecutive_failures} consecutive player failures (last: "
            f"{failure.error_type.value}: {failure.message[:200]})"
        )
        m.updated_at = utcnow()
        pending = (
            s.execute(
                select(EpisodeRequestRow).where(
                    EpisodeRequestRow.league_id == league.id, EpisodeRequestRow.status == "pending"
                )
            )
            .scalars()
            .all()
        )
        cancelled = []
        for e in pending:
            if m.policy_version_id in e.policy_version_ids:
                self._cancel(e, f"{label} was quarantined")
                cancelled.append(ids.public("ereq", e.id))
        self._event(
            s,
            "policy_quarantined",
            f"{label} quarantined in {league.name}: {m.status_reason}",
            league_id=league.id,
            policy_version_id=m.policy_version_id,
            division_id=m.division_id,
            reason=m.status_reason,
            failing_episodes=evidence,
            cancelled_episodes=cancelled,
        )

    def requeue_stale(self, older_than_seconds: float) -> list[str]:
        """Running rows claimed longer ago than this go back to pending (or fail when out of attempts).

        Recorded as an `interrupted` (infrastructure) failure of the current attempt: the retry budget
        applies, nothing is rated or charged. Returns raw ids.
        """
        cutoff = utcnow() - timedelta(seconds=older_than_seconds)
        return self._requeue(
            lambda e: e.claimed_at is not None and e.claimed_at < cutoff,
            lambda e: (
                f"worker lost: attempt {e.attempt} ran longer than {older_than_seconds:g}s without "
                "recording an outcome"
            ),
            [EpisodeRequestRow.claimed_at < cutoff],
        )

    def requeue_episodes(self, ereq_ids: list[str], reason: str) -> list[str]:
        """Put these `running` episodes (their worker is known dead) back to pending, like requeue_stale.

        Rows that are not running are left alone. Returns the public ids that were handled.
        """
        raw = [ids.raw_id("ereq", e) for e in ereq_ids]
        if not raw:
            return []
        done = self._requeue(
            lambda e: True, lambda e: f"{reason} (attempt {e.attempt})", [EpisodeRequestRow.id.in_(raw)]
        )
        return [ids.public("ereq", e) for e in done]

    def _requeue(
        self,
        still: Callable[[EpisodeRequestRow], bool],
        message: Callable[[EpisodeRequestRow], str],
        where: list[Any],
    ) -> list[str]:
        def fn(s: Session) -> list[str]:
            rows = s.execute(
                select(EpisodeRequestRow.id, EpisodeRequestRow.league_id).where(
                    EpisodeRequestRow.status == "running", *where
                )
            ).all()
            out = []
            for league_id in sorted({lid for _, lid in rows}):
                league = self._lock_league(s, league_id)
                for eid, lid in rows:
                    if lid != league_id:
                        continue
                    e = s.get(EpisodeRequestRow, eid)
                    s.refresh(e)
                    if e.status != "running" or not still(e):
                        continue
                    failure = EpisodeFailure(ErrorType.INTERRUPTED, message(e))
                    self._record_failure(s, league, s.get(Round, e.round_id), e, e.attempt, failure)
                    out.append(e.id)
            return out

        return self._write(fn)

    # ---- results --------------------------------------------------------------------------------------

    def _standings_rows(self, s: Session, league: League, div: Division) -> list[dict[str, Any]]:
        # The columns and join of standings_reader's query, so both build rows with standing_rows.
        members = s.execute(
            select(
                Membership.policy_version_id,
                Membership.id,
                Membership.status,
                Policy.name,
                PolicyVersion.version,
                Rating.mu,
                Rating.sigma,
                Rating.episodes,
                Rating.wins,
                Rating.score_sum,
            )
            .join(PolicyVersion, PolicyVersion.id == Membership.policy_version_id)
            .join(Policy, Policy.id == PolicyVersion.policy_id)
            .outerjoin(
                Rating,
                and_(
                    Rating.division_id == Membership.division_id,
                    Rating.policy_version_id == Membership.policy_version_id,
                ),
            )
            .where(Membership.league_id == league.id, Membership.division_id == div.id)
        ).all()
        return standing_rows(members)

    def standings(self, league_ref: str, division_ref: str | None = None) -> list[dict[str, Any]]:
        """Per division: entrants by conservative rating (mu - 3 sigma); episodes, wins, average score."""

        def fn(s: Session) -> list[dict[str, Any]]:
            league = self._league(s, league_ref)
            if division_ref:
                divs = [self._division(s, division_ref, league)]
            else:
                divs = (
                    s.execute(
                        select(Division).where(Division.league_id == league.id).order_by(Division.level)
                    )
                    .scalars()
                    .all()
                )
            return [
                {
                    "division": {"id": ids.public("division", d.id), "name": d.name, "level": d.level},
                    "league": {"id": ids.public("league", league.id), "name": league.name},
                    "standings": self._standings_rows(s, league, d),
                }
                for d in divs
            ]

        return self._read(fn)

    def recompute_standings(
        self, league_ref: str | None = None, write: bool = False
    ) -> dict[tuple[str, str], Standing]:
        """Ratings from scratch from the stored per-slot results, in rating order; optionally store them."""

        def fn(s: Session) -> dict[tuple[str, str], Standing]:
            q = (
                select(
                    EpisodeRequestRow.division_id,
                    EpisodeRequestRow.rated_seq,
                    EpisodeSlot.slot,
                    EpisodeSlot.policy_version_id,
                    EpisodeSlot.score,
                )
                .join(EpisodeSlot, EpisodeSlot.ereq_id == EpisodeRequestRow.id)
                .where(EpisodeRequestRow.rated_seq.is_not(None))
            )
            if league_ref:
                q = q.where(EpisodeRequestRow.league_id == self._league(s, league_ref).id)
            rows = s.execute(
                q.order_by(EpisodeRequestRow.division_id, EpisodeRequestRow.rated_seq, EpisodeSlot.slot)
            ).all()
            tables: dict[str, dict[str, Standing]] = {}
            cur_key = None
            pvs: list[str] = []
            scores: list[float] = []

            def flush() -> None:
                if cur_key is not None:
                    apply_episode(tables.setdefault(cur_key[0], {}), credit(pvs, scores))

            for div, seq, _slot, pv, score in rows:
                key = (div, seq)
                if key != cur_key:
                    flush()
                    cur_key, pvs, scores = key, [], []
                pvs.append(pv)
                scores.append(score)
            flush()
            out = {(d, pv): st for d, t in tables.items() for pv, st in t.items()}
            if write:
                for (d, pv), st in out.items():
                    row = s.get(Rating, (d, pv))
                    if row is None:
                        row = Rating(division_id=d, policy_version_id=pv)
                        s.add(row)
                    row.mu, row.sigma, row.episodes, row.wins, row.score_sum = (
                        st.mu,
                        st.sigma,
                        st.episodes,
                        st.wins,
                        st.score_sum,
                    )
            return out

        return self._write(fn) if write else self._read(fn)

    def _round_json(self, s: Session, rnd: Round, detail: bool = False) -> dict[str, Any]:
        league = s.get(League, rnd.league_id)
        counts = dict(
            s.execute(
                select(EpisodeRequestRow.status, func.count())
                .where(EpisodeRequestRow.round_id == rnd.id)
                .group_by(EpisodeRequestRow.status)
            ).all()
        )
        out = {
            "id": ids.public("round", rnd.id),
            "round_number": rnd.round_number,
            "league": {"id": ids.public("league", league.id), "name": league.name},
            "commissioner_key": rnd.commissioner,
            "execution_backend": "league-service",
            "trigger": rnd.trigger,
            "status": rnd.status,
            "error": rnd.error,
            "episodes": counts,
            "failed_slots": rnd.failed_slots,
            "round_display": rnd.round_display,
            "started_at": _dt(rnd.started_at),
            "completed_at": _dt(rnd.completed_at),
        }
        if detail:
            out["results"] = self._rankings(s, rnd)
            out["graduation_changes"] = [
                {
                    "membership_id": ids.public("membership", g.membership_id),
                    "from_division_id": ids.public("division", g.from_division_id),
                    "to_division_id": ids.public("division", g.to_division_id),
                    "reason": g.reason,
                }
                for g in s.execute(
                    select(GraduationChangeRow).where(GraduationChangeRow.round_id == rnd.id)
                ).scalars()
            ]
        return out

    def _rankings(self, s: Session, rnd: Round) -> list[dict[str, Any]]:
        rows = (
            s.execute(
                select(RoundResult)
                .where(RoundResult.round_id == rnd.id)
                .order_by(RoundResult.division_id, RoundResult.rank)
            )
            .scalars()
            .all()
        )
        labels = self._labels(s, [r.policy_version_id for r in rows])
        divs = {
            d.id: d.name
            for d in s.execute(select(Division).where(Division.league_id == rnd.league_id)).scalars()
        }
        return [
            {
                "division_id": ids.public("division", r.division_id),
                "division": divs.get(r.division_id),
                "rank": r.rank,
                "score": r.score,
                "policy_version_id": r.policy_version_id,
                "label": labels.get(r.policy_version_id),
                "result_metadata": r.result_metadata,
            }
            for r in rows
        ]

    def round_rankings(self, round_id: str) -> list[dict[str, Any]]:
        return self._read(lambda s: self._rankings(s, self._round(s, round_id)))

    def rounds(
        self,
        round_ref: str | None = None,
        league_ref: str | None = None,
        status: str | None = None,
        limit: int = 25,
        offset: int = 0,
    ) -> dict[str, Any]:
        def fn(s: Session) -> dict[str, Any]:
            if round_ref:
                rnd = self._round(s, round_ref)
                return {
                    "entries": [self._round_json(s, rnd, detail=True)],
                    "total_count": 1,
                    "limit": 1,
                    "offset": 0,
                }
            q = select(Round)
            if league_ref:
                q = q.where(Round.league_id == self._league(s, league_ref).id)
            if status:
                q = q.where(Round.status == status)
            total = s.execute(select(func.count()).select_from(q.subquery())).scalar()
            rows = (
                s.execute(
                    q.order_by(Round.started_at.desc(), Round.round_number.desc()).limit(limit).offset(offset)
                )
                .scalars()
                .all()
            )
            return {
                "entries": [self._round_json(s, r) for r in rows],
                "total_count": total,
                "limit": limit,
                "offset": offset,
            }

        return self._read(fn)

    def divisions(
        self, division_ref: str | None = None, league_ref: str | None = None
    ) -> list[dict[str, Any]]:
        def fn(s: Session) -> list[dict[str, Any]]:
            if division_ref:
                divs = [self._division(s, division_ref, self._league(s, league_ref) if league_ref else None)]
            else:
                q = select(Division)
                if league_ref:
                    q = q.where(Division.league_id == self._league(s, league_ref).id)
                divs = s.execute(q.order_by(Division.league_id, Division.level)).scalars().all()
            out = []
            for d in divs:
                league = s.get(League, d.league_id)
                n = s.execute(
                    select(func.count())
                    .select_from(Membership)
                    .where(Membership.division_id == d.id, Membership.status.in_(ELIGIBLE))
                ).scalar()
                out.append(
                    {
                        "id": ids.public("division", d.id),
                        "name": d.name,
                        "level": d.level,
                        "league": {"id": ids.public("league", league.id), "name": league.name},
                        "member_count": n,
                        "commissioner_description": {
                            "round_schedule": (
                                f"every {league.interval_minutes:g} minutes"
                                if league.interval_minutes
                                else "manual (coworld round run)"
                            ),
                            "round_structure": league.commissioner,
                            "leaderboard_rules": "openskill Plackett-Luce; rank by mu - 3 sigma",
                        },
                        "created_at": _dt(d.created_at),
                    }
                )
            return out

        return self._read(fn)

    def memberships(
        self,
        league_ref: str | None = None,
        division_ref: str | None = None,
        policy_ref: str | None = None,
        status: str | None = None,
        limit: int = 1000,
    ) -> list[dict[str, Any]]:
        def fn(s: Session) -> list[dict[str, Any]]:
            q = select(Membership)
            league = self._league(s, league_ref) if league_ref else None
            if league:
                q = q.where(Membership.league_id == league.id)
            if division_ref:
                q = q.where(Membership.division_id == self._division(s, division_ref, league).id)
            if policy_ref:
                q = q.where(Membership.policy_version_id == self._policy_version(s, policy_ref).id)
            if status:
                q = q.where(Membership.status == status)
            ms = s.execute(q.order_by(Membership.created_at).limit(limit)).scalars().all()
            labels = self._labels(s, [m.policy_version_id for m in ms])
            leagues = {lg.id: lg.name for lg in s.execute(select(League)).scalars()}
            divs = {d.id: d.name for d in s.execute(select(Division)).scalars()}
            return [
                {
                    "id": ids.public("membership", m.id),
                    "status": m.status,
                    "status_reason": m.status_reason,
                    "is_active": m.status in ELIGIBLE,
                    "is_champion": False,
                    "league": {"id": ids.public("league", m.league_id), "name": leagues.get(m.league_id)},
                    "division": {
                        "id": ids.public("division", m.division_id),
                        "name": divs.get(m.division_id),
                    },
                    "policy_version": {"id": m.policy_version_id, "label": labels.get(m.policy_version_id)},
                    "consecutive_failures": m.consecutive_failures,
                    "failure_episode_ids": [ids.public("ereq", x) for x in m.failure_episode_ids or []],
                    "start_time": _dt(m.created_at),
                    "updated_at": _dt(m.updated_at),
                }
                for m in ms
            ]

        return self._read(fn)

    def submissions(
        self, league_ref: str | None = None, policy_ref: str | None = None, limit: int = 1000
    ) -> list[dict[str, Any]]:
        def fn(s: Session) -> list[dict[str, Any]]:
            q = select(Submission)
            if league_ref:
                q = q.where(Submission.league_id == self._league(s, league_ref).id)
            if policy_ref:
                q = q.where(Submission.policy_version_id == self._policy_version(s, policy_ref).id)
            subs = s.execute(q.order_by(Submission.created_at).limit(limit)).scalars().all()
            labels = self._labels(s, [x.policy_version_id for x in subs])
            leagues = {lg.id: lg.name for lg in s.execute(select(League)).scalars()}
            return [
                {
                    "id": ids.public("submission", x.id),
                    "status": x.status,
                    "league": {"id": ids.public("league", x.league_id), "name": leagues.get(x.league_id)},
                    "policy_version": {"id": x.policy_version_id, "label": labels.get(x.policy_version_id)},
                    "league_policy_membership_id": ids.public("membership", x.membership_id),
                    "notes": x.notes,
                    "created_at": _dt(x.created_at),
                }
                for x in subs
            ]

        return self._read(fn)

    def _episode_json(self, e: EpisodeRequestRow, labels: dict[str, str]) -> dict[str, Any]:
        ws = Path(e.workspace) if e.workspace else self.episode_workspace(e.id)
        replay = ws / "replay.json"
        return {
            "id": ids.public("ereq", e.id),
            "request_id": e.request_id,
            "league_id": ids.public("league", e.league_id),
            "round_id": ids.public("round", e.round_id),
            "division_id": ids.public("division", e.division_id),
            "variant_id": e.variant_id,
            "seed": e.seed,
            "status": e.status,
            "attempts": e.attempt,
            "policy_version_ids": e.policy_version_ids,
            "participants": [
                {"position": i, "policy_version_id": pv, "label": labels.get(pv)}
                for i, pv in enumerate(e.policy_version_ids)
            ],
            "scores": [
                {"position": i, "policy_version_id": pv, "score": e.scores[i]}
                for i, pv in enumerate(e.policy_version_ids)
            ]
            if e.scores
            else [],
            "error": e.error,
            "attempt_errors": e.attempt_errors,
            "workspace": str(ws),
            # Local file first; else where the artifact store keeps it (e.g. s3://...).
            "replay_path": str(replay)
            if replay.exists()
            else (e.artifacts or {}).get("replay.json.z") or (e.artifacts or {}).get("replay.json"),
            "artifacts": e.artifacts,
            "wall_seconds": e.wall_seconds,
            "created_at": _dt(e.created_at),
            "finished_at": _dt(e.finished_at),
        }

    def episodes(
        self,
        ereq_ref: str | None = None,
        league_ref: str | None = None,
        round_ref: str | None = None,
        policy_ref: str | None = None,
        status: str | None = None,
        with_replay: bool = False,
        limit: int = 200,
        offset: int = 0,
    ) -> list[dict[str, Any]]:
        def fn(s: Session) -> list[dict[str, Any]]:
            if ereq_ref:
                e = self._ereq(s, ereq_ref)
                return [self._episode_json(e, self._labels(s, e.policy_version_ids))]
            q = select(EpisodeRequestRow)
            if league_ref:
                q = q.where(EpisodeRequestRow.league_id == self._league(s, league_ref).id)
            if round_ref:
                q = q.where(EpisodeRequestRow.round_id == self._round(s, round_ref).id)
            if status:
                q = q.where(EpisodeRequestRow.status == status)
            if policy_ref:
                pv = self._policy_version(s, policy_ref)
                q = q.where(
                    EpisodeRequestRow.id.in_(
                        select(EpisodeSlot.ereq_id).where(EpisodeSlot.policy_version_id == pv.id)
                    )
                )
            if with_replay:
                q = q.where(EpisodeRequestRow.status == "succeeded")
            rows = (
                s.execute(
                    q.order_by(EpisodeRequestRow.created_at.desc(), EpisodeRequestRow.id)
                    .limit(limit)
                    .offset(offset)
                )
                .scalars()
                .all()
            )
            labels = self._labels(s, [pv for e in rows for pv in e.policy_version_ids])
            out = [self._episode_json(e, labels) for e in rows]
            return [o for o in out if o["replay_path"]] if with_replay else out

        return self._read(fn)

    def episode_dir(self, ereq_ref: str) -> Path:
        return self._read(
            lambda s: Path(
                self._ereq(s, ereq_ref).workspace or self.episode_workspace(self._ereq(s, ereq_ref).id)
            )
        )

    def events(
        self,
        league_ref: str | None = None,
        round_ref: str | None = None,
        event_type: str | None = None,
        policy_ref: str | None = None,
        division_ref: str | None = None,
        limit: int = 50,
        after_id: int | None = None,
    ) -> list[dict[str, Any]]:
        def fn(s: Session) -> list[dict[str, Any]]:
            q = select(Event)
            league = self._league(s, league_ref) if league_ref else None
            if league:
                q = q.where(Event.league_id == league.id)
            if round_ref:
                q = q.where(Event.round_id == self._round(s, round_ref).id)
            if division_ref:
                q = q.where(Event.division_id == self._division(s, division_ref, league).id)
            if event_type:
                q = q.where(Event.event_type == event_type)
            if policy_ref:
                q = q.where(Event.policy_version_id == self._policy_version(s, policy_ref).id)
            if after_id is not None:
                q = q.where(Event.id > after_id)
            rows = s.execute(q.order_by(Event.id.desc()).limit(limit)).scalars().all()
            return [
                {
                    "id": ev.id,
                    "event_type": ev.event_type,
                    "created_at": _dt(ev.created_at),
                    "headline": ev.headline,
                    "league_id": ids.public("league", ev.league_id),
                    "division_id": ids.public("division", ev.division_id),
                    "round_id": ids.public("round", ev.round_id),
                    "episode_request_id": ids.public("ereq", ev.ereq_id),
                    "policy_version_id": ev.policy_version_id,
                    "payload": ev.payload,
                }
                for ev in reversed(rows)
            ]

        return self._read(fn)

    def nothing_to_do(self, league_ref: str, reason: str, **payload: Any) -> None:
        """Record a scheduler tick that decided to do nothing, and why."""

        def fn(s: Session) -> None:
            league = self._league(s, league_ref)
            self._event(
                s,
                "nothing_to_do",
                f"{league.name}: nothing to do because {reason}",
                league_id=league.id,
                reason=reason,
                **payload,
            )

        self._write(fn)

    def open_round_for(self, league_ref: str) -> str | None:
        def fn(s: Session) -> str | None:
            league = self._league(s, league_ref)
            return s.execute(
                select(Round.id).where(Round.league_id == league.id, Round.status == "running")
            ).scalar_one_or_none()

        return self._read(fn)

    def resolve_league_id(self, league_ref: str) -> str:
        return self._read(lambda s: self._league(s, league_ref).id)

    def counts(self) -> dict[str, int]:
        """Row counts per table (tests and diagnostics)."""
        from coworld_pipeline.league.models import Base

        def fn(s: Session) -> dict[str, int]:
            return {
                t.name: s.execute(select(func.count()).select_from(t)).scalar()
                for t in Base.metadata.sorted_tables
            }

        return self._read(fn)


class _FailedOutcome:
    def __init__(self, workspace: Path, error: EpisodeFailure):
        self.workspace = workspace
        self.error = error
        self.scores = None
        self.results = None
        self.wall_seconds = 0.0
        self.ok = False
        self.artifacts = None


def _archive_attempt(workspace: Path, attempt: int) -> None:
    """Keep an earlier attempt's files under `previous_attempts/attempt-N/` before re-running."""
    if attempt <= 1 or not workspace.exists():
        return
    dest = workspace / "previous_attempts" / f"attempt-{attempt - 1}"
    dest.mkdir(parents=True, exist_ok=True)
    for child in list(workspace.iterdir()):
        if child.name == "previous_attempts":
            continue
        shutil.move(str(child), str(dest / child.name))


__all__ = ["DEFAULT_FAILURE_POLICY", "LeagueError", "LeagueService", "NotFound", "RoundProgress"]
