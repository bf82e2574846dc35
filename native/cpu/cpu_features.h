// CPU feature detection shared by the CPU driver's run-time ISA choices (the element-wise
// table of cpu/ew_dispatch.h, the trace loops of cpu/trace_cpu.cc).
#pragma once

#include <stdlib.h>
#include <string.h>

namespace bt {

// True when this CPU (and its OS) runs code of the x86 feature named by the string literal
// `feature` (as __builtin_cpu_supports takes it); false off x86 and off GCC / Clang.
#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#define BT_CPU_SUPPORTS(feature) (__builtin_cpu_init(), __builtin_cpu_supports(feature) != 0)
#else
#define BT_CPU_SUPPORTS(feature) false
#endif

// AVX2 / AVX-512 Foundation on this CPU (and its OS), decided once per process.
inline bool cpu_has_avx2() {
  static const bool has = BT_CPU_SUPPORTS("avx2");
  return has;
}
inline bool cpu_has_avx512f() {
  static const bool has = BT_CPU_SUPPORTS("avx512f");
  return has;
}

// The instruction sets of the CPU driver's run-time clones, narrowest first.
enum class CpuIsa : int { Portable = 0, Avx2 = 1, Avx512 = 2 };

// The widest clone this CPU runs, capped by the environment variable `var` when it names
// one: "portable" (or "sse2"), "avx2", "avx512". Unset or any other value: no cap.
inline CpuIsa cpu_isa_capped(const char* var) {
  CpuIsa isa = cpu_has_avx512f() && cpu_has_avx2() ? CpuIsa::Avx512 : cpu_has_avx2() ? CpuIsa::Avx2 : CpuIsa::Portable;
  const char* e = getenv(var);
  if (e == nullptr) return isa;
  CpuIsa cap = isa;
  if (strcmp(e, "portable") == 0 || strcmp(e, "sse2") == 0) cap = CpuIsa::Portable;
  else if (strcmp(e, "avx2") == 0) cap = CpuIsa::Avx2;
  else if (strcmp(e, "avx512") == 0) cap = CpuIsa::Avx512;
  return static_cast<int>(cap) < static_cast<int>(isa) ? cap : isa;
}

// "portable", "avx2" or "avx512".
inline const char* cpu_isa_name(CpuIsa isa) {
  return isa == CpuIsa::Avx512 ? "avx512" : isa == CpuIsa::Avx2 ? "avx2" : "portable";
}

}  // namespace bt
