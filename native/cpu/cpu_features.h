// CPU feature detection shared by the CPU driver's run-time ISA choices (the element-wise
// table of cpu/ew_dispatch.h, the trace loops of cpu/trace_cpu.cc).
#pragma once

namespace bt {

// True when this CPU (and its OS) runs AVX2 code; decided once per process. Always false
// off x86.
inline bool cpu_has_avx2() {
#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
  static const bool has = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") != 0;
  }();
  return has;
#else
  return false;
#endif
}

}  // namespace bt
