"""The Coworld manifest (`coworld_manifest.json`): models, loading and semantic validation.

The models accept every manifest that the reference 0.1.11 JSON Schema accepts. On top of the schema,
`parse_manifest` enforces what the reference enforces in code (token rule, configs validated with
placeholder tokens, certification players resolvable, PEP 440 version) and a few things it only
documents (results must declare a per-slot `scores` array, config/results schemas must themselves be
valid JSON Schemas). Every problem is reported at once, each with its JSON path.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import unquote, urlparse

from packaging.version import InvalidVersion, Version
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError

from coworld_pipeline.contract.bounded_schema import schema_problems, validation_budget, validation_problems
from coworld_pipeline.contract.extensions import (
    API_VERSION_V1,
    ReplayViewer,
    ReporterReference,
    Resources,
    Startup,
    reporter_implementations,
    reporter_name,
)
from coworld_pipeline.contract.generations import Generation, detect_generation, strip_unknown
from coworld_pipeline.contract.limits import (
    MAX_ROLE_ENTRIES,
    MAX_SLOTS,
    MAX_VARIANTS,
    bounds_problems,
    read_json_document,
)
from coworld_pipeline.contract.os_limits import manifest_runnable_problems
from coworld_pipeline.contract.problems import ContractError, Problem, json_path, pydantic_problems

MANIFEST_FILENAME = "coworld_manifest.json"


class Role(StrEnum):
    PLAYER = "player"
    REPORTER = "reporter"
    COMMISSIONER = "commissioner"
    GRADER = "grader"
    DIAGNOSER = "diagnoser"
    OPTIMIZER = "optimizer"


SUPPORTING_ROLES = [Role.REPORTER, Role.COMMISSIONER, Role.GRADER, Role.DIAGNOSER, Role.OPTIMIZER]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TextDoc(_Strict):
    type: Literal["text"]
    value: str = Field(min_length=1)


class UriDoc(_Strict):
    type: Literal["uri"]
    value: str = Field(min_length=1, pattern=r"^https?://")


Doc = Annotated[TextDoc | UriDoc, Field(discriminator="type")]


class DocPage(_Strict):
    id: str = Field(min_length=1)
    title: str = Field(min_length=1)
    content: Doc


class Docs(_Strict):
    readme: Doc | None = None
    pages: list[DocPage] = Field(default_factory=list)


class ProtocolDocs(_Strict):
    player: Doc
    global_: Doc = Field(alias="global")
    engine_runtime: Literal["mettagrid", "cogweb", "bitworld", "nimgrid"] | None = None  # 0.1.64

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Runnable(BaseModel):
    """What starts a runnable: an image, an optional argv replacing entrypoint+cmd, public env."""

    # The reference drops unknown runnable keys rather than rejecting them (parse_manifest warns).
    model_config = ConfigDict(extra="ignore")

    image: str
    run: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)


class ManifestRunnable(Runnable):
    """A runnable declared in a manifest: 0.1.64 adds resources, startup and provenance."""

    source_url: str | None = None
    resources: Resources | None = None
    startup: Startup | None = None


class GameRunnable(ManifestRunnable):
    type: Literal["game"] = "game"


class RoleRunnable(ManifestRunnable):
    type: Role
    id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    description: str = Field(min_length=1)
    # 0.1.64: a player entry has exactly one of `image` (platform-hosted) or `file` (game-hosted).
    image: str = ""
    file: str | None = Field(default=None, min_length=1)
    repository_url: str | None = None


class GameSpec(_Strict):
    name: str = Field(min_length=1)
    # Optional only so that templates (which `coworld build` hydrates) can be validated too;
    # `CoworldManifest.is_template` tells the two apart.
    version: str | None = Field(default=None, min_length=1)
    description: str = Field(min_length=1)
    owner: str = Field(min_length=1)
    config_schema: dict[str, Any]
    results_schema: dict[str, Any]
    runnable: GameRunnable
    protocols: ProtocolDocs
    docs: Docs | None = None
    # 0.1.64 additions. The runtime serves `replay_viewer`; the rest is hosted-only and kept as given.
    replay_viewer: ReplayViewer | None = None
    player_runtime: Literal["platform-hosted", "game-hosted"] | None = None
    memory: dict[str, Any] | None = None
    promo: dict[str, Any] | None = None
    achievements: list[dict[str, Any]] | None = None
    log: dict[str, Any] | None = None
    task_environments: dict[str, Any] | None = None


class Variant(_Strict):
    id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    description: str = Field(min_length=1)
    game_config: dict[str, Any]
    parent_id: str | None = Field(default=None, min_length=1)


class CertificationPlayer(_Strict):
    player_id: str = Field(min_length=1)


class CertificationFixture(_Strict):
    game_config: dict[str, Any]
    players: list[CertificationPlayer] = Field(min_length=1, max_length=MAX_SLOTS)


@dataclass(frozen=True)
class SlotRule:
    """How many slots a config has.

    Reference 0.1.11: `tokens.minItems == tokens.maxItems` is the fixed slot count. Newer references
    (EVOLUTION §2) treat unequal bounds as a range whose concrete count comes from
    `game_config.players`; we accept that only when `players` is declared with the same bounds, so
    every config still fixes its count unambiguously.
    """

    min_slots: int
    max_slots: int
    # 0.1.64: the bounds only say which counts are valid; the roster (the players of an episode)
    # fixes the count, so a config need not carry a `players` array.
    roster_sized: bool = False

    @property
    def fixed(self) -> bool:
        return self.min_slots == self.max_slots

    def slots_for(self, game_config: dict[str, Any], roster: int | None = None) -> int:
        if self.fixed:
            return self.min_slots
        players = game_config.get("players")
        if isinstance(players, list):
            return len(players)
        if self.roster_sized and roster is not None:
            return roster
        raise ValueError("game_config.players must be an array: it sets the slot count of this config")

    def describe(self) -> str:
        return str(self.min_slots) if self.fixed else f"{self.min_slots}-{self.max_slots}"


class CoworldManifest(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    schema_: str | None = Field(default=None, alias="$schema")
    api_version: Literal["coworld.softmax.com/v1"] | None = Field(default=None, alias="apiVersion")
    tags: list[Annotated[str, Field(min_length=1)]] | None = Field(default=None, min_length=3)
    players_per_user: int | None = Field(default=None, ge=1)
    episode_timeout_minutes: int | None = Field(default=None, ge=1, le=1440)
    game: GameSpec
    player: list[RoleRunnable] = Field(min_length=1, max_length=MAX_ROLE_ENTRIES)
    # Image runnables (<= 0.1.11) or, from 0.1.64, references to registered/wasm reporters.
    reporter: list[RoleRunnable | ReporterReference] = Field(
        default_factory=list, max_length=MAX_ROLE_ENTRIES
    )
    commissioner: list[RoleRunnable] = Field(default_factory=list, max_length=MAX_ROLE_ENTRIES)
    grader: list[RoleRunnable] = Field(default_factory=list, max_length=MAX_ROLE_ENTRIES)
    diagnoser: list[RoleRunnable] = Field(default_factory=list, max_length=MAX_ROLE_ENTRIES)
    optimizer: list[RoleRunnable] = Field(default_factory=list, max_length=MAX_ROLE_ENTRIES)
    variants: list[Variant] = Field(min_length=1, max_length=MAX_VARIANTS)
    certification: CertificationFixture

    # Fields no generation defines, dropped at parse time (JSON path + message each).
    _warnings: list[Problem] = PrivateAttr(default_factory=list)
    _generation: Generation | None = PrivateAttr(default=None)

    # ---- derived facts -------------------------------------------------------------------------

    @property
    def is_template(self) -> bool:
        return self.game.version is None

    @property
    def generation(self) -> Generation:
        # Computed from the fields (not the raw input), so a stored and reloaded manifest keeps it.
        if self._generation is None:
            self._generation = detect_generation(self.to_json_dict())
        return self._generation

    @property
    def schema_version(self) -> str:
        """The 0.1.64 author-schema version: "v1" with `apiVersion`, else "v0"."""
        return "v1" if self.api_version == API_VERSION_V1 else "v0"

    @property
    def warnings(self) -> list[Problem]:
        return list(self._warnings)

    @property
    def reporter_references(self) -> list[ReporterReference]:
        return [r for r in self.reporter if isinstance(r, ReporterReference)]

    @property
    def slot_rule(self) -> SlotRule:
        rule, problems = _slot_rule(self.game.config_schema, self.generation is Generation.V0_1_64)
        if rule is None:
            raise ContractError("manifest", problems)
        return rule

    def slots_for(self, game_config: dict[str, Any], roster: int | None = None) -> int:
        return self.slot_rule.slots_for(game_config, roster)

    def describe_slots(self, game_config: dict[str, Any]) -> int | str:
        """A config's slot count, or the valid range when the roster fixes it (0.1.64)."""
        try:
            return self.slots_for(game_config)
        except ValueError:
            return self.slot_rule.describe()

    def variant(self, variant_id: str) -> Variant:
        for v in self.variants:
            if v.id == variant_id:
                return v
        known = ", ".join(v.id for v in self.variants)
        raise KeyError(f"unknown variant {variant_id!r} (this Coworld has: {known})")

    def role(self, role: Role | str) -> list[RoleRunnable]:
        """Runnable entries of a role; a reporter reference counts when the package implements it.

        (`x-coworld-reporters` in the results schema, see contract/extensions.py; other references
        run nothing here.)
        """
        if Role(role) is not Role.REPORTER:
            return [r for r in getattr(self, Role(role).value) if isinstance(r, RoleRunnable)]
        implemented, _ = reporter_implementations(self.game.results_schema)
        found: list[RoleRunnable] = []
        for entry in self.reporter:
            if isinstance(entry, RoleRunnable):
                found.append(entry)
            elif entry.reporter is not None and entry.reporter in implemented:
                impl = implemented[entry.reporter]
                ident = impl.id or reporter_name(entry.reporter)
                found.append(
                    RoleRunnable(
                        type=Role.REPORTER,
                        id=ident,
                        name=impl.name or ident,
                        description=impl.description or f"implements {entry.reporter}",
                        image=impl.image or self.game.runnable.image,
                        run=impl.run,
                        env=impl.env,
                    )
                )
        return found

    def player_runnable(self, player_id: str) -> RoleRunnable:
        for p in self.player:
            if p.id == player_id:
                return p
        known = ", ".join(p.id for p in self.player)
        raise KeyError(f"unknown player {player_id!r} (declared players: {known})")

    def all_images(self) -> list[str]:
        images = [self.game.runnable.image]
        for role in Role:
            images += [r.image for r in self.role(role) if r.image]
        return list(dict.fromkeys(images))

    def to_json_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)

    @property
    def content_hash(self) -> str:
        """sha256 of the canonical JSON, used to key stored Coworld versions."""
        canonical = json.dumps(self.to_json_dict(), sort_keys=True, separators=(",", ":"))
        return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()

    @property
    def label(self) -> str:
        return f"{self.game.name}:{self.game.version or 'template'}"


