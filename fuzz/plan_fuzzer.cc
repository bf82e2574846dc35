// libFuzzer target: the plan decoder, session creation and one evaluate on the decoded plan.
//
// Input layout (fuzz_input.h): a u32 count F, then F float attributes (f64, as many as the
// input holds), then the rest of the input as the plan's int32 code array. Seeds in
// fuzz/corpus/plan_fuzzer/ are real plans written by scripts/fuzz-corpus.js.
//
// Every plan goes through decode_plan (the whole decoder). A plan that decodes is created as a
// session only when its values fit a small harness budget (kHarnessValues: a valid plan may
// ask for up to kMaxTotalBytes, which is the library's limit and not something a fuzzer can
// allocate), then evaluated once with a forward pass, a JVP and a VJP, every input, tangent and
// cotangent filled with bounded values. Any status is fine; a crash, a sanitizer report or an
// Internal status (a broken invariant) is a finding.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "braintrace/api.h"
#include "core/plan.h"
#include "fuzz_input.h"

namespace {

// Values the harness lets one decoded plan have before it creates a session (about 8 MB of
// f64 over all nodes); bigger plans are decoded only.
constexpr int64_t kHarnessValues = int64_t(1) << 20;
// Work bound: MatMul nodes cost M*K*N; a plan above this is decoded only.
constexpr double kHarnessFlops = 1e8;

double flops(const bt::Plan& p) {
  double f = 0;
  for (const bt::PlanNode& n : p.nodes) {
    if (n.op == bt::OpCode::MatMul || n.op == bt::OpCode::EtpMatMul) {
      const auto& a = p.nodes[n.inputs[0]].shape;
      f += double(n.numel) * double(a.empty() ? 1 : a.back());
    } else {
      f += double(n.numel);
    }
  }
  return f;
}

template <typename T>
std::vector<T> filled(int64_t n, double base) {
  std::vector<T> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[static_cast<size_t>(i)] = static_cast<T>(base + 0.01 * double(i % 97));
  return v;
}

void require_not_internal(const bt::Status& s, const char* what) {
  if (s.code == bt::StatusCode::Internal) {
    std::fprintf(stderr, "%s returned Internal: %s\n", what, s.message.c_str());
    std::abort();
  }
}

template <typename T>
void evaluate_once(bt::Session& s) {
  std::vector<std::vector<T>> store;
  auto slot_values = [&](const std::vector<int64_t>& shape, double base) -> const void* {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;  // the session's own shape: within its checked size
    store.push_back(filled<T>(n, base));
    return store.back().data();
  };
  store.reserve(64 + 4 * static_cast<size_t>(s.num_inputs() + s.num_params() + s.num_states() +
                                             s.num_output_entries()));
  bt::EvalArgs a;
  for (int i = 0; i < s.num_inputs(); ++i) a.inputs.push_back(slot_values(s.input_shape(i), 0.1));
  for (int i = 0; i < s.num_params(); ++i) a.params.push_back(slot_values(s.param_shape(i), -0.2));
  for (int i = 0; i < s.num_states(); ++i) a.states.push_back(slot_values(s.state_shape(i), 0.3));
  for (int i = 0; i < s.num_inputs(); ++i) a.input_tangents.push_back(slot_values(s.input_shape(i), 1.0));
  for (int i = 0; i < s.num_params(); ++i) a.param_tangents.push_back(nullptr);
  for (int i = 0; i < s.num_states(); ++i) a.state_tangents.push_back(slot_values(s.state_shape(i), 0.5));
  for (int e = 0; e < s.num_output_entries(); ++e)
    a.output_cotangents.push_back(slot_values(s.output_entry_shape(e), 1.0));
  bt::EvalResult r;
  require_not_internal(s.evaluate(a, &r), "evaluate");
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  setenv("BRAINTRACE_NUM_THREADS", "2", 0);  // the pool is exercised, the run stays cheap
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  btfuzz::PlanInput in = btfuzz::split_plan_input(data, size);
  bt::Plan plan;
  bt::Status st = bt::decode_plan(in.code.data(), in.code.size(), in.fattr.data(), in.fattr.size(), &plan);
  require_not_internal(st, "decode_plan");
  if (!st.ok()) return 0;
  int64_t values = 0;
  for (const bt::PlanNode& n : plan.nodes) values += n.numel;  // each <= 2^40, count < 2^31: no overflow
  if (values > kHarnessValues || flops(plan) > kHarnessFlops) return 0;

  std::unique_ptr<bt::Session> s;
  st = bt::Session::Create(in.code.data(), in.code.size(), in.fattr.data(), in.fattr.size(), bt::Backend::Cpu, &s);
  require_not_internal(st, "Session::Create");
  if (!st.ok()) return 0;
  if (s->dtype() == bt::DType::F64) evaluate_once<double>(*s);
  else evaluate_once<float>(*s);
  return 0;
}
