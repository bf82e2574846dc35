#!/usr/bin/env bash
# Cross-compiles the standalone GEMM check (test/native/gemm_check.cc with
# native/cpu/gemm_{dispatch,x86,neon}.cc: every usable kernel, on arm64 the NEON and the
# portable one, against a naive float64 loop) for arm64 with g++-aarch64-linux-gnu and
# runs it under qemu-aarch64-static. Exits 0 when every check passes; skips (exit 0, with a
# message saying what to install) when the cross compiler or qemu is missing, unless
# BRAINTRACE_REQUIRE_ARM64=1, which makes a missing tool an error (for CI).
#
#   scripts/test-gemm-arm64.sh            (Debian/Ubuntu: apt-get install -y g++-aarch64-linux-gnu qemu-user-static)
#   scripts/test-gemm-arm64.sh --native   the same program built and run for this machine
#   scripts/test-gemm-arm64.sh --json F   also writes a jest-style report to F (for .ci/run):
#                                         numPassedTests / numFailedTests from the checks
#
# Environment: CXX_ARM64 (default aarch64-linux-gnu-g++), QEMU_ARM64 (default qemu-aarch64-static).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
json=""
if [[ "${1:-}" == "--json" ]]; then
  json=$2
  shift 2
fi
out=$(mktemp -d "${TMPDIR:-/tmp}/bt-gemm-arm64.XXXXXX")
trap 'rm -rf "$out"' EXIT
srcs=(test/native/gemm_check.cc native/cpu/gemm_dispatch.cc native/cpu/gemm_x86.cc native/cpu/gemm_neon.cc)
flags=(-std=c++17 -O2 -Wall -Wextra -Inative)

if [[ "${1:-}" == "--native" ]]; then
  "${CXX:-c++}" "${flags[@]}" -o "$out/gemm_check" "${srcs[@]}"
  "$out/gemm_check"
  exit $?
fi

cxx=${CXX_ARM64:-aarch64-linux-gnu-g++}
qemu=${QEMU_ARM64:-qemu-aarch64-static}
missing=""
command -v "$cxx" >/dev/null 2>&1 || missing="$cxx (apt-get install -y g++-aarch64-linux-gnu)"
command -v "$qemu" >/dev/null 2>&1 || missing="${missing:+$missing, }$qemu (apt-get install -y qemu-user-static)"
if [[ -n "$missing" ]]; then
  if [[ "${BRAINTRACE_REQUIRE_ARM64:-0}" == "1" ]]; then
    echo "test-gemm-arm64: missing $missing" >&2
    exit 1
  fi
  echo "test-gemm-arm64: SKIPPED, missing $missing"
  exit 0
fi

# Static, so qemu needs no arm64 sysroot at run time.
"$cxx" "${flags[@]}" -static -o "$out/gemm_check" "${srcs[@]}"
echo "test-gemm-arm64: built $("$cxx" --version | head -1); running under $qemu"
rc=0
"$qemu" "$out/gemm_check" | tee "$out/log" || rc=$?
if [[ -n "$json" ]]; then
  # The check's last line is "N checks, M failed"; a crash before it counts as one failure.
  node -e '
    const [log, file, rc] = process.argv.slice(1);
    const m = /(\d+) checks, (\d+) failed/.exec(require("fs").readFileSync(log, "utf8"));
    const total = m ? +m[1] : 0, failed = m ? +m[2] : 1;
    const ok = !!m && failed === 0 && rc === "0";
    require("fs").writeFileSync(file, JSON.stringify({ numPassedTests: total - (m ? failed : 0),
      numFailedTests: failed, numRuntimeErrorTestSuites: 0, success: ok }));
  ' "$out/log" "$json" "$rc"
fi
exit $rc
