#!/usr/bin/env bash
# `emflow demo --no-report --threads 1`, the command README.md times, from an earlier build and from this one,
# alternately, so both see the same machine: EMFlow's seconds and RMSE as the demo prints them, and the process's CPU
# seconds. The earlier build is a worktree of an older commit, built with its own ./build.sh build:
#   git worktree add /tmp/before <commit> && (cd /tmp/before && ./build.sh build)
#   bench/demo-ab.sh /tmp/before [runs, default 3] [--defaults]
# --defaults runs `emflow demo --no-report` instead: each build with its own default torch threads, as a user types it.
set -euo pipefail
cd "$(dirname "$0")/.."
old=${1:?usage: bench/demo-ab.sh OLD_TREE [runs]}
runs=${2:-3}
threads=(--threads 1)
[ "${3:-}" = --defaults ] && threads=()
cli=src/Cli/bin/Release/net10.0/EMFlow.Cli.dll
for side in "$old/$cli" "$cli"; do [ -f "$side" ] || { echo "missing $side: build it first" >&2; exit 2; }; done
echo "| run | build | EMFlow seconds | EMFlow RMSE | process CPU seconds |"
echo "|---|---|---|---|---|"
declare -a before now
for run in $(seq "$runs"); do
  for side in before now; do
    dll=$cli; [ "$side" = before ] && dll="$old/$cli"
    out=$( { /usr/bin/time -f "cpu %U %S" dotnet "$dll" demo --no-report "${threads[@]}" 2>&1 >&3 | grep '^cpu' >&2; } 3>&1 2>&1 )
    line=$(grep -E '^\| EMFlow ' <<<"$out" || true)
    rmse=$(awk -F'|' '{gsub(/ /,"",$3); print $3}' <<<"$line")
    secs=$(awk -F'|' '{gsub(/ /,"",$4); print $4}' <<<"$line")
    cpu=$(grep '^cpu' <<<"$out" | awk '{printf "%.1f", $2 + $3}')
    echo "| $run | $side | $secs | $rmse | $cpu |"
    if [ "$side" = before ]; then before+=("$secs"); else now+=("$secs"); fi
  done
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
b=$(median "${before[@]}"); n=$(median "${now[@]}")
echo
echo "median EMFlow seconds: before $b, now $n, ratio $(awk -v b="$b" -v n="$n" 'BEGIN {printf "%.2f", b / n}')x"
