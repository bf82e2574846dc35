// Pieces shared by the libFuzzer targets that run on the fixed plan (online_fuzzer,
// request_fuzzer): the session over fuzz/online_plan.inc, deterministic fill values, and the
// one rule of every target (any status is fine, Internal is a finding).
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <vector>

#include "braintrace/api.h"

namespace btfuzz {

#include "online_plan.inc"  // kPlanCode, kPlanFattr

// An Internal status is a broken invariant of the core: abort so libFuzzer keeps the input.
inline void require_not_internal(const bt::Status& s, const char* what) {
  if (s.code == bt::StatusCode::Internal) {
    std::fprintf(stderr, "%s returned Internal: %s\n", what, s.message.c_str());
    std::abort();
  }
}

inline int64_t numel(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

// n values base + 0.013 * (i mod 89): varied, bounded, the same on every run.
inline std::vector<double> filled(int64_t n, double base) {
  std::vector<double> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[static_cast<size_t>(i)] = base + 0.013 * double(i % 89);
  return v;
}

// A session over the fixed float64 plan; aborts when it does not load (the harness is broken,
// not the library).
inline std::unique_ptr<bt::Session> fixed_session() {
  std::unique_ptr<bt::Session> s;
  const bt::Status st = bt::Session::Create(kPlanCode, sizeof(kPlanCode) / sizeof(kPlanCode[0]), kPlanFattr,
                                            sizeof(kPlanFattr) / sizeof(kPlanFattr[0]), bt::Backend::Cpu, &s);
  if (!st.ok() || s->dtype() != bt::DType::F64) {
    std::fprintf(stderr, "the fixed plan does not load: %s\n", st.message.c_str());
    std::abort();
  }
  return s;
}

}  // namespace btfuzz
