#!/bin/sh
# run-fuzz.sh BUILD SECONDS NAME... — `make fuzz`: runs each libFuzzer
# target BUILD/fuzz/fuzz_NAME for SECONDS, one after the other, from its
# seed corpus (tests/fuzz/corpus/NAME, read only) and regressions; inputs it
# finds go to BUILD/fuzz/corpus/NAME, crashes to BUILD/fuzz/crash/NAME/ and
# the full output to BUILD/fuzz/NAME.log. Prints executions per target at
# the end (libFuzzer's "Done N runs in S second(s)"); fails if a target
# crashed, leaked, timed out or broke an invariant. Extra libFuzzer flags:
# FUZZ_FLAGS.
set -u
build=$1
seconds=$2
shift 2
here=$(cd "$(dirname "$0")" && pwd)
summary=""
failed=0
for name in "$@"; do
    mkdir -p "$build/fuzz/corpus/$name" "$build/fuzz/crash/$name"
    set --
    for dir in "$here/corpus/$name" "$here/regressions/$name"; do
        [ -d "$dir" ] && set -- "$@" "$dir"
    done
    log="$build/fuzz/$name.log"
    echo "fuzz: $name for ${seconds}s (log: $log)"
    # -close_fd_mask=2: the targets' own log lines stay out; libFuzzer's
    # reports and the invariant messages (stdout) still show.
    "$build/fuzz/fuzz_$name" -max_total_time="$seconds" -timeout=10 \
        -rss_limit_mb=2048 -close_fd_mask=2 -print_final_stats=1 \
        -artifact_prefix="$build/fuzz/crash/$name/" ${FUZZ_FLAGS:-} \
        "$build/fuzz/corpus/$name" "$@" >"$log" 2>&1
    rc=$?
    done_line=$(grep -E '^Done [0-9]+ runs in [0-9]+ second' "$log" | tail -n 1)
    runs=$(echo "$done_line" | sed -n 's/^Done \([0-9]*\) runs in \([0-9]*\) second.*/\1/p')
    secs=$(echo "$done_line" | sed -n 's/^Done \([0-9]*\) runs in \([0-9]*\) second.*/\2/p')
    if [ -z "$runs" ]; then # stopped early: libFuzzer's last status line
        runs=$(grep -E '^#[0-9]+' "$log" | tail -n 1 | sed 's/^#\([0-9]*\).*/\1/')
    fi
    corpus=$(ls "$build/fuzz/corpus/$name" | wc -l)
    if [ "$rc" = 0 ]; then
        status=ok
    else
        status="FAILED (exit $rc; see $build/fuzz/crash/$name/)"
        failed=1
        grep -E 'ERROR|SUMMARY|fuzz invariant|Test unit written' "$log" | head -n 8
    fi
    summary="$summary$(printf '%-10s %12s runs %6s s  %6s new corpus  %s' \
        "$name" "${runs:-?}" "${secs:-?}" "$corpus" "$status")
"
done
echo
echo "fuzz summary (FUZZ_SECONDS=$seconds):"
printf '%s' "$summary"
exit "$failed"
