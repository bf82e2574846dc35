#!/usr/bin/env bash
# npm run test:tsan: the thread pool and sessions used from several threads at once, under
# ThreadSanitizer (test/native/tsan_threads.cc linked with the core sources; no Node, whose own
# threads TSan cannot see). Builds into build-tsan/; exits non-zero on a failed check or any
# TSan report. CXX=... picks the compiler (default clang++-16, else g++).
#   scripts/test-tsan.sh [--json FILE]   (FILE: a pass/fail report with jest's JSON fields)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
json=""
[[ ${1:-} == --json ]] && json=$2
report() {  # report passed|failed
  [[ -z $json ]] && return 0
  local p=0 f=0 ok=true
  if [[ $1 == passed ]]; then p=1; else f=1; ok=false; fi
  printf '{"numPassedTests":%d,"numFailedTests":%d,"numRuntimeErrorTestSuites":0,"success":%s,"testResults":[{"name":"tsan","assertionResults":[{"title":"tsan_threads","status":"%s"}]}]}\n' \
    "$p" "$f" "$ok" "$1" >"$json"
}
out=build-tsan
mkdir -p "$out"
cxx=${CXX:-}
if [[ -z $cxx ]]; then
  if command -v clang++-16 >/dev/null 2>&1; then cxx=clang++-16; else cxx=g++; fi
fi
bin="$out/tsan_threads"
srcs=(test/native/tsan_threads.cc native/core/*.cc native/cpu/*.cc native/cuda/cuda_stub.cc)
if [[ ! -f $bin || -n $(find native test/native fuzz -newer "$bin" -type f -print -quit) ]]; then
  echo "== building $bin with $cxx -fsanitize=thread"
  "$cxx" -std=c++17 -O1 -g -ffp-contract=off -fsanitize=thread -fno-omit-frame-pointer -Inative/include -Inative -Ifuzz -pthread \
    "${srcs[@]}" -o "$bin"
fi
log=$(mktemp)
trap 'rm -f "$log"' EXIT
sym=$(command -v llvm-symbolizer-16 || command -v llvm-symbolizer || true)
rc=0
BRAINTRACE_NUM_THREADS=${BRAINTRACE_NUM_THREADS:-4} \
  TSAN_OPTIONS="halt_on_error=1:exitcode=66:second_deadlock_stack=1${sym:+:external_symbolizer_path=$sym}" \
  "$bin" fuzz/corpus/online_fuzzer/coupled-drtrl.bin 2>&1 | tee "$log" || rc=$?
if grep -q "WARNING: ThreadSanitizer: " "$log"; then echo "!! ThreadSanitizer report(s)"; report failed; exit 1; fi
[[ $rc == 0 ]] || { echo "!! tsan_threads failed (exit $rc)"; report failed; exit "$rc"; }
report passed
echo "== TSan run clean"
