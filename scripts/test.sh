#!/usr/bin/env bash
# Run every check CI runs: formatting, lints and the whole test suite.
#
#   scripts/test.sh            # from anywhere inside the checkout
#
# Needs only the Rust toolchain (rustup's cargo, with rustfmt and clippy). Crates come
# from crates.io on the first run. Later issues add services (PostgreSQL, Redis, ...)
# that this script installs and starts on loopback.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

step() { printf '\n==> %s\n' "$*" >&2; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (all targets, warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo test"
cargo test --workspace --locked

step "all checks passed"
