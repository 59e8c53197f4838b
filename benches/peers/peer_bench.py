"""The peer benchmark: TPC-H through Squall and single-node engines, side by side.

Runs the 22 TPC-H queries (benches/queries/tpch) through Squall's local
backend (the `squall-peer` binary, a release build) and, in the same run,
through DuckDB, single-node DataFusion and Polars (each in a process of its
own, from the virtualenv benches/scripts/peer-bench.sh creates), all with the
same number of threads. Per query, every engine first runs it once untimed
(warm-up), writing its result, and every result must agree with Squall's;
then each engine runs it --runs times, the engines taking turns in a rotating
order, and the median counts.

Prints a Markdown table (per-query medians, totals, geometric means and
Squall's time over each engine's) and writes it, with the raw numbers as
JSON and a plot as SVG, to --out-dir as peers-sf<scale>.{md,json,svg}.
When that JSON already exists, queries whose ratio to DuckDB grew by more
than --regression-threshold since are called out as regressions (ratios,
not absolute times: a shared machine's speed drifts between runs).

Exit status: 0 when every engine agreed on every query it could run, 1
otherwise (an engine that cannot run a query at all, such as Polars' SQL
front end on some correlated subqueries, is reported, not counted as a
disagreement).
"""

import argparse
import datetime
import decimal
import json
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
QUERIES = REPO / "benches" / "queries" / "tpch"
ENGINES = ["squall", "duckdb", "datafusion", "polars"]
LABELS = {"squall": "Squall", "duckdb": "DuckDB", "datafusion": "DataFusion", "polars": "Polars"}


class Engine:
    """One engine process speaking the JSON-lines protocol of engine.py."""

    def __init__(self, name, command, env):
        self.name = name
        self.proc = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        ready = self._read()
        if not ready.get("ready"):
            raise SystemExit(f"error: engine {name} did not start: {ready}")
        self.version = ready.get("version", "?")

    def _read(self):
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit(f"error: engine {self.name} exited (status {self.proc.wait()})")
        return json.loads(line)

    def run(self, sql, out=None):
        self.proc.stdin.write(json.dumps({"sql": sql, "out": str(out) if out else None}) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


def start_engines(args, data):
    engines = {}
    for name in args.engines:
        env = dict(os.environ)
        if name == "squall":
            command = [args.squall_peer, "--data", str(data), "--threads", str(args.threads)]
        else:
            env["POLARS_MAX_THREADS"] = str(args.threads)
            command = [
                sys.executable,
                str(Path(__file__).with_name("engine.py")),
                "--engine",
                name,
                "--data",
                str(data),
                "--threads",
                str(args.threads),
            ]
        engines[name] = Engine(name, command, env)
    return engines


def normalized_rows(path):
    """The rows of a result file as tuples of comparable values."""
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    columns = [column.to_pylist() for column in table.columns]
    return normalized(list(zip(*columns)))


def normalized(rows):
    """Rows as tuples of comparable values: every number a float (engines
    differ in decimal scales and integer widths), dates as ISO text, text
    without trailing blanks."""

    def value(v):
        if isinstance(v, bool) or v is None:
            return v
        if isinstance(v, (int, float, decimal.Decimal)):
            return float(v)
        if isinstance(v, (datetime.date, datetime.datetime)):
            return v.isoformat()
        if isinstance(v, str):
            return v.rstrip()
        return v

    return [tuple(value(v) for v in row) for row in rows]


def sort_key(row):
    return tuple(
        (0, "") if v is None else (1, round(v, 2)) if isinstance(v, float) else (2, str(v))
        for v in row
    )


def same_value(a, b):
    if isinstance(a, float) and isinstance(b, float):
        return abs(a - b) <= max(1e-4, 1e-6 * max(abs(a), abs(b)))
    return a == b


def same_row(a, b):
    return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b))


def disagreement(expected_path, actual_path):
    """None when both result files hold the same rows (in any order), else why not."""
    return rows_disagreement(normalized_rows(expected_path), normalized_rows(actual_path))


def rows_disagreement(expected, actual):
    """None when both lists of normalized rows hold the same rows (in any
    order, numbers within a relative 1e-6 or an absolute 1e-4), else why not."""
    expected, actual = list(expected), list(actual)
    if len(expected) != len(actual):
        return f"{len(actual)} rows instead of {len(expected)}"
    if expected and len(expected[0]) != len(actual[0]):
        return f"{len(actual[0])} columns instead of {len(expected[0])}"
    expected.sort(key=sort_key)
    actual.sort(key=sort_key)
    if all(same_row(e, a) for e, a in zip(expected, actual)):
        return None
    if len(expected) <= 5000:
        # Rounding can order nearly equal rows differently: match them one by one.
        unmatched = list(actual)
        for row in expected:
            match = next((i for i, a in enumerate(unmatched) if same_row(row, a)), None)
            if match is None:
                return f"no row like {row}"
            unmatched.pop(match)
        return None
    first = next(i for i, (e, a) in enumerate(zip(expected, actual)) if not same_row(e, a))
    return f"row {first} is {actual[first]}, expected {expected[first]}"


