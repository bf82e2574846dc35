#!/usr/bin/env bash
# npm run fuzz: builds the libFuzzer targets in fuzz/ (the native core linked directly, no
# Node; clang + libFuzzer + ASan + UBSan) into build-fuzz/ and runs each for a while.
#
#   scripts/fuzz.sh                  bounded run: about 1 minute per target (what CI runs)
#   scripts/fuzz.sh --minutes N      N minutes per target (a long run)
#   scripts/fuzz.sh --seconds S      S seconds per target
#   scripts/fuzz.sh --json FILE      also write a pass/fail report (jest's JSON fields) to FILE
#   scripts/fuzz.sh --build-only     build the targets and stop
#   scripts/fuzz.sh TARGET...        only these targets (default: every fuzz/*_fuzzer.cc:
#                                    plan_fuzzer, online_fuzzer, request_fuzzer; and
#                                    checkpoint, the JS mutation fuzzer of the checkpoint
#                                    decoder, fuzz/checkpoint-fuzz.js, run on dist/)
#
# Seeds: fuzz/corpus/<target>/ (read only; `node scripts/fuzz-corpus.js` rewrites them from
# real models) and fuzz/regressions/<target>/ (inputs that once crashed a target: kept by
# hand, replayed by every run). What a run finds is kept in build-fuzz/corpus/<target>/.
# A crash, leak, timeout (> 25 s per input), sanitizer report or Internal status leaves its
# input in build-fuzz/artifacts/ and makes this script exit non-zero. Reproduce one with
#   build-fuzz/<target> build-fuzz/artifacts/<target>-crash-...
# Needs clang++ with libFuzzer (Debian: clang-16 libfuzzer-16-dev libclang-rt-16-dev);
# CXX=... picks the compiler (default: clang++-16, else clang++).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$(pwd)

seconds=60
json=""
build_only=0
targets=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --minutes) seconds=$(awk -v m="$2" 'BEGIN { printf "%d", m * 60 }'); shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    --json) json=$2; shift 2 ;;
    --build-only) build_only=1; shift ;;
    -h|--help) sed -n 2,20p "$0"; exit 0 ;;
    *) targets+=("$1"); shift ;;
  esac
