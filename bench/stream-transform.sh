#!/usr/bin/env bash
# Peak memory and rows/s of the streamed transform (emflow impute --load) on seeded CSV tables of 10^5 and 10^6 rows
# by 16 columns, CSV to CSV and CSV to Parquet. bench/README.md, "Streaming transform", has the figures.
#   bench/stream-transform.sh [WORKDIR]      after ./build.sh build; needs /usr/bin/time (Debian's time package)
# The tables (about 1 GB at 10^6 rows, inputs and outputs) go to WORKDIR (default a new temporary folder), removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
emflow=(dotnet src/Cli/bin/Release/net10.0/EMFlow.Cli.dll)
work=${1:-$(mktemp -d)}
mkdir -p "$work"
trap 'rm -rf "$work"' EXIT

dotnet fsi bench/stream-data.fsx 2000 "$work/train.csv" 1
# The model: EMFlow with the Gaussian-EM/kNN start (2000 donor rows), one iteration.
"${emflow[@]}" impute "$work/train.csv" -o "$work/train-done.csv" --model "$work/m.emflow" --start auto --iterations 1 --epochs 5 --seed 1 -q

measure() {  # label, input, output, further options
  /usr/bin/time -v "${emflow[@]}" impute "$2" -o "$3" --load "$work/m.emflow" -q "${@:4}" 2> "$work/time.txt"
  local rss secs
  rss=$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$work/time.txt")
  secs=$(awk -F': ' '/Elapsed \(wall clock\)/ { n = split($2, t, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + t[i]; print s }' "$work/time.txt")
  echo "$1 | $(( rss / 1024 )) MiB max RSS | ${secs} s"
}

for rows in 100000 1000000; do
  dotnet fsi bench/stream-data.fsx "$rows" "$work/data-$rows.csv" 2
  measure "csv -> csv, $rows rows" "$work/data-$rows.csv" "$work/out-$rows.csv"
  measure "csv -> parquet, $rows rows" "$work/data-$rows.csv" "$work/data-$rows.parquet"
  # For comparison, the whole table as one block, as the transform held it before it streamed.
  measure "csv -> csv, $rows rows, one block" "$work/data-$rows.csv" "$work/out-$rows.csv" --block-rows 2000000
  rm -f "$work"/*-"$rows".*
done
