#!/usr/bin/env bash
# Generates TPC-H scale 0.1 under ./squall-demo (once) and runs TPC-H Q3 on
# the local backend, printing the stage graph and the result.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/squall/target}"
cargo build --quiet --bin squall
squall="$CARGO_TARGET_DIR/debug/squall"
data="${SQUALL_DEMO_DIR:-./squall-demo}"
if [ ! -d "$data/lineitem" ]; then
  "$squall" gen tpch --scale 0.1 --out "$data"
fi
tables=()
for t in customer lineitem nation orders part partsupp region supplier; do
  tables+=(--table "$t=$data/$t")
done
"$squall" sql --explain --target-task-bytes 2MiB "${tables[@]}" -f benches/queries/tpch/q3.sql
