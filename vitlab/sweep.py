"""A grid of training runs: the cartesian product of some configuration values, times seeds.

``vitlab sweep model.depth=2,4 optim.lr=1e-3,3e-3 --seeds 3 -- --recipe digits --epochs 10`` trains
2 × 2 × 3 runs one after another, each in its own run folder under ``OUT/runs/``, then writes

* ``sweep.csv`` — one row per grid point: the grid values, every final metric of ``metrics.json``
  as ``<metric>_mean`` and ``<metric>_std`` over the seeds (sample standard deviation, 0 for one
  seed), the forward FLOPs per image (``vitlab.flops``), and the run folders;
* ``sweep.md`` — the same table with ``mean ± std``;
* ``sweep.png`` — the task's headline validation metric (val_acc, val_miou or val_knn_acc, the one
  settings are chosen on) per grid point with ±1 std error bars.

Any configuration key of any task can be swept (``vitlab.configio.valid_keys``), e.g.
``vitlab sweep pretrain.tau=0.05,0.1,0.2 --seeds 3 -- --task pretrain --recipe fashion-mnist``; values
are given as on the command line and checked, for every grid point, before the first run starts. A value
is split at commas, so a tuple key (``optim.betas``) cannot be swept this way.
"""
from __future__ import annotations

import csv
import itertools
import json
import logging
import statistics
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from .config import RunConfig
from .configio import ConfigError, apply_overrides, valid_keys
from .errors import RunFolderError

log = logging.getLogger(__name__)


@dataclass
class GridPoint:
    values: dict[str, str]
    configs: list[RunConfig]
    run_dirs: list[Path] = field(default_factory=list)


def parse_grid(specs: list[str]) -> dict[str, list[str]]:
    """``['model.depth=2,4', 'optim.lr=1e-3']`` -> ``{'model.depth': ['2', '4'], 'optim.lr': ['1e-3']}``."""
    keys = valid_keys(RunConfig)
    grid: dict[str, list[str]] = {}
    for spec in specs:
        key, eq, values = spec.partition("=")
        key = key.strip().removeprefix("--")
        if not eq or not values.strip():
            raise ConfigError(f"sweep axis {spec!r} is not KEY=V1,V2,...")
        if key not in keys:
            raise ConfigError(f"unknown config key {key!r} in sweep axis {spec!r}; valid keys: {', '.join(keys)}")
        if key in grid:
            raise ConfigError(f"sweep key {key!r} is given twice")
        grid[key] = [v.strip() for v in values.split(",") if v.strip()]
    if not grid:
        raise ConfigError("a sweep needs at least one axis KEY=V1,V2,...")
    return grid


def expand(base: RunConfig, grid: dict[str, list[str]], seeds: int, out_dir: str | Path) -> list[GridPoint]:
    """Every grid point with its per-seed configs (seeds base.seed, base.seed + 1, ...), all validated."""
    if seeds < 1:
        raise ConfigError(f"--seeds must be >= 1, got {seeds}")
    if "seed" in grid and seeds > 1:
        raise ConfigError("sweeping 'seed' and --seeds > 1 together is ambiguous; use one of them")
    runs_dir = Path(out_dir) / "runs"
    points = []
    for combo in itertools.product(*grid.values()):
        values = dict(zip(grid, combo))
        label = ",".join(f"{k}={v}" for k, v in values.items())
        configs = []
        for s in range(seeds):
            seed = int(values.get("seed", base.seed)) + s
            name = _safe(f"{label},seed={seed}")
            configs.append(apply_overrides(base, {**values, "seed": seed, "name": name, "out_dir": str(runs_dir)}))
        points.append(GridPoint(values, configs))
    return points


