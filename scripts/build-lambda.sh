#!/usr/bin/env bash
# Builds `squall` for AWS Lambda (provided.al2023) with cargo-lambda, which
# links with zig against an older glibc so that the binary runs on Amazon
# Linux 2023, and zips it as `bootstrap`. Prints the sizes.
#
#   ./scripts/build-lambda.sh [x86_64|arm64]
#
# Needs cargo-lambda (pip install cargo-lambda) and, for arm64, the Rust
# target: rustup target add aarch64-unknown-linux-gnu. Uses the `lambda`
# profile of Cargo.toml (release with fat LTO, one codegen unit, opt-level
# "s", no symbols; about 50 minutes from scratch on 2 cores). Output:
# $CARGO_TARGET_DIR/lambda/squall/bootstrap and bootstrap.zip, by default
# below ~/.cache/squall/target-lambda.
set -euo pipefail
cd "$(dirname "$0")/.."
arch="${1:-x86_64}"
case "$arch" in
  x86_64) flag=--x86-64 ;;
  arm64) flag=--arm64 ;;
  *) echo "usage: $0 [x86_64|arm64]" >&2; exit 2 ;;
esac
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/squall/target-lambda}"
cargo lambda build --profile lambda "$flag" --disable-optimizations --output-format zip \
  -p squall-cli --bin squall
zip_path="$CARGO_TARGET_DIR/lambda/squall/bootstrap.zip"
python3 - "$zip_path" <<'PY'
import sys, zipfile, os
path = sys.argv[1]
with zipfile.ZipFile(path) as z:
    unzipped = sum(i.file_size for i in z.infolist())
print(f"{path}: {os.path.getsize(path) / 2**20:.1f} MiB zipped, {unzipped / 2**20:.1f} MiB unzipped")
PY
