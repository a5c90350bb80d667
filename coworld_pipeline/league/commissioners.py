"""In-process commissioners speaking the CONTRACT §9 message shapes.

A commissioner here is a pure function of (message, state): `handle(message_json, state)` returns
the new state and the messages it sends back, all as JSON-compatible values. The platform stores
the state in the round row between calls, so any process can continue a round. The platform parses
and validates what comes back exactly as it would for a container commissioner on `/round`.

Strategies (config key `strategy`):

* ``round-robin`` — every group of `slot_count` entrants of a division plays `episodes_per_pair`
  episodes (default: the slot count), rotating seats so that each entrant sits in every seat equally
  often; all rotations of one group share a seed. With fewer entrants than seats, the entrants are
  repeated to fill the seats (a repeated entrant is credited once, see ratings.py). Every entrant of
  a division plays the same number of episodes.
* ``swiss`` — 2-slot: entrants ordered by cumulative swiss points (carried in `state`), adjacent
  pairs play `episodes_per_pair` games with seats alternating; immediate rematches are avoided; an odd
  entrant out gets a bye (one point), given to the lowest-placed entrant with the fewest byes.
* ``elimination`` — 2-slot single-elimination bracket seeded by the previous round's ranks; a match
  is `episodes_per_pair` games (seats alternating) won on total score; ties and matches without a
  result go to the better seed, unless one side caused the failure. Later matches are scheduled as
  soon as both feeders are decided (incremental scheduling).
* ``adaptive`` — any slot count: batch by batch, the groups most informative for the ranking under
  a rating posterior carried in `state`, seats balanced, at least `min_games` per entrant, until the
  order is settled at `confidence` or `round_budget` is spent (adaptive.py: keys and defaults).

Graduation (config key `graduation`): ``none``; ``percentile`` (`promote_top_pct`, `relegate_bottom_pct`
of each division's ranked entrants move one level); ``win-streak`` (`streak_length` consecutive
rounds in the top `streak_top_k` promote one level). Level 1 is the top division.
"""

from __future__ import annotations

import hashlib
import itertools
import math
from collections.abc import Iterable
from typing import Any

from coworld_pipeline.contract.commissioner import (
    MAX_ROUND_EPISODES,
    EpisodeFailed,
    EpisodeResult,
    EpisodesAccepted,
    EpisodesRejected,
    RoundAbort,
    RoundStart,
    parse_platform_message,
)

STRATEGIES = ("round-robin", "swiss", "elimination", "adaptive")
GRADUATIONS = ("none", "percentile", "win-streak")
TWO_SLOT_ONLY = ("swiss", "elimination")
MAX_EPISODES_PER_PAIR = 1000
MAX_STREAK = 10_000  # wins in a row (and top places) for win-streak graduation

DEFAULT_CONFIG: dict[str, Any] = {
    "strategy": "round-robin",
    "episodes_per_pair": None,  # None: the slot count (round-robin), 2 (swiss, elimination)
    "graduation": "none",
    "promote_top_pct": 10.0,
    "relegate_bottom_pct": 10.0,
    "streak_length": 3,
    "streak_top_k": 1,
}


def is_whole(value: Any) -> bool:
    """An int that is not a bool (JSON's true is no count)."""
    return isinstance(value, int) and not isinstance(value, bool)


def normalize_config(config: dict[str, Any] | None) -> dict[str, Any]:
    out = {**DEFAULT_CONFIG, **(config or {})}
    strategy = str(out["strategy"]).replace("_", "-")
    if strategy == "round-robin" or strategy in STRATEGIES:
        out["strategy"] = strategy
    else:
        raise ValueError(f"unknown commissioner {out['strategy']!r} (choose: {', '.join(STRATEGIES)})")
    graduation = str(out["graduation"]).replace("_", "-")
    if graduation not in GRADUATIONS:
        raise ValueError(f"unknown graduation {out['graduation']!r} (choose: {', '.join(GRADUATIONS)})")
    out["graduation"] = graduation
    epp = out.get("episodes_per_pair")
    if epp is not None and not (is_whole(epp) and 1 <= epp <= MAX_EPISODES_PER_PAIR):
        raise ValueError(f"episodes_per_pair must be an integer from 1 to {MAX_EPISODES_PER_PAIR}")
    for key in ("streak_length", "streak_top_k"):
        value = out[key]
        if not (is_whole(value) and 1 <= value <= MAX_STREAK):
            raise ValueError(f"{key} must be a whole number from 1 to {MAX_STREAK:,} (got {value!r})")
    for key in ("promote_top_pct", "relegate_bottom_pct"):
        if not 0 <= float(out[key]) <= 100:
            raise ValueError(f"{key} must be between 0 and 100")
    if out["strategy"] == "adaptive":
        from coworld_pipeline.league.adaptive import normalize_adaptive  # adaptive.py imports this module

        out = normalize_adaptive(out)
    return out


