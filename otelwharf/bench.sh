#!/usr/bin/env bash
# bench.sh - the overhead of otelwharf, side by side (make bench-otel).
#
# Runs BenchmarkDrain (N_DRAIN messages, default 20000) and BenchmarkEnqueue
# (N_ENQUEUE one-message transactions, default 2000) COUNT rounds (default
# 3), every case once per round so that the cases of a round run close
# together in time; prints the raw lines, then per case the
# median msgs/s and CPU µs/msg (this process's CPU: a PostgreSQL server's is
# not in it) and their ratios to NoHooks on the same database.
# PostgreSQL cases need WHARF_TEST_POSTGRES_URL (the Makefile's testdb run
# sets it); without it they are skipped.
set -euo pipefail
cd "$(dirname "$0")"
COUNT=${COUNT:-3}
N_DRAIN=${N_DRAIN:-20000}
N_ENQUEUE=${N_ENQUEUE:-2000}
bin="${TMPDIR:-/tmp}/wharf-otelwharf.bench"
go test -c -o "$bin" .
trap 'rm -f "$bin"' EXIT
# Each case runs in a process of its own, in an order that rotates from
# round to round, so that no case always runs first (or right after
# another) on a warming or cooling machine and database.
variants=(NoHooks NoopProvider SDKAllSpans)
out=""
for round in $(seq "$COUNT"); do
	for spec in "Drain $N_DRAIN" "Enqueue $N_ENQUEUE"; do
		set -- $spec
		for i in 0 1 2; do
			v=${variants[$(( (i + round) % 3 ))]}
			echo "round $round of $COUNT: $1/$v, $(cut -d' ' -f1-3 /proc/loadavg) load average" >&2
			if ! got=$("$bin" -test.run '^$' -test.bench "^Benchmark$1\$/./^$v\$" -test.benchtime "${2}x" 2>&1); then
				echo "$got" >&2
				exit 1
			fi
			out+="$got"$'\n'
		done
	done
done
grep -E '^(Benchmark|goos|goarch|cpu)' <<<"$out" | sort -s -k1,1 | uniq
awk -v count="$COUNT" '
/^Benchmark/ {
	name = $1; sub(/-[0-9]+$/, "", name); sub(/^Benchmark/, "", name)
	if (!(name in tput)) order[++names] = name
	for (i = 2; i < NF; i++) {
		if ($(i+1) == "msgs/s") tput[name] = tput[name] " " $i
		if ($(i+1) == "cpu-us/msg") cpu[name] = cpu[name] " " $i
	}
}
function median(s,   a, k, i, j, t) {
	k = split(s, a, " ")
	for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
	return k % 2 ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2
}
END {
	printf "\nmedians of %d rounds; ratios to NoHooks on the same database (throughput: higher is better; CPU: lower is better)\n", count
	printf "  %-36s %10s %9s %12s %9s\n", "case", "msgs/s", "ratio", "cpu µs/msg", "ratio"
	for (i = 1; i <= names; i++) { t[order[i]] = median(tput[order[i]]); c[order[i]] = median(cpu[order[i]]) }
	split("Drain Enqueue", benches, " "); split("SQLite PostgreSQL", dbs, " "); split("NoHooks NoopProvider SDKAllSpans", vs, " ")
	for (b = 1; b <= 2; b++) for (d = 1; d <= 2; d++) for (v = 1; v <= 3; v++) {
		n = benches[b] "/" dbs[d] "/" vs[v]; base = benches[b] "/" dbs[d] "/NoHooks"
		if (!(n in t) || !(base in t)) continue
		printf "  %-36s %10.0f %8.3fx %12.2f %8.3fx\n", n, t[n], t[n] / t[base], c[n], c[n] / c[base]
	}
}' <<<"$out"
