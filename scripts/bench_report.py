#!/usr/bin/env python3
"""Turns the figures `scripts/bench.sh` collected into target/bench/report.md.

Every figure is a ratio taken in one sitting: Shop's confirmed orders/s
against the PostgreSQL bound measured minutes earlier, and reads against
/healthz of the same service.
"""
import json
import os
import platform
import re
import subprocess

out = os.environ["OUT"]
bound = float(os.environ["BOUND"])
rate = os.environ["RATE"]


def load(name):
    path = os.path.join(out, name + ".json")
    return json.load(open(path)) if os.path.exists(path) else None


def wrk(name):
    text = open(os.path.join(out, "wrk-" + name + ".txt")).read()
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))

    def pct(p):
        m = re.search(r"\s%s%%\s+([\d.]+)(us|ms|s)\b" % p, text)
        value, unit = float(m.group(1)), m.group(2)
        return value * {"us": 0.001, "ms": 1, "s": 1000}[unit]

    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    return rps, pct(50), pct(99), int(errors.group(1)) if errors else 0


def version(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=20).stdout.strip().splitlines()[0]
    except Exception:
        return "?"


lines = ["# Shop benchmark", ""]
lines.append(f"PostgreSQL saga bound (pgbench, median of 3): **{bound:.0f} orders/s**")
lines.append("")
lines.append("| orders | confirmed/s | × bound | POST p50 / p99 | placed → final p50 / p99 (client) | same, server | oversold | outcomes |")
lines.append("|---|---|---|---|---|---|---|---|")
names = {
    "idle-wait": "one at a time, idle, `Prefer: wait`",
    "closed-poll": "closed loop, 32 clients polling",
    "closed-wait": "closed loop, 32 clients, `Prefer: wait`",
    "open-wait": f"open loop {rate}/s, `Prefer: wait`",
    "open-poll": f"open loop {rate}/s, polling",
    "hot-wait": "64 buyers of one product, `Prefer: wait`",
    "hot4-wait": "128 buyers of one product, 4 catalog replicas, `Prefer: wait`",
}
for key, label in names.items():
    r = load(key)
    if r is None:
        continue
    ratio = r["confirmed_per_s"] / bound if key.startswith("closed") else None
    lines.append(
        f"| {label} | {r['confirmed_per_s']:.0f} | {'%.2f' % ratio if ratio else '–'} "
        f"| {r['post_p50_ms']:.1f} / {r['post_p99_ms']:.1f} ms "
        f"| {r['final_p50_ms']:.1f} / {r['final_p99_ms']:.1f} ms "
        f"| {r['server_final_p50_ms']:.1f} / {r['server_final_p99_ms']:.1f} ms "
        f"| {r['oversold']} | {', '.join(f'{k} {v}' for k, v in sorted(r['outcomes'].items()))} |"
    )
lines.append("")
lines.append(f"Messages in dead-letter queues after the order runs: {os.environ.get('DLQ', '?')}")
lines.append("")
bound_hashes, login = load("bcrypt-bound"), load("login")
if bound_hashes and login:
    lines.append("| logins (32 clients, the right password) | logins/s | × bcrypt bound | p50 / p99 of successes | 503 at once (p99) | other |")
    lines.append("|---|---|---|---|---|---|")
    lines.append(
        f"| bcrypt bound: {bound_hashes['hashes_per_s']:.1f} hashes/s "
        f"({bound_hashes['threads']} threads, cost {bound_hashes['cost']}) "
        f"| {login['logins_per_s']:.1f} | {login['logins_per_s'] / bound_hashes['hashes_per_s']:.2f} "
        f"| {login['ok_p50_ms']:.0f} / {login['ok_p99_ms']:.0f} ms "
        f"| {login['busy_503']} ({login['busy_p99_ms']:.1f} ms) | {login['other']} |"
    )
    lines.append("")
health = wrk("healthz")
lines.append("| reads (wrk, 32 connections, 10 s) | req/s | × /healthz | p50 | p99 | non-2xx |")
lines.append("|---|---|---|---|---|---|")
for key, label in [("healthz", "`GET /healthz`"), ("product", "`GET /products/{id}`"), ("list", "`GET /products?limit=20`")]:
    rps, p50, p99, errors = wrk(key)
    lines.append(f"| {label} | {rps:.0f} | {rps / health[0]:.2f} | {p50:.2f} ms | {p99:.2f} ms | {errors} |")
lines.append("")
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
lines.append(
    f"Machine: {os.cpu_count()} cores ({cpu}), {platform.system()} {platform.release()}; "
    f"{version(['psql', '--version'])}; RabbitMQ {version(['rabbitmqctl', '-q', 'version'])}; "
    f"{version(['redis-server', '--version'])}; {version(['wrk', '--version'])}; "
    "load generator, services, PostgreSQL, RabbitMQ and Redis share the cores."
)
print("\n".join(lines))
