"""A league simulator: the league's own commissioners and rating code, synthetic policies, no episodes.

Use it to compare scheduling strategies in seconds:

    skills = synthetic_skills(32, random.Random(1))
    result = simulate("adaptive", skills, slots=2, seed=1, max_episodes=2000,
                      stop=lambda sim: kendall_tau(sim.ranking(), skills) >= 0.9)

What is real and what is synthetic:

* Real: the commissioner object (`commissioners.make_commissioner`, so every registered strategy
  including ``adaptive``), every message it gets and sends (CONTRACT §9 JSON, parsed with the same
  pydantic models the platform uses), the carried `state` between rounds, and the standings: the
  platform's credit rule and Plackett-Luce update (`ratings.credit` / `ratings.apply_episode`),
  ranked like `coworld results` (mu − 3 sigma, then key).
* Synthetic: policies are keys with a fixed true skill; an episode's placement is drawn from a
  Plackett-Luce model (Gumbel performance noise of scale √2·beta, which is openskill's own 2-player
  likelihood) or a Thurstone model (Gaussian performance noise with sd beta, TrueSkill's generative
  model). Each seat scores (slots − 1 − place), so an entrant in several seats is credited the mean.
* Platform behaviour modelled: schedules are validated (variant, slot count, membership, unique
  request ids) and answered with `episodes_accepted` / `episodes_rejected`; in-flight episodes finish
  in random order, as parallel runs do; a round's `round_complete.state` is the next `round_start.state`
  and its rankings become `recent_results`. Not modelled: failures, quarantine, several divisions.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from coworld_pipeline.contract.commissioner import (
    RoundComplete,
    ScheduleEpisodes,
    parse_commissioner_message,
)
from coworld_pipeline.league.commissioners import make_commissioner
from coworld_pipeline.league.ratings import BETA, MU, SIGMA, Standing, apply_episode, conservative, credit

MODELS = ("plackett-luce", "thurstone")
DIVISION = "D"
VARIANT = "sim"
# Gumbel scale giving P(a beats b) = logistic((a − b) / (√2·beta)), openskill PL's 2-player likelihood.
GUMBEL_SCALE = math.sqrt(2.0) * BETA


def synthetic_skills(n: int, rng: random.Random, spread: float = 1.0, prefix: str = "p") -> dict[str, float]:
    """n policies with true skills drawn from N(MU, (spread·SIGMA)²); spread 1 is the rating prior.

    Keys carry no information about skill (p00, p01, ... in draw order).
    """
    width = len(str(n - 1))
    return {f"{prefix}{i:0{width}d}": rng.gauss(MU, spread * SIGMA) for i in range(n)}


def draw_scores(skills: Sequence[float], rng: random.Random, model: str = "plackett-luce") -> list[float]:
    """Per-seat scores of one synthetic episode: slots − 1 − place, place 0 the best performance."""
    if model == "plackett-luce":
        # skill + Gumbel noise, sorted, is exactly a Plackett-Luce draw with weights exp(skill / scale)
        perf = [s - GUMBEL_SCALE * math.log(-math.log(1.0 - rng.random())) for s in skills]
    elif model == "thurstone":
        perf = [rng.gauss(s, BETA) for s in skills]
    else:
        raise ValueError(f"unknown outcome model {model!r} (choose: {', '.join(MODELS)})")
    order = sorted(range(len(perf)), key=lambda i: -perf[i])
    scores = [0.0] * len(perf)
    for place, seat in enumerate(order):
        scores[seat] = float(len(perf) - 1 - place)
    return scores


def kendall_tau(ranking: Sequence[str], truth: Mapping[str, float]) -> float:
    """Kendall's tau between a ranking (best first) and the order of the true skills (no ties)."""
    true_pos = sorted(ranking, key=lambda k: -truth[k])
    pos = {k: i for i, k in enumerate(true_pos)}
    seq = [pos[k] for k in ranking]
    n = len(seq)
    if n < 2:
        return 1.0
    concordant = sum(1 for i in range(n) for j in range(i + 1, n) if seq[i] < seq[j])
    pairs = n * (n - 1) // 2
    return (2 * concordant - pairs) / pairs


