#!/usr/bin/env bash
# The peer benchmark in one command: TPC-H through Squall (release build,
# local backend) and DuckDB, single-node DataFusion and Polars side by side.
#
#   benches/scripts/peer-bench.sh --scale 1        # or --scale 10, --runs 5, --queries 1,3,18
#
# Builds `squall` and `squall-peer` with the release profile, creates a
# virtualenv with the pinned peers (benches/peers/requirements.txt) under
# ~/.cache/squall/peer-venv, generates the data on first use
# (~/.cache/squall/bench-data/sf<scale>), then runs benches/peers/peer_bench.py
# with the remaining arguments (see its --help). Results go to
# docs/benchmarks/peers-sf<scale>.{md,json,svg}.
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/squall/target}"
venv="${SQUALL_PEER_VENV:-$HOME/.cache/squall/peer-venv}"

cargo build --release --workspace --bin squall --bin squall-peer
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv" || {
    echo "error: cannot create a virtualenv at $venv (Debian: apt-get install python3-venv)" >&2
    exit 1
  }
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check -r benches/peers/requirements.txt
exec "$venv/bin/python" benches/peers/peer_bench.py \
  --squall "$CARGO_TARGET_DIR/release/squall" \
  --squall-peer "$CARGO_TARGET_DIR/release/squall-peer" \
  "$@"
