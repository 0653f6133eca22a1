#!/usr/bin/env bash
# The streamed fit end to end (emflow impute --stream): a seeded CSV of ROWS x 16 (bench/stream-data.fsx, 20% of cells
# missing) fitted block by block and imputed block by block in one command, with its peak memory and rows/s; then
# the accuracy of that model on held-out rows against EMFlow fitted in memory on the file's first SAMPLE rows, same
# settings. bench/README.md, "Streaming fit", has the figures.
#   bench/stream-fit.sh [ROWS (10000000)] [SAMPLE (100000)] [WORKDIR]   after ./build.sh build; needs /usr/bin/time
# The start is Gaussian EM's (--start gaussian-em): every epoch starts every row again, and a kNN start would search
# 20000 donors per row per epoch. One iteration of EPOCHS epochs (default 2) keeps the run to tens of minutes at 10^7
# rows on one core. WORKDIR (default a new temporary folder, removed at the end) holds about 3 GB at 10^7 rows.
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
rows=${1:-10000000}
sample=${2:-100000}
epochs=${EPOCHS:-2}
emflow=(dotnet src/Cli/bin/Release/net10.0/EMFlow.Cli.dll)
work=${3:-$(mktemp -d)}
mkdir -p "$work"
trap 'rm -rf "$work"' EXIT
settings=(--start gaussian-em --iterations 1 --epochs "$epochs" --seed 1 -q)

dotnet fsi bench/stream-data.fsx "$rows" "$work/data.csv" 2
dotnet fsi bench/stream-data.fsx 20000 "$work/test.csv" 3 "$work/test-truth.csv"
echo "table: $rows rows x 16, $(du -m "$work/data.csv" | cut -f1) MB of CSV; $(getconf _NPROCESSORS_ONLN) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) at the start"

run() {  # label, then the command's arguments
  local label=$1; shift
  local start end
  start=$(date +%s.%N)
  /usr/bin/time -v "$@" 2> "$work/time.txt"
  end=$(date +%s.%N)
  local rss cpu
  rss=$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$work/time.txt")
  cpu=$(awk -F': ' '/User time/ { u = $2 } /System time/ { s = $2 } END { print u + s }' "$work/time.txt")
  echo "$label | $(( rss / 1024 )) MiB max RSS | $(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.0f", b - a }') s | $cpu CPU s"
}

# Fit and impute the whole file, streamed; then the transform alone with the saved model, to split the time.
run "streamed fit + transform, $rows rows" "${emflow[@]}" impute "$work/data.csv" -o "$work/out.csv" --stream --sample-rows "$sample" --model "$work/streamed.emflow" "${settings[@]}"
run "transform alone (--load), $rows rows" "${emflow[@]}" impute "$work/data.csv" -o "$work/out.csv" --load "$work/streamed.emflow" -q
rm -f "$work/out.csv"
# The in-memory fit on the first SAMPLE rows of the same file.
head -n $(( sample + 1 )) "$work/data.csv" > "$work/sample.csv"
run "in-memory fit + transform, $sample rows" "${emflow[@]}" impute "$work/sample.csv" -o "$work/sample-out.csv" --model "$work/sample.emflow" "${settings[@]}"

# Accuracy on 20000 rows neither model saw: RMSE of the hidden cells, each column min-max scaled on the complete rows.
for model in streamed sample; do
  "${emflow[@]}" impute "$work/test.csv" -o "$work/test-$model.csv" --load "$work/$model.emflow" -q
done
python3 - "$work/test.csv" "$work/test-truth.csv" "$work/test-streamed.csv" "$work/test-sample.csv" <<'EOF'
import csv, math, sys
def rows(path):
    with open(path) as f:
        r = csv.reader(f); next(r); return [row for row in r]
masked, truth = rows(sys.argv[1]), rows(sys.argv[2])
cols = len(truth[0])
lo = [min(float(t[j]) for t in truth) for j in range(cols)]
hi = [max(float(t[j]) for t in truth) for j in range(cols)]
for label, path in (("streamed fit", sys.argv[3]), ("in-memory fit on the sample", sys.argv[4])):
    imputed, sq, n = rows(path), 0.0, 0
    for m, t, i in zip(masked, truth, imputed):
        for j in range(cols):
            if m[j] == "":
                d = (float(i[j]) - float(t[j])) / (hi[j] - lo[j]); sq += d * d; n += 1
    print(f"held-out RMSE, {label}: {math.sqrt(sq / n):.4f} over {n} hidden cells")
EOF
echo "load average $(cut -d' ' -f1-3 /proc/loadavg) at the end"
