"""Reports of an evaluation run: Markdown with the protocol, and a plot of each metric against k."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from aisle.evaluation._runner import EvaluationRun

__all__ = ["plot_metric_vs_k", "write_report"]


def plot_metric_vs_k(run: EvaluationRun, path: Path) -> Path:
    """One panel per metric, one line per model, metric value against the cut-off k."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bases = sorted({b for r in run.results for b in r.curve})
    fig, axes = plt.subplots(1, len(bases), figsize=(4.2 * len(bases), 3.4), squeeze=False)
    for ax, base in zip(axes[0], bases, strict=True):
        for r in run.results:
            curve = r.curve.get(base, {})
            if curve:
                ks = sorted(curve)
                ax.plot(ks, [curve[k] for k in ks], marker="o", label=r.model)
        ax.set_xscale("log")
        ax.set_xlabel("k")
        ax.set_title(f"{base}@k")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.suptitle(f"{run.protocol.dataset}: {run.protocol.split['name']} split, {run.protocol.candidates}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _markdown(run: EvaluationRun, extra: dict[str, Any]) -> str:
    metrics = list(run.results[0].metrics) if run.results else []
    p = run.protocol
    lines = [
        f"# Evaluation on {p.dataset}",
        "",
        f"- dataset sha256: `{p.dataset_sha256}`",
        f"- split: {json.dumps(p.split)}",
        f"- candidates: {p.candidates}; seed {p.seed}; {p.n_test_users} test users",
        f"- code: aisle {p.code_version}",
        "",
        "| model | " + " | ".join(metrics) + " | fit s | predict s |",
        "|---|" + "---:|" * (len(metrics) + 2),
    ]
    for r in run.results:
        cells = " | ".join(f"{r.metrics[m]:.4f}" for m in metrics)
        lines.append(f"| {r.model} | {cells} | {r.fit_seconds:.2f} | {r.predict_seconds:.2f} |")
    if extra.get("comparisons"):
        lines += ["", "## Paired comparisons (per-user, 95 % bootstrap CI of the difference)", "",
                  "| model vs baseline | metric | difference | CI | relative | t-test p |", "|---|---|---:|---|---:|---:|"]
        for c in extra["comparisons"]:
            d = c["diff"]
            lines.append(f"| {c['model']} vs {c['baseline']} | {c['metric']} | {d['mean']:+.4f} | "
                         f"[{d['ci_low']:+.4f}, {d['ci_high']:+.4f}] | {c['relative_change']:+.1%} | {c['t_pvalue']:.2g} |")
    if extra.get("segments"):
        lines += ["", "## Segments (95 % bootstrap CI)", "", "| model | segmentation | segment | metric | mean | CI | users |",
                  "|---|---|---|---|---:|---|---:|"]
        for s in extra["segments"]:
            lines.append(f"| {s['model']} | {s['segmentation']} | {s['segment']} | {s['metric']} | {s['mean']:.4f} | "
                         f"[{s['ci_low']:.4f}, {s['ci_high']:.4f}] | {s['n']} |")
    lines += ["", "![metric vs k](metric_vs_k.png)", ""]
    return "\n".join(lines)


def write_report(run: EvaluationRun, directory: Path) -> dict[str, str]:
    """Write ``evaluation.json``, ``report.md`` and ``metric_vs_k.png`` into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    payload = run.to_dict()
    (directory / "evaluation.json").write_text(json.dumps(payload, indent=2, default=str))
    plot = plot_metric_vs_k(run, directory / "metric_vs_k.png")
    (directory / "report.md").write_text(_markdown(run, run.extra))
    return {"json": str(directory / "evaluation.json"), "markdown": str(directory / "report.md"), "plot": str(plot)}
