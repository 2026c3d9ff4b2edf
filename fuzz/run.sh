#!/usr/bin/env bash
# Runs every fuzz target (or those named) for SECONDS each (default 300),
# FUZZ_JOBS at a time (default 2), niced, and prints a summary table.
#
#   fuzz/run.sh [SECONDS] [TARGET...]
#
# New inputs go to fuzz/work/corpus/TARGET (not committed); the committed
# seeds in fuzz/corpus/TARGET and, when ../shared/testdata is present, the
# extra inputs seed.py extracts from it are read-only corpora. Crashes are
# in fuzz/artifacts/TARGET/, logs in fuzz/work/logs/TARGET.log, the table
# in fuzz/work/summary.txt. Exits non-zero if any target found something.
set -euo pipefail
cd "$(dirname "$0")"

secs=${1:-300}
shift || true
export RUSTC_BOOTSTRAP=1
jobs=${FUZZ_JOBS:-2}

if [ $# -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(cargo fuzz list)
fi

# Longest input per target: a little over each parser's own limit, so the
# limits themselves are exercised (consent values: 8 KiB; Set-Cookie
# name+value: 4 KiB).
max_len() {
  case "$1" in
    consent_*) echo 9000 ;;
    set_cookie | cookie) echo 9000 ;;
    config) echo 16384 ;;
    html) echo 32768 ;;
    html_codec) echo 16384 ;;
    *) echo 4096 ;;
  esac
}

python3 seed.py --extra work/extra
nice -n 10 cargo fuzz build
mkdir -p work/logs

run_one() {
  local t=$1
  local corpora=(work/corpus/"$t" corpus/"$t")
  mkdir -p work/corpus/"$t"
  [ -d work/extra/"$t" ] && corpora+=(work/extra/"$t")
  # -timeout: one input taking 10 s is a hang; -rss_limit_mb: bounded memory.
  nice -n 10 cargo fuzz run "$t" "${corpora[@]}" -- \
    -max_total_time="$secs" -max_len="$(max_len "$t")" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 >work/logs/"$t".log 2>&1
  echo "$t: exit $?" >>work/logs/"$t".log
}

running=0
for t in "${targets[@]}"; do
  if [ "$running" -ge "$jobs" ]; then
    wait -n || true
    running=$((running - 1))
  fi
  echo "$(date -u +%H:%M:%S) fuzzing $t for ${secs}s"
  run_one "$t" &
  running=$((running + 1))
done
wait || true

status=0
{
  printf '%-22s %8s %12s %8s %8s %8s %s\n' target seconds executions cov ft corpus result
  for t in "${targets[@]}"; do
    log=work/logs/"$t".log
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
    took=$(grep -o 'Done [0-9]* runs in [0-9]* second' "$log" | grep -o 'in [0-9]*' | grep -o '[0-9]*' | tail -1)
    last=$(grep -E '^#[0-9]+' "$log" | tail -1)
    cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
    ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
    corp=$(sed -n 's/.* corp: \([0-9]*\).*/\1/p' <<<"$last")
    if grep -qE 'ERROR: libFuzzer|SUMMARY: .*Sanitizer|panicked at|deadly signal' "$log"; then
      result="FOUND: $(ls artifacts/"$t" 2>/dev/null | tr '\n' ' ')"
      status=1
    else
      result=ok
    fi
    printf '%-22s %8s %12s %8s %8s %8s %s\n' "$t" "${took:-?}" "${execs:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}" "$result"
  done
} | tee work/summary.txt
exit $status
