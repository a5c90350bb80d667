"""Benchmark: episodes a league needs before its standings are in (nearly) the true order.

    .venv/bin/python benchmarks/ranking_efficiency.py [--seeds 20] [--spread 2.0] [--model plackett-luce]
                                                      [--oracle] [--estimator league|map]

With the simulator (coworld_pipeline/league/simulator.py: the league's own commissioners and rating
code, synthetic policies of known skill, no episodes played), for 32 policies in 2-slot episodes and
16 policies in 4-slot episodes, and for each strategy (round-robin, swiss, adaptive; swiss is 2-slot
only), it prints the median over the seeds of the episodes played until Kendall's tau between the
league's standings (mu - 3 sigma, as `coworld results` ranks) and the true order first reaches 0.9,
and the ratio adaptive / round-robin. Each seed draws one set of skills shared by all strategies.

Calibration: every --check-every episodes of every run (and of a few longer runs per strategy), every
adjacent pair of the standings marked settled at 95 % (confidence.annotate: p_above_next >= 0.95)
is checked against the true skills; C is the share in the true order.

Skills are drawn from N(25, (spread * 25/3)^2). With spread 1 (the rating prior) tau 0.9 sits at
the noise floor of the online rating update (its dynamics term keeps sigma near 1.5), so the first
time a run touches 0.9 is luck more than ranking; spread 2 (policies twice as varied as the prior
assumes) is the default. Runs that never reach the target count as --max-episodes and are marked.

Why the target (<= 0.33) is not met, with numbers (20 seeds unless a count is given; on 20 seeds
a difference below ~10 % is noise, the quartiles are wide; `--oracle` reruns the oracle lines):

* The ratios are about 0.64 for 2-slot (adaptive 420 / round-robin 661 episodes, 100 seeds) and
  0.56 for 4-slot (32 / 57, 200 seeds). Swiss (2-slot) is 0.75. The default 20 seeds print
  0.66 / 0.60 (0.65 / 0.54 before the change kept below: on 100-200 seeds the medians are equal).
* The "information floor" printed per setup (simulator.information_floor: a round-robin game carries
  0.36 (2-slot) / 0.44 (4-slot) of the Fisher information of an evenly matched one) is NOT a floor
  for this rating code, in either direction. It assumes an efficient estimator, for which evenly
  matched games are best. The league's online openskill update is not one: sigma shrinks only by
  (1 - sigma³/c³ · p(1 - p)) per game (about n^(-1/3)), so mu keeps jumping by about sigma²/(2c)
  (±1.2 points at sigma 4.7, c 8.9) every game, and mu only spreads out to the skill scale when
  games surprise the model. Games that are evenly matched in TRUTH teach the filter little: an
  oracle that knows the skills and pairs true neighbours (`--oracle`: full-field batches, offset
  rotated) never reaches tau 0.9 in 4000 episodes (2-slot, 20 of 20 seeds) and needs a median 446
  episodes for 4-slot (round-robin: 49); pairing by true skill plus N(0, k²) noise needs 1126
  (k 8) and 712 (k 16, about one skill sd) episodes for 2-slot, 86 and 56 for 4-slot, all worse than
  round-robin. What works is pairing neighbours in the ESTIMATED order (swiss, adaptive): those
  games are even to the model and correct its errors. Their true information share is 0.68
  (2-slot) / 0.61 (4-slot), against round-robin's 0.36 / 0.46, so the 2-slot ratio tracks the
  information ratio (0.53) and the 4-slot one beats it.
* A bound that does hold for any estimator: a 2-slot game adds at most 0.25 / (√2·beta)² to the
  trace of the Fisher information, so after E episodes the mean skill variance of 32 entrants is at
  least (n-1)²/n / (0.0144·E) = 2085/E; tau 0.9 (median, uniform errors) needs an rms error of
  about 2.8 points, i.e. E >= 266, a ratio >= 0.40 to round-robin's 661, before first-touch luck
  and targeting of the dense middle (which may buy back some). 0.33 would need the filter to be
  as efficient as the bound, which it is not (see above).
* An efficient estimator does not reach it either (`--estimator map`, 2026-12-05: the standings
  ranked instead by a batch MAP fit of ALL episodes under the very Plackett-Luce model that drew
  them, benchmarks/map_estimate.py; the commissioners still choose by the league's ratings). On
  the default 20 seeds every strategy needs fewer episodes than with the league's ratings (2-slot:
  round-robin 562 vs 629, swiss 368 vs 476, adaptive 330 vs 412; 4-slot: round-robin 35 vs 49,
  adaptive 26 vs 29.5), but round-robin gains about as much as adaptive (4-slot: more), so the
  ratios are 0.59 and 0.74. Replacing the league's online rating would buy 11-29 % fewer episodes
  for any commissioner, not the target: 0.33 of this round-robin is 186 episodes for 2-slot, below
  the 266 that the bound above allows any design.
* Tried and not kept (20-100 seeds each): batches smaller than half the field (1 pair: median
  1614, the one-step lookahead then replays its favourite pair; 2: 613; 4: 554) or the whole
  field (463); a sigma bonus; a Brier term in the loss (425 vs 443 on seeds 0-39, 459 vs 390 on
  seeds 40-79: noise); Thompson-sampled pairings (482-617); mixing 10-40 % random pairs into
  posterior-neighbour pairings (440-508; none: 441); windows of 3 or 8 (adaptive.py's comment).
* Kept: the lookahead's display-term fix (adaptive._Lookahead: a one-step lookahead expected games
  of high-sigma entrants to harm the mu - 3 sigma display, so whole unsettled clusters went
  unplayed for 1000+ episodes). Same medians, shorter tail: 2-slot mean 565 -> 496 and upper
  quartile 558 -> 523 over 100 seeds; 4-slot max 410 -> 189 over 200 seeds.

* Same measurement for all: round-robin's single round (all 992 / 7280 episodes) finishes in random
  order, so it is random groups without replacement; every strategy is checked after every rated
  episode, with the same skills, rating code and mu - 3 sigma order. The display rule costs little
  on its own: at 300 episodes the mu order's tau is 0.850 against the displayed 0.845 (adaptive,
  10 seeds), so ranking by mu would not rescue the target either.

The default spread stays 2 (see above for spread 1); a different default would have to be argued
from how varied real policies are, not from this target.

Last line: `ranking_efficiency: 2-slot ratio=R2 4-slot ratio=R4 calibration=C`.
"""

