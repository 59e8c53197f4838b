#!/usr/bin/env bash
# Installs what the tests need besides Rust: from PyPI, moto's S3 server (S3
# end-to-end tests), DuckDB (reads back what ETL jobs write) and cargo-lambda (its Lambda emulator serves the Invoke and
# Runtime APIs for the lambda backend tests); from npm, Azurite (Azure blob
# storage). Everything runs on 127.0.0.1.
# Idempotent and quick when present.
set -euo pipefail
if ! python3 -c "import moto.server, flask, flask_cors" >/dev/null 2>&1; then
  echo "installing moto[server] for the S3 tests" >&2
  python3 -m pip install --quiet --disable-pip-version-check 'moto[server]>=5,<6'
fi
# DuckDB reads back what ETL jobs write (cli/tests/etl_jobs.rs).
if ! python3 -c "import duckdb" >/dev/null 2>&1; then
  echo "installing duckdb for the ETL tests" >&2
  python3 -m pip install --quiet --disable-pip-version-check 'duckdb>=1.1,<2'
fi
# The deltalake package (delta-rs for Python, with pyarrow) reads back the
# Delta tables ETL jobs write and writes tables Squall reads (delta/tests).
if ! python3 -c "import deltalake, pyarrow" >/dev/null 2>&1; then
  echo "installing deltalake and pyarrow for the Delta Lake tests" >&2
  python3 -m pip install --quiet --disable-pip-version-check 'deltalake>=1.1,<2' 'pyarrow>=15'
fi
if ! command -v cargo-lambda >/dev/null 2>&1; then
  echo "installing cargo-lambda for the Lambda tests" >&2
  python3 -m pip install --quiet --disable-pip-version-check 'cargo-lambda==1.9.2'
fi
# Azurite (npm) serves Azure blob storage for the az:// tests, installed in a
# cache folder outside the checkout (SQUALL_AZURITE overrides the binary).
AZURITE_DIR="$HOME/.cache/squall/azurite"
if [ -z "${SQUALL_AZURITE:-}" ] && [ ! -x "$AZURITE_DIR/node_modules/.bin/azurite-blob" ]; then
  echo "installing azurite for the Azure tests" >&2
  mkdir -p "$AZURITE_DIR"
  (cd "$AZURITE_DIR" && npm install --silent --no-audit --no-fund azurite@3.35.0 >&2)
fi
# Headless Chromium and chromedriver (Debian packages) for the HTML report
# tests (cli/tests/report_browser.rs). SQUALL_CHROMIUM and
# SQUALL_CHROMEDRIVER override the binaries.
if [ -z "${SQUALL_CHROMEDRIVER:-}" ] && ! command -v chromedriver >/dev/null 2>&1; then
  echo "installing chromium and chromium-driver for the report tests" >&2
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium chromium-driver >&2
fi