# ---- validation ----------------------------------------------------------------------------------


def placeholder_tokens(n: int) -> list[str]:
    return [f"token-{i}" for i in range(n)]


def _slot_rule(
    config_schema: dict[str, Any], roster_sized: bool = False
) -> tuple[SlotRule | None, list[Problem]]:
    base = "$.game.config_schema"
    required = config_schema.get("required")
    if not isinstance(required, list) or "tokens" not in required:
        return None, [Problem(f"{base}.required", "must be a list that contains 'tokens'")]
    props = config_schema.get("properties")
    if not isinstance(props, dict) or not isinstance(props.get("tokens"), dict):
        return None, [Problem(f"{base}.properties.tokens", "must be an object (the per-slot token array)")]
    tokens = props["tokens"]
    tpath = f"{base}.properties.tokens"
    problems = []
    if tokens.get("type") != "array":
        problems.append(Problem(f"{tpath}.type", "must be 'array'"))
    items = tokens.get("items")
    if not isinstance(items, dict) or items.get("type") != "string":
        problems.append(Problem(f"{tpath}.items", "must be an object with type 'string'"))
    lo, hi = tokens.get("minItems"), tokens.get("maxItems")
    for key, val in (("minItems", lo), ("maxItems", hi)):
        if not isinstance(val, int) or isinstance(val, bool) or val < 1:
            problems.append(Problem(f"{tpath}.{key}", "must be a positive integer (it fixes the slot count)"))
        elif val > MAX_SLOTS:
            problems.append(
                Problem(f"{tpath}.{key}", f"{val} slots is more than the {MAX_SLOTS} one episode can have")
            )
    if problems:
        return None, problems
    assert isinstance(lo, int) and isinstance(hi, int)
    if lo == hi:
        return SlotRule(lo, hi), []
    players = props.get("players")
    if (
        lo < hi
        and isinstance(players, dict)
        and players.get("type") == "array"
        and players.get("minItems") == lo
        and players.get("maxItems") == hi
        and "players" in required
    ):
        return SlotRule(lo, hi), []
    if lo < hi and roster_sized:
        return SlotRule(lo, hi, roster_sized=True), []
    return None, [
        Problem(
            f"{tpath}.maxItems",
            f"minItems ({lo}) must equal maxItems ({hi}): that number is the slot count. A slot range is "
            "only accepted when config_schema also requires a 'players' array with the same "
            "minItems/maxItems, so that each config's players array fixes its slot count",
        )
    ]


