"""The statistics behind a verdict: mean ± sample std over seeds, and Welch's t-test between two settings.

Welch's test (unequal variances; Welch 1947) is the one to use for a handful of seeds per setting: it does not
assume the two settings vary alike. Two settings are called *separable* when p < 0.05 (two-sided); otherwise
the difference is "within the seed-to-seed spread".
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

from scipy import stats as _scipy_stats  # scikit-learn's own dependency: the t distribution's tail

ALPHA = 0.05


@dataclass(frozen=True)
class Spread:
    """Values of one setting over seeds."""

    values: tuple[float, ...]

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values)

    @property
    def std(self) -> float:
        return statistics.stdev(self.values) if len(self.values) > 1 else 0.0

    def fmt(self, scale: float = 100.0, digits: int = 2) -> str:
        """``mean ± std`` of the values × ``scale`` (100: a fraction shown in percent)."""
        return f"{self.mean * scale:.{digits}f} ± {self.std * scale:.{digits}f}"


@dataclass(frozen=True)
class Welch:
    t: float
    df: float
    p: float

    @property
    def separable(self) -> bool:
        return self.p < ALPHA


def welch(a, b) -> Welch:
    """Welch's two-sided t-test of mean(a) != mean(b).

    t = (mean_a - mean_b) / sqrt(s_a²/n_a + s_b²/n_b), with the Welch–Satterthwaite degrees of freedom.
    Where neither setting varies over its seeds, the difference is certain (p = 0) or absent (p = 1).
    """
    a, b = [float(v) for v in a], [float(v) for v in b]
    if len(a) < 2 or len(b) < 2:
        raise ValueError(f"Welch's test needs >= 2 values a setting, got {len(a)} and {len(b)}")
    ma, mb = statistics.fmean(a), statistics.fmean(b)
    va, vb = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
    if va + vb == 0:
        return Welch(t=math.copysign(math.inf, ma - mb) if ma != mb else 0.0, df=float(len(a) + len(b) - 2),
                     p=0.0 if ma != mb else 1.0)
    t = (ma - mb) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    return Welch(t=t, df=df, p=float(2 * _scipy_stats.t.sf(abs(t), df)))


def compare(name_a: str, a, name_b: str, b, *, scale: float = 100.0, unit: str = "%", digits: int = 2) -> str:
    """One sentence: both settings' mean ± std, Welch's t and p, and whether they are separable."""
    sa, sb = Spread(tuple(a)), Spread(tuple(b))
    w = welch(a, b)
    verdict = "separable" if w.separable else "within the seed spread"
    return (f"{name_a} {sa.fmt(scale, digits)}{unit} vs {name_b} {sb.fmt(scale, digits)}{unit} "
            f"({len(sa.values)} and {len(sb.values)} seeds; Welch t = {w.t:.2f}, p = {w.p:.3f}: {verdict})")
