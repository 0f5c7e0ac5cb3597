#!/usr/bin/env python3
"""Turns the load generator's JSON lines into perf/results/<date>.md: one table per
scenario with ratios to tokio-tungstenite measured in the same run, the issue's targets,
and an SVG plot of the latency scenario's percentiles. Standard library only.

usage: report.py RESULTS.jsonl OUT.md OUT.svg "how it was run"
"""
import json
import math
import os
import sys

BASELINE = "tokio-tungstenite"
ORDER = ["connectme-uring", "connectme-epoll", "tokio-tungstenite", "fastwebsockets"]
# scenario key -> (title, target text, check(row, baseline, rows) -> bool or None)
SCENARIOS = {
    "echo C=64 D=16 S=64": ("echo, 64 B, C=64, D=16", "server CPU us/msg <= 0.5 x tokio-tungstenite",
                            lambda r, b, rows: r["server_cpu_us_per_op"] <= 0.5 * b["server_cpu_us_per_op"]),
    "echo C=64 D=16 S=4096": ("echo, 4 KiB, C=64, D=16", "server CPU us/msg <= 0.75 x tokio-tungstenite",
                              lambda r, b, rows: r["server_cpu_us_per_op"] <= 0.75 * b["server_cpu_us_per_op"]),
    "latency": ("latency, 2 000 msg/s over 64 connections, 64 B", "p99 <= the best peer's p99",
                lambda r, b, rows: r["p99_us"] <= min(x["p99_us"] for x in rows if not x["server"].startswith("connectme"))),
    "broadcast": ("broadcast, 200 publishes/s, 64 B", "server CPU us/delivery <= 0.6 x tokio-tungstenite",
                  lambda r, b, rows: r["server_cpu_us_per_op"] <= 0.6 * b["server_cpu_us_per_op"]),
    "connect": ("connect, handshakes with concurrency 64", "server CPU us/handshake <= 0.6 x tokio-tungstenite",
                lambda r, b, rows: r["server_cpu_us_per_op"] <= 0.6 * b["server_cpu_us_per_op"]),
    "idle": ("idle connections", "<= 4 KiB server memory per idle connection",
             lambda r, b, rows: r["rss_bytes_per_connection"] <= 4096),
    "json-echo": ("JSON echo through a routed handler, 64 B, C=64, D=16",
                  "server CPU us/msg <= 0.6 x tokio-tungstenite + serde_json routed by hand",
                  lambda r, b, rows: r["server_cpu_us_per_op"] <= 0.6 * b["server_cpu_us_per_op"]),
    "json-latency": ("JSON request/reply, 2 000 msg/s over 64 connections, 64 B",
                     "p99 <= the best peer's p99",
                     lambda r, b, rows: r["p99_us"] <= min(x["p99_us"] for x in rows if not x["server"].startswith("connectme"))),
}


def key(row):
    s = row["scenario"]
    if s == "echo":
        return f"echo {row['params']}"
    return s


