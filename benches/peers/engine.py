"""One single-node engine (DuckDB, DataFusion or Polars) serving TPC-H queries.

Started by peer_bench.py as a process of its own, so that engines never share
memory or threads. It registers the eight TPC-H tables of --data once, prints
one JSON line {"ready": ..., "version": ...}, then answers one JSON line per
request line:

    request:  {"sql": "...", "out": "/path/result.parquet" or null}
    response: {"seconds": 1.23, "rows": 10} or {"error": "..."}

"seconds" is the time from submitting the SQL to holding the whole result as
an Arrow table in memory; writing it to "out" (for the agreement check) is
not timed.
"""

import argparse
import json
import os
import sys
import time

TABLES = ["customer", "lineitem", "nation", "orders", "part", "partsupp", "region", "supplier"]


def table_files(data, table):
    return os.path.join(data, table, "*.parquet")


class DuckDB:
    def __init__(self, data, threads):
        import duckdb

        self.version = duckdb.__version__
        self.con = duckdb.connect()
        self.con.execute(f"SET threads = {threads}")
        for t in TABLES:
            self.con.execute(
                f"CREATE VIEW {t} AS SELECT * FROM read_parquet('{table_files(data, t)}')"
            )

    def run(self, sql):
        return self.con.sql(sql).to_arrow_table()


class DataFusion:
    def __init__(self, data, threads):
        import datafusion

        self.version = datafusion.__version__
        config = datafusion.SessionConfig().with_target_partitions(threads)
        self.ctx = datafusion.SessionContext(config)
        for t in TABLES:
            self.ctx.register_parquet(t, os.path.join(data, t) + "/")

    def run(self, sql):
        return self.ctx.sql(sql).to_arrow_table()


class Polars:
    def __init__(self, data, threads):
        # POLARS_MAX_THREADS is set by the driver before this process started.
        import polars as pl

        self.pl = pl
        self.version = pl.__version__
        self.ctx = pl.SQLContext(
            frames={t: pl.scan_parquet(table_files(data, t)) for t in TABLES}
        )

    def run(self, sql):
        return self.ctx.execute(sql, eager=False).collect().to_arrow()


ENGINES = {"duckdb": DuckDB, "datafusion": DataFusion, "polars": Polars}


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--engine", choices=sorted(ENGINES), required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--threads", type=int, required=True)
    args = parser.parse_args()
    engine = ENGINES[args.engine](args.data, args.threads)
    print(json.dumps({"ready": True, "version": engine.version}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        try:
            started = time.perf_counter()
            table = engine.run(request["sql"])
            seconds = time.perf_counter() - started
            if request.get("out"):
                import pyarrow.parquet as pq

                pq.write_table(table, request["out"])
            response = {"seconds": seconds, "rows": table.num_rows}
        except Exception as e:  # noqa: BLE001 - reported to the driver, which goes on
            response = {"error": " ".join(f"{type(e).__name__}: {e}".split())}
        print(json.dumps(response), flush=True)


if __name__ == "__main__":
    main()
