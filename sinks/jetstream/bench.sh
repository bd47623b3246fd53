#!/usr/bin/env bash
# bench.sh - outbox → JetStream throughput beside publishing the same
# messages straight to JetStream, side by side (make bench-sinks).
#
# Runs every benchmark of this module once per round, COUNT rounds (default
# 3), N messages each (default 20000), so that each round measures all the
# cases close together in time; prints the raw lines, then the median msgs/s
# of each case and the ratios of the outbox cases to the direct ones.
set -euo pipefail
cd "$(dirname "$0")"
COUNT=${COUNT:-3}
N=${N:-20000}
go test -c -o "${TMPDIR:-/tmp}/wharf-sinks-jetstream.bench" .
trap 'rm -f "${TMPDIR:-/tmp}/wharf-sinks-jetstream.bench"' EXIT
out=""
for round in $(seq "$COUNT"); do
	echo "round $round of $COUNT, $(cut -d' ' -f1-3 /proc/loadavg) load average" >&2
	if ! got=$("${TMPDIR:-/tmp}/wharf-sinks-jetstream.bench" -test.run '^$' -test.bench . -test.benchtime "${N}x" 2>&1); then
		echo "$got" >&2
		exit 1
	fi
	out+="$got"$'\n'
done
grep -E '^(Benchmark|goos|goarch|cpu)' <<<"$out" | sort -s -k1,1 | uniq
awk -v count="$COUNT" -v n="$N" '
/^Benchmark/ {
	name = $1; sub(/-[0-9]+$/, "", name); sub(/^Benchmark/, "", name)
	if (!(name in v)) order[++names] = name
	for (i = 2; i < NF; i++) if ($(i+1) == "msgs/s") v[name] = v[name] " " $i
}
function median(s,   a, k, i, j, t) {
	k = split(s, a, " ")
	for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
	return k % 2 ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2
}
END {
	printf "\nmedian msgs/s of %d rounds, %d messages each\n", count, n
	for (i = 1; i <= names; i++) { m[order[i]] = median(v[order[i]]); printf "  %-44s %9.0f\n", order[i], m[order[i]] }
	printf "\nratios, outbox → JetStream / straight to JetStream\n"
	# Each outbox case beside the direct cases on the same server mode.
	for (i = 1; i <= names; i++) if (order[i] ~ /^OutboxToJetStream\//) {
		split(order[i], a, "/")
		for (j = 1; j <= names; j++) if (order[j] ~ ("^DirectJetStream/" a[2] "/"))
			printf "  %-44s / %-34s %5.2fx\n", order[i], order[j], m[order[i]] / m[order[j]]
	}
}' <<<"$out"