def median_runs(rows):
    """With repeated rounds, keep each server's median run per scenario (by the figure
    the target is about: memory for idle, p99 for latency, CPU per operation otherwise)."""
    by = {}
    for r in rows:
        by.setdefault((key(r), r["server"]), []).append(r)
    picked = []
    for runs in by.values():
        metric = ("rss_bytes_per_connection" if "rss_bytes_per_connection" in runs[0]
                  else "p99_us" if runs[0]["scenario"] in ("latency", "json-latency") else "server_cpu_us_per_op")
        runs.sort(key=lambda r: r[metric])
        median = runs[len(runs) // 2]
        median["rounds"] = len(runs)
        picked.append(median)
    return picked


def main():
    src, out_md, out_svg, how = sys.argv[1:5]
    rows = median_runs([json.loads(l) for l in open(src) if l.strip()])
    groups = {}
    for r in rows:
        groups.setdefault(key(r), []).append(r)
    lines = [f"# Side-by-side results ({how})", "",
             "Server pinned to CPU 0, load generator to CPU 1; with repeated rounds each row is the "
             "server's median round (by p99 for latency, memory for idle, CPU per operation "
             "otherwise); ratios are to "
             f"{BASELINE} in the same run. `cpu/op` is server CPU time (its threads' run time "
             "from /proc, to the nanosecond) per message, delivery or handshake: the figure that "
             "stays meaningful on a noisy machine; its user / kernel split (from clock ticks, "
             "10 ms each) shows how much of it user space can move (on loopback the sender pays "
             "for the receiver's TCP processing and wake-up too). `steal` is the share of the "
             "machine's time the hypervisor gave to other guests during the round: rows taken "
             "with a high steal are not comparable with quieter runs, only with each other.", ""]
    for k, (title, target, check) in SCENARIOS.items():
        group = sorted(groups.get(k, []), key=lambda r: ORDER.index(r["server"]) if r["server"] in ORDER else 99)
        if not group:
            continue
        base = next((r for r in group if r["server"] == BASELINE), None)
        lines += [f"## {title}", "", f"Target for the engine: {target}.", ""]
        if k == "idle":
            lines += ["| server | connections | server RSS per connection | vs tokio-tungstenite | target |", "|---|---:|---:|---:|:--:|"]
            for r in group:
                ratio = f"{r['rss_bytes_per_connection'] / base['rss_bytes_per_connection']:.2f}x" if base and base["rss_bytes_per_connection"] else "-"
                ok = ("met" if check(r, base, group) else "**not met**") if r["server"].startswith("connectme") else ""
                lines.append(f"| {r['server']} | {r['connections']} | {r['rss_bytes_per_connection']:,} B | {ratio} | {ok} |")
        else:
            lines += ["| server | params | ops/s | cpu us/op | cpu vs tokio-tungstenite | user / kernel us/op | user vs tokio-tungstenite | p50 us | p99 us | p99.9 us | max us | steal | target |",
                      "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|:--:|"]
            for r in group:
                ratio = f"{r['server_cpu_us_per_op'] / base['server_cpu_us_per_op']:.2f}x" if base else "-"
                user, kernel = r.get("server_user_us_per_op"), r.get("server_system_us_per_op")
                split = f"{user:.3f} / {kernel:.3f}" if user is not None else "-"
                steal = f"{r['steal_percent']:.0f}%" if "steal_percent" in r else "-"
                user_ratio = (f"{user / base['server_user_us_per_op']:.2f}x"
                              if user is not None and base and base.get("server_user_us_per_op") else "-")
                ok = ""
                if r["server"].startswith("connectme") and base:
                    ok = "met" if check(r, base, group) else "**not met**"
                lines.append(f"| {r['server']} | {r['params']} | {r['ops_per_second']:,.0f} | {r['server_cpu_us_per_op']:.3f} | {ratio} | {split} | {user_ratio} | "
                             f"{r['p50_us']:.0f} | {r['p99_us']:.0f} | {r['p999_us']:.0f} | {r['max_us']:.0f} | {steal} | {ok} |")
        lines.append("")
    if "latency" in groups:
        lines += [f"![latency percentiles]({os.path.basename(out_svg)})", ""]
        open(out_svg, "w").write(svg(groups["latency"]))
    open(out_md, "w").write("\n".join(lines))


def svg(group):
    """Latency (log scale) by percentile, one line per server."""
    w, h, left, bottom, top, right = 640, 360, 70, 40, 30, 150
    qs = [0.5, 0.9, 0.99, 0.999, 0.9999]
    values = [v for r in group for _, v in r["percentiles_us"] if v > 0]
    lo, hi = math.log10(max(min(values), 1)), math.log10(max(values) * 1.2)
    x = lambda i: left + i * (w - left - right) / (len(qs) - 1)
    y = lambda v: h - bottom - (math.log10(max(v, 1)) - lo) / max(hi - lo, 1e-9) * (h - bottom - top)
    colors = ["#d62728", "#ff7f0e", "#1f77b4", "#2ca02c", "#9467bd"]
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">',
             f'<rect width="{w}" height="{h}" fill="white"/>',
             f'<text x="{left}" y="18">latency scenario: round trip by percentile (us, log scale)</text>']
    for i, q in enumerate(qs):
        parts.append(f'<line x1="{x(i)}" y1="{top}" x2="{x(i)}" y2="{h - bottom}" stroke="#ddd"/>')
        parts.append(f'<text x="{x(i)}" y="{h - bottom + 16}" text-anchor="middle">p{q * 100:g}</text>')
    for e in range(int(math.floor(lo)), int(math.ceil(hi)) + 1):
        v = 10 ** e
        if lo <= e <= hi:
            parts.append(f'<line x1="{left}" y1="{y(v)}" x2="{w - right}" y2="{y(v)}" stroke="#eee"/>')
            parts.append(f'<text x="{left - 6}" y="{y(v) + 4}" text-anchor="end">{v:g}</text>')
    for n, r in enumerate(sorted(group, key=lambda r: r["server"])):
        color = colors[n % len(colors)]
        pts = " ".join(f"{x(i)},{y(v)}" for i, (_, v) in enumerate(r["percentiles_us"]))
        parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{pts}"/>')
        parts.append(f'<text x="{w - right + 10}" y="{top + 16 * n + 10}" fill="{color}">{r["server"]}</text>')
    parts.append("</svg>")
    return "\n".join(parts)


if __name__ == "__main__":
    main()
