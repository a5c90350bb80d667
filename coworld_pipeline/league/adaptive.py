"""The adaptive commissioner: spend episodes where the ranking is still uncertain, stop when it is not.

It speaks exactly the CONTRACT §9 messages of the other in-process commissioners (it reuses their
message handling, episode bookkeeping, graduation and completion; see commissioners.py) and differs
in what it schedules:

* It keeps its own rating posterior per division in the carried `state` (``state["adaptive"]``),
  updated from every `episode_result` with the league's own code (ratings.credit / apply_episode),
  so its picture of the standings is the platform's, without reading the database.
* Episodes go out in batches. When a batch has fully reported, the next one is chosen from the
  current posterior by one-step lookahead (`_Lookahead`): the standings' expected number of wrongly
  ordered pairs, Σ over pairs shown a above b of P(b really stronger) (confidence.p_stronger), is
  what Kendall's tau against the truth counts; a game's value is how much it is expected to drop
  (the part the posterior's own order would get wrong averaged over the game's outcomes with the
  league's own Plackett-Luce prediction and update, the part due to showing mu - 3 sigma from the
  sigma shrink alone: see `_Lookahead` for why the split). With
  `top_k`, only pairs touching the top k count (pairs inside it weigh 1 + `top_weight`). Candidate
  opponents are the _WINDOW (2) neighbours either side in the standings; a batch is the most valuable
  pairs, disjoint, best first; with more slots a group grows by whoever adds the most value.
* Seats: each group is seated by the permutation (all of them up to 5 slots, rotations above) that
  keeps every member's seat counts most even (then: where it has sat least); with 2 slots a pair
  whose members both owe the same seat waits while another pair can go; counts are carried.
* Nobody starves: every entrant plays at least `min_games` episodes per round (a group is always
  built around an entrant below it, with others below it, before any other), whatever the stop
  rule says; the budget is raised to what that needs, and overrun only if seating left one short.
* Stop rule, per division: stop scheduling once the requested order (all ranks, or the top
  `top_k` and the k/k+1 boundary) is settled at `confidence` (confidence.order_settled) and every
  entrant has its `min_games`, or when `round_budget` episodes have been scheduled this round.
* Every episode's `tags` say why it was chosen: ``reason`` (``min_games`` / ``informative``),
  ``why`` (who was short of games, or which ranks are in doubt and how much), ``value`` and ``batch``.
  `round_complete.round_display.stop` says why each division stopped.

Config keys (with `strategy: "adaptive"`), defaults in ADAPTIVE_DEFAULTS:
``confidence`` 0.95; ``top_k`` None (the whole order); ``round_budget`` None (a third of the
episodes a round-robin round would play, at most 20 games per entrant, never below what
`min_games` needs); ``min_games`` 1;
``batch_size`` None (⌊entrants / slots / 2⌋ groups, at least 1: half the field plays each batch,
picked with the simulator); ``top_weight`` 1.0.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

from coworld_pipeline.contract.commissioner import MAX_ROUND_EPISODES
from coworld_pipeline.league.commissioners import InProcessCommissioner, _seed
from coworld_pipeline.league.confidence import DEFAULT_LEVEL, annotate, order_settled, p_stronger
from coworld_pipeline.league.ratings import (
    BETA,
    MU,
    SIGMA,
    Standing,
    apply_episode,
    conservative,
    credit,
    rate,
)

ADAPTIVE_DEFAULTS: dict[str, Any] = {
    "confidence": DEFAULT_LEVEL,
    "top_k": None,
    "round_budget": None,
    "min_games": 1,
    "batch_size": None,
    "top_weight": 1.0,
}
_BETA2 = BETA * BETA
_MAX_PERMUTED_SLOTS = 5  # 5! = 120 seatings per group; beyond that only rotations are tried
_SQRT2 = math.sqrt(2.0)
# Candidate opponents: this many places either side in the current standings. Median episodes to
# tau 0.9 in the simulator (benchmarks/ranking_efficiency.py, 20 seeds): 2-slot 410 with 2, 440
# with 3, 434 with 8 (452 vs 537 on 12 other seeds); 4-slot 26.5 with 2, 31 with 3, 32.5 with 8
# (37.5 vs 38.5 on 20 others). 2 also costs a quarter of the lookahead work of 8.
_WINDOW = 2
_REACH = 32  # the lookahead counts pairs up to this many places apart (bounds a batch's work)
# Default budget cap: a round's working state keeps every episode it scheduled, and must stay under
# MAX_STATE_BYTES (about 300 bytes an episode: 1000 entrants x 20 games / 2 slots is about 3 MB).
_MAX_DEFAULT_GAMES = 20


def _optional_positive_int(
    config: dict[str, Any], key: str, minimum: int, maximum: int = MAX_ROUND_EPISODES
) -> None:
    value = config.get(key)
    if value is None:
        return
    if not isinstance(value, int) or isinstance(value, bool) or not minimum <= value <= maximum:
        raise ValueError(f"{key} must be an integer from {minimum} to {maximum:,} (or null for the default)")


def normalize_adaptive(config: dict[str, Any]) -> dict[str, Any]:
    """`config` with the adaptive defaults filled in; ValueError names a bad key."""
    out = {**ADAPTIVE_DEFAULTS, **config}
    level = out["confidence"]
    if isinstance(level, bool) or not isinstance(level, int | float) or not 0 < float(level) < 1:
        raise ValueError("confidence must be a number strictly between 0 and 1 (e.g. 0.95)")
    out["confidence"] = float(level)
    _optional_positive_int(out, "top_k", 1)
    _optional_positive_int(out, "round_budget", 1)
    _optional_positive_int(out, "batch_size", 1)
    if out["min_games"] is None:
        out["min_games"] = ADAPTIVE_DEFAULTS["min_games"]
    _optional_positive_int(out, "min_games", 0)
    weight = out["top_weight"]
    if isinstance(weight, bool) or not isinstance(weight, int | float) or not 0 <= float(weight) < math.inf:
        raise ValueError("top_weight must be a finite number >= 0")
    out["top_weight"] = float(weight)
    return out


def default_budget(entrants: int, slots: int, min_games: int) -> int:
    """A third of a round-robin round (every group of `slots`, `slots` seatings each), at most
    _MAX_DEFAULT_GAMES games per entrant, never below what min_games needs."""
    full = math.comb(entrants, slots) * slots if entrants >= slots else slots
    needed = math.ceil(entrants * min_games / slots)
    capped = min(math.ceil(full / 3), math.ceil(entrants * _MAX_DEFAULT_GAMES / slots))
    return min(max(capped, needed, 1), MAX_ROUND_EPISODES)


def default_batch(entrants: int, slots: int) -> int:
    """Groups per batch: enough for half the field. In the simulator (benchmarks/ranking_efficiency.py)
    that reached a good order in fewer episodes than batches for the whole field (more parallel, less
    adaptive) or much smaller ones (hardly better and many more round trips)."""
    return max(1, entrants // slots // 2)


class _Lookahead:
    """The expected number of wrongly ordered pairs in the displayed standings, and what a game saves.

    The standings show entrants by mu - 3 sigma. For two entrants shown a above b, the chance that
    this is wrong is P(b really stronger) (confidence.p_stronger), so the sum over pairs is the
    expected number of discordant pairs against the true order: exactly what Kendall's tau counts.
    That sum is split in two parts, because they respond to a game differently:

    * the Bayes part, Σ min(p, 1 - p): the error of the best order the posterior allows (by mu);
    * the display part, Σ (P(wrong as shown) - min(p, 1 - p)) >= 0: what showing mu - 3 sigma costs on
      top of that, which is large where neighbours' sigmas differ.

    A game's value is the expected drop of the Bayes part over the game's outcomes (probabilities and
    updates from the league's own Plackett-Luce code, ratings.rate) plus the drop of the display
    part when only the expected sigma shrink is applied, mu unchanged. Why not score the display
    sum over the outcomes, as this class once did: a game moves mu by about ±sigma²/c, which for an
    entrant with a larger sigma than its neighbours' makes it cross the display positions of
    low-sigma entrants, so the one-step sum expects the game to do harm; such entrants then got no
    games, kept their larger sigma and stayed misplaced (in the simulator whole clusters went
    unplayed for 1000+ episodes while settled entrants played on: the long tail of the benchmark).
    Over several games the sigma shrink is what fixes the display, and that part is deterministic.
    """

    def __init__(self, standings: list[tuple[str, float, float]], top_k: int | None, top_weight: float):
        self.keys = [pv for pv, _, _ in standings]
        self.post = {pv: (mu, sigma) for pv, mu, sigma in standings}
        self.rank = {pv: i for i, pv in enumerate(self.keys)}
        self.top_k = top_k
        self.top_weight = top_weight
        self._values: dict[tuple[str, str], float] = {}
        # Entrants far away in the standings are ordered against x with near certainty and one game
        # changes that by next to nothing: only the _REACH places either side count, which keeps a
        # batch O(n) in big leagues. Lists in standings order: the same sums in every process.
        reach, n = _REACH, len(self.keys)
        self._near = {
            x: [
                (self.keys[j], self.weight(x, self.keys[j]))
                for j in range(max(0, i - reach), min(n, i + reach + 1))
                if j != i
            ]
            for i, x in enumerate(self.keys)
        }
        self._now = {x: self._parts(x, self.post[x], None) for x in self.keys}

    def weight(self, a: str, b: str) -> float:
        if self.top_k is None:
            return 1.0
        low, high = sorted((self.rank[a], self.rank[b]))  # 0-based: the top k have rank < top_k
        if low >= self.top_k:
            return 0.0  # both outside the requested top k: their order is not asked for
        return 1.0 + self.top_weight if high < self.top_k else 1.0

    def p(self, a: str, b: str) -> float:
        (ma, sa), (mb, sb) = self.post[a], self.post[b]
        return p_stronger(ma, sa, mb, sb)

    @staticmethod
    def _pair(a: str, ra: tuple[float, float], b: str, rb: tuple[float, float]) -> tuple[float, float]:
        """(Bayes part, display part) of the pair a, b rated ra, rb (see the class doc)."""
        a_above = (-conservative(*ra), a) < (-conservative(*rb), b)
        p_a = p_stronger(ra[0], ra[1], rb[0], rb[1])
        best = min(p_a, 1.0 - p_a)
        return best, (1.0 - p_a if a_above else p_a) - best

    def _parts(self, x: str, rx: tuple[float, float], skip: str | None) -> tuple[float, float]:
        """(Bayes part, display part) over x's near entrants j (but `skip`), x rated rx.

        The hot loop of a batch: _pair and p_stronger written out, to spare two calls per term.
        """
        mx, sx = rx
        sx2, key_x = sx * sx, -(mx - 3.0 * sx)
        bayes = shown = 0.0
        for j, w in self._near[x]:
            if w == 0.0 or j == skip:
                continue
            mj, sj = self.post[j]
            p_x = 0.5 * (1.0 + math.erf((mx - mj) / (max(math.sqrt(sx2 + sj * sj), 1e-12) * _SQRT2)))
            best = p_x if p_x < 0.5 else 1.0 - p_x
            above = (key_x, x) < (-(mj - 3.0 * sj), j)
            bayes += w * best
            shown += w * ((1.0 - p_x if above else p_x) - best)
        return bayes, shown

    def value(self, a: str, b: str) -> float:
        key = (a, b) if a < b else (b, a)
        if key not in self._values:
            a, b = key
            ra, rb = self.post[a], self.post[b]
            w = self.weight(a, b)
            near = abs(self.rank[a] - self.rank[b]) <= _REACH  # then _now counts a-b twice
            pair_bayes, pair_shown = self._pair(a, ra, b, rb)
            twice = -1.0 if near else 1.0
            bayes = self._now[a][0] + self._now[b][0] + twice * w * pair_bayes
            shown = self._now[a][1] + self._now[b][1] + twice * w * pair_shown
            c = math.sqrt(ra[1] ** 2 + rb[1] ** 2 + 2.0 * _BETA2)
            p_first = 1.0 / (1.0 + math.exp((rb[0] - ra[0]) / c))  # openskill's own prediction
            sigma_a = sigma_b = 0.0
            for p_outcome, scores in ((p_first, [1.0, 0.0]), (1.0 - p_first, [0.0, 1.0])):
                na, nb = rate([ra, rb], scores)
                sigma_a += p_outcome * na[1]
                sigma_b += p_outcome * nb[1]
                after = self._parts(a, na, b)[0] + self._parts(b, nb, a)[0] + w * self._pair(a, na, b, nb)[0]
                bayes -= p_outcome * after
            # the display part with the expected sigma shrink only (mu as now): see the class doc
            sa, sb = (ra[0], sigma_a), (rb[0], sigma_b)
            shown -= self._parts(a, sa, b)[1] + self._parts(b, sb, a)[1] + w * self._pair(a, sa, b, sb)[1]
            self._values[key] = bayes + shown
        return self._values[key]

    def window_pairs(self) -> list[tuple[str, str]]:
        """Pairs at most _WINDOW places apart in the standings: where doubt about the order lives."""
        return [
            (self.keys[i], self.keys[j])
            for i in range(len(self.keys))
            for j in range(i + 1, min(len(self.keys), i + 1 + _WINDOW))
        ]


class AdaptiveCommissioner(InProcessCommissioner):
    """InProcessCommissioner whose plan is chosen batch by batch from a carried rating posterior."""

    def __init__(self, config: dict[str, Any] | None = None):
        super().__init__({**(config or {}), "strategy": "adaptive"})  # normalize_config fills our keys
        self.level = self.config["confidence"]

    # ---- plan and batches -------------------------------------------------------------------------

    def _plan_adaptive(self, ws: dict[str, Any], division: str, entrants: list[str]) -> list[dict]:
        carried = ws["carry"].get("adaptive", {})
        old = carried.get("posterior", {}).get(division, {})
        ws.setdefault("posterior", {})[division] = {
            pv: list(old[pv]) if pv in old else [MU, SIGMA] for pv in entrants
        }
        if "seats" not in ws:
            slots = ws["slots"]
            ws["seats"] = {
                pv: counts
                for pv, counts in carried.get("seats", {}).items()
                if isinstance(counts, list) and len(counts) == slots  # a new slot count starts afresh
            }
        budget = self.config["round_budget"] or default_budget(
            len(entrants), ws["slots"], self.config["min_games"]
        )
        ws["plan"][division] = {
            "budget": max(budget, math.ceil(len(entrants) * self.config["min_games"] / ws["slots"])),
            "scheduled": 0,
            "batch": [],
            "batches": 0,
            "games": {pv: 0 for pv in entrants},
            "stop": None,
        }
        return self._next_batch(ws, division)

    def _standings(self, ws: dict[str, Any], division: str) -> list[tuple[str, float, float]]:
        """(pv, mu, sigma) in the league's rank order: mu - 3 sigma, then id (as `coworld results`)."""
        post = ws["posterior"][division]
        rows = [(pv, mu, sigma) for pv, (mu, sigma) in post.items()]
        rows.sort(key=lambda r: (-conservative(r[1], r[2]), r[0]))
        return rows

    def _next_batch(self, ws: dict[str, Any], division: str) -> list[dict]:
        plan = ws["plan"][division]
        if plan["stop"]:
            return []
        slots = ws["slots"]
        games = plan["games"]
        entrants = list(games)
        min_games = self.config["min_games"]
        left = plan["budget"] - plan["scheduled"]
        standings = self._standings(ws, division)
        needy = [pv for pv in entrants if games[pv] < min_games]
        if left <= 0 and not needy:
            plan["stop"] = f"round budget of {plan['budget']} episodes spent"
            return []
        if not needy and order_settled(standings, self.level, self.config["top_k"]):
            what = f"top {self.config['top_k']}" if self.config["top_k"] else "whole order"
            plan["stop"] = f"{what} settled at {self.level:.0%} after {plan['scheduled']} episodes"
            return []
        per_batch = self.config["batch_size"] or default_batch(len(entrants), slots)
        groups = self._choose_groups(ws, division, standings, needy, min(per_batch, left) if left > 0 else 1)
        if left <= 0:  # over budget only to give someone its min_games: never starve
            groups = [g for g in groups if g[1] == "min_games"]
        if not groups:
            plan["stop"] = "no informative group left to schedule"
            return []
        plan["batches"] += 1
        rank = {pv: i + 1 for i, (pv, _, _) in enumerate(standings)}
        out = []
        for group, reason, why, value in groups:
            seats = self._seat(ws, group)
            for pv in set(seats):
                games[pv] += 1
            seed = _seed(ws["round_id"], division, plan["batches"], len(out))
            ep = self._new_episode(
                ws,
                division,
                seats,
                seed,
                reason=reason,
                why=why,
                value=f"{value:.4f}",
                batch=str(plan["batches"]),
                ranks=",".join(str(rank[pv]) for pv in seats),
            )
            out.append(ep)
        plan["scheduled"] += len(out)
        plan["batch"] = [ep["request_id"] for ep in out]
        return out

    # ---- what is informative ----------------------------------------------------------------------

    def _choose_groups(
        self,
        ws: dict[str, Any],
        division: str,
        standings: list[tuple[str, float, float]],
        needy: list[str],
        limit: int,
    ) -> list[tuple[list[str], str, str, float]]:
        slots = ws["slots"]
        n = len(standings)
        if n < slots:  # fewer entrants than seats: everyone plays, repeated to fill the seats
            group = [standings[i % n][0] for i in range(slots)]
            why = f"{n} entrants for {slots} seats"
            return [(group, "min_games" if needy else "informative", why, 0.0)]
        look = _Lookahead(standings, self.config["top_k"], self.config["top_weight"])
        games = ws["plan"][division]["games"]
        needy_set = set(needy)
        free = {pv for pv, _, _ in standings}
        ranked = sorted(look.window_pairs(), key=lambda ab: (-look.value(*ab), ab))
        chosen: list[tuple[list[str], str, str, float]] = []
        while len(chosen) < limit and len(free) >= slots:
            short = [pv for pv in free if pv in needy_set]
            if short:  # never starve: the entrant furthest below min_games goes first
                group = [min(short, key=lambda pv: (games[pv], look.rank[pv], pv))]
            else:
                # the best pair left, even if the lookahead sees no gain: while the order is not
                # settled and the budget lasts, another game is the only way to learn more. A pair
                # that no seating keeps balanced (both owe the same seat) waits for a better moment
                # unless nothing else is left: with 2 slots the pairing decides the seat balance.
                open_pairs = [(a, b) for a, b in ranked if a in free and b in free]
                if not open_pairs:
                    break
                best = next((ab for ab in open_pairs if self._seatable(ws, ab)), open_pairs[0])
                group = list(best)
            wanted = needy_set if short else set()
            while len(group) < slots:  # add whoever adds the most value (short of games first)
                group.append(
                    max(
                        (pv for pv in free if pv not in group),
                        key=lambda c: (c in wanted, sum(look.value(g, c) for g in group), c),
                    )
                )
            value = sum(look.value(a, b) for a, b in itertools.combinations(group, 2))
            if short:
                why = f"{group[0]} had {games[group[0]]} of {self.config['min_games']} games this round"
                chosen.append((group, "min_games", why, value))
            else:
                a, b = max(itertools.combinations(group, 2), key=lambda ab: look.value(*ab))
                hi, lo = sorted((a, b), key=lambda pv: look.rank[pv])
                why = (
                    f"ranks {look.rank[hi] + 1} vs {look.rank[lo] + 1}: "
                    f"P(rank {look.rank[hi] + 1} really stronger)={look.p(hi, lo):.2f}"
                )
                chosen.append((group, "informative", why, value))
            free -= set(group)
        return chosen

    @staticmethod
    def _imbalance(counts: dict[str, list[int]], seats: Any) -> int:
        """Σ over members of (max - min of its seat counts)² if seated so: squared, so that nobody
        is pushed two seats out of balance to spare someone else one."""
        spread = 0
        for s, pv in enumerate(seats):
            after = list(counts.get(pv) or [0] * len(seats))
            after[s] += 1
            spread += (max(after) - min(after)) ** 2
        return spread

    def _seatable(self, ws: dict[str, Any], pair: tuple[str, str]) -> bool:
        """Can this pair be seated (2 slots) with both members at most one seat out of balance?"""
        if ws["slots"] != 2:
            return True
        counts = ws["seats"]
        return min(self._imbalance(counts, pair), self._imbalance(counts, pair[::-1])) <= 2

    def _seat(self, ws: dict[str, Any], group: list[str]) -> list[str]:
        """The seating of `group` that keeps each member's seat counts (carried) most even."""
        slots = ws["slots"]
        counts = ws["seats"]
        for pv in group:
            counts.setdefault(pv, [0] * slots)
        if len(set(group)) < len(group):
            options: Any = [group]  # repeated entrants fill the seats as given
        elif slots <= _MAX_PERMUTED_SLOTS:
            options = itertools.permutations(group)
        else:
            options = (group[r:] + group[:r] for r in range(slots))
        best = min(
            options,
            key=lambda seats: (
                self._imbalance(counts, seats),
                sum(counts[pv][s] for s, pv in enumerate(seats)),
                seats,
            ),
        )
        for s, pv in enumerate(best):
            counts[pv][s] += 1
        return list(best)

    # ---- results, completion ----------------------------------------------------------------------

    def _progress(self, ws: dict[str, Any]) -> tuple[Any, list[dict[str, Any]]]:
        if ws.get("complete_sent") or ws.get("aborted"):
            return ws, []
        for ep in ws["episodes"].values():
            if ep["status"] == "done" and not ep.get("rated"):
                ep["rated"] = True
                self._rate(ws, ep)
        more: list[dict] = []
        for division, plan in ws["plan"].items():
            open_ = any(ws["episodes"][r]["status"] in ("scheduled", "accepted") for r in plan["batch"])
            if not open_:
                more += self._next_batch(ws, division)
        if more:
            return ws, [self._schedule(more)]
        if any(e["status"] in ("scheduled", "accepted") for e in ws["episodes"].values()):
            return ws, []
        return self._complete(ws)

    @staticmethod
    def _rate(ws: dict[str, Any], ep: dict[str, Any]) -> None:
        post = ws["posterior"][ep["division"]]
        table = {pv: Standing(mu=post[pv][0], sigma=post[pv][1]) for pv in set(ep["pvs"]) if pv in post}
        if len(table) < len(set(ep["pvs"])):
            return  # a seat outside the division (cannot happen for our own schedules): leave it alone
        apply_episode(table, credit(ep["pvs"], ep["scores"]))
        for pv, row in table.items():
            post[pv] = [row.mu, row.sigma]

    def _rank_division(self, ws: dict[str, Any], division: str) -> list[dict[str, Any]]:
        if division not in ws["plan"]:
            return []
        games = ws["plan"][division]["games"]
        rows = []
        for conf in annotate(self._standings(ws, division), self.level):
            meta = conf.to_json()
            meta.pop("key")
            meta["episodes_this_round"] = games.get(conf.key, 0)
            rows.append(
                {
                    "policy_version_id": conf.key,
                    "rank": conf.rank,
                    "score": round(conservative(conf.mu, conf.sigma), 6),
                    "result_metadata": meta,
                }
            )
        return rows

    def _carry_out(self, ws: dict[str, Any], results: dict[str, list[dict]]) -> dict[str, Any]:
        carry = super()._carry_out(ws, results)
        members = {pv for pvs in ws["members"].values() for pv in pvs}
        # divisions not played this round (fewer than two entrants) keep what they had
        posterior = {**ws["carry"].get("adaptive", {}).get("posterior", {}), **ws.get("posterior", {})}
        carry["adaptive"] = {
            # only current members: the state stays small however many entrants have come and gone
            "posterior": {
                d: {pv: ms for pv, ms in post.items() if pv in ws["members"].get(d, [])}
                for d, post in posterior.items()
                if d in ws["members"]
            },
            "seats": {pv: c for pv, c in ws.get("seats", {}).items() if pv in members},
        }
        return carry

    def _complete(self, ws: dict[str, Any]) -> tuple[Any, list[dict[str, Any]]]:
        ws, out = super()._complete(ws)
        display = out[0]["round_display"]
        display["stop"] = {d: plan["stop"] or "round ended" for d, plan in ws["plan"].items()}
        display["budget"] = {d: plan["budget"] for d, plan in ws["plan"].items()}
        return ws, out