done
if [[ ${#targets[@]} == 0 ]]; then  # every fuzz/*_fuzzer.cc
  for f in fuzz/*_fuzzer.cc; do targets+=("$(basename "$f" .cc)"); done
  targets+=(checkpoint)
fi
if ! [[ $seconds =~ ^[0-9]+$ ]] || [[ $seconds -lt 1 ]]; then
  echo "!! the run time must be at least 1 second (got '$seconds')"; exit 2
fi

cxx=${CXX:-}
if [[ -z $cxx ]]; then
  if command -v clang++-16 >/dev/null 2>&1; then cxx=clang++-16; else cxx=clang++; fi
fi
command -v "$cxx" >/dev/null 2>&1 || { echo "!! $cxx not found (Debian: apt-get install clang-16 libfuzzer-16-dev libclang-rt-16-dev)"; exit 2; }

out="$root/build-fuzz"
mkdir -p "$out/obj" "$out/artifacts"
san=(-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer)
cflags=(-std=c++17 -O1 -g -ffp-contract=off "${san[@]}" -Inative/include -Inative -Ifuzz -pthread)

# Core objects (instrumented for coverage, not linked with the fuzzer main), rebuilt when
# the source or any header is newer.
sources=(native/core/*.cc native/cpu/*.cc native/cuda/cuda_stub.cc)
newest_header=$(find native -name '*.h' | xargs ls -t | head -1)
newest_fuzz=$(find fuzz -maxdepth 1 -name '*.h' -o -maxdepth 1 -name '*.inc' | xargs ls -t | head -1)
todo=()
for src in "${sources[@]}"; do
  obj="$out/obj/$(echo "$src" | tr '/' '_').o"
  if [[ ! -f $obj || $src -nt $obj || $newest_header -nt $obj ]]; then todo+=("$src"); fi
done
if [[ ${#todo[@]} -gt 0 ]]; then
  echo "== compiling ${#todo[@]} core sources with $cxx (ASan+UBSan, fuzzer coverage)"
  printf '%s\n' "${todo[@]}" | xargs -P "$(nproc)" -I{} sh -c \
    'o="$1/obj/$(echo "$2" | tr / _).o"; shift 2; exec "$@" -fsanitize=fuzzer-no-link -c "$0" -o "$o"' \
    {} "$out" {} "$cxx" "${cflags[@]}"
fi
objs=()
for src in "${sources[@]}"; do objs+=("$out/obj/$(echo "$src" | tr '/' '_').o"); done
for t in "${targets[@]}"; do
  if [[ $t == checkpoint ]]; then  # JS: compile the TypeScript it fuzzes
    echo "== checkpoint: npm run build:ts"
    npm run --silent build:ts
    continue
  fi
  [[ -f fuzz/$t.cc ]] || { echo "!! unknown target '$t' (no fuzz/$t.cc)"; exit 2; }
  bin="$out/$t"
  if [[ ! -f $bin || fuzz/$t.cc -nt $bin || $newest_header -nt $bin || $newest_fuzz -nt $bin ||
        -n $(find "$out/obj" -newer "$bin" -print -quit) ]]; then
    echo "== linking $bin"
    "$cxx" "${cflags[@]}" -fsanitize=fuzzer "fuzz/$t.cc" "${objs[@]}" -o "$bin"
  fi
done
[[ $build_only == 1 ]] && exit 0

sym=$(command -v llvm-symbolizer-16 || command -v llvm-symbolizer || true)
[[ -n $sym ]] && export ASAN_SYMBOLIZER_PATH=$sym
export ASAN_OPTIONS="detect_leaks=1:halt_on_error=1:allocator_may_return_null=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
passed=0
failed=0
results=()
for t in "${targets[@]}"; do
  mkdir -p "$out/corpus/$t"
  log="$out/$t.log"
  echo "== $t: ${seconds}s (seeds: fuzz/corpus/$t, corpus: build-fuzz/corpus/$t, log: $log)"
  seeds=("fuzz/corpus/$t")
  [[ -d fuzz/regressions/$t ]] && seeds+=("fuzz/regressions/$t")
  rc=0
  if [[ $t == checkpoint ]]; then
    # Failing inputs go to fuzz/checkpoint-failures/ (git-ignored); see the script's header.
    node fuzz/checkpoint-fuzz.js --seconds "$seconds" >"$log" 2>&1 || rc=$?
  else
    "$out/$t" -max_total_time="$seconds" -timeout=25 -rss_limit_mb=2048 -print_final_stats=1 \
      -artifact_prefix="$out/artifacts/$t-" "$out/corpus/$t" "${seeds[@]}" >"$log" 2>&1 || rc=$?
  fi
  runs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+|checkpoint fuzz: [0-9]+ inputs' "$log" | grep -oE '[0-9]+' | tail -1 || echo '?')
  cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1 | grep -oE '[0-9]+' || echo '?')
  if [[ $rc == 0 ]] && ! grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error:' "$log"; then
    echo "   $t: ok, $runs inputs run, coverage $cov edges"
    passed=$((passed + 1))
    results+=("{\"title\":\"$t\",\"status\":\"passed\"}")
  else
    echo "!! $t: FAILED (exit $rc) after $runs inputs; the report:"
    grep -nE 'ERROR:|runtime error:|SUMMARY:|Test unit written|returned Internal' "$log" | head -20 || true
    failed=$((failed + 1))
    results+=("{\"title\":\"$t\",\"status\":\"failed\"}")
  fi
done

if [[ -n $json ]]; then
  success=true
  [[ $failed != 0 ]] && success=false
  list=$(IFS=,; echo "${results[*]}")
  printf '{"numPassedTests":%d,"numFailedTests":%d,"numRuntimeErrorTestSuites":0,"success":%s,"testResults":[{"name":"fuzz","assertionResults":[%s]}]}\n' \
    "$passed" "$failed" "$success" "$list" >"$json"
fi
echo "== fuzz: $passed passed, $failed failed"
[[ $failed == 0 ]]