def game_information(skills: Sequence[float]) -> float:
    """Fisher information one Plackett-Luce game among `skills` carries about its players' skills.

    The trace of the expected information matrix (per player, how much the game pins its skill
    down), for the simulator's Plackett-Luce outcomes (scale √2·beta). A stage of the placement with
    `remaining` players contributes Σ p_i (1 − p_i) / scale² (p: who of them places next); stages
    are averaged over the placements reached. It is largest for evenly matched players
    (Σ over m = 2..slots of (1 − 1/m), over scale²) and falls off quickly with the skill gaps, which
    is why pairing near neighbours beats playing everyone (see `information_floor`).
    """
    weights = [math.exp(s / GUMBEL_SCALE) for s in skills]
    memo: dict[int, float] = {}

    def expected(remaining: int) -> float:  # bitmask of players not yet placed
        if remaining & (remaining - 1) == 0:  # one player left: nothing more to learn
            return 0.0
        if remaining not in memo:
            members = [i for i in range(len(weights)) if remaining >> i & 1]
            total = sum(weights[i] for i in members)
            p = [weights[i] / total for i in members]
            here = sum(q * (1.0 - q) for q in p)
            after = sum(q * expected(remaining & ~(1 << i)) for q, i in zip(p, members, strict=True))
            memo[remaining] = here + after
        return memo[remaining]

    return expected((1 << len(weights)) - 1) / (GUMBEL_SCALE * GUMBEL_SCALE)


def information_floor(skills: Mapping[str, float], slots: int) -> float:
    """How much information a round-robin game carries, relative to an evenly matched one.

    The mean `game_information` over every group of `slots` policies (what a round-robin plays),
    divided by that of a group of equal skills (the most any game can carry). To pin every skill
    down to a given precision, a schedule needs about (round-robin episodes) × this ratio episodes
    at best, so it is a rough floor on the adaptive / round-robin ratio for these skills: unequal
    precision needs and luck in the first-hit time move it a little, local-only schedules (whose
    errors add up along the ranking) stay well above it.
    """
    values = list(skills.values())
    count, total = 0, 0.0
    for group in itertools.combinations(values, slots):
        total += game_information(group)
        count += 1
    return (total / count) / game_information([MU] * slots) if count else 1.0


@dataclass
class Simulation:
    """What an observer sees: episodes rated so far, the current round and the league's standings."""

    skills: dict[str, float]
    slots: int
    table: dict[str, Standing] = field(default_factory=dict)
    episodes: int = 0
    round_number: int = 0
    rejected: int = 0
    per_round: list[int] = field(default_factory=list)
    last_complete: dict[str, Any] | None = None
    # every rated episode as (entrant → credited score), in rating order: for estimators other than
    # the league's (benchmarks/map_estimate.py)
    history: list[dict[str, float]] = field(default_factory=list)

    def standings(self) -> list[tuple[str, float, float]]:
        """(key, mu, sigma) in the league's rank order: mu − 3 sigma, then key; unrated at the prior."""
        rows = [
            (k, self.table[k].mu, self.table[k].sigma) if k in self.table else (k, MU, SIGMA)
            for k in self.skills
        ]
        rows.sort(key=lambda r: (-conservative(r[1], r[2]), r[0]))
        return rows

    def ranking(self) -> list[str]:
        return [k for k, _, _ in self.standings()]


@dataclass
class SimResult:
    sim: Simulation
    stopped: bool  # the `stop` predicate fired
    reason: str


def _round_start(sim: Simulation, config: dict[str, Any], carry: Any) -> dict[str, Any]:
    recent = []
    if sim.last_complete is not None:
        for div in sim.last_complete.get("results", []):
            for row in div["rankings"]:
                recent.append(
                    {
                        "round_id": f"round-{sim.round_number - 1}",
                        "division_id": div["division_id"],
                        "round_number": sim.round_number - 1,
                        "policy_version_id": row["policy_version_id"],
                        "rank": row["rank"],
                        "score": row["score"],
                    }
                )
    return {
        "type": "round_start",
        "round_id": f"round-{sim.round_number}",
        "round_number": sim.round_number,
        "league": {"id": "sim-league", "commissioner_config": config},
        "divisions": [{"id": DIVISION, "name": "open", "level": 1}],
        "memberships": [
            {"id": f"m-{k}", "division_id": DIVISION, "policy_version_id": k} for k in sim.skills
        ],
        "recent_results": recent,
        "variants": [{"id": VARIANT, "name": VARIANT, "game_config": {}, "slot_count": sim.slots}],
        "state": carry,
    }


