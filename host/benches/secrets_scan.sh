#!/usr/bin/env bash
# secrets-scan throughput: files per second on a generated tree.
#
# Generates (in a temporary directory, removed at exit; nothing committed)
# a tree of FILES text files, 100 per directory, each about 1.2 KiB of
# config-like lines; every 100th file holds a GitHub token, every 500th is
# world-writable. Then runs `tend plugins call secrets-scan --record` RUNS
# times on it and prints each run's step duration (from the call record,
# which excludes process start and the cached component load) and wall
# time, then the medians and files per second.
#
# Usage: host/benches/secrets_scan.sh [TEND_BINARY] [FILES] [RUNS]
#   e.g. host/benches/secrets_scan.sh target/debug/tend 10000 5
# Needs jq. Touches nothing outside its temporary directory (and the
# component cache, TEND_CACHE_DIR).
set -euo pipefail

tend=${1:-target/debug/tend}
files=${2:-10000}
runs=${3:-5}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

awk -v root="$work/tree" -v n="$files" 'BEGIN {
    for (i = 0; i < n; i++) {
        dir = sprintf("%s/d%03d", root, int(i / 100))
        if (i % 100 == 0) system("mkdir -p " dir)
        f = sprintf("%s/f%05d.conf", dir, i)
        for (l = 0; l < 30; l++) printf "setting_%02d = value-%d-%d # a comment line\n", l, i, l > f
        if (i % 100 == 7) printf "token = ghp_%036d\n", i > f
        close(f)
        if (i % 500 == 3) system("chmod 666 " f)
    }
}'
count=$(find "$work/tree" -type f | wc -l)
bytes=$(du -sb "$work/tree" | cut -f1)
echo "tree: $count files, $bytes bytes (apparent, with directories)"

durations=()
walls=()
for run in $(seq 1 "$runs"); do
    start=$(date +%s.%N)
    record=$("$tend" plugins call secrets-scan --dir "$work/tree:/scan:ro" --timeout 10m --memory 512MiB \
        --config '{"paths": ["/scan"]}' --record)
    end=$(date +%s.%N)
    ms=$(jq '.duration_ms' <<<"$record")
    wall=$(echo "($end - $start) * 1000" | bc -l)
    scanned=$(jq '.output.data.files_scanned' <<<"$record")
    new=$(jq '.output.data.counts.new' <<<"$record")
    peak=$(jq '.peak_memory_bytes' <<<"$record")
    printf 'run %d: step %.0f ms, wall %.0f ms, %s files scanned, %s findings, peak guest memory %s bytes\n' \
        "$run" "$ms" "$wall" "$scanned" "$new" "$peak"
    durations+=("$ms")
    walls+=("$wall")
done

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
m=$(median "${durations[@]}")
w=$(median "${walls[@]}")
printf 'median step %.0f ms -> %.0f files/s; median wall %.0f ms -> %.0f files/s\n' \
    "$m" "$(echo "$count / ($m / 1000)" | bc -l)" "$w" "$(echo "$count / ($w / 1000)" | bc -l)"
