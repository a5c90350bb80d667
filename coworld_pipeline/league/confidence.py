"""How sure the standings are: skill intervals, "really stronger" probabilities and settled ranks.

Pure math over the rating posterior (ratings.py keeps one Gaussian N(mu, sigma²) per entrant).
Nothing here touches the database; callers pass (key, mu, sigma) rows and get plain values back.

* `interval(mu, sigma, level)` — the central `level` interval of the entrant's skill,
  mu ± z·sigma with z = Φ⁻¹((1 + level) / 2) (z ≈ 1.96 at the default 0.95).
* `p_stronger(mu_a, sigma_a, mu_b, sigma_b)` — P(skill_a > skill_b) = Φ((mu_a − mu_b) / √(σa² + σb²)).
  This is about the skills, not one game's outcome, so the per-game noise beta does not enter; the
  posteriors are treated as independent (openskill keeps no covariances).
* `annotate(entries, level=0.95) -> list[RankConfidence]` — the entry point for standings:

      annotate(entries: Sequence[tuple[str, float, float]], level: float = 0.95) -> list[RankConfidence]

  `entries` are (key, mu, sigma) in RANK ORDER (best first, as the standings list them). Per entrant
  it returns a frozen `RankConfidence` with `rank` (1-based position), `mu`, `sigma`, the interval
  `low`/`high` at `level`, `p_above_next` (probability it is really stronger than the entrant ranked
  just below; None for the last), `settled` (its order relative to BOTH neighbours is known at
  `level`: p_above_next of the pair above and of its own pair are >= level; a lone entrant is settled)
  and `level`. `RankConfidence.to_json()` gives a JSON-ready dict with those field names.
* `pair_settled(p, level)` / `order_settled(entries, level, top_k)` — the settled test used by the
  adaptive commissioner's stop rule (the whole order, or only the top k ranks and the k/k+1 boundary).

Calibration: benchmarks/ranking_efficiency.py checks with the simulator that adjacent pairs marked
settled at 95 % are in the true order at least 95 % of the time.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

DEFAULT_LEVEL = 0.95
_SQRT2 = math.sqrt(2.0)
# z of the default level, so that standings (read on every `coworld results`) need not import
# `statistics` (~8 ms of start-up); other levels compute it.
_Z_DEFAULT = 1.9599639845400536  # NormalDist().inv_cdf(0.975)


def _check_level(level: float) -> float:
    level = float(level)
    if not 0.0 < level < 1.0:
        raise ValueError(f"confidence level must be strictly between 0 and 1, not {level}")
    return level


def z_value(level: float = DEFAULT_LEVEL) -> float:
    """Half-width of the central `level` interval of a standard normal (1.959964 for 0.95)."""
    level = _check_level(level)
    if level == DEFAULT_LEVEL:
        return _Z_DEFAULT
    from statistics import NormalDist

    return NormalDist().inv_cdf((1.0 + level) / 2.0)


def interval(mu: float, sigma: float, level: float = DEFAULT_LEVEL) -> tuple[float, float]:
    half = z_value(level) * sigma
    return mu - half, mu + half


def p_stronger(mu_a: float, sigma_a: float, mu_b: float, sigma_b: float) -> float:
    """Posterior probability that a's skill exceeds b's."""
    spread = math.sqrt(sigma_a * sigma_a + sigma_b * sigma_b)
    if spread == 0.0:  # degenerate posteriors: the order is the order of the means
        return 1.0 if mu_a > mu_b else 0.0 if mu_a < mu_b else 0.5
    # Φ via erf directly: NormalDist.cdf does the same with more overhead, and the adaptive
    # commissioner evaluates this tens of thousands of times per batch
    return 0.5 * (1.0 + math.erf((mu_a - mu_b) / (spread * _SQRT2)))


def pair_settled(p_above: float, level: float = DEFAULT_LEVEL) -> bool:
    """An adjacent pair is settled when the higher-ranked one is really stronger at `level`."""
    return p_above >= level


@dataclass(frozen=True)
class RankConfidence:
    key: str
    rank: int
    mu: float
    sigma: float
    low: float
    high: float
    p_above_next: float | None
    settled: bool
    level: float

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def adjacent_p(entries: Sequence[tuple[str, float, float]]) -> list[float]:
    """P(entry i really stronger than entry i+1) for each adjacent pair, in the given order."""
    return [p_stronger(a[1], a[2], b[1], b[2]) for a, b in itertools.pairwise(entries)]


def annotate(
    entries: Sequence[tuple[str, float, float]], level: float = DEFAULT_LEVEL
) -> list[RankConfidence]:
    """Confidence figures for standings given as (key, mu, sigma) in rank order (see module doc)."""
    level = _check_level(level)
    z = z_value(level)
    ps = adjacent_p(entries)
    out = []
    for i, (key, mu, sigma) in enumerate(entries):
        above_ok = i == 0 or pair_settled(ps[i - 1], level)
        below_ok = i == len(ps) or pair_settled(ps[i], level)
        out.append(
            RankConfidence(
                key=key,
                rank=i + 1,
                mu=mu,
                sigma=sigma,
                low=mu - z * sigma,
                high=mu + z * sigma,
                p_above_next=ps[i] if i < len(ps) else None,
                settled=above_ok and below_ok,
                level=level,
            )
        )
    return out


def order_settled(
    entries: Sequence[tuple[str, float, float]], level: float = DEFAULT_LEVEL, top_k: int | None = None
) -> bool:
    """True when every adjacent pair that decides the requested order is settled at `level`.

    `top_k` None: the whole order. Otherwise only the order within the top k ranks and the
    boundary between rank k and rank k + 1 matter (who is in the top k, and in which order).
    """
    ps = adjacent_p(entries)
    if top_k is not None:
        ps = ps[: max(0, top_k)]
    return all(pair_settled(p, _check_level(level)) for p in ps)
