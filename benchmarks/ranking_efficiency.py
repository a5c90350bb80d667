"""Benchmark: episodes a league needs before its standings are in (nearly) the true order.

    .venv/bin/python benchmarks/ranking_efficiency.py [--seeds 20] [--spread 2.0] [--model plackett-luce]

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

Information floor: per setup it also prints the mean Fisher information of a round-robin game
relative to an evenly matched game (simulator.information_floor). Pinning every skill down to a
given precision takes about that share of the round-robin's episodes even if every game were
evenly matched, so it is a rough floor for the ratio at this spread (about 0.36 for 2-slot and
0.44 for 4-slot at spread 2; it falls roughly as 1/spread).

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

from coworld_pipeline.league.confidence import annotate
from coworld_pipeline.league.simulator import (
    Simulation,
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
    def reached(sim: Simulation) -> bool:
        if sim.episodes % args.check_every == 0:
            cal.check(sim)
        return kendall_tau(sim.ranking(), skills) >= args.tau

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
    args = parser.parse_args()
    started = time.perf_counter()
    print(
        f"ranking_efficiency: skills ~ N(25, ({args.spread:g} * 25/3)^2), {args.model} outcomes, "
        f"{args.seeds} seeds; episodes until Kendall's tau of the standings >= {args.tau:g}"
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
            f"  {slots}-slot information floor {floor:.3f}: a round-robin game carries that share of the "
            f"Fisher information of an evenly matched one (mean over the seeds' skills), so no schedule "
            f"gets the ratio much below it at spread {args.spread:g}"
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
    print(f"ranking_efficiency: 2-slot ratio={r2:.2f} 4-slot ratio={r4:.2f} calibration={cal.share:.2f}")


if __name__ == "__main__":
    main()