def _check_json_schema(schema: dict[str, Any], path: str) -> list[Problem]:
    # Meta-schema, $ref resolution, $ref loops and RE2 patterns: see bounded_schema.
    return schema_problems(schema, path)


def _check_results_schema(schema: dict[str, Any]) -> list[Problem]:
    path = "$.game.results_schema"
    required = schema.get("required")
    if not isinstance(required, list) or "scores" not in required:
        return [Problem(f"{path}.required", "must contain 'scores' (one number per slot)")]
    properties = schema.get("properties")
    if not isinstance(properties, dict):
        return [Problem(f"{path}.properties", "must be an object that declares 'scores'")]
    scores = properties.get("scores")
    if not isinstance(scores, dict) or scores.get("type") != "array":
        return [Problem(f"{path}.properties.scores", "must be declared as an array of numbers")]
    items = scores.get("items")
    if isinstance(items, dict) and items.get("type") not in (None, "number", "integer"):
        return [Problem(f"{path}.properties.scores.items.type", "must be 'number' (one score per slot)")]
    return []


def check_game_config(
    manifest: CoworldManifest, game_config: dict[str, Any], path: str, expected_slots: int | None = None
) -> list[Problem]:
    """Check a token-free config: no tokens, a resolvable slot count, valid with placeholder tokens."""
    if "tokens" in game_config:
        return [Problem(f"{path}.tokens", "game_config must not include runner-managed tokens")]
    rule, _ = _slot_rule(manifest.game.config_schema, manifest.generation is Generation.V0_1_64)
    if rule is None:
        return []  # reported once against the config schema itself
    try:
        # A roster-sized config without players is checked at its smallest valid count.
        n = rule.slots_for(game_config, expected_slots or rule.min_slots)
    except ValueError as err:
        return [Problem(f"{path}.players", str(err))]
    if not rule.min_slots <= n <= rule.max_slots:
        return [Problem(f"{path}.players", f"{n} players is outside the slot range {rule.describe()}")]
    if expected_slots is not None and n != expected_slots:
        return [Problem(path, f"this config has {n} slots but {expected_slots} players were given")]
    concrete = {**game_config, "tokens": placeholder_tokens(n)}
    return validation_problems(manifest.game.config_schema, concrete, path, "game.config_schema")


