"""Experiment reports: one self-contained HTML page with plots, and the JSON behind it.

The HTML embeds its plots (PNG, matplotlib's Agg renderer, no display needed): the effect and
interval of every metric and arm, the guardrails' harm against their margins, and the primary
metric's cumulative effect over time (with the always-valid interval under mSPRT). Every
table shows how its numbers were obtained (test, windows, data source, correction).
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path
from typing import Any

from aisle.errors import require

from ._analyze import AnalysisResult

__all__ = ["plot_cumulative", "plot_effects", "render_html", "write_report"]

_COLORS = {
    "ship": "#1a7f37",
    "no_ship": "#cf222e",
    "blocked": "#cf222e",
    "inconclusive": "#9a6700",
    "not_ready": "#57606a",
}


def _as_dict(result: AnalysisResult | dict[str, Any]) -> dict[str, Any]:
    return result.to_dict() if isinstance(result, AnalysisResult) else result


def _figure(width: float, height: float) -> Any:
    require("matplotlib", "plot")
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _num(x: Any) -> float:
    return float("nan") if x is None else float(x)


def plot_effects(result: AnalysisResult | dict[str, Any]) -> bytes:
    """A PNG: the relative effect and interval of every metric and arm, and the guardrails.

    Returns:
        The PNG bytes.
    """
    d = _as_dict(result)
    metrics = d.get("metrics", [])
    guards = [g for g in d.get("guardrails", []) if g["status"] != "no_data"]
    rows = max(len(metrics), 1) + max(len(guards), 1)
    fig = _figure(9.5, 1.4 + 0.42 * rows)
    ax1, ax2 = fig.subplots(2, 1, height_ratios=[max(len(metrics), 1), max(len(guards), 1)])
    labels = [f"{m['metric']} ({m['variant']})" for m in metrics]
    for i, m in enumerate(metrics):
        y = len(metrics) - 1 - i
        rel, lo, hi = (
            100 * _num(m[k]) for k in ("relative", "relative_ci_low", "relative_ci_high")
        )
        color = "#1a7f37" if m["significant"] else "#57606a"
        ax1.errorbar([rel], [y], xerr=[[rel - lo], [hi - rel]], fmt="o", color=color, capsize=4)
    ax1.axvline(0, color="black", lw=0.8)
    ax1.set_yticks(range(len(metrics)), labels[::-1])
    ax1.set_xlabel("relative effect, % (green = significant after correction)")
    ax1.set_title("Effect per metric")
    for i, g in enumerate(guards):
        y = len(guards) - 1 - i
        m = float(g["margin"])
        harm, lo, hi = (_num(g[k]) / m for k in ("harm", "harm_ci_low", "harm_ci_high"))
        color = {"pass": "#1a7f37", "breach": "#cf222e"}.get(g["status"], "#9a6700")
        ax2.errorbar([harm], [y], xerr=[[harm - lo], [hi - harm]], fmt="o", color=color, capsize=4)
    ax2.axvline(0, color="black", lw=0.8)
    ax2.axvline(1, color="#cf222e", lw=1.2, ls="--")
    labels2 = [
        f"{g['metric']} ({g['variant']}), margin {'+' + format(g['margin'], '.0%') if g['relative'] else '+' + format(g['margin'], 'g')}"
        for g in guards
    ]
    ax2.set_yticks(range(len(guards)), labels2[::-1])
    ax2.set_xlabel("harm / margin (> 0 is worse; dashed line = margin; green = non-inferior)")
    ax2.set_title("Guardrails")
    return _png(fig)


def plot_cumulative(result: AnalysisResult | dict[str, Any]) -> bytes:
    """A PNG: the primary metric's effect over time (daily looks on mature units).

    Returns:
        The PNG bytes.
    """
    import pandas as pd

    d = _as_dict(result)
    rows = d.get("cumulative", [])
    fig = _figure(8.0, 3.6)
    ax = fig.subplots()
    for arm in sorted({r["variant"] for r in rows}):
        pts = [r for r in rows if r["variant"] == arm]
        t = [pd.Timestamp(r["at"]).to_pydatetime() for r in pts]
        est = [_num(r["estimate"]) for r in pts]
        ax.plot(t, est, marker="o", label=f"{arm} − control")
        ax.fill_between(
            t,
            [_num(r["ci_low"]) for r in pts],
            [_num(r["ci_high"]) for r in pts],
            alpha=0.2,
            label="fixed-horizon interval",
        )
        if pts and "av_ci_low" in pts[0]:
            ax.plot(
                t,
                [_num(r["av_ci_low"]) for r in pts],
                ls="--",
                color="gray",
                label="always-valid interval",
            )
            ax.plot(t, [_num(r["av_ci_high"]) for r in pts], ls="--", color="gray")
    ax.axhline(0, color="black", lw=0.8)
    primary = d.get("spec", {}).get("primary_metric", "primary metric")
    ax.set_title(f"Cumulative effect on {primary} (units whose window has closed)")
    ax.set_ylabel("treatment − control")
    if rows:
        ax.legend(fontsize=8)
    fig.autofmt_xdate()
    return _png(fig)


def _fmt(x: Any, pct: bool = False, digits: int = 4) -> str:
    if x is None:
        return "–"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, float):
        return f"{100 * x:+.2f} %" if pct else f"{x:.{digits}g}"
    return html.escape(str(x))


def _table(headers: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_html(result: AnalysisResult | dict[str, Any]) -> str:
    """The report as one self-contained HTML page (plots embedded as PNG).

    Args:
        result: an analysis (or its :meth:`AnalysisResult.to_dict`).
    """
    d = _as_dict(result)
    spec = d["spec"]
    effects = base64.b64encode(plot_effects(d)).decode()
    cumulative = base64.b64encode(plot_cumulative(d)).decode()
    verdict = d["verdict"]
    winner = f" → {html.escape(d['winner'])}" if d.get("winner") else ""
    reasons = "".join(f"<li>{html.escape(r)}</li>" for r in d.get("reasons", []))
    srm = d["srm"]
    srm_rows = [
        [html.escape(k), f"{v:,}", f"{srm['expected'][k]:,.0f}"] for k, v in srm["observed"].items()
    ]
    metrics_rows = [
        [
            _fmt(m["metric"]),
            _fmt(m["variant"]),
            _fmt(m["role"]),
            _fmt(m["method"]),
            f"{m['n_control']:,} / {m['n_treatment']:,}",
            _fmt(m["control_value"]),
            _fmt(m["treatment_value"]),
            f"{_fmt(m['estimate'])} [{_fmt(m['ci_low'])}, {_fmt(m['ci_high'])}]",
            f"{_fmt(m['relative'], True)} [{_fmt(m['relative_ci_low'], True)}, {_fmt(m['relative_ci_high'], True)}]",
            _fmt(m["p_value"]),
            _fmt(m["p_bh"]),
            _fmt(m["p_holm"]),
            _fmt(m.get("always_valid_p")),
            _fmt(m["significant"]),
            _fmt(m.get("cuped_variance_ratio")),
        ]
        for m in d["metrics"]
    ]
    guard_rows = [
        [
            _fmt(g["metric"]),
            _fmt(g["variant"]),
            _fmt(g["control_value"]),
            _fmt(g["treatment_value"]),
            f"{_fmt(g['harm'], g['relative'])} [{_fmt(g['harm_ci_low'], g['relative'])}, {_fmt(g['harm_ci_high'], g['relative'])}]",
            _fmt(g["margin"], g["relative"]),
            _fmt(g["p_noninferiority"]),
            f"<b>{_fmt(g['status'])}</b>",
        ]
        for g in d["guardrails"]
    ]
    track_rows = [
        [
            _fmt(r["event_type"]),
            _fmt(r["variant"]),
            f"{r['n_events']:,}",
            _fmt(r["per_unit"]),
            _fmt(r["ratio_to_control"]),
            f"{100 * (r['duplicate_share'] or 0):.2f} %",
            _fmt(r["status"]),
        ]
        for r in d["tracking"]["rows"]
    ]
    proxy_rows = [
        [
            _fmt(p["proxy"]),
            _fmt(p["final"]),
            _fmt(p["variant"]),
            _fmt(p["correlation"]),
            f"{_fmt(p['proxy_result']['relative'], True)} (p {_fmt(p['proxy_result']['p_value'])}, {p['proxy_result']['n_control'] + p['proxy_result']['n_treatment']:,} units)",
            f"{_fmt(p['final_result']['relative'], True)} (p {_fmt(p['final_result']['p_value'])}, {p['final_result']['n_control'] + p['final_result']['n_treatment']:,} units)",
            _fmt(p["agree"]),
        ]
        for p in d.get("proxies", [])
    ]
    mat_rows = [
        [
            _fmt(c["cohort"]),
            ", ".join(f"{k}: {v:,}" for k, v in c["units"].items()),
            _fmt(c["status"]),
            f"{c['conversions_so_far']:,}",
        ]
        for c in d.get("maturity", [])
    ]
    prov = d.get("provenance", {})
    prov_rows = [
        [html.escape(str(k)), html.escape(json.dumps(v) if not isinstance(v, str) else v)]
        for k, v in prov.items()
    ]
    mon = d.get("monitoring", {})
    css = (
        "body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px;color:#1f2328}"
        "table{border-collapse:collapse;margin:.5em 0 1.5em;font-size:13px}"
        "td,th{border:1px solid #d0d7de;padding:4px 8px;text-align:right}th{background:#f6f8fa}"
        "td:first-child,th:first-child{text-align:left}.verdict{font-size:1.4em;font-weight:600}"
        "img{max-width:100%}"
    )
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>Experiment {html.escape(d['experiment'])}</title>",
        f"<style>{css}</style></head><body>",
        f"<h1>Experiment {html.escape(d['experiment'])}</h1>",
        f"<p class='verdict' style='color:{_COLORS.get(verdict, '#000')}'>Verdict: {html.escape(verdict)}{winner}</p>",
        f"<ul>{reasons}</ul>",
        f"<p>Unit: {html.escape(spec['unit'])}; arms {', '.join(html.escape(v['name']) for v in spec['variants'])} "
        f"(control {html.escape(spec.get('control') or spec['variants'][0]['name'])}); primary metric "
        f"{html.escape(spec['primary_metric'])}; alpha {spec['alpha']}; decisions use "
        f"{'Benjamini–Hochberg' if spec['correction'] == 'bh' else 'Holm'} over metrics × arms; "
        f"observation window {spec['window_days']} days; monitoring {html.escape(str(mon.get('method')))}: "
        f"{html.escape(str(mon.get('reason')))}. Data as of {html.escape(d['as_of'])}.</p>",
        "<h2>Checks that can block the verdict</h2>",
        f"<h3>Sample ratio (chi-square p = {_fmt(srm['p_value'])}, fails below {srm['alpha']}: "
        f"{'passed' if srm['passed'] else '<b>FAILED</b>'})</h3>",
        _table(["arm", "exposed units", "expected"], srm_rows),
        f"<h3>Tracking consistency ({'passed' if d['tracking']['passed'] else '<b>FAILED</b>'})</h3>",
        "".join(f"<p>{html.escape(p)}</p>" for p in d["tracking"]["problems"]),
        _table(
            [
                "event type",
                "arm",
                "events",
                "per exposed unit",
                "ratio to control",
                "duplicates",
                "status",
            ],
            track_rows,
        ),
        f"<p>Units exposed under more than one arm (dropped): {d['n_crossovers']:,}.</p>",
        "<h2>Metrics</h2>",
        f"<img alt='effects' src='data:image/png;base64,{effects}'>",
        _table(
            [
                "metric",
                "arm",
                "role",
                "test",
                "units (c / t)",
                "control",
                "treatment",
                "difference [CI]",
                "relative [CI]",
                "p",
                "p BH",
                "p Holm",
                "always-valid p",
                "significant",
                "CUPED var. ratio",
            ],
            metrics_rows,
        ),
        "<h2>Guardrails (non-inferiority)</h2>",
        _table(
            [
                "metric",
                "arm",
                "control",
                "treatment",
                "harm [CI]",
                "margin",
                "p (non-inferiority)",
                "status",
            ],
            guard_rows,
        ),
        "<h2>Over time</h2>",
        f"<img alt='cumulative effect' src='data:image/png;base64,{cumulative}'>",
        "<h2>Delayed conversions</h2><h3>Early proxy</h3>",
        _table(
            [
                "proxy",
                "final metric",
                "arm",
                "per-unit correlation",
                "proxy effect",
                "final effect",
                "same sign",
            ],
            proxy_rows,
        ),
        "<h3>Exposure cohorts</h3>",
        _table(["cohort (exposure day)", "units", "maturity", "conversions so far"], mat_rows),
        "<h2>How these numbers were obtained</h2>",
        _table(["what", "value"], prov_rows),
        "</body></html>",
    ]
    return "\n".join(parts)


def write_report(
    result: AnalysisResult | dict[str, Any], out_dir: str | Path, *, name: str = "report"
) -> dict[str, Path]:
    """Write ``<name>.html``, ``<name>.json`` and the two plots as PNG into ``out_dir``.

    Args:
        result: the analysis (or its dict).
        out_dir: the folder (created when missing).
        name: the base name of the files.

    Returns:
        The written paths by kind: ``html``, ``json``, ``effects_png``, ``cumulative_png``.
    """
    d = _as_dict(result)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "html": out / f"{name}.html",
        "json": out / f"{name}.json",
        "effects_png": out / f"{name}-effects.png",
        "cumulative_png": out / f"{name}-cumulative.png",
    }
    paths["html"].write_text(render_html(d))
    paths["json"].write_text(json.dumps(d, indent=2, default=str) + "\n")
    paths["effects_png"].write_bytes(plot_effects(d))
    paths["cumulative_png"].write_bytes(plot_cumulative(d))
    return paths
