// libFuzzer target: per-step requests on the fixed valid plan of online_fuzzer
// (fuzz/online_plan.inc): Jacobian requests (hid2hid, df; members, widths, positions, probing,
// blocked nodes), node value and cotangent fetches and stopped cotangents, in one evaluate
// (optionally with a JVP and a VJP) and one run_sequence of 1 to 4 steps (optionally BPTT).
//
// Input layout: fuzz_input.h (RequestInput). Seeds in fuzz/corpus/request_fuzzer/ are the
// Jacobian requests of the library's own online configurations of the plan (each group as a
// hid2hid request, each relation target as a df request), plus mutations. Any status is fine;
// a crash, a sanitizer report or an Internal status is a finding.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <vector>

#include "braintrace/api.h"
#include "fuzz_input.h"
#include "harness.h"

using btfuzz::filled;
using btfuzz::numel;
using btfuzz::require_not_internal;

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  setenv("BRAINTRACE_NUM_THREADS", "2", 0);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::unique_ptr<bt::Session> s = btfuzz::fixed_session();
  const btfuzz::RequestInput in = btfuzz::parse_request_input(data, size);
  std::vector<std::vector<double>> store;
  store.reserve(256);
  auto values = [&](const std::vector<int64_t>& shape, int64_t steps, double base) -> const void* {
    store.push_back(filled(steps * numel(shape), base));
    return store.back().data();
  };

  bt::EvalArgs a;
  for (int i = 0; i < s->num_inputs(); ++i) a.inputs.push_back(values(s->input_shape(i), 1, 0.1 * (i + 1)));
  for (int i = 0; i < s->num_params(); ++i) a.params.push_back(values(s->param_shape(i), 1, -0.3));
  for (int i = 0; i < s->num_states(); ++i) a.states.push_back(values(s->state_shape(i), 1, 0.4));
  if (in.jvp) {
    for (int i = 0; i < s->num_inputs(); ++i) a.input_tangents.push_back(values(s->input_shape(i), 1, 1.0));
    for (int i = 0; i < s->num_params(); ++i) a.param_tangents.push_back(i % 2 ? nullptr : values(s->param_shape(i), 1, 0.5));
    for (int i = 0; i < s->num_states(); ++i) a.state_tangents.push_back(values(s->state_shape(i), 1, -0.5));
  }
  if (in.vjp)
    for (int e = 0; e < s->num_output_entries(); ++e)
      a.output_cotangents.push_back(e % 3 == 2 ? nullptr : values(s->output_entry_shape(e), 1, 1.0));
  a.fetch_values = in.fetch_values;
  a.fetch_cotangents = in.fetch_cotangents;
  a.stop_cotangents = in.stop_cotangents;
  a.jacobians = in.jacobians;
  bt::EvalResult r;
  require_not_internal(s->evaluate(a, &r), "evaluate");

  for (int i = 0; i < s->num_params(); ++i) {
    const std::vector<double> p = filled(numel(s->param_shape(i)), 0.2 - 0.1 * i);
    require_not_internal(s->set_param(i, p.data(), p.size()), "set_param");
  }
  bt::SequenceArgs q;
  q.steps = in.steps;
  for (int i = 0; i < s->num_inputs(); ++i) q.inputs.push_back(values(s->input_shape(i), in.steps, 0.05));
  q.compute_grads = in.grads;
  q.fetch_values = in.fetch_values;
  q.jacobians = in.jacobians;
  bt::SequenceResult sr;
  require_not_internal(s->run_sequence(q, &sr), "run_sequence");
  return 0;
}