def median(values):
    values = sorted(values)
    return values[len(values) // 2]


def geomean(values):
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else float("nan")


def run_benchmark(args, data, engines):
    results = {}
    failed = False
    scratch = Path(tempfile.mkdtemp(prefix="squall-peer-bench-"))
    names = list(engines)
    for q in args.queries:
        sql = (QUERIES / f"q{q}.sql").read_text()
        entry = {}
        # Warm-up and agreement check.
        for name in names:
            out = scratch / f"q{q}-{name}.parquet"
            response = engines[name].run(sql, out)
            entry[name] = {"times": [], "rows": response.get("rows")}
            if "error" in response:
                entry[name]["error"] = response["error"]
                print(f"q{q} {name}: cannot run it: {response['error'][:300]}", file=sys.stderr)
        reference = names[0]
        if "error" in entry[reference]:
            failed = True
        else:
            for name in names[1:]:
                if "error" in entry[name]:
                    continue
                why = disagreement(
                    scratch / f"q{q}-{reference}.parquet", scratch / f"q{q}-{name}.parquet"
                )
                if why:
                    failed = True
                    entry[name]["disagrees"] = why
                    print(f"q{q}: {name} disagrees with {reference}: {why}", file=sys.stderr)
        for run in range(args.runs):
            order = names[run % len(names):] + names[: run % len(names)]
            for name in order:
                if "error" in entry[name]:
                    continue
                response = engines[name].run(sql)
                if "error" in response:
                    entry[name]["error"] = response["error"]
                    failed = True
                    continue
                entry[name]["times"].append(response["seconds"])
        for name in names:
            if entry[name]["times"] and "error" not in entry[name]:
                entry[name]["median"] = median(entry[name]["times"])
        results[q] = entry
        line = "  ".join(
            f"{name} {entry[name]['median']:.3f}s" if "median" in entry[name] else f"{name} -"
            for name in names
        )
        print(f"q{q}: {line}", file=sys.stderr)
    return results, failed


def summarize(results, names):
    """Totals and geometric means over the queries every engine ran."""
    common = [q for q, e in results.items() if all("median" in e[n] for n in names)]
    summary = {"common_queries": common}
    for name in names:
        times = [results[q][name]["median"] for q in common]
        summary[name] = {"total": sum(times), "geomean": geomean(times)}
    return summary


def ratio(a, b):
    return a / b if b else float("nan")


def markdown(results, summary, names, previous, threshold):
    squall = names[0]
    peers = names[1:]
    head = ["query"] + [f"{LABELS[n]} (s)" for n in names] + [
        f"{LABELS[squall]} / {LABELS[p]}" for p in peers
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for q, entry in results.items():
        cells = [f"q{q}"]
        for n in names:
            e = entry[n]
            cells.append(f"{e['median']:.3f}" if "median" in e else "n/a")
        for p in peers:
            if "median" in entry[squall] and "median" in entry[p]:
                cells.append(f"{ratio(entry[squall]['median'], entry[p]['median']):.2f}")
            else:
                cells.append("n/a")
        lines.append("| " + " | ".join(cells) + " |")
    for what in ["total", "geomean"]:
        label = f"{what} ({len(summary['common_queries'])} queries all ran)"
        cells = [label] + [f"{summary[n][what]:.3f}" for n in names]
        cells += [f"{ratio(summary[squall][what], summary[p][what]):.2f}" for p in peers]
        lines.append("| " + " | ".join(f"**{c}**" for c in cells) + " |")
    notes = []
    for q, entry in results.items():
        for n in names:
            if "error" in entry[n]:
                notes.append(f"- q{q}: {LABELS[n]} cannot run it: {entry[n]['error'][:200]}")
            if "disagrees" in entry[n]:
                notes.append(f"- q{q}: {LABELS[n]} disagrees with Squall: {entry[n]['disagrees']}")
    if previous and "duckdb" in names:
        worse = []
        for q, entry in results.items():
            before = previous.get("results", {}).get(str(q), {})
            try:
                now = entry[squall]["median"] / entry["duckdb"]["median"]
                then = before[squall]["median"] / before["duckdb"]["median"]
            except (KeyError, ZeroDivisionError):
                continue
            if now > then * (1 + threshold):
                worse.append(f"q{q} {then:.2f} → {now:.2f}")
        if worse:
            notes.append(
                "- Regressions against the previous run (Squall / DuckDB up by more than "
                f"{threshold:.0%}): " + ", ".join(worse)
            )
        else:
            notes.append(
                f"- No query's Squall / DuckDB ratio grew by more than {threshold:.0%} "
                "since the previous run."
            )
    return "\n".join(lines + ([""] + notes if notes else [])) + "\n"


def svg(results, names, scale):
    """Squall's time over each peer's, per query, on a log scale (1 = as fast)."""
    squall, peers = names[0], names[1:]
    colors = {"duckdb": "#d9a400", "datafusion": "#3b6fb6", "polars": "#2a9d8f"}
    queries = list(results)
    width, height, left, top, bottom = 60 + 34 * len(queries), 340, 50, 40, 40
    plot_h = height - top - bottom
    lo, hi = math.log2(0.25), math.log2(16)

    def y(r):
        r = min(max(r, 0.25), 16)
        return top + plot_h * (hi - math.log2(r)) / (hi - lo)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width + 20}" height="{height}" '
        'font-family="sans-serif" font-size="11">',
        f'<text x="{left}" y="18" font-size="13">TPC-H scale {scale}: Squall time / peer time '
        "(log scale; below 1: Squall faster)</text>",
    ]
    for r in [0.25, 0.5, 1, 2, 4, 8, 16]:
        stroke = "#444" if r == 1 else "#ddd"
        parts.append(
            f'<line x1="{left}" x2="{width}" y1="{y(r):.1f}" y2="{y(r):.1f}" stroke="{stroke}"/>'
        )
        parts.append(f'<text x="{left - 6}" y="{y(r) + 4:.1f}" text-anchor="end">{r:g}</text>')
    bar = 28 / max(len(peers), 1)
    for i, q in enumerate(queries):
        x0 = left + 6 + 34 * i
        for j, p in enumerate(peers):
            e = results[q]
            if "median" not in e[squall] or "median" not in e[p]:
                continue
            r = ratio(e[squall]["median"], e[p]["median"])
            y1, y0 = y(r), y(1)
            parts.append(
                f'<rect x="{x0 + j * bar:.1f}" y="{min(y0, y1):.1f}" width="{bar - 1:.1f}" '
                f'height="{abs(y1 - y0):.1f}" fill="{colors.get(p, "#888")}">'
                f"<title>q{q} {LABELS[p]}: {r:.2f}</title></rect>"
            )
        parts.append(
            f'<text x="{x0 + 14}" y="{height - bottom + 16}" text-anchor="middle">q{q}</text>'
        )
    for j, p in enumerate(peers):
        x = left + 120 * j
        parts.append(
            f'<rect x="{x}" y="{height - 14}" width="10" height="10" fill="{colors.get(p, "#888")}"/>'
        )
        parts.append(f'<text x="{x + 14}" y="{height - 5}">vs {LABELS[p]}</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scale", type=float, default=1.0, help="TPC-H scale factor (default 1)")
    parser.add_argument(
        "--data",
        type=Path,
        default=Path.home() / ".cache" / "squall" / "bench-data",
        help="data root; scale S lives in <data>/sf<S>, generated by `squall gen tpch` if missing",
    )
    parser.add_argument("--runs", type=int, default=3, help="timed runs per query and engine")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="threads per engine")
    parser.add_argument(
        "--engines",
        default=",".join(ENGINES),
        help="comma-separated, Squall first (the reference of the agreement check)",
    )
    parser.add_argument("--queries", default="1-22", help="e.g. 1-22 or 1,3,18")
    parser.add_argument("--squall", required=True, help="the squall binary (for `gen tpch`)")
    parser.add_argument("--squall-peer", required=True, help="the squall-peer binary")
    parser.add_argument("--out-dir", type=Path, default=REPO / "docs" / "benchmarks")
    parser.add_argument("--regression-threshold", type=float, default=0.2)
    args = parser.parse_args()
    args.engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    unknown = [e for e in args.engines if e not in ENGINES]
    if unknown or not args.engines or args.engines[0] != "squall":
        parser.error(f"--engines must start with squall and name only {', '.join(ENGINES)}")
    if "-" in args.queries:
        first, last = args.queries.split("-")
        args.queries = list(range(int(first), int(last) + 1))
    else:
        args.queries = [int(q) for q in args.queries.split(",")]

    scale = f"{args.scale:g}"
    data = args.data / f"sf{scale}"
    if not (data / "lineitem").exists():
        print(f"generating TPC-H scale {scale} in {data}", file=sys.stderr)
        subprocess.run(
            [args.squall, "gen", "tpch", "--scale", scale, "--out", str(data)], check=True
        )
    engines = start_engines(args, data)
    try:
        results, failed = run_benchmark(args, data, engines)
    finally:
        for engine in engines.values():
            engine.close()
    names = list(engines)
    summary = summarize(results, names)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    json_path = args.out_dir / f"peers-sf{scale}.json"
    previous = json.loads(json_path.read_text()) if json_path.exists() else None
    table = markdown(results, summary, names, previous, args.regression_threshold)
    versions = ", ".join(f"{LABELS[n]} {engines[n].version}" for n in names)
    header = (
        f"TPC-H scale {scale}, {args.threads} threads per engine, median of {args.runs} "
        f"warm runs; {versions}; measured {datetime.date.today().isoformat()}.\n\n"
    )
    print(header + table)
    (args.out_dir / f"peers-sf{scale}.md").write_text(header + table)
    (args.out_dir / f"peers-sf{scale}.svg").write_text(svg(results, names, scale))
    json_path.write_text(
        json.dumps(
            {
                "scale": args.scale,
                "threads": args.threads,
                "runs": args.runs,
                "versions": {n: engines[n].version for n in names},
                "date": datetime.date.today().isoformat(),
                "summary": summary,
                "results": {str(q): e for q, e in results.items()},
            },
            indent=1,
        )
        + "\n"
    )
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
