// Element-wise fusion, decided once per session (SessionImpl::init).
//
// The interpreter's sweeps (forward, JVP and the Jacobian passes, VJP) walk the plan in a
// schedule instead of node-id order: a topological order cut into items, each either one
// node or a fusion group of element-wise nodes of the same numel (at most kEwChainMax),
// whose tasks the interpreter hands to Executor::elementwise_chain as one fused task (the
// CPU runs all of them tile by tile, so the intermediates stay in cache). Every node value,
// tangent and cotangent is still written out: what the rest of the engine reads is the
// same, bit for bit.
//
// The schedule is built in one pass over the nodes in id order with one open group: an
// element-wise node joins it (a new group starts when the numel differs or the group is
// full); any other node is hoisted in front of the open group when it reads no member's
// value and no input that a member also reads, and otherwise closes the group first.
// Hoisting moves a node only past element-wise nodes it is independent of, so
//   * forward and JVP values are the same (each node is a function of its inputs);
//   * the VJP walks the schedule in reverse, and every cotangent receives its
//     contributions in the same order as in the reverse node-id sweep: two consumers of one
//     node are never reordered (the shared-input rule), so the sums are bit-identical.
// With fusion disabled the schedule is the node-id order, one node per item.
#pragma once

#include <cstdint>
#include <vector>

#include "core/plan.h"

namespace bt {

// One step of the schedule: nodes order[begin, end).
struct FusionItem {
  int32_t begin = 0;
  int32_t end = 0;
  bool group = false;  // a fusion group of element-wise nodes (same numel); else one node
};

struct FusionSchedule {
  bool enabled = false;
  std::vector<int32_t> order;     // every node id once, a topological order
  std::vector<FusionItem> items;  // consecutive ranges covering `order`
  int groups = 0;                 // items with group == true and >= 2 members
  int fused_nodes = 0;            // nodes in those groups
};

// The schedule of `plan`: fused as described above when `enabled`, else node-id order with
// one node per item.
FusionSchedule plan_fusion(const Plan& plan, bool enabled);

// False when the environment variable BRAINTRACE_FUSE is "0" (fusion off; read when a
// session is created), true otherwise.
bool fusion_enabled_by_env();

}  // namespace bt
