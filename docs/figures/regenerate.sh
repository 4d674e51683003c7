#!/usr/bin/env bash
# Regenerate the tutorial's figures (docs/tutorial.md) from the bundled scenarios.
#
#   docs/figures/regenerate.sh            # with `cargo run --release`
#   SLICESIM=path/to/slicesim docs/figures/regenerate.sh
#
# One figure per `"$SLICESIM" run` line below; tests/figures.rs runs exactly these lines
# and checks that the committed SVGs are what they produce, byte for byte.
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ -z "${SLICESIM:-}" ]; then
    cargo build --release --quiet
    SLICESIM="${CARGO_TARGET_DIR:-target}/release/slicesim"
fi
OUT=docs/figures

"$SLICESIM" run scenarios/grant-revoke-race.toml --timeline-svg "$OUT/handshake.svg" --window 1500ns..6500ns
"$SLICESIM" run scenarios/edge/grant-then-expiry.toml --timeline-svg "$OUT/timer-expiry.svg" --window 1500ns..10500ns
"$SLICESIM" run scenarios/edge/second-resched-revokes.toml --timeline-svg "$OUT/revoke-on-schedule.svg" --window 6us..20us
"$SLICESIM" run scenarios/grant-revoke-race.toml --timeline-svg "$OUT/revoke-before-check.svg" --window 15us..22us
"$SLICESIM" run scenarios/tutorial/late-grant.toml --timeline-svg "$OUT/late-grant.svg" --window 1500ns..7500ns
"$SLICESIM" run scenarios/grant-revoke-race.toml --timeline-svg "$OUT/revoke-before-yield.svg" --window 29us..36us
"$SLICESIM" run scenarios/tutorial/expiry-vs-yield.toml --timeline-svg "$OUT/expiry-vs-yield.svg" --window 1500ns..10500ns
"$SLICESIM" run scenarios/edge/misbehave-writes-granted-debug.toml --timeline-svg "$OUT/sigsegv-debug.svg" --window 1500ns..8500ns
