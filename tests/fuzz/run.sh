#!/bin/sh
# run.sh: runs one libFuzzer harness for a set time; make fuzz calls it
# once per harness (tests/reliability.am).
#
#   run.sh HARNESS OUTDIR SRCDIR SECONDS
#
# The seeds in SRCDIR/tests/fuzz/seeds/NAME (NAME is HARNESS without
# "fuzz_") are read, never written; the inputs libFuzzer finds go to
# OUTDIR/corpus/NAME and carry over to the next run; a crash, a timeout
# (a single input taking over 10 s) or a leak leaves its input in
# OUTDIR/crash-NAME-* and fails. Prints one line of figures.
set -u
h=$1 out=$2 src=$3 secs=$4
name=${h#fuzz_}
seeds=$src/tests/fuzz/seeds/$name
corpus=$out/corpus/$name
log=$out/$h.log
mkdir -p "$corpus"
dict=
[ -f "$src/tests/fuzz/$name.dict" ] && dict=-dict=$src/tests/fuzz/$name.dict
"$out/$h" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
	-print_final_stats=1 -artifact_prefix="$out/crash-$name-" ${dict:+"$dict"} \
	"$corpus" "$seeds" >"$log" 2>&1
rc=$?
runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
last=$(grep -E '^#[0-9]+' "$log" | tail -1)
cov=$(printf '%s\n' "$last" | sed -n 's/.* cov: \([0-9]*\).*/\1/p')
corp=$(printf '%s\n' "$last" | sed -n 's/.* corp: \([0-9]*\).*/\1/p')
if [ "$rc" -eq 0 ]; then
	result=ok
else
	result="FAILED (exit $rc; input in $out/crash-$name-*, log in $log)"
	grep -E 'ERROR|invariant failed|runtime error|SUMMARY' "$log" | head -5
fi
printf '%-18s %4s s  %10s runs  %7s/s  cov %5s  corpus %5s  %s\n' \
	"$h" "$secs" "${runs:-?}" "${rate:-?}" "${cov:-?}" "${corp:-?}" "$result"
exit "$rc"
