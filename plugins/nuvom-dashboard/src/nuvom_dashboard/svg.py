"""Charts drawn on the server as SVG: no JavaScript, no third-party asset.

The markup is built from numbers and our own fixed strings only, and every
text that comes from the store goes through :func:`html.escape`.
"""

from __future__ import annotations

import time
from html import escape

from nuvom_dashboard.views import Chart

#: one colour per state, shared by the depth bars and the legend (CSS classes too)
STATE_COLOURS = {
    "queued": "#3b82f6", "scheduled": "#8b5cf6", "claimed": "#06b6d4", "running": "#f59e0b",
    "succeeded": "#16a34a", "failed": "#dc2626", "cancelled": "#6b7280", "dead": "#7f1d1d",
}


#: the chart is its own resource (an <img>): it styles itself with attributes (no <style>, nothing for CSP to allow)
OK = 'fill="#16a34a"'
BAD = 'fill="#dc2626"'
TICK = 'font-family="sans-serif" font-size="10" fill="#6b7280"'
LEGEND = 'font-family="sans-serif" font-size="11" fill="#374151"'


def throughput_svg(chart: Chart, width: int = 760, height: int = 200) -> str:
    """Stacked bars per minute: succeeded (green) under failed or dead (red)."""
    left, bottom, top = 40, 22, 30
    plot_w, plot_h = width - left - 24, height - bottom - top
    peak = max([ok + bad for ok, bad in zip(chart.ok, chart.bad)] + [1])
    bar_w = plot_w / chart.minutes
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {width} {height}" '
             f'width="{width}" height="{height}" role="img" aria-labelledby="chart-title">',
             f'<title id="chart-title">Jobs finished per minute over the last {chart.minutes} minutes: '
             f'{sum(chart.ok)} succeeded, {sum(chart.bad)} failed or dead</title>',
             f'<rect x="{left}" y="8" width="10" height="10" {OK}/>'
             f'<text x="{left + 14}" y="17" {LEGEND}>succeeded: {sum(chart.ok)}</text>'
             f'<rect x="{left + 120}" y="8" width="10" height="10" {BAD}/>'
             f'<text x="{left + 134}" y="17" {LEGEND}>failed or dead: {sum(chart.bad)}</text>'
             f'<text x="{width - 8}" y="17" {LEGEND} text-anchor="end">per minute, last {chart.minutes} min'
             + ("" if chart.exact else f" (from the newest {chart.scanned} finished jobs)") + '</text>',
             f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="#9ca3af"/>',
             f'<text x="{left - 6}" y="{top + 8}" {TICK} text-anchor="end">{peak}</text>',
             f'<text x="{left - 6}" y="{top + plot_h}" {TICK} text-anchor="end">0</text>']
    for i, (ok, bad) in enumerate(zip(chart.ok, chart.bad)):
        x = left + i * bar_w + 0.5
        w = max(bar_w - 1, 0.5)
        stamp = time.strftime("%H:%M", time.gmtime(chart.start + i * 60))
        if ok:
            h = plot_h * ok / peak
            parts.append(f'<rect x="{x:.1f}" y="{top + plot_h - h:.1f}" width="{w:.1f}" height="{h:.1f}" '
                         f'{OK}><title>{stamp} UTC: {ok} succeeded</title></rect>')
        if bad:
            below = plot_h * ok / peak
            h = plot_h * bad / peak
            parts.append(f'<rect x="{x:.1f}" y="{top + plot_h - below - h:.1f}" width="{w:.1f}" '
                         f'height="{h:.1f}" {BAD}><title>{stamp} UTC: {bad} failed or dead</title></rect>')
    step = max(1, chart.minutes // 6)
    for i in range(0, chart.minutes + 1, step):
        x = left + i * bar_w
        stamp = time.strftime("%H:%M", time.gmtime(chart.start + i * 60))
        parts.append(f'<text x="{x:.1f}" y="{height - 6}" {TICK} text-anchor="middle">{stamp}</text>')
    parts.append("</svg>")
    return "".join(parts)


def depth_svg(counts: dict[str, int], total: int, width: int = 260, height: int = 14) -> str:
    """One queue's jobs as a bar split by state (its share of the queue's total)."""
    if total <= 0:
        return ""
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="depth" viewBox="0 0 {width} {height}" '
             f'width="{width}" height="{height}" role="img">']
    x = 0.0
    for state, colour in STATE_COLOURS.items():
        n = counts.get(state, 0)
        if not n:
            continue
        w = width * n / total
        parts.append(f'<rect x="{x:.2f}" y="0" width="{w:.2f}" height="{height}" fill="{colour}">'
                     f'<title>{escape(state)}: {n}</title></rect>')
        x += w
    parts.append("</svg>")
    return "".join(parts)
