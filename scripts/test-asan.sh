#!/usr/bin/env bash
# npm run test:asan: builds the addon with AddressSanitizer + UndefinedBehaviorSanitizer
# (CPU-only, cmake-js, into build-asan/; never build/ or build-cuda/) and runs the
# native-facing jest suites against that binary (BRAINTRACE_ADDON), with libasan preloaded
# into node. Exits non-zero on a failed test or on any sanitizer report.
#
#   scripts/test-asan.sh [--json FILE] [--no-build] [jest test paths...]
#
# --json FILE   also write jest's JSON report to FILE (what .ci/run counts)
# --no-build    use the existing build-asan/Release/braintrace.node
# paths         run these test files instead of the default list
#
# Environment: BRAINTRACE_ASAN_JOBS (build parallelism, default: nproc).
# Every report is fatal inside the native code (-fno-sanitize-recover=all, halt_on_error=1);
# the log is also searched for "ERROR: AddressSanitizer" and "runtime error:" as a backstop
# (a report in a jest worker that jest survives must still fail the run).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$(pwd)

json=""
build=1
paths=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --json) json=$2; shift 2 ;;
    --no-build) build=0; shift ;;
    *) paths+=("$1"); shift ;;
  esac
done

out="$root/build-asan"
addon="$out/Release/braintrace.node"
if [[ $build == 1 ]]; then
  echo "== ASan+UBSan addon -> $addon"
  npx cmake-js compile --out "$out" -p "${BRAINTRACE_ASAN_JOBS:-$(nproc)}" \
    --CDBRAINTRACE_WITH_CUDA=OFF --CDBRAINTRACE_SANITIZE=ON
fi
[[ -f "$addon" ]] || { echo "!! $addon is missing (run without --no-build)"; exit 1; }

# Default: every suite. The native-facing ones (runtime, ops, native-jacobian, native-online,
# optim, train, native-sizes, test/*hardening*) are the point; the others reach the native
# code through the library and cost about 40 s more here, so they run too.
if [[ ${#paths[@]} == 0 ]]; then
  shopt -s nullglob
  paths=(test/*.test.ts test/*hardening*/*.test.ts)
  shopt -u nullglob
fi

libasan=$(g++ -print-file-name=libasan.so)
[[ -f "$libasan" ]] || { echo "!! libasan.so not found (g++ -print-file-name=libasan.so gave '$libasan')"; exit 1; }

logdir=$(mktemp -d)
log="$logdir/jest.log"
trap 'rm -rf "$logdir"' EXIT
jest_args=(--ci "${paths[@]}")
[[ -n "$json" ]] && jest_args+=(--json --outputFile="$json")

echo "== jest under ASan+UBSan: ${paths[*]}"
rc=0
# detect_leaks=0: node and V8 keep allocations alive at exit by design (not our leaks).
# allocator_may_return_null=1: a huge request is a null pointer (an OutOfMemory status, as
# without ASan), not an ASan abort. log_path: every report also lands in a file per process
# (jest workers' stderr can be lost when a worker dies), read back below. The preload
# applies to every process jest starts; worker_threads share their process's runtime.
# BRAINTRACE_TEST_TIME_SCALE: the latency bounds of test/control.test.ts are contracts of the
# normal build; the sanitized one is several times slower.
env BRAINTRACE_ADDON="$addon" LD_PRELOAD="$libasan" BRAINTRACE_TEST_TIME_SCALE="${BRAINTRACE_TEST_TIME_SCALE:-5}" \
  ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:abort_on_error=0:allocator_may_return_null=1:log_path=$logdir/asan" \
  UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:log_path=$logdir/ubsan" \
  npx jest "${jest_args[@]}" 2>&1 | tee "$log" || rc=$?

pattern="ERROR: AddressSanitizer|runtime error:|ERROR: LeakSanitizer|SUMMARY: (Address|UndefinedBehavior)Sanitizer"
reports=$(cat "$logdir"/* 2>/dev/null | grep -cE "$pattern" || true)
if [[ $reports != 0 ]]; then
  echo "!! sanitizer report(s) in the ASan run:"
  for f in "$logdir"/asan* "$logdir"/ubsan*; do [[ -f $f ]] && { echo "--- $f"; head -60 "$f"; }; done
  grep -nE "$pattern" "$log" | head -20 || true
  exit 1
fi
if [[ $rc != 0 ]]; then
  echo "!! the ASan jest run failed (exit $rc)"
  exit "$rc"
fi
echo "== ASan+UBSan run clean"
