#!/usr/bin/env bash
# Smoke run of every fuzz target from its committed seeds: builds them all, then fuzzes each for
# N seconds (default 20). Exits non-zero if a target crashes, fails an invariant, leaks or hangs.
#
#   fuzz/smoke.sh [seconds]
#
# cargo-fuzz needs nightly compiler flags (-Zsanitizer=address); RUSTC_BOOTSTRAP=1 lets the
# stable compiler accept them. With CARGO_TARGET_DIR set (as CI does), the build goes to
# $CARGO_TARGET_DIR/fuzz; otherwise to fuzz/target.
set -euo pipefail
cd "$(dirname "$0")"

seconds="${1:-20}"
export RUSTC_BOOTSTRAP=1
if [ -n "${CARGO_TARGET_DIR:-}" ]; then
  export CARGO_TARGET_DIR="$CARGO_TARGET_DIR/fuzz"
fi

if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi

# cargo-fuzz has no --locked: check here that Cargo.lock is complete and current.
cargo metadata --locked --format-version 1 >/dev/null

start=$(date +%s)
cargo fuzz build
echo "build: $(($(date +%s) - start)) s"

logs="$(mktemp -d)"
trap 'rm -rf "$logs"' EXIT
failed=()
summary=()
for target in $(cargo fuzz list); do
  echo "==> $target (${seconds} s)"
  target_start=$(date +%s)
  # New inputs go to corpus/<target> (not committed); seeds/<target> is only read.
  mkdir -p "corpus/$target"
  if cargo fuzz run "$target" "corpus/$target" "seeds/$target" -- \
      -max_total_time="$seconds" -timeout=10 -print_final_stats=1 >"$logs/$target" 2>&1; then
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$logs/$target" | tail -n1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$logs/$target" | tail -n1)
    cov=$(sed -n 's/.*DONE *cov: \([0-9]*\).*/\1/p' "$logs/$target" | tail -n1)
    summary+=("$(printf '%-18s %11s runs %7s exec/s  cov %5s  %4s s' "$target" "${runs:-?}" \
      "${rate:-?}" "${cov:-?}" "$(($(date +%s) - target_start))")")
  else
    failed+=("$target")
    tail -n 60 "$logs/$target"
    echo "FAILED: $target (the input is in fuzz/artifacts/$target/)"
  fi
done

echo
printf '%s\n' "${summary[@]}"
echo "total: $(($(date +%s) - start)) s"
if [ "${#failed[@]}" -gt 0 ]; then
  echo "failing targets: ${failed[*]}"
  exit 1
fi
