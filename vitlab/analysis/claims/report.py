"""The claims report: Markdown with each claim, its verdict and why, its evidence and its plots beside it."""
from __future__ import annotations

import platform
from pathlib import Path

import torch

from .claim import Claim, Finding, Lab


def render(results: list[tuple[Claim, Finding, float]], lab: Lab, *, header: str = "", plot_dir: str = "") -> str:
    """The report as Markdown; a plot is linked as ``plot_dir/name`` (the plots' folder seen from the report's)."""
    lines = ["# The notes' claims, checked", ""]
    if header:
        lines += [header, ""]
    lines += [f"First seed {lab.seed}; settings are compared over {lab.seeds} seeds (`--seeds`), or 5 in the cheapest "
              f"experiments (each claim's evidence gives its count); torch {torch.__version__}, "
              f"{torch.get_num_threads()} thread(s), Python {platform.python_version()}. Verdicts: holds / holds "
              "here with caveats / does not hold / cannot be decided at this size. Two settings are *separable* "
              "when Welch's t-test gives p < 0.05 over the seeds.", ""]
    lines += ["| # | claim | verdict | why | seconds |", "|---|---|---|---|---|"]
    for claim, finding, seconds in results:
        lines.append(f"| {claim.number} | {claim.statement} | **{finding.verdict}** | {finding.why} | {seconds:.0f} |")
    lines.append("")
    for claim, finding, seconds in results:
        lines += [f"## {claim.number}. {claim.statement}", "",
                  f"**{finding.verdict}** ({claim.kind}, {seconds:.1f} s): {finding.why}", ""]
        lines += list(finding.evidence)
        lines.append("")
        for plot in finding.plots:
            lines += [f"![claim {claim.number}]({plot_dir + '/' if plot_dir else ''}{plot})", ""]
    return "\n".join(lines).rstrip() + "\n"


def write(results, lab: Lab, path: Path | None = None, *, header: str = "") -> Path:
    """Write the report to ``path`` (default ``lab.out/claims.md``), its plots linked from there; return it."""
    import os

    path = Path(path) if path else lab.out / "claims.md"
    plot_dir = os.path.relpath(lab.out, path.parent)
    path.write_text(render(results, lab, header=header, plot_dir="" if plot_dir == "." else plot_dir))
    return path