def run_sweep(base: RunConfig, grid: dict[str, list[str]], *, seeds: int = 1, out_dir: str | Path = "sweeps/sweep",
              overwrite: bool = False) -> Path:
    """Train every grid point × seed in turn; write sweep.csv, sweep.md and sweep.png; return ``out_dir``."""
    from .train import fit

    out_dir = Path(out_dir)
    points = expand(base, grid, seeds, out_dir)  # every config checked before the first run
    existing = [str(Path(c.out_dir) / c.name) for p in points for c in p.configs
                if (Path(c.out_dir) / c.name).exists()]
    if existing and not overwrite:
        raise RunFolderError(f"{len(existing)} run folder(s) of this sweep exist already (e.g. {existing[0]}); "
                             f"pass --overwrite to replace them or choose another --out")
    out_dir.mkdir(parents=True, exist_ok=True)
    total = sum(len(p.configs) for p in points)
    done = 0
    for point in points:
        for cfg in point.configs:
            done += 1
            log.info("sweep run %d/%d: %s", done, total, cfg.name)
            point.run_dirs.append(fit(cfg, overwrite=overwrite))
    rows = summarise(points)
    write_tables(rows, list(grid), out_dir)
    plot_sweep(rows, main_metric(base), out_dir / "sweep.png")
    return out_dir


def main_metric(cfg: RunConfig) -> str:
    """The headline validation metric of ``cfg.task`` (what the sweep plot shows and settings are chosen on)."""
    from .train.tasks import get_task

    return f"val_{get_task(cfg.task).metric}"


def model_flops(cfg: RunConfig) -> int:
    """Forward FLOPs per image of the model a run config trains."""
    from .flops import forward_flops

    if cfg.task == "segment":
        from .models.segmenter import Segmenter

        return forward_flops(cfg.model, partial(Segmenter, segment=cfg.segment))
    return forward_flops(cfg.model)


def summarise(points: list[GridPoint]) -> list[dict]:
    """One dict per grid point: its values, ``<metric>_mean``/``_std`` of every numeric final metric, flops."""
    rows = []
    for point in points:
        finals = [json.loads((d / "metrics.json").read_text()) for d in point.run_dirs]
        row: dict = dict(point.values)
        metrics = [k for k, v in finals[0].items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
        for key in metrics:
            values = [float(f[key]) for f in finals if f.get(key) is not None]
            row[f"{key}_mean"] = statistics.mean(values) if values else float("nan")
            row[f"{key}_std"] = statistics.stdev(values) if len(values) > 1 else 0.0
        row["flops"] = model_flops(point.configs[0])
        row["seeds"] = len(finals)
        row["run_dirs"] = ";".join(str(d) for d in point.run_dirs)
        rows.append(row)
    return rows


def write_tables(rows: list[dict], keys: list[str], out_dir: Path) -> None:
    columns = list(dict.fromkeys(c for row in rows for c in row))
    with open(out_dir / "sweep.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    metrics = [c[:-5] for c in columns if c.endswith("_mean")]
    header = [*keys, *metrics, "MFLOPs", "seeds"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [str(row[k]) for k in keys]
        cells += [_mean_std(row.get(f"{m}_mean"), row.get(f"{m}_std"), m) for m in metrics]
        cells += [f"{row['flops'] / 1e6:.3f}", str(row["seeds"])]
        lines.append("| " + " | ".join(cells) + " |")
    note = ("Each metric is the mean ± sample standard deviation over the seeds of a grid point; MFLOPs: "
            "forward, per image (vitlab.flops). Run folders: sweep.csv, column run_dirs.")
    (out_dir / "sweep.md").write_text("# Sweep\n\n" + "\n".join(lines) + "\n\n" + note + "\n")


def plot_sweep(rows: list[dict], metric: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [",".join(str(v) for k, v in row.items() if not k.endswith(("_mean", "_std")) and
                       k not in ("flops", "seeds", "run_dirs")) for row in rows]
    means = [row.get(f"{metric}_mean", float("nan")) for row in rows]
    stds = [row.get(f"{metric}_std", 0.0) for row in rows]
    fig, ax = plt.subplots(figsize=(max(4.0, 0.9 * len(rows) + 2), 4))
    ax.errorbar(range(len(rows)), means, yerr=stds, fmt="o", capsize=4)
    ax.set_xticks(range(len(rows)), labels, rotation=30, ha="right", fontsize=8)
    ax.set(ylabel=metric, title=f"{metric}: mean ± std over seeds")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _mean_std(mean, std, metric: str) -> str:
    """``mean ± std``, or the mean alone where the seeds agree exactly (parameters, epochs) or there is one seed."""
    if mean is None:
        return ""
    digits = 0 if metric in ("params", "epochs", "best_epoch", "processes") else 4
    return f"{mean:.{digits}f}" if not std else f"{mean:.{digits}f} ± {std:.{digits}f}"


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "=,.-_" else "_" for c in name)