def _seed(*parts: Any) -> int:
    digest = hashlib.sha256(":".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def _credit(pvs: list[str], scores: list[float]) -> dict[str, float]:
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    for pv, s in zip(pvs, scores, strict=True):
        sums[pv] = sums.get(pv, 0.0) + s
        counts[pv] = counts.get(pv, 0) + 1
    return {pv: sums[pv] / counts[pv] for pv in sums}


def bracket_order(size: int) -> list[int]:
    """Seed indices in bracket order so that seeds 0 and 1 can only meet in the final."""
    order = [0]
    while len(order) < size:
        n = len(order) * 2
        order = [x for s in order for x in (s, n - 1 - s)]
    return order


class InProcessCommissioner:
    """Message-level commissioner; all working data lives in the JSON `state`."""

    def __init__(self, config: dict[str, Any] | None = None):
        self.config = normalize_config(config)
        self.strategy = self.config["strategy"]

    # ---- message entry point ---------------------------------------------------------------------

    def handle(self, message: dict[str, Any], state: Any) -> tuple[Any, list[dict[str, Any]]]:
        msg = parse_platform_message(message)
        if isinstance(msg, RoundStart):
            return self._start(msg)
        ws = state
        if isinstance(msg, RoundAbort):
            ws["aborted"] = msg.reason
            return ws, []
        if isinstance(msg, EpisodesAccepted):
            for rid in msg.request_ids:
                if rid in ws["episodes"]:
                    ws["episodes"][rid]["status"] = "accepted"
            return ws, []
        if isinstance(msg, EpisodesRejected):
            for rid in msg.request_ids:
                if rid in ws["episodes"]:
                    ws["episodes"][rid].update(status="rejected", error=msg.errors.get(rid, "rejected"))
            return self._progress(ws)
        if isinstance(msg, EpisodeResult):
            ep = ws["episodes"].get(msg.request_id)
            if ep is not None and ep["status"] not in ("done", "failed", "rejected"):
                ep["status"] = "done"
                ep["scores"] = [s.score for s in msg.scores]
            return self._progress(ws)
        if isinstance(msg, EpisodeFailed):
            ep = ws["episodes"].get(msg.request_id)
            if ep is not None and ep["status"] not in ("done", "failed", "rejected"):
                ep.update(status="failed", error=msg.error, blamed=msg.failed_policy_version_id)
            return self._progress(ws)
        return ws, []

    # ---- round start ------------------------------------------------------------------------------

    def _start(self, msg: RoundStart) -> tuple[Any, list[dict[str, Any]]]:
        carry = msg.state if isinstance(msg.state, dict) else {}
        if not msg.variants:
            raise ValueError("round_start carries no variants")
        variant = msg.variants[(msg.round_number - 1) % len(msg.variants)]
        slots = variant.slot_count or 2
        if self.strategy in TWO_SLOT_ONLY and slots != 2:
            raise ValueError(
                f"the {self.strategy} commissioner needs a 2-slot variant; {variant.id} has {slots}"
            )
        members: dict[str, list[str]] = {d.id: [] for d in msg.divisions}
        membership_of: dict[str, str] = {}
        for m in msg.memberships:
            members.setdefault(m.division_id, []).append(m.policy_version_id)
            membership_of[m.policy_version_id] = m.id
        last_rank: dict[str, int] = {}
        last_round = max((r.round_number for r in msg.recent_results), default=None)
        for r in msg.recent_results:
            if r.round_number == last_round:
                last_rank[r.policy_version_id] = r.rank
        ws: dict[str, Any] = {
            "round_id": msg.round_id,
            "round_number": msg.round_number,
            "variant_id": variant.id,
            "slots": slots,
            "divisions": [d.model_dump() for d in sorted(msg.divisions, key=lambda d: d.level)],
            "members": members,
            "membership_of": membership_of,
            "last_rank": last_rank,
            "carry": carry,
            "episodes": {},
            "counter": 0,
            "complete_sent": False,
            "plan": {},
        }
        episodes: list[dict[str, Any]] = []
        for div in ws["divisions"]:
            entrants = members.get(div["id"], [])
            if len(entrants) < 2:
                continue
            episodes += getattr(self, f"_plan_{self.strategy.replace('-', '_')}")(ws, div["id"], entrants)
        if not episodes:
            return self._complete(ws)
        return ws, [self._schedule(episodes)]

    def _new_episode(self, ws: dict[str, Any], division: str, pvs: list[str], seed: int, **tags: str) -> dict:
        if ws["counter"] >= MAX_ROUND_EPISODES:  # every strategy's plans end here, in bounded memory
            raise ValueError(f"a round may schedule at most {MAX_ROUND_EPISODES:,} episodes")
        ws["counter"] += 1
        rid = f"r{ws['round_number']}-e{ws['counter']}"
        ws["episodes"][rid] = {"division": division, "pvs": pvs, "status": "scheduled", **tags}
        return {
            "request_id": rid,
            "variant_id": ws["variant_id"],
            "policy_version_ids": pvs,
            "seed": seed,
            "tags": {"division_id": division, "strategy": self.strategy, **tags},
        }

    def _schedule(self, episodes: list[dict[str, Any]]) -> dict[str, Any]:
        return {"type": "schedule_episodes", "episodes": episodes}

    def _epp(self, slots: int) -> int:
        epp = self.config.get("episodes_per_pair")
        if epp:
            return int(epp)
        return slots if self.strategy == "round-robin" else 2

    # ---- strategies: initial plans ----------------------------------------------------------------

    def _plan_round_robin(self, ws: dict[str, Any], division: str, entrants: list[str]) -> list[dict]:
        n = ws["slots"]
        if len(entrants) >= n:
            count = math.comb(len(entrants), n) * self._epp(n)
            groups: Iterable[tuple[str, ...]] = itertools.combinations(entrants, n)
        else:
            count = self._epp(n)
            groups = [tuple(entrants[i % len(entrants)] for i in range(n))]
        if ws["counter"] + count > MAX_ROUND_EPISODES:  # said before any of them is made
            raise ValueError(
                f"a round-robin of {len(entrants)} entrants in {n}-slot groups, {self._epp(n)} episodes "
                f"each, is {count:,} episodes; a round may schedule at most {MAX_ROUND_EPISODES:,} "
                "(fewer episodes per pair, more divisions, or the swiss or adaptive commissioner)"
            )
        out = []
        for g, group in enumerate(groups):
            for k in range(self._epp(n)):
                r = k % n
                seats = [group[(s + r) % n] for s in range(n)]
                seed = _seed(ws["round_id"], division, g, k // n)
                out.append(self._new_episode(ws, division, seats, seed, group=str(g)))
        return out

    def _swiss_order(self, ws: dict[str, Any], entrants: list[str]) -> list[str]:
        points = ws["carry"].get("swiss_points", {})
        return sorted(entrants, key=lambda pv: (-points.get(pv, 0.0), ws["last_rank"].get(pv, 10**9), pv))

    def _plan_swiss(self, ws: dict[str, Any], division: str, entrants: list[str]) -> list[dict]:
        order = self._swiss_order(ws, entrants)
        byes = ws["carry"].get("swiss_byes", {})
        plan = ws["plan"].setdefault(division, {"byes": [], "matches": []})
        if len(order) % 2:
            # lowest-placed entrant among those with the fewest byes sits out
            fewest = min(byes.get(pv, 0) for pv in order)
            bye = next(pv for pv in reversed(order) if byes.get(pv, 0) == fewest)
            order.remove(bye)
            plan["byes"].append(bye)
        last_opp = ws["carry"].get("swiss_last_opponent", {})
        pairs = [order[i : i + 2] for i in range(0, len(order), 2)]
        for i in range(len(pairs) - 1):  # avoid an immediate rematch by swapping with the next pair
            a, b = pairs[i]
            if last_opp.get(a) == b:
                c, d = pairs[i + 1]
                pairs[i], pairs[i + 1] = [a, c], [b, d]
        out = []
        epp = self._epp(2)
        for m, (a, b) in enumerate(pairs):
            plan["matches"].append([a, b])
            for k in range(epp):
                seats = [a, b] if k % 2 == 0 else [b, a]
                out.append(
                    self._new_episode(
                        ws, division, seats, _seed(ws["round_id"], division, m, k // 2), match=str(m)
                    )
                )
        return out

    def _plan_elimination(self, ws: dict[str, Any], division: str, entrants: list[str]) -> list[dict]:
        seeds = sorted(entrants, key=lambda pv: (ws["last_rank"].get(pv, 10**9), pv))
        size = 1 << max(1, math.ceil(math.log2(len(seeds))))
        order = bracket_order(size)
        first = [seeds[i] if i < len(seeds) else None for i in order]
        plan = {"seeds": seeds, "levels": [first], "matches": {}, "eliminated": {}, "size": size}
        ws["plan"][division] = plan
        return self._elim_schedule_ready(ws, division)

    def _elim_schedule_ready(self, ws: dict[str, Any], division: str) -> list[dict]:
        plan = ws["plan"][division]
        out: list[dict] = []
        level = len(plan["levels"]) - 1
        slots = plan["levels"][level]
        for m in range(len(slots) // 2):
            key = f"{level}-{m}"
            if key in plan["matches"]:
                continue
            a, b = slots[2 * m], slots[2 * m + 1]
            if a is None or b is None:
                if a is None and b is None:
                    plan["matches"][key] = {"a": None, "b": None, "rids": [], "winner": None, "bye": True}
                else:
                    plan["matches"][key] = {"a": a, "b": b, "rids": [], "winner": a or b, "bye": True}
                continue
            rids = []
            for k in range(self._epp(2)):
                seats = [a, b] if k % 2 == 0 else [b, a]
                ep = self._new_episode(
                    ws, division, seats, _seed(ws["round_id"], division, key, k // 2), match=key
                )
                rids.append(ep["request_id"])
                out.append(ep)
            plan["matches"][key] = {"a": a, "b": b, "rids": rids, "winner": None}
        return out

    def _elim_advance(self, ws: dict[str, Any], division: str) -> list[dict]:
        plan = ws["plan"][division]
        seeds = plan["seeds"]
        out: list[dict] = []
        while True:
            level = len(plan["levels"]) - 1
            slots = plan["levels"][level]
            if len(slots) == 1:
                return out
            winners = []
            for m in range(len(slots) // 2):
                match = plan["matches"].get(f"{level}-{m}")
                if match is None:
                    return out
                if match["winner"] is None and not match.get("bye"):
                    eps = [ws["episodes"][r] for r in match["rids"]]
                    if any(e["status"] in ("scheduled", "accepted") for e in eps):
                        return out
                    match["winner"] = self._match_winner(match["a"], match["b"], eps, seeds)
                    loser = match["b"] if match["winner"] == match["a"] else match["a"]
                    plan["eliminated"][loser] = level
                winners.append(match["winner"])
            plan["levels"].append(winners)
            if len(winners) == 1:
                return out
            out += self._elim_schedule_ready(ws, division)

    @staticmethod
    def _match_winner(a: str, b: str, eps: list[dict], seeds: list[str]) -> str:
        total = {a: 0.0, b: 0.0}
        played = 0
        blamed = {a: 0, b: 0}
        for e in eps:
            if e["status"] == "done":
                played += 1
                for pv, s in _credit(e["pvs"], e["scores"]).items():
                    total[pv] += s
            elif e.get("blamed") in blamed:
                blamed[e["blamed"]] += 1
        if played and total[a] != total[b]:
            return a if total[a] > total[b] else b
        if blamed[a] != blamed[b]:
            return b if blamed[a] > blamed[b] else a
        return a if seeds.index(a) < seeds.index(b) else b

    # ---- progress and completion ------------------------------------------------------------------

    def _progress(self, ws: dict[str, Any]) -> tuple[Any, list[dict[str, Any]]]:
        if ws.get("complete_sent") or ws.get("aborted"):
            return ws, []
        more: list[dict] = []
        if self.strategy == "elimination":
            for division in list(ws["plan"]):
                more += self._elim_advance(ws, division)
        if more:
            return ws, [self._schedule(more)]
        if any(e["status"] in ("scheduled", "accepted") for e in ws["episodes"].values()):
            return ws, []
        return self._complete(ws)

    def _rank_division(self, ws: dict[str, Any], division: str) -> list[dict[str, Any]]:
        if self.strategy == "elimination" and division in ws["plan"]:
            plan = ws["plan"][division]
            final = plan["levels"][-1]
            champion = final[0] if len(final) == 1 else None
            rows = []
            played = {pv for e in ws["episodes"].values() if e["division"] == division for pv in e["pvs"]}
            for pv in plan["seeds"]:
                if pv == champion:
                    rank, wins = 1, len(plan["levels"]) - 1
                elif pv in plan["eliminated"]:
                    lvl = plan["eliminated"][pv]
                    rank, wins = plan["size"] // (2 ** (lvl + 1)) + 1, lvl
                else:
                    continue
                if pv not in played and pv != champion:
                    continue
                rows.append(
                    {
                        "policy_version_id": pv,
                        "rank": rank,
                        "score": float(wins),
                        "result_metadata": {"matches_won": wins},
                    }
                )
            return sorted(rows, key=lambda r: r["rank"])
        stats: dict[str, dict[str, float]] = {}
        for e in ws["episodes"].values():
            if e["division"] != division or e["status"] != "done":
                continue
            credited = _credit(e["pvs"], e["scores"])
            for pv, s in credited.items():
                st = stats.setdefault(
                    pv, {"points": 0.0, "possible": 0.0, "sum": 0.0, "episodes": 0, "wins": 0}
                )
                st["sum"] += s
                st["episodes"] += 1
                others = [o for q, o in credited.items() if q != pv]
                st["possible"] += len(others)
                st["points"] += sum(1.0 if s > o else 0.5 if s == o else 0.0 for o in others)
                if others and all(s > o for o in others):
                    st["wins"] += 1
        rows = []
        for pv, st in stats.items():
            score = st["points"] / st["possible"] if st["possible"] else 0.0
            rows.append(
                {
                    "policy_version_id": pv,
                    "score": round(score, 6),
                    "result_metadata": {
                        "episodes": int(st["episodes"]),
                        "wins": int(st["wins"]),
                        "mean_score": st["sum"] / st["episodes"],
                    },
                }
            )
        rows.sort(key=lambda r: (-r["score"], -r["result_metadata"]["mean_score"], r["policy_version_id"]))
        for i, row in enumerate(rows):
            prev = rows[i - 1] if i else None
            same = (
                prev is not None
                and prev["score"] == row["score"]
                and (prev["result_metadata"]["mean_score"] == row["result_metadata"]["mean_score"])
            )
            row["rank"] = prev["rank"] if same else i + 1
        if self.strategy == "swiss":
            for pv in ws["plan"].get(division, {}).get("byes", []):
                if pv not in stats:
                    rows.append(
                        {
                            "policy_version_id": pv,
                            "rank": len(rows) + 1,
                            "score": 0.0,
                            "result_metadata": {"bye": True, "episodes": 0},
                        }
                    )
        return rows

    def _carry_out(self, ws: dict[str, Any], results: dict[str, list[dict]]) -> dict[str, Any]:
        carry = dict(ws["carry"])
        if self.strategy == "swiss":
            points = dict(carry.get("swiss_points", {}))
            byes = dict(carry.get("swiss_byes", {}))
            last_opp: dict[str, str] = {}
            for division, plan in ws["plan"].items():
                for a, b in plan.get("matches", []):
                    eps = [
                        e
                        for e in ws["episodes"].values()
                        if e["division"] == division and set(e["pvs"]) == {a, b} and e["status"] == "done"
                    ]
                    ta = sum(_credit(e["pvs"], e["scores"])[a] for e in eps)
                    tb = sum(_credit(e["pvs"], e["scores"])[b] for e in eps)
                    if eps:
                        points[a] = points.get(a, 0.0) + (1.0 if ta > tb else 0.5 if ta == tb else 0.0)
                        points[b] = points.get(b, 0.0) + (1.0 if tb > ta else 0.5 if ta == tb else 0.0)
                    last_opp[a], last_opp[b] = b, a
                for pv in plan.get("byes", []):
                    points[pv] = points.get(pv, 0.0) + 1.0
                    byes[pv] = byes.get(pv, 0) + 1
            carry.update(swiss_points=points, swiss_byes=byes, swiss_last_opponent=last_opp)
        if self.config["graduation"] == "win-streak":
            streaks = dict(carry.get("streaks", {}))
            top_k = int(self.config["streak_top_k"])
            for rows in results.values():
                for row in rows:
                    pv = row["policy_version_id"]
                    streaks[pv] = streaks.get(pv, 0) + 1 if row["rank"] <= top_k else 0
            carry["streaks"] = streaks
        return carry

    def _graduation(self, ws: dict[str, Any], results: dict[str, list[dict]], carry: dict) -> list[dict]:
        mode = self.config["graduation"]
        divisions = ws["divisions"]  # sorted by level, top first
        changes: list[dict] = []
        if mode == "none" or len(divisions) < 2:
            return changes
        for i, div in enumerate(divisions):
            rows = results.get(div["id"], [])
            up = divisions[i - 1]["id"] if i > 0 else None
            down = divisions[i + 1]["id"] if i + 1 < len(divisions) else None
            if mode == "percentile" and len(rows) >= 2:
                n = len(rows)
                k_up = math.ceil(n * float(self.config["promote_top_pct"]) / 100) if up else 0
                k_down = math.ceil(n * float(self.config["relegate_bottom_pct"]) / 100) if down else 0
                k_up, k_down = min(k_up, n // 2), min(k_down, n // 2)
                for row in rows[:k_up]:
                    changes.append(
                        self._move(
                            ws,
                            row,
                            up,
                            f"promoted: rank {row['rank']} of {n} (top {self.config['promote_top_pct']}%)",
                        )
                    )
                for row in rows[n - k_down :] if k_down else []:
                    changes.append(
                        self._move(
                            ws,
                            row,
                            down,
                            f"relegated: rank {row['rank']} of {n} (bottom "
                            f"{self.config['relegate_bottom_pct']}%)",
                        )
                    )
            elif mode == "win-streak" and up:
                length = int(self.config["streak_length"])
                for row in rows:
                    pv = row["policy_version_id"]
                    if carry.get("streaks", {}).get(pv, 0) >= length:
                        changes.append(
                            self._move(
                                ws,
                                row,
                                up,
                                f"promoted: {length} rounds in a row in the top "
                                f"{self.config['streak_top_k']}",
                            )
                        )
                        carry["streaks"][pv] = 0
        return [c for c in changes if c is not None]

    @staticmethod
    def _move(ws: dict[str, Any], row: dict, to_division: str, reason: str) -> dict | None:
        mid = ws["membership_of"].get(row["policy_version_id"])
        if mid is None:
            return None
        return {"membership_id": mid, "to_division_id": to_division, "reason": reason}

    def _complete(self, ws: dict[str, Any]) -> tuple[Any, list[dict[str, Any]]]:
        results = {d["id"]: self._rank_division(ws, d["id"]) for d in ws["divisions"]}
        carry = self._carry_out(ws, results)
        changes = self._graduation(ws, results, carry)
        ws["complete_sent"] = True
        message = {
            "type": "round_complete",
            "results": [{"division_id": d, "rankings": rows} for d, rows in results.items() if rows],
            "graduation_changes": changes,
            "round_display": {
                "strategy": self.strategy,
                "variant_id": ws["variant_id"],
                "episodes": len(ws["episodes"]),
            },
            "state": carry,
        }
        return ws, [message]


def make_commissioner(name: str, config: dict[str, Any] | None) -> InProcessCommissioner:
    if str(name).replace("_", "-") == "adaptive":
        from coworld_pipeline.league.adaptive import AdaptiveCommissioner  # it subclasses ours

        return AdaptiveCommissioner(config)
    return InProcessCommissioner({**(config or {}), "strategy": name})
