"""A batch estimator for ranking_efficiency.py's `--estimator map`: not the league's rating code.

The league rates online (ratings.py: one openskill Plackett-Luce update per episode), which is cheap
and what `coworld results` shows, but is not an efficient estimator of the skills. This fits all the
episodes so far at once instead: the maximum a posteriori skills of the Plackett-Luce model that
generated them (the simulator's own outcome model and scale, so the best case for the fit) under the
rating prior N(25, (25/3)²), by Newton's method, warm-started from the previous fit. It answers one
question: would an efficient estimator bring adaptive / round-robin down to the target? Pure Python
(O(n³) per step for n entrants): fine for the benchmark's 16 and 32 policies, not for a league.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

from coworld_pipeline.league.ratings import MU, SIGMA
from coworld_pipeline.league.simulator import GUMBEL_SCALE


def _solve(matrix: list[list[float]], rhs: list[float]) -> list[float]:
    """x with matrix · x = rhs (Gaussian elimination with partial pivoting; matrix is positive definite)."""
    n = len(rhs)
    rows = [[*row, rhs[i]] for i, row in enumerate(matrix)]
    for col in range(n):
        pivot = max(range(col, n), key=lambda r: abs(rows[r][col]))
        rows[col], rows[pivot] = rows[pivot], rows[col]
        top = rows[col]
        for r in range(col + 1, n):
            factor = rows[r][col] / top[col]
            if factor:
                row = rows[r]
                for k in range(col, n + 1):
                    row[k] -= factor * top[k]
    x = [0.0] * n
    for r in range(n - 1, -1, -1):
        x[r] = (rows[r][n] - sum(rows[r][k] * x[k] for k in range(r + 1, n))) / rows[r][r]
    return x


class MapRanking:
    """MAP skills of every entrant from every episode seen so far (`add`, then `ranking`)."""

    def __init__(self, keys: Iterable[str], scale: float = GUMBEL_SCALE):
        self.keys = list(keys)
        self.index = {k: i for i, k in enumerate(self.keys)}
        self.skills = [MU] * len(self.keys)
        self.orders: list[list[int]] = []  # each episode's entrants, best first
        self.scale = scale

    def add(self, credited: Mapping[str, float]) -> None:
        # the simulator's places are distinct (no ties): the Plackett-Luce order is the score order
        self.orders.append([self.index[k] for k in sorted(credited, key=lambda k: -credited[k])])

    def fit(self, max_steps: int = 3) -> None:
        n, s, prior = len(self.keys), self.scale, 1.0 / (SIGMA * SIGMA)
        theta = self.skills
        for _ in range(max_steps):
            grad = [-(t - MU) * prior for t in theta]  # of the log posterior
            hess = [[prior if i == j else 0.0 for j in range(n)] for i in range(n)]  # of its negative
            for order in self.orders:
                weights = [math.exp((theta[i] - MU) / s) for i in order]
                for place in range(len(order) - 1):  # the place-th finisher beat everyone after it
                    total = sum(weights[place:])
                    shares = [(i, w / total) for i, w in zip(order[place:], weights[place:], strict=True)]
                    grad[order[place]] += 1.0 / s
                    for i, p in shares:
                        grad[i] -= p / s
                        hess[i][i] += p / (s * s)
                        for j, q in shares:
                            hess[i][j] -= p * q / (s * s)
            step = _solve(hess, grad)
            theta = [t + d for t, d in zip(theta, step, strict=True)]
            if max(abs(d) for d in step) < 1e-3:
                break
        self.skills = theta

    def ranking(self) -> list[str]:
        return [k for _, k in sorted(zip(self.skills, self.keys, strict=True), key=lambda r: (-r[0], r[1]))]