from __future__ import annotations

import argparse
import itertools
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.map_estimate import MapRanking
from coworld_pipeline.league.confidence import annotate
from coworld_pipeline.league.ratings import apply_episode, credit
from coworld_pipeline.league.simulator import (
    Simulation,
    draw_scores,
    information_floor,
    kendall_tau,
    simulate,
    synthetic_skills,
)

SETUPS = ((2, 32, ("round-robin", "swiss", "adaptive")), (4, 16, ("round-robin", "adaptive")))
TARGET_RATIO = 0.33
TARGET_CALIBRATION = 0.95


class Calibration:
    """Adjacent pairs marked settled, how many of them are in the true order, and a reliability table."""

    BINS = (0.5, 0.7, 0.9, 0.95, 0.99)

    def __init__(self, level: float):
        self.level = level
        self.marked = 0
        self.right = 0
        self.bins = {low: [0, 0, 0.0] for low in self.BINS}  # pairs, in true order, sum of p

    def check(self, sim: Simulation) -> None:
        rows = annotate(sim.standings(), self.level)
        for upper, lower in itertools.pairwise(rows):
            p = upper.p_above_next
            assert p is not None
            right = sim.skills[upper.key] > sim.skills[lower.key]
            if p >= self.level:
                self.marked += 1
                self.right += right
            p, right = (p, right) if p >= 0.5 else (1.0 - p, not right)  # as "lower is stronger"
            row = self.bins[max(low for low in self.BINS if low <= p)]
            row[0] += 1
            row[1] += right
            row[2] += p

    @property
    def share(self) -> float:
        return self.right / self.marked if self.marked else float("nan")

    def reliability(self) -> str:
        cells = []
        for low, (pairs, right, total) in self.bins.items():
            if pairs:
                cells.append(f"p>={low:g}: said {total / pairs:.3f}, was {right / pairs:.3f} ({pairs})")
        return "; ".join(cells)


