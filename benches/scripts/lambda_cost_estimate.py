#!/usr/bin/env python3
"""Estimates what TPC-H would cost on AWS Lambda + S3 from measured work.

Runs the 22 TPC-H queries with `squall sql --stats` (any backend; default
local) and multiplies the totals by list prices (us-east-1, at the time of
writing; pass others with the flags). Prints a Markdown table.

  python3 benches/scripts/lambda_cost_estimate.py --squall target/debug/squall \
      --data ~/.cache/squall/bench-data/sf1 --memory-mb 3538 --target-task-bytes 32MiB

It is an estimate: task-seconds are those of the machine it runs on, and
billed duration adds each invocation's start-up and rounding.
"""
import argparse
import pathlib
import re
import subprocess

TABLES = ["customer", "lineitem", "nation", "orders", "part", "partsupp", "region", "supplier"]
ROOT = pathlib.Path(__file__).resolve().parents[2]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--squall", required=True)
    p.add_argument("--data", required=True, help="TPC-H tables, one folder each")
    p.add_argument("--backend", default="local")
    p.add_argument("--target-task-bytes", default="32MiB")
    p.add_argument("--memory-mb", type=int, default=3538)
    p.add_argument("--gb-second-usd", type=float, default=0.0000166667, help="x86_64; arm64: 0.0000133334")
    p.add_argument("--request-usd", type=float, default=0.20 / 1e6)
    p.add_argument("--s3-put-usd", type=float, default=0.005 / 1000, help="PUT, LIST")
    p.add_argument("--s3-get-usd", type=float, default=0.0004 / 1000, help="GET, HEAD")
    a = p.parse_args()
    gb = a.memory_mb / 1024
    print(f"| query | tasks | task-s | GET | PUT+LIST | Lambda $ | S3 $ | total $ |")
    print("|---|---|---|---|---|---|---|---|")
    totals = [0, 0.0, 0, 0, 0.0, 0.0]
    for q in range(1, 23):
        args = [a.squall, "sql", "--no-progress", "--stats", "--format", "csv", "--backend", a.backend,
                "--target-task-bytes", a.target_task_bytes,
                "-f", str(ROOT / f"benches/queries/tpch/q{q}.sql")]
        for t in TABLES:
            args += ["--table", f"{t}={a.data}/{t}/"]
        out = subprocess.run(args, capture_output=True, text=True, check=True)
        line = next(l for l in out.stderr.splitlines() if l.startswith("stats: "))
        n = lambda what: float(re.search(r"([\d.]+) " + what, line).group(1))
        tasks, task_s = int(n("tasks")), n("task-seconds")
        get = int(n("GET") + n("HEAD"))
        put = int(n("PUT") + n("multipart PUT") + n("LIST"))
        lam = task_s * gb * a.gb_second_usd + tasks * a.request_usd
        s3 = get * a.s3_get_usd + put * a.s3_put_usd
        print(f"| q{q} | {tasks} | {task_s:.1f} | {get} | {put} | {lam:.6f} | {s3:.6f} | {lam + s3:.6f} |")
        for i, v in enumerate([tasks, task_s, get, put, lam, s3]):
            totals[i] += v
    t = totals
    print(f"| all 22 | {t[0]} | {t[1]:.1f} | {t[2]} | {t[3]} | {t[4]:.5f} | {t[5]:.5f} | {t[4] + t[5]:.5f} |")


if __name__ == "__main__":
    main()
