"""The PNG figures: box plots per level (like the thesis's), throughput per level, capacity resources, comparisons.

matplotlib runs with the non-interactive Agg backend, so no display is needed.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from loadgen.tables import Metric

_MIB = 1024 * 1024


def box_plot(metric: Metric, path: Path, title: str, *, xlabel: str = "Concurrent requests") -> None:
    """One box per level (median, quartiles, 1.5 IQR whiskers, outliers) with the mean as a red square (MF's R plot)."""
    levels = sorted(level for level, values in metric.by_level.items() if values)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.45 * len(levels) + 2), 4.5))
    if levels:
        data = [metric.by_level[level] for level in levels]
        ax.boxplot(data, positions=range(len(levels)), widths=0.6, flierprops={"markersize": 3})
        means = [sum(values) / len(values) for values in data]
        ax.plot(range(len(levels)), means, "s", color="red", markersize=5, label="mean")
        ax.set_xticks(range(len(levels)), [str(level) for level in levels])
        ax.legend(loc="best")
        positive = [v for values in data for v in values if v > 0]
        # Cold starts span orders of magnitude across executors; the thesis plots them on a log scale.
        if (
            positive
            and min(positive) > 0
            and max(positive) / min(positive) > 100
            and all(v > 0 for d in data for v in d)
        ):
            ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(f"{metric.title} ({metric.unit})")
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    _save(fig, path)


def throughput_plot(levels: list[int], rates: list[float], path: Path, title: str) -> None:
    """Throughput (req/s) against concurrent requests (the thesis's load-test figures)."""
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    ax.plot(levels, rates, "o-")
    ax.set_xlabel("Concurrent requests")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("Throughput (req/sec)")
    ax.set_title(title)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    _save(fig, path)


def capacity_plot(levels: list[dict[str, Any]], path: Path, title: str) -> None:
    """Per level: requested vs. peak simultaneous activations, and the success share."""
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    xs = [int(o["level"]) for o in levels]
    ax.plot(xs, xs, "--", color="grey", label="requested")
    ax.plot(xs, [int(o["peak_simultaneous"]) for o in levels], "o-", label="peak simultaneous")
    ax.set_xlabel("Simultaneous requests (level)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("Activations")
    ax.set_ylim(bottom=0)
    share = ax.twinx()
    share.plot(xs, [100 * float(o["success_share"]) for o in levels], "s:", color="tab:green", label="success %")
    share.set_ylabel("Success (%)")
    share.set_ylim(0, 105)
    handles = ax.get_legend_handles_labels()[0] + share.get_legend_handles_labels()[0]
    ax.legend(handles=handles, loc="lower right")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    _save(fig, path)


def resources_plot(samples: list[dict[str, Any]], path: Path, title: str) -> None:
    """CPU (% of one core) and memory (MiB) over time, server processes and containers, levels shaded."""
    fig, (cpu, memory) = plt.subplots(2, 1, sharex=True, figsize=(8, 6))
    t = [float(s["t"]) for s in samples]
    cpu.plot(t, [s["server"]["cpu_percent"] for s in samples], label="server processes")
    cpu.plot(t, [s["containers"]["cpu_percent"] for s in samples], label="containers")
    memory.plot(t, [s["server"]["rss_bytes"] / _MIB for s in samples], label="server RSS")
    memory.plot(t, [s["containers"]["memory_bytes"] / _MIB for s in samples], label="containers (cgroup)")
    for start, end, level in _level_spans(samples):
        for ax in (cpu, memory):
            ax.axvspan(start, end, color="tab:orange", alpha=0.08)
        cpu.annotate(
            str(level),
            ((start + end) / 2, 1.0),
            xycoords=("data", "axes fraction"),
            ha="center",
            va="bottom",
            fontsize=7,
        )
    cpu.set_ylabel("CPU (% of one core)")
    memory.set_ylabel("Memory (MiB)")
    memory.set_xlabel("Time (s); shaded: a level in progress (label = level)")
    for ax in (cpu, memory):
        ax.legend(loc="best")
        ax.grid(alpha=0.3)
        ax.set_ylim(bottom=0)
    fig.suptitle(title)
    _save(fig, path)


def comparison_plot(
    label_a: str, a: dict[int, float], label_b: str, b: dict[int, float], path: Path, title: str, ylabel: str
) -> None:
    """Mean per level of two runs on one axis (log scale when they differ by orders of magnitude)."""
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for label, series in ((label_a, a), (label_b, b)):
        levels = sorted(level for level, value in series.items() if not math.isnan(value))
        ax.plot(levels, [series[level] for level in levels], "o-", label=label)
    values = [v for series in (a, b) for v in series.values() if not math.isnan(v)]
    if values and min(values) > 0 and max(values) / min(values) > 100:
        ax.set_yscale("log")
    ax.set_xlabel("Concurrent requests")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend()
    ax.grid(alpha=0.3)
    _save(fig, path)


def _level_spans(samples: list[dict[str, Any]]) -> list[tuple[float, float, int]]:
    spans: list[tuple[float, float, int]] = []
    for sample in samples:
        level, t = sample.get("level"), float(sample["t"])
        if level is None:
            continue
        if spans and spans[-1][2] == level:
            spans[-1] = (spans[-1][0], t, level)
        else:
            spans.append((t, t, int(level)))
    return spans


def _save(fig: Figure, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
