#!/usr/bin/env bash
# Runs Squall's whole test suite. Used by CI (.ci/run) and by developers.
# Build artefacts go to $CARGO_TARGET_DIR, by default a cache folder outside
# the checkout so that fresh clones reuse a warm build.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/squall/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
./scripts/install-test-deps.sh
./scripts/prune-target.sh
# The peer benchmark's agreement check (stdlib Python; the benchmark itself is not a test).
python3 -m unittest discover --start-directory benches/peers --pattern 'test_*.py' --quiet
cargo test --workspace --all-targets "$@"
# Doctests (--all-targets leaves them out), the README's Rust example among them.
cargo test --workspace --doc "$@"
# The library's examples that run on this machine (the Lambda one needs AWS).
# `cargo test` builds them but leaves them under hashed names only; this
# build puts the current ones at examples/<name> (a fresh target directory
# has nothing there, an old one a stale copy).
cargo build --workspace --examples
for example in query dataframe etl; do
  "$CARGO_TARGET_DIR/debug/examples/$example" > /dev/null
done