def episodes_to_target(
    strategy: str, slots: int, skills: dict[str, float], seed: int, args: argparse.Namespace, cal: Calibration
) -> tuple[int, bool]:
    fit = MapRanking(skills) if args.estimator == "map" else None

    def reached(sim: Simulation) -> bool:
        if sim.episodes % args.check_every == 0:
            cal.check(sim)
        if fit is None:
            return kendall_tau(sim.ranking(), skills) >= args.tau
        for credited in sim.history[len(fit.orders) :]:
            fit.add(credited)
        if sim.episodes % (args.map_every or (1 if len(skills) <= 16 else 5)):
            return False
        fit.fit()
        return kendall_tau(fit.ranking(), skills) >= args.tau

    result = simulate(
        strategy,
        skills,
        slots=slots,
        seed=seed,
        model=args.model,
        max_episodes=args.max_episodes,
        stop=reached,
        on_round=cal.check,
    )
    return result.sim.episodes, result.stopped


def oracle_episodes(
    skills: dict[str, float], slots: int, seed: int, jitter: float, args: argparse.Namespace
) -> int:
    """Episodes until tau >= args.tau for an oracle that KNOWS the skills and, batch by batch, seats
    the whole field in groups of neighbours by true skill plus N(0, jitter²) noise (offset rotated
    so that every boundary gets played). No commissioner: it shows what evenly matched games (in
    truth) do to the league's rating code, which is what the Fisher-information argument assumes."""
    rng = random.Random(seed)
    sim = Simulation(skills=dict(skills), slots=slots)
    batch = 0
    while sim.episodes < args.max_episodes:
        order = sorted(skills, key=lambda k: -skills[k] + (rng.gauss(0.0, jitter) if jitter else 0.0))
        shift = batch % slots
        order = order[shift:] + order[:shift]
        groups = [order[i : i + slots] for i in range(0, len(order) - slots + 1, slots)]
        rng.shuffle(groups)
        for group in groups:
            scores = draw_scores([skills[k] for k in group], rng, args.model)
            apply_episode(sim.table, credit(group, scores))
            sim.episodes += 1
            if kendall_tau(sim.ranking(), skills) >= args.tau or sim.episodes >= args.max_episodes:
                return sim.episodes
        batch += 1
    return sim.episodes