def semantic_problems(manifest: CoworldManifest) -> list[Problem]:
    problems: list[Problem] = []
    game = manifest.game
    if game.version is not None:
        try:
            Version(game.version)
        except InvalidVersion:
            problems.append(Problem("$.game.version", f"{game.version!r} is not a PEP 440 version"))

    schema_problems = _check_json_schema(game.config_schema, "$.game.config_schema")
    schema_problems += _check_json_schema(game.results_schema, "$.game.results_schema")
    problems += schema_problems
    problems += _check_results_schema(game.results_schema)
    rule, rule_problems = _slot_rule(game.config_schema, manifest.generation is Generation.V0_1_64)
    problems += rule_problems

    if not game.runnable.image.strip():
        problems.append(Problem("$.game.runnable.image", "must not be empty"))
    for role in Role:
        for i, r in enumerate(getattr(manifest, role.value)):
            if not isinstance(r, RoleRunnable):
                continue
            if r.file is not None and role is not Role.PLAYER:
                problems.append(Problem(f"$.{role.value}[{i}].file", "only player entries may use 'file'"))
            elif r.file is not None and r.image:
                problems.append(Problem(f"$.{role.value}[{i}]", "has both 'image' and 'file': give one"))
            elif r.file is None and not r.image.strip():
                problems.append(Problem(f"$.{role.value}[{i}].image", "must not be empty"))

    problems += _implementations(manifest)[1]

    seen: dict[str, int] = {}
    for i, p in enumerate(manifest.player):
        if p.id in seen:
            problems.append(
                Problem(f"$.player[{i}].id", f"duplicate player id {p.id!r} (also $.player[{seen[p.id]}])")
            )
        seen.setdefault(p.id, i)

    variant_ids: dict[str, int] = {}
    for i, v in enumerate(manifest.variants):
        if v.id in variant_ids:
            problems.append(Problem(f"$.variants[{i}].id", f"duplicate variant id {v.id!r}"))
        variant_ids.setdefault(v.id, i)
    for i, v in enumerate(manifest.variants):
        if v.parent_id is not None and v.parent_id not in variant_ids:
            problems.append(Problem(f"$.variants[{i}].parent_id", f"no variant has id {v.parent_id!r}"))

    if rule is not None and not schema_problems:
        for i, v in enumerate(manifest.variants):
            problems += check_game_config(manifest, v.game_config, f"$.variants[{i}].game_config")
        cert = manifest.certification
        problems += check_game_config(
            manifest, cert.game_config, "$.certification.game_config", expected_slots=len(cert.players)
        )
    problems += manifest_runnable_problems(
        [("$.game.runnable", game.runnable)]
        + [
            (f"$.{role.value}[{i}]", r)
            for role in Role
            for i, r in enumerate(getattr(manifest, role.value))
            if isinstance(r, RoleRunnable)
        ]
    )
    for i, cp in enumerate(manifest.certification.players):
        if cp.player_id not in seen:
            problems.append(
                Problem(
                    f"$.certification.players[{i}].player_id",
                    f"no entry in $.player has id {cp.player_id!r} (declared: {', '.join(seen) or 'none'})",
                )
            )
    return problems


