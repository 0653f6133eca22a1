#!/usr/bin/env bash
# One entry point for users and CI:
#   ./build.sh demo   restore, build, and run `emflow demo` on the embedded synthetic dataset
#   ./build.sh test   restore, build, and run every test suite, ending with "N passed, N failed"
#   ./build.sh test unit   the same without the notebook, package and command-line tests
#   ./build.sh build  restore and build only
set -euo pipefail
cd "$(dirname "$0")"
CONFIG=${CONFIG:-Release}

setup() {
  if ! command -v dotnet >/dev/null 2>&1; then
    echo "error: the .NET 10 SDK (dotnet) is required and was not found on PATH" >&2
    exit 2
  fi
  # paket.dependencies names its feed as %NUGET_V3_FEED%; take the first enabled NuGet source of this machine
  # unless the caller chose one.
  if [ -z "${NUGET_V3_FEED:-}" ]; then
    NUGET_V3_FEED=$(dotnet nuget list source --format short | awk '$1 ~ /^E/ { print $2; exit }')
    export NUGET_V3_FEED
  fi
  if [ -z "${NUGET_V3_FEED:-}" ]; then
    echo "error: no enabled NuGet source; set NUGET_V3_FEED to a NuGet v3 feed" >&2
    exit 2
  fi
  export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1
  dotnet tool restore >/dev/null
  if [ ! -f paket.lock ] || [ paket.dependencies -nt paket.lock ] || [ ! -f .paket/Paket.Restore.targets ]; then
    dotnet paket install
  else
    dotnet paket restore
  fi
  dotnet build EMFlow.sln -c "$CONFIG" -nologo -clp:ErrorsOnly
}

run_tests() {
  # unit: the libraries' own tests (minutes); all: also the notebooks, the packages and the command line.
  local scope=${1:-all}
  local xunit_projects=(tests/Host.Tests/Host.Tests.csproj tests/Evaluation.Tests/Evaluation.Tests.csproj)
  if [ "$scope" = all ]; then xunit_projects+=(tests/Integration.Tests/Integration.Tests.csproj); fi
  # One torch thread: on a small shared machine OpenMP spinning slows torch by an order of magnitude.
  export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
  local log; log=$(mktemp -d)
  local passed=0 failed=0 status=0

  dotnet "tests/Core.Tests/bin/$CONFIG/net10.0/Core.Tests.dll" --summary 2>&1 | tee "$log/core.txt" || status=1
  local line; line=$(grep -a "EXPECTO!" "$log/core.txt" | tail -n 1 | sed 's/\x1b\[[0-9;]*[A-Za-z]//g' || true)
  if [ -z "$line" ]; then echo "error: the Expecto runner printed no summary" >&2; status=1; fi
  local cp cf ce
  cp=$(echo "$line" | sed -n 's/.* \([0-9]\+\) passed.*/\1/p'); cf=$(echo "$line" | sed -n 's/.* \([0-9]\+\) failed.*/\1/p'); ce=$(echo "$line" | sed -n 's/.* \([0-9]\+\) errored.*/\1/p')
  passed=$((passed + ${cp:-0})); failed=$((failed + ${cf:-0} + ${ce:-0}))

  local project
  for project in "${xunit_projects[@]}"; do
    local name; name=$(basename "$project" .csproj)
    dotnet test "$project" -c "$CONFIG" --no-build -nologo 2>&1 | tee "$log/$name.txt" || status=1
    line=$(grep -aE "(Passed|Failed)! +- Failed: +[0-9]+, Passed: +[0-9]+" "$log/$name.txt" | tail -n 1 || true)
    if [ -z "$line" ]; then echo "error: the xunit runner printed no summary for $name" >&2; status=1; fi
    local xp xf
    xp=$(echo "$line" | sed -n 's/.*Passed: *\([0-9]\+\).*/\1/p'); xf=$(echo "$line" | sed -n 's/.*Failed: *\([0-9]\+\),.*/\1/p')
    passed=$((passed + ${xp:-0})); failed=$((failed + ${xf:-0}))
  done

  rm -rf "$log"
  echo "$passed passed, $failed failed"
  if [ "$status" -ne 0 ] || [ "$failed" -ne 0 ] || [ "$passed" -eq 0 ]; then exit 1; fi
}

case "${1:-}" in
  build) setup ;;
  test)
    case "${2:-all}" in
      all|unit) setup; run_tests "${2:-all}" ;;
      *) echo "usage: ./build.sh test [unit|all]" >&2; exit 2 ;;
    esac ;;
  demo) setup; shift; dotnet "src/Cli/bin/$CONFIG/net10.0/EMFlow.Cli.dll" demo "$@" ;;
  *) echo "usage: ./build.sh demo|test|build" >&2; exit 2 ;;
esac
