// Byte layouts of the fuzz targets' inputs (written by scripts/fuzz-corpus.js, read here).
// All integers little-endian; reading past the end of the input yields zeros.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "braintrace/api.h"
#include "braintrace/online.h"

namespace btfuzz {

// plan_fuzzer: u32 F, then min(F, what fits) f64 float attributes, then the rest as int32 code
// (a trailing partial int32 is dropped).
struct PlanInput {
  std::vector<int32_t> code;
  std::vector<double> fattr;
};

inline PlanInput split_plan_input(const uint8_t* data, size_t size) {
  PlanInput in;
  uint32_t nf = 0;
  size_t pos = 0;
  if (size >= 4) {
    std::memcpy(&nf, data, 4);
    pos = 4;
  }
  const size_t fit = (size - pos) / 8;
  const size_t n = nf < fit ? nf : fit;
  in.fattr.resize(n);
  if (n) std::memcpy(in.fattr.data(), data + pos, n * 8);
  pos += n * 8;
  in.code.resize((size - pos) / 4);
  if (!in.code.empty()) std::memcpy(in.code.data(), data + pos, in.code.size() * 4);
  return in;
}

// A stream of int32 values (zeros past the end).
struct Ints {
  const uint8_t* data;
  size_t size;
  size_t pos = 0;
  int32_t next() {
    int32_t v = 0;
    if (pos + 4 <= size) std::memcpy(&v, data + pos, 4);
    pos += 4;
    return v;
  }
  // A list length: 0..64 (the lists are well-formed vectors; their contents are what the
  // library validates).
  size_t count() { return static_cast<uint32_t>(next()) % 65; }
  std::vector<int32_t> list() {
    std::vector<int32_t> v(count());
    for (auto& x : v) x = next();
    return v;
  }
};

// online_fuzzer: an OnlineConfig and the arguments of one run_online, as int32 values:
//   algorithm, decay_x * 1e6, decay_f * 1e6,
//   G, G x { M, M x (leaf, new, width), positions, zero_recurrence, probe_positions },
//   R, R x { kind, x_node, y_node, weight_slot, bias_slot, weight_node, bias_node,
//            groups list, tail_probe list },
//   blocked_transition list, etp_nodes list, non_temporal_slots list,
//   steps (1 + v % 8), chunk (v % 10, may be <= 0), compute_grads (v & 1),
//   trace steps (two values: low and high 32 bits of an int64, set before the run)
// where a list is a count (v % 65) and that many values.
struct OnlineInput {
  bt::OnlineConfig config;
  int64_t steps = 1;
  int64_t chunk = 1;
  bool compute_grads = true;
  int64_t trace_steps = 0;
};

inline OnlineInput parse_online_input(const uint8_t* data, size_t size) {
  Ints r{data, size};
  OnlineInput in;
  bt::OnlineConfig& c = in.config;
  c.algorithm = static_cast<bt::TraceAlgorithm>(r.next());
  c.decay_x = r.next() * 1e-6;
  c.decay_f = r.next() * 1e-6;
  c.groups.resize(r.count());
  for (bt::OnlineGroup& g : c.groups) {
    g.members.resize(r.count());
    for (bt::GroupMember& m : g.members) {
      m.leaf_node = r.next();
      m.new_node = r.next();
      m.width = r.next();
    }
    g.positions = r.next();
    g.zero_recurrence = r.next() & 1;
    g.probe_positions = r.next() & 1;
  }
  c.relations.resize(r.count());
  for (bt::OnlineRelation& rel : c.relations) {
    rel.kind = static_cast<bt::RelationKind>(r.next());
    rel.x_node = r.next();
    rel.y_node = r.next();
    rel.weight_slot = r.next();
    rel.bias_slot = r.next();
    rel.weight_node = r.next();
    rel.bias_node = r.next();
    rel.groups = r.list();
    for (int32_t t : r.list()) rel.tail_probe.push_back(static_cast<uint8_t>(t & 1));
  }
  c.blocked_transition = r.list();
  c.etp_nodes = r.list();
  c.non_temporal_slots = r.list();
  in.steps = 1 + static_cast<uint32_t>(r.next()) % 8;
  in.chunk = r.next() % 10;
  in.compute_grads = r.next() & 1;
  const uint32_t lo = static_cast<uint32_t>(r.next());
  const uint32_t hi = static_cast<uint32_t>(r.next());
  in.trace_steps = static_cast<int64_t>((uint64_t(hi) << 32) | lo);
  return in;
}

// request_fuzzer: Jacobian requests and node fetches for evaluate and run_sequence on the
// fixed plan, as int32 values:
//   J, J x { kind, M, M x (leaf, new, width), y_node, blocked list, probe_positions, positions },
//   fetch_values list, fetch_cotangents list, stop_cotangents list,
//   steps (1 + v % 4), flags (bit 0: JVP tangents, bit 1: VJP cotangents, bit 2: BPTT grads)
// where a list is a count (v % 65) and that many values; J is v % 9.
struct RequestInput {
  std::vector<bt::JacobianRequest> jacobians;
  std::vector<int32_t> fetch_values, fetch_cotangents, stop_cotangents;
  int64_t steps = 1;
  bool jvp = false, vjp = false, grads = false;
};

inline RequestInput parse_request_input(const uint8_t* data, size_t size) {
  Ints r{data, size};
  RequestInput in;
  in.jacobians.resize(static_cast<uint32_t>(r.next()) % 9);
  for (bt::JacobianRequest& q : in.jacobians) {
    q.kind = static_cast<bt::JacobianRequest::Kind>(r.next());
    q.members.resize(r.count());
    for (bt::GroupMember& m : q.members) {
      m.leaf_node = r.next();
      m.new_node = r.next();
      m.width = r.next();
    }
    q.y_node = r.next();
    q.blocked = r.list();
    q.probe_positions = r.next() & 1;
    q.positions = r.next();
  }
  in.fetch_values = r.list();
  in.fetch_cotangents = r.list();
  in.stop_cotangents = r.list();
  in.steps = 1 + static_cast<uint32_t>(r.next()) % 4;
  const int32_t flags = r.next();
  in.jvp = flags & 1;
  in.vjp = flags & 2;
  in.grads = flags & 4;
  return in;
}

}  // namespace btfuzz
