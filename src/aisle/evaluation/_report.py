"""Reports of an evaluation run: Markdown with the protocol, a plot of each metric against k and,
when the run holds a relevance / business-value trade-off (``aisle evaluate --objective``), its
table and ``tradeoff.png``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from aisle.evaluation._runner import EvaluationRun

__all__ = ["plot_metric_vs_k", "plot_tradeoff", "tradeoff_markdown", "write_report"]


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


def _num(v: Any) -> float:
    return float("nan") if v is None else float(v)


def _tradeoff_x(trade: dict[str, Any]) -> tuple[str, str]:
    """The business figure on the x axis: ground-truth expected margin, else the hit-margin proxy."""
    if trade.get("ground_truth"):
        return "expected_margin", "expected margin per list (ground truth)"
    return "hit_margin", "margin-weighted DCG of held-out hits (proxy)"


def plot_tradeoff(trade: dict[str, Any], path: Path) -> Path:
    """Left: NDCG@k against the business figure, one line per model over λ (the model's own top k
    as a hollow marker, "margin only" as a cross). Right: both figures relative to λ = 0, against λ."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = trade["k"]
    xkey, xlabel = _tradeoff_x(trade)
    models = list(dict.fromkeys(p["model"] for p in trade["points"]))
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    for idx, model in enumerate(models):
        color = f"C{idx}"
        pts = [p for p in trade["points"] if p["model"] == model]
        grid = [p for p in pts if p["lam"] is not None and p["lam"] != "inf"]
        xs = [_num(p[xkey]) for p in grid]
        ys = [_num(p["ndcg"]) for p in grid]
        ax.plot(xs, ys, marker="o", color=color, label=f"{model}: λ grid")
        for p, x, y in zip(grid, xs, ys, strict=True):
            ax.annotate(f"{float(p['lam']):g}", (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
        for p in pts:
            if p["policy"] == "model":
                ax.plot(_num(p[xkey]), _num(p["ndcg"]), marker="o", mfc="none", ms=10, color=color, ls="none",
                        label=f"{model}: own top {k} (no constraints)")
            elif p["policy"] == "margin only":
                ax.plot(_num(p[xkey]), _num(p["ndcg"]), marker="x", ms=9, color=color, ls="none",
                        label=f"{model}: business value only")
            elif p["lam"] is None:  # another named baseline (e.g. a non-personalised margin sort)
                ax.plot(_num(p[xkey]), _num(p["ndcg"]), marker="*", ms=10, color=color, ls="none",
                        label=f"{model}: {p['policy']}")
        base = next((p for p in grid if float(p["lam"]) == 0.0), None)
        if base is not None and len(grid) > 1:
            lam = [float(p["lam"]) for p in grid]
            b_x, b_y = _num(base[xkey]), _num(base["ndcg"])
            ax2.plot(lam, [_num(p[xkey]) / b_x if b_x else float("nan") for p in grid], marker="o", color=color,
                     label=f"{model}: {xkey.replace('_', ' ')}")
            ax2.plot(lam, [_num(p["ndcg"]) / b_y if b_y else float("nan") for p in grid], marker="s", ls="--",
                     color=color, label=f"{model}: ndcg@{k}")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(f"NDCG@{k}")
    ax.set_title("relevance vs business value", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    ax2.set_xscale("symlog", linthresh=0.1)
    ax2.axhline(1.0, color="grey", lw=0.8)
    ax2.set_xlabel("λ")
    ax2.set_ylabel("relative to λ = 0")
    ax2.set_title("change against pure relevance (λ = 0)", fontsize=10)
    ax2.grid(alpha=0.3)
    ax2.legend(fontsize=7)
    objectives = ", ".join(f"{o['kind']}×{o['weight']:g}" for o in trade["objectives"])
    fig.suptitle(f"relevance + λ·({objectives}); {trade['normalization']} relevance, "
                 f"top {k} of {k * trade['overfetch']} candidates", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def tradeoff_markdown(trade: dict[str, Any]) -> list[str]:
    """The trade-off section of report.md: the table, ratios to λ = 0 and the definitions."""
    k = trade["k"]
    xkey, _ = _tradeoff_x(trade)
    objectives = ", ".join(f"{o['kind']} (weight {o['weight']:g}, {o['scaling']} scaling)" for o in trade["objectives"])
    cap = f"at most {trade['max_per_brand']} items per brand" if trade.get("max_per_brand") else "no brand cap"
    lines = [
        "", f"## Trade-off: relevance + λ · business value (k = {k})", "",
        f"- objectives: {objectives}; relevance normalised per list ({trade['normalization']})",
        f"- candidates: the model's top {k * trade['overfetch']} (over-fetch ×{trade['overfetch']}), reranked to {k}; "
        f"hard constraints: no out-of-stock or unlisted item; {cap}",
        f"- {trade['expected_margin']}",
        "- hit margin: margin-weighted DCG of held-out hits, sum over r of 1[held out] × unit margin / log2(r + 1)",
        "- unavailable: share of list slots holding an out-of-stock or unlisted item (the model's own top k is the "
        "'before'; every reranked row must be 0)",
    ]
    if trade.get("served_at"):
        lines.append(f"- lists served at {trade['served_at']} (the training cutoff): stock and season of that moment")
    lines += ["", f"| model | policy | ndcg@{k} | expected margin / list | vs λ=0 | expected revenue / list | "
                  f"hit margin | mean unit margin | coverage@{k} | arp@{k} | unavailable | fill |",
              "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]

    def fmt(v: Any, spec: str) -> str:
        return "n/a" if v is None else format(v, spec)

    for p in trade["points"]:
        base = next((q for q in trade["points"] if q["model"] == p["model"] and q["lam"] == 0.0), None)
        ratio = "n/a"
        if base is not None and base[xkey] and p[xkey] is not None:
            ratio = f"{p[xkey] / base[xkey]:.3f}× / ndcg {p['ndcg'] / base['ndcg']:.3f}×" if base["ndcg"] else "n/a"
        lines.append(
            f"| {p['model']} | {p['policy']} | {p['ndcg']:.4f} | {fmt(p['expected_margin'], '.3f')} | {ratio} | "
            f"{fmt(p['expected_revenue'], '.3f')} | {p['hit_margin']:.3f} | {p['list_margin']:.2f} | "
            f"{p['coverage']:.3f} | {p['arp']:.1f} | {p['unavailable_share']:.1%} | {p['fill']:.3f} |")
    for note in trade.get("notes", []):
        lines.append(f"\n_Note: {note}_")
    lines += ["", "![trade-off](tradeoff.png)"]
    return lines


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
    lines += ["", "![metric vs k](metric_vs_k.png)"]
    if extra.get("tradeoff"):
        lines += tradeoff_markdown(extra["tradeoff"])
    lines.append("")
    return "\n".join(lines)


def write_report(run: EvaluationRun, directory: Path) -> dict[str, str]:
    """Write ``evaluation.json``, ``report.md`` and ``metric_vs_k.png`` into ``directory`` (and
    ``tradeoff.png`` when ``run.extra`` holds a ``tradeoff``)."""
    directory.mkdir(parents=True, exist_ok=True)
    payload = run.to_dict()
    (directory / "evaluation.json").write_text(json.dumps(payload, indent=2, default=str))
    plot = plot_metric_vs_k(run, directory / "metric_vs_k.png")
    files = {"json": str(directory / "evaluation.json"), "markdown": str(directory / "report.md"), "plot": str(plot)}
    if run.extra.get("tradeoff"):
        files["tradeoff_plot"] = str(plot_tradeoff(run.extra["tradeoff"], directory / "tradeoff.png"))
    (directory / "report.md").write_text(_markdown(run, run.extra))
    return files
