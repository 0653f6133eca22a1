#!/usr/bin/env bash
# One entry point for users and CI:
#   ./build.sh demo   restore, build, and run `emflow demo` on the embedded synthetic dataset
#   ./build.sh test   restore, build, and run every test suite, ending with "N passed, N failed"; installs Debian's
#                     Jupyter packages first if they are missing (the notebooks run in the real kernel)
#   ./build.sh test unit   the same without the notebook, package and command-line tests
#   ./build.sh build  restore and build only
#   ./build.sh kernel     set up the notebooks' .NET Interactive kernel: the local tool, its Jupyter kernelspecs in
#                         .jupyter/kernels (this folder, nothing in $HOME), and the build the notebooks reference
#   ./build.sh jupyter    open the notebooks in Jupyter Notebook with that kernel (extra arguments go to Jupyter)
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

# Debian's Jupyter, not whatever python3 comes first on PATH.
JUPYTER=${JUPYTER:-/usr/bin/jupyter}
JUPYTER_PACKAGES="jupyter-client jupyter-core jupyter-nbconvert python3-nbclient python3-nbconvert python3-nbformat python3-ipykernel"

# Writes the notebooks' kernelspecs to .jupyter/kernels (this folder; nothing in $HOME). Needs the local tools restored.
kernelspecs() {
  local kernels="$PWD/.jupyter/kernels"
  rm -rf "$kernels" && mkdir -p "$kernels"   # --path must exist, or the installer prints its help and exits 0
  dotnet interactive jupyter install --path "$kernels" >/dev/null
  rm -rf "$kernels/.net-powershell"
  # Telemetry off inside the kernel too. The kernels run `dotnet interactive`, the local tool, which the kernel
  # finds from the notebook's folder upwards: notebooks anywhere under this folder get version 1.0.712001.
  /usr/bin/python3 - "$kernels" <<'PY'
import json, sys
for lang in ("fsharp", "csharp"):
    path = f"{sys.argv[1]}/.net-{lang}/kernel.json"
    spec = json.load(open(path))
    spec["env"] = {"DOTNET_INTERACTIVE_CLI_TELEMETRY_OPTOUT": "1", "DOTNET_CLI_TELEMETRY_OPTOUT": "1"}
    json.dump(spec, open(path, "w"), indent=2)
PY
  for lang in fsharp csharp; do
    [ -f "$kernels/.net-$lang/kernel.json" ] || { echo "error: the .net-$lang kernelspec was not written" >&2; exit 1; }
  done
}

# Installs the Debian packages named in $@ that are missing (as root, or through sudo), so that a fresh Debian 12
# machine needs nothing by hand; elsewhere it says what to install.
debian_packages() {
  local missing; missing=$(for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || echo "$p"; done)
  [ -z "$missing" ] && return 0
  local sudo=(); if [ "$(id -u)" -ne 0 ]; then sudo=(sudo); fi
  if ! command -v apt-get >/dev/null 2>&1 || { [ ${#sudo[@]} -gt 0 ] && ! command -v sudo >/dev/null 2>&1; }; then
    echo "error: the notebooks need these Debian packages: $(echo $missing)" >&2
    exit 2
  fi
  echo "installing $(echo $missing) (Debian packages for the notebooks' Jupyter)" >&2
  "${sudo[@]}" apt-get update -qq
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq $missing >/dev/null
}

kernel() {
  # shellcheck disable=SC2086
  debian_packages $JUPYTER_PACKAGES
  setup   # restores the local tools (paket, Microsoft.dotnet-interactive) and builds what the notebooks reference
  kernelspecs
  JUPYTER_PATH="$PWD/.jupyter" "$JUPYTER" kernelspec list
}

case "${1:-}" in
  build) setup ;;
  kernel) kernel ;;
  jupyter)
    shift
    if [ ! -f .jupyter/kernels/.net-fsharp/kernel.json ]; then echo "error: run ./build.sh kernel first" >&2; exit 2; fi
    debian_packages jupyter-notebook
    export JUPYTER_PATH="$PWD/.jupyter" PYDEVD_DISABLE_FILE_VALIDATION=1
    root_flag=(); if [ "$(id -u)" -eq 0 ]; then root_flag=(--allow-root); fi   # containers and CI run as root
    exec "$JUPYTER" notebook --notebook-dir="$PWD/notebooks" "${root_flag[@]}" "$@" ;;
  test)
    case "${2:-all}" in
      unit) setup; run_tests unit ;;
      # The notebook tests run in the .NET Interactive kernel through Jupyter: refresh the kernelspecs when Jupyter is there.
      # shellcheck disable=SC2086
      all) debian_packages $JUPYTER_PACKAGES; setup; kernelspecs; run_tests all ;;
      *) echo "usage: ./build.sh test [unit|all]" >&2; exit 2 ;;
    esac ;;
  demo) setup; shift; dotnet "src/Cli/bin/$CONFIG/net10.0/EMFlow.Cli.dll" demo "$@" ;;
  *) echo "usage: ./build.sh demo|test|build|kernel|jupyter" >&2; exit 2 ;;
esac
