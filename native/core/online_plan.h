// Validation of an OnlineConfig against a plan, and the trace layout it implies
// (braintrace/online.h). The session (core/session.cc) keeps the result and drives the
// per-step Jacobian requests and trace kernels from it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "braintrace/api.h"
#include "braintrace/online.h"
#include "core/plan.h"

namespace bt {

struct ResolvedGroup {
  int64_t B = 0, P = 0, S = 0, O = 0;   // O = P / B
  std::vector<int64_t> member_off;      // offset of each member on the state axis
  std::vector<int32_t> member_slot;     // state slot of each member's leaf
  bool need_d = false;                  // some relation targets it and D is not identically 0
  bool used = false;                    // some relation targets it (needs a learning signal)
  JacobianRequest d_request;            // Hid2Hid (valid when need_d)
};

struct ResolvedTarget {
  int32_t group = -1;
  JacobianRequest df_request;           // Df of the relation's y for this group
  int weight_trace = -1;                // D_RTRL: dense weight (B, I, O, S) or element-wise (B, O, S)
  int bias_trace = -1;                  // D_RTRL: bias (B, O, S)
  int epsf_trace = -1;                  // pp_prop: (B, O, S)
};

struct ResolvedRelation {
  RelationKind kind = RelationKind::Dense;
  int32_t x_node = -1, y_node = -1;
  int32_t weight_slot = -1, bias_slot = -1;
  // The transformed weight / bias input node (W_eff = f(theta)), or -1 for a raw Param leaf:
  // the contraction then goes to a scratch buffer, pulled back at the end of the call.
  int32_t weight_node = -1, bias_node = -1;
  int64_t B = 0, I = 0, O = 0;
  int xbar_trace = -1;                  // pp_prop, dense: (B, I)
  // pp_prop, dense: the weight gradient is accumulated over chunks of pp_chunk contractions
  // as one GEMM (dW += Xbar^T Q, K = pp_chunk * B); the session keeps a ring of the last
  // pp_chunk copies of xbar (B, I) and projections q (B, O). 0 for other relations.
  int64_t pp_chunk = 0;
  std::vector<ResolvedTarget> targets;
};

struct TraceSpec {
  std::string name;
  std::vector<int64_t> shape;
  int64_t numel = 0;
};

struct ResolvedOnline {
  OnlineConfig config;
  std::vector<ResolvedGroup> groups;
  std::vector<ResolvedRelation> relations;
  std::vector<TraceSpec> traces;        // in trace_info order
  std::vector<char> non_temporal;       // per param slot
};

// pp_prop's chunk length for a dense relation of batch B, I inputs and O outputs with
// values of `elem_bytes` bytes: enough contractions that the GEMM's depth C * B reaches
// about 1024 (past that, a packed GEMM gains nothing), at most 64, and a ring
// C * B * (I + O) values of at most 8 MiB (at least one step).
int64_t pp_chunk_length(int64_t B, int64_t I, int64_t O, size_t elem_bytes);

// Checks every field of `config` against the plan (InvalidArgument naming the field, the
// expected and the actual value) and fills *out. Touches nothing else.
Status resolve_online(const Plan& plan, const OnlineConfig& config, ResolvedOnline* out);

}  // namespace bt
