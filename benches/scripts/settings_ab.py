#!/usr/bin/env python3
"""A/B of session settings on TPC-H: the same `squall` binary, one variant
per SQL prefix (`SET ...;` statements, or nothing), alternating the order of
the variants per query and run. Checks that every variant gives the same
rows and prints per-query medians, totals and each variant's ratio to the
first as Markdown.

  python3 benches/scripts/settings_ab.py --squall $CARGO_TARGET_DIR/release/squall \\
      --data ~/.cache/squall/bench-data/sf10 --runs 1 \\
      --variant "datafusion=SET datafusion.optimizer.hash_join_single_partition_threshold = 1048576; SET datafusion.optimizer.hash_join_single_partition_threshold_rows = 131072;" \\
      --variant "squall="

`--binary NAME=PATH` runs that variant with another `squall` binary (an A/B
of two builds: `--variant before= --binary before=/tmp/squall-before
--variant after=`).

Each run is a whole `squall sql` process (start-up and planning included),
so only the ratios between variants of one run mean anything.
"""
import argparse
import pathlib
import statistics
import subprocess
import sys
import time

TABLES = ["customer", "lineitem", "nation", "orders", "part", "partsupp", "region", "supplier"]
ROOT = pathlib.Path(__file__).resolve().parents[2]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--squall", required=True)
    p.add_argument("--data", required=True, help="TPC-H tables, one folder each")
    p.add_argument("--runs", type=int, default=1, help="timed runs per query and variant, after one untimed (0: time the first)")
    p.add_argument("--queries", default="", help="comma-separated query numbers (default: all 22)")
    p.add_argument("--variant", action="append", required=True, help="NAME=SQL prefix; the first is the baseline")
    p.add_argument("--binary", action="append", default=[], help="NAME=PATH: the squall binary of variant NAME (default: --squall)")
    args = p.parse_args()
    variants = dict(v.split("=", 1) for v in args.variant)
    binaries = {n: args.squall for n in variants}
    for b in args.binary:
        name, path = b.split("=", 1)
        if name not in variants:
            sys.exit(f"--binary {b}: no variant named {name}")
        binaries[name] = path
    names = list(variants)
    queries = [int(q) for q in args.queries.split(",")] if args.queries else list(range(1, 23))
    tables = [a for t in TABLES for a in ("--table", f"{t}={args.data}/{t}")]
    times = {n: {q: [] for q in queries} for n in names}
    for run in range(args.runs + 1):
        for q in queries:
            sql = (ROOT / "benches/queries/tpch" / f"q{q}.sql").read_text()
            shift = (q + run) % len(names)
            rows = {}
            for name in names[shift:] + names[:shift]:
                started = time.monotonic()
                out = subprocess.run(
                    [binaries[name], "sql", "--no-progress", "--format", "csv", *tables, "--", variants[name] + sql],
                    capture_output=True, text=True)
                elapsed = time.monotonic() - started
                if out.returncode != 0:
                    sys.exit(f"q{q} with {name}: {out.stderr.strip()}")
                rows[name] = sorted(out.stdout.splitlines())
                if run > 0 or args.runs == 0:
                    times[name][q].append(elapsed)
            for name in names[1:]:
                if rows[name] != rows[names[0]]:
                    sys.exit(f"q{q}: {name} gives other rows than {names[0]}")
    print("| query | " + " | ".join(f"{n} (s)" for n in names) + " | "
          + " | ".join(f"{n} / {names[0]}" for n in names[1:]) + " |")
    print("|---" * (2 * len(names)) + "|")
    totals = {n: 0.0 for n in names}
    for q in queries:
        median = {n: statistics.median(times[n][q]) for n in names}
        for n in names:
            totals[n] += median[n]
        print(f"| q{q} | " + " | ".join(f"{median[n]:.3f}" for n in names) + " | "
              + " | ".join(f"{median[n] / median[names[0]]:.2f}" for n in names[1:]) + " |")
    print("| **total** | " + " | ".join(f"**{totals[n]:.2f}**" for n in names) + " | "
          + " | ".join(f"**{totals[n] / totals[names[0]]:.3f}**" for n in names[1:]) + " |")


if __name__ == "__main__":
    main()