def _validate_schedule(
    msg: ScheduleEpisodes, sim: Simulation, used: set[str]
) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """What the platform would accept of one schedule_episodes (the checks that apply here)."""
    accepted: list[dict[str, Any]] = []
    errors: dict[str, str] = {}
    for ep in msg.episodes:
        if ep.request_id in used:
            errors[ep.request_id] = f"duplicate request_id {ep.request_id!r} in this round"
        elif ep.variant_id != VARIANT:
            errors[ep.request_id] = f"unknown variant {ep.variant_id!r}"
        elif len(ep.policy_version_ids) != sim.slots:
            errors[ep.request_id] = f"{len(ep.policy_version_ids)} policies for {sim.slots} slots"
        elif any(pv not in sim.skills for pv in ep.policy_version_ids):
            errors[ep.request_id] = "a policy version is not a member of the division"
        else:
            accepted.append(ep.model_dump(mode="json"))
        used.add(ep.request_id)
    return accepted, errors


def simulate(
    strategy: str,
    skills: dict[str, float],
    *,
    slots: int = 2,
    config: dict[str, Any] | None = None,
    seed: int = 0,
    model: str = "plackett-luce",
    max_episodes: int = 10_000,
    max_rounds: int = 1_000,
    stop: Callable[[Simulation], bool] | None = None,
    on_round: Callable[[Simulation], None] | None = None,
) -> SimResult:
    """Run rounds of `strategy` until `stop(sim)` (checked after every rated episode) or a limit.

    `on_round(sim)` is called after each round_complete, with `sim.last_complete` set to it.
    """
    if model not in MODELS:
        raise ValueError(f"unknown outcome model {model!r} (choose: {', '.join(MODELS)})")
    rng = random.Random(seed)
    config = {**(config or {}), "strategy": strategy}
    commissioner = make_commissioner(strategy, config)
    sim = Simulation(skills=dict(skills), slots=slots)
    carry: Any = None
    for number in range(1, max_rounds + 1):
        sim.round_number = number
        before = sim.episodes
        state, outbox = commissioner.handle(_round_start(sim, config, carry), None)
        in_flight: list[dict[str, Any]] = []
        used: set[str] = set()
        complete: RoundComplete | None = None
        while complete is None:
            while outbox:
                msg = parse_commissioner_message(outbox.pop(0))
                if isinstance(msg, RoundComplete):
                    complete = msg
                    continue
                accepted, errors = _validate_schedule(msg, sim, used)
                sim.rejected += len(errors)
                in_flight += accepted
                if accepted:
                    state, more = commissioner.handle(
                        {"type": "episodes_accepted", "request_ids": [e["request_id"] for e in accepted]},
                        state,
                    )
                    outbox += more
                if errors:
                    state, more = commissioner.handle(
                        {"type": "episodes_rejected", "request_ids": list(errors), "errors": errors}, state
                    )
                    outbox += more
            if complete is not None:
                break
            if not in_flight:
                raise RuntimeError(f"{strategy}: nothing in flight and no round_complete in round {number}")
            # parallel runs finish in any order: take a random in-flight episode (swap-pop, O(1))
            i = rng.randrange(len(in_flight))
            in_flight[i], in_flight[-1] = in_flight[-1], in_flight[i]
            ep = in_flight.pop()
            pvs = ep["policy_version_ids"]
            scores = draw_scores([skills[pv] for pv in pvs], rng, model)
            credited = credit(pvs, scores)
            if apply_episode(sim.table, credited):
                sim.history.append(credited)
            sim.episodes += 1
            stopped = stop is not None and stop(sim)
            if stopped or sim.episodes >= max_episodes:
                commissioner.handle({"type": "round_abort", "reason": "simulation stopped"}, state)
                sim.per_round.append(sim.episodes - before)
                if stopped:
                    return SimResult(sim, True, f"stop condition met after {sim.episodes} episodes")
                return SimResult(sim, False, f"episode limit {max_episodes} reached")
            state, more = commissioner.handle(
                {
                    "type": "episode_result",
                    "request_id": ep["request_id"],
                    "scores": [
                        {"policy_version_id": pv, "score": s} for pv, s in zip(pvs, scores, strict=True)
                    ],
                },
                state,
            )
            outbox += more
        sim.per_round.append(sim.episodes - before)
        sim.last_complete = complete.to_json_dict()
        carry = complete.state
        if on_round is not None:
            on_round(sim)
        if sim.episodes == before:
            return SimResult(sim, False, f"round {number} scheduled no episodes")
    return SimResult(sim, False, f"round limit {max_rounds} reached")