def calibration_run(
    strategy: str, slots: int, skills: dict[str, float], seed: int, args: argparse.Namespace, cal: Calibration
) -> None:
    def check(sim: Simulation) -> bool:
        if sim.episodes % args.check_every == 0:
            cal.check(sim)
        return False  # never stop early: run to the episode limit

    episodes = args.calibration_episodes * len(skills) // 16
    simulate(strategy, skills, slots=slots, seed=seed, model=args.model, max_episodes=episodes, stop=check)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--spread", type=float, default=2.0, help="skill sd in units of the prior's 25/3")
    parser.add_argument("--model", default="plackett-luce", choices=("plackett-luce", "thurstone"))
    parser.add_argument("--tau", type=float, default=0.9, help="Kendall's tau to reach")
    parser.add_argument("--level", type=float, default=0.95, help="confidence level of the settled marks")
    parser.add_argument("--max-episodes", type=int, default=6000)
    parser.add_argument("--check-every", type=int, default=25, help="episodes between calibration checks")
    parser.add_argument("--calibration-runs", type=int, default=3, help="extra long runs per strategy")
    parser.add_argument(
        "--calibration-episodes", type=int, default=600, help="length of those runs, per 16 policies"
    )
    parser.add_argument(
        "--oracle", action="store_true", help="also run the skill-knowing oracle (see the module doc)"
    )
    parser.add_argument(
        "--estimator",
        choices=("league", "map"),
        default="league",
        help="rank by the league's ratings, or by a batch MAP fit of all episodes (map_estimate.py)",
    )
    parser.add_argument(
        "--map-every", type=int, help="episodes between MAP fits (default: 1 for 16 entrants, 5 for 32)"
    )
    args = parser.parse_args()
    started = time.perf_counter()
    print(
        f"ranking_efficiency: skills ~ N(25, ({args.spread:g} * 25/3)^2), {args.model} outcomes, "
        f"{args.seeds} seeds; episodes until Kendall's tau of the standings >= {args.tau:g}"
        + (
            f" (ranked by a batch MAP fit of all episodes, every {args.map_every or '1 (16) / 5 (32)'}"
            " episodes;"
            " the commissioners and the settled marks still use the league's ratings)"
            if args.estimator == "map"
            else ""
        )
    )
    cal = Calibration(args.level)
    ratios: dict[int, float] = {}
    for slots, n, strategies in SETUPS:
        medians: dict[str, float] = {}
        for strategy in strategies:
            t0 = time.perf_counter()
            cal_before = (cal.marked, cal.right)
            counts, missed = [], 0
            for seed in range(args.seeds):
                skills = synthetic_skills(n, random.Random(1000 * slots + seed), args.spread)
                episodes, ok = episodes_to_target(strategy, slots, skills, seed, args, cal)
                counts.append(episodes)
                missed += not ok
            medians[strategy] = statistics.median(counts)
            quartiles = statistics.quantiles(counts, n=4)
            marked, right = cal.marked - cal_before[0], cal.right - cal_before[1]
            print(
                f"  {slots}-slot {n} policies  {strategy:<12} median {medians[strategy]:>7.1f}  "
                f"quartiles {quartiles[0]:.0f}..{quartiles[2]:.0f}"
                f"  range {min(counts)}..{max(counts)}"
                + (f"  ({missed} runs never reached it: counted as {args.max_episodes})" if missed else "")
                + f"  settled pairs {right}/{marked}  [{time.perf_counter() - t0:.1f}s]"
            )
        ratios[slots] = medians["adaptive"] / medians["round-robin"]
        verdict = "met" if ratios[slots] <= TARGET_RATIO else f"MISSED by {ratios[slots] - TARGET_RATIO:.2f}"
        print(
            f"  {slots}-slot adaptive / round-robin = {ratios[slots]:.3f} "
            f"(target <= {TARGET_RATIO}: {verdict})"
        )
        floor = statistics.mean(
            information_floor(synthetic_skills(n, random.Random(1000 * slots + seed), args.spread), slots)
            for seed in range(args.seeds)
        )
        print(
            f"  {slots}-slot information share {floor:.3f}: a round-robin game carries that share of the "
            f"Fisher information of an evenly matched one (mean over the seeds' skills); not a floor for "
            f"the online rating (see the module doc)"
        )
        for jitter in (0.0, 8.0, 16.0) if args.oracle else ():
            counts = []
            for seed in range(args.seeds):
                skills = synthetic_skills(n, random.Random(1000 * slots + seed), args.spread)
                counts.append(oracle_episodes(skills, slots, seed, jitter, args))
            print(
                f"  {slots}-slot oracle, true neighbours + N(0, {jitter:g}²): median "
                f"{statistics.median(counts):.1f} ({sum(c >= args.max_episodes for c in counts)} runs never "
                f"reached it: counted as {args.max_episodes})"
            )
        for strategy in strategies:  # longer runs, so that many pairs get settled and are checked
            for seed in range(args.calibration_runs):
                skills = synthetic_skills(n, random.Random(7000 * slots + seed), args.spread)
                calibration_run(strategy, slots, skills, seed, args, cal)
    verdict = "met" if cal.share >= TARGET_CALIBRATION else f"MISSED by {TARGET_CALIBRATION - cal.share:.3f}"
    print(
        f"  calibration: {cal.marked} adjacent pairs marked settled at {args.level:.0%} (checked every "
        f"{args.check_every} episodes of every run), {cal.right} in the true order = {cal.share:.3f} "
        f"(target >= {TARGET_CALIBRATION}: {verdict})"
    )
    print(f"  reliability, adjacent pairs (mean P of the likelier order vs share true): {cal.reliability()}")
    print(f"  wall time {time.perf_counter() - started:.1f}s")
    r2, r4 = ratios[2], ratios[4]
    name = "ranking_efficiency" if args.estimator == "league" else "ranking_efficiency[map estimator]"
    print(f"{name}: 2-slot ratio={r2:.2f} 4-slot ratio={r4:.2f} calibration={cal.share:.2f}")


if __name__ == "__main__":
    main()