def parse_manifest(data: Any, source: str = "manifest") -> CoworldManifest:
    """Validate a decoded manifest; raise ContractError listing every problem."""
    if not isinstance(data, dict):
        raise ContractError(source, [Problem("$", "a manifest must be a JSON object")])
    # Depth, giant integers and size first: the models and schema checks below assume sane input.
    problems = bounds_problems(data)
    if problems:
        raise ContractError(source, problems)
    known, warnings = strip_unknown(data, [CoworldManifest])
    try:
        manifest = CoworldManifest.model_validate(known)
    except ValidationError as exc:
        raise ContractError(source, pydantic_problems(exc)) from None
    manifest._warnings = warnings
    with validation_budget():  # one budget for all of this manifest's schema checks
        problems = semantic_problems(manifest)
    if problems:
        raise ContractError(source, problems)
    manifest._warnings += _implementations(manifest)[0]
    return manifest


def _implementations(manifest: CoworldManifest) -> tuple[list[Problem], list[Problem]]:
    """Reporter implementations (extensions.py): unused ones (warnings), malformed ones (errors)."""
    implemented, found = reporter_implementations(manifest.game.results_schema)
    referenced = {r.reporter for r in manifest.reporter_references}
    unused = [
        Problem(
            json_path(["game", "results_schema", "x-coworld-reporters", reference]),
            f"no $.reporter entry references {reference}; nothing runs this implementation",
        )
        for reference in sorted(implemented.keys() - referenced)
    ]
    return unused, [Problem(json_path(parts), message) for parts, message in found]


def load_manifest(ref: str | Path) -> CoworldManifest:
    """Load and validate a manifest from a path or URI."""
    return parse_manifest(read_json_document(ref, "manifest"), source=f"manifest {ref}")


def manifest_dir(ref: str | Path) -> Path | None:
    """Directory of a local manifest (process runnables run there), or None for remote ones."""
    parsed = urlparse(str(ref))
    if parsed.scheme in ("http", "https"):
        return None
    path = Path(unquote(parsed.path)) if parsed.scheme == "file" else Path(ref)
    return path.resolve().parent
