// libFuzzer target: the online configuration (configure_online) against a fixed valid plan,
// then a short run_online and a trace round trip.
//
// The plan (fuzz/online_plan.inc, written by scripts/fuzz-corpus.js) is a real model traced by
// the TypeScript compiler: a dense relation with bias and an element-wise relation into a
// two-member hidden group, a spiking readout and an MSE loss, batch 2, float64. The input
// (fuzz_input.h) is an OnlineConfig plus run arguments and a trace step count; seeds in fuzz/corpus/online_fuzzer/ are the
// configurations the library itself sends for that plan (D_RTRL, pp_prop), plus mutations.
// Any status is fine; a crash, a sanitizer report or an Internal status is a finding.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <vector>

#include "braintrace/api.h"
#include "braintrace/online.h"
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
  for (int i = 0; i < s->num_params(); ++i) {
    const std::vector<double> v = filled(numel(s->param_shape(i)), -0.3 + 0.1 * i);
    require_not_internal(s->set_param(i, v.data(), v.size()), "set_param");
  }
  for (int i = 0; i < s->num_states(); ++i) {
    const std::vector<double> v = filled(numel(s->state_shape(i)), 0.2);
    require_not_internal(s->set_state(i, v.data(), v.size()), "set_state");
  }

  btfuzz::OnlineInput in = btfuzz::parse_online_input(data, size);
  bt::Status st = s->configure_online(in.config);
  require_not_internal(st, "configure_online");
  if (!st.ok()) return 0;

  std::vector<bt::TraceInfo> info;
  require_not_internal(s->trace_info(&info), "trace_info");
  for (size_t k = 0; k < info.size(); ++k) {
    std::vector<double> t(static_cast<size_t>(numel(info[k].shape)));
    require_not_internal(s->get_trace(static_cast<int>(k), t.data(), t.size()), "get_trace");
    for (double& x : t) x += 0.01;
    require_not_internal(s->set_trace(static_cast<int>(k), t.data(), t.size()), "set_trace");
  }

  require_not_internal(s->set_trace_steps(in.trace_steps), "set_trace_steps");

  std::vector<std::vector<double>> inputs;
  bt::OnlineArgs a;
  a.steps = in.steps;
  a.chunk = in.chunk;
  a.compute_grads = in.compute_grads;
  for (int i = 0; i < s->num_inputs(); ++i) {
    inputs.push_back(filled(in.steps * numel(s->input_shape(i)), 0.05 * (i + 1)));
    a.inputs.push_back(inputs.back().data());
  }
  bt::OnlineResult r;
  require_not_internal(s->run_online(a, &r), "run_online");
  return 0;
}
