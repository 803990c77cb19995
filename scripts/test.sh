#!/usr/bin/env bash
# The README's test command: installs what it needs (Debian packages, cargo-nextest), then runs
# every test. nextest runs each test in its own process, which the libsasl2 host tests need
# (sasl_server_init is process-global).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
cargo fmt --check
cargo clippy --all-targets --quiet -- -D warnings
cargo nextest run --no-fail-fast "$@"
