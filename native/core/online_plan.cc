// Validation of an OnlineConfig against a plan and the resulting trace layout.
#include "core/online_plan.h"

#include <algorithm>
#include <cmath>

#include "core/checked.h"
#include "core/status_util.h"

namespace bt {
namespace {

Status arg(const std::string& m) { return Status::Error(StatusCode::InvalidArgument, "configure_online: " + m); }

std::string node_desc(const Plan& plan, int32_t id) {
  return "node " + std::to_string(id) + " (" + kOpNames[static_cast<int>(plan.nodes[id].op)] + " " +
         shape_str(plan.nodes[id].shape) + ")";
}

// Validates a relation's weight / bias input `input` (of the op `y_node`) against its param
// slot: either the slot's Param leaf itself (*resolved = -1), or, when `given` names it, a
// transform of that leaf alone (no Input or State leaf, no other Param leaf; *resolved = input).
Status check_weight_input(const Plan& plan, const std::string& field, int32_t given, int32_t input, int32_t slot,
                          int32_t y_node, const char* which, int32_t* resolved) {
  const int32_t leaf = plan.param_nodes[static_cast<size_t>(slot)];
  *resolved = -1;
  if (given < -1 || given >= static_cast<int32_t>(plan.nodes.size()))
    return arg(field + " must be -1 or a node id in [0, " + std::to_string(plan.nodes.size()) + "), got " +
               std::to_string(given));
  if (input == leaf && (given == -1 || given == leaf)) return Status::Ok();
  if (given == -1)
    return arg(field + " is -1 (the raw ParamState), but the " + which + " of " + node_desc(plan, y_node) + " is " +
               node_desc(plan, input) + ", not the Param leaf of slot " + std::to_string(slot) + " (" +
               node_desc(plan, leaf) + "): give the transformed weight's node in " + field);
  if (given != input)
    return arg(field + " must be the " + which + " of " + node_desc(plan, y_node) + " (node " + std::to_string(input) +
               "), got " + std::to_string(given));
  // Ancestors of the transform: Params and Consts only, and exactly the slot's Param leaf.
  std::vector<char> seen(plan.nodes.size(), 0);
  std::vector<int32_t> stack{input};
  seen[static_cast<size_t>(input)] = 1;
  bool reaches = false;
  while (!stack.empty()) {
    const int32_t cur = stack.back();
    stack.pop_back();
    const PlanNode& n = plan.nodes[static_cast<size_t>(cur)];
    if (n.op == OpCode::Input || n.op == OpCode::State)
      return arg(field + " " + node_desc(plan, input) + " depends on " + node_desc(plan, cur) +
                 ": a transformed weight must depend on params and constants only");
    if (n.op == OpCode::Param) {
      if (cur != leaf)
        return arg(field + " " + node_desc(plan, input) + " depends on the Param leaf " + node_desc(plan, cur) +
                   ", not only on that of slot " + std::to_string(slot) + " (" + node_desc(plan, leaf) + ")");
      reaches = true;
    }
    for (int32_t j : n.inputs)
      if (!seen[static_cast<size_t>(j)]) {
        seen[static_cast<size_t>(j)] = 1;
        stack.push_back(j);
      }
  }
  if (!reaches)
    return arg(field + " " + node_desc(plan, input) + " does not depend on the Param leaf of slot " +
               std::to_string(slot) + " (" + node_desc(plan, leaf) + ")");
  *resolved = input;
  return Status::Ok();
}

}  // namespace

int64_t pp_chunk_length(int64_t B, int64_t I, int64_t O, size_t elem_bytes) {
  constexpr int64_t kDepth = 1024, kMaxChunk = 64, kMaxRingBytes = int64_t(8) << 20;
  const int64_t b = std::max<int64_t>(B, 1);
  int64_t c = std::min<int64_t>(kMaxChunk, (kDepth + b - 1) / b);
  const double step_bytes = double(b) * double(std::max<int64_t>(I + O, 1)) * double(elem_bytes);
  const int64_t fit = static_cast<int64_t>(std::min(double(kMaxChunk), double(kMaxRingBytes) / step_bytes));
  return std::max<int64_t>(1, std::min(c, fit));
}

Status resolve_online(const Plan& plan, const OnlineConfig& c, ResolvedOnline* out) {
  const int64_t nn = static_cast<int64_t>(plan.nodes.size());
  const int np = static_cast<int>(plan.param_nodes.size());
  auto valid_id = [&](int32_t id) { return id >= 0 && id < nn; };
  if (c.algorithm != TraceAlgorithm::DRtrl && c.algorithm != TraceAlgorithm::PpProp)
    return arg("algorithm must be DRtrl (0) or PpProp (1), got " + std::to_string(static_cast<int>(c.algorithm)));
  auto check_decay = [&](const char* name, double d) -> Status {
    if (!(d >= 0.0 && d < 1.0)) return arg(std::string(name) + " must be in [0, 1), got " + std::to_string(d));
    return Status::Ok();
  };
  Status s = check_decay("decay_x", c.decay_x);
  if (!s.ok()) return s;
  if (!(s = check_decay("decay_f", c.decay_f)).ok()) return s;
  if (c.relations.empty()) return arg("relations must not be empty (nothing to trace)");
  if (!(s = check_node_ids(plan, "configure_online", "blocked_transition", c.blocked_transition)).ok()) return s;
  if (!(s = check_node_ids(plan, "configure_online", "etp_nodes", c.etp_nodes)).ok()) return s;

  ResolvedOnline r;
  r.config = c;
  r.non_temporal.assign(static_cast<size_t>(np), 0);
  for (size_t k = 0; k < c.non_temporal_slots.size(); ++k) {
    const int32_t slot = c.non_temporal_slots[k];
    if (slot < 0 || slot >= np)
      return arg("non_temporal_slots[" + std::to_string(k) + "] must be a param slot in [0, " + std::to_string(np) +
                 "), got " + std::to_string(slot));
    r.non_temporal[static_cast<size_t>(slot)] = 1;
  }

  // Groups.
  r.groups.resize(c.groups.size());
  for (size_t gi = 0; gi < c.groups.size(); ++gi) {
    const OnlineGroup& g = c.groups[gi];
    ResolvedGroup& rg = r.groups[gi];
    const std::string gp = "groups[" + std::to_string(gi) + "]";
    JacobianRequest& q = rg.d_request;
    q.kind = JacobianRequest::Kind::Hid2Hid;
    q.members = g.members;
    q.blocked = c.blocked_transition;
    q.probe_positions = g.probe_positions;
    q.positions = g.positions;
    if (!(s = check_jacobian_request(plan, "configure_online: " + gp + " (as a hid2hid request)", 0, q, nullptr)).ok())
      return s;
    const std::vector<int64_t>& lead = plan.nodes[g.members[0].leaf_node].shape;
    if (lead.empty()) return arg(gp + ".members[0]: the state must be batch-major (B, ...), got a scalar");
    rg.B = lead[0];
    rg.P = g.positions;
    if (rg.B < 1 || rg.P % rg.B != 0)
      return arg(gp + ".positions = " + std::to_string(rg.P) + " must be a multiple of the batch size " +
                 std::to_string(rg.B) + " (leading dim of " + node_desc(plan, g.members[0].leaf_node) + ")");
    rg.O = rg.P / rg.B;
    rg.S = 0;
    for (size_t m = 0; m < g.members.size(); ++m) {
      const GroupMember& mb = g.members[m];
      rg.member_off.push_back(rg.S);
      rg.S += mb.width;
      int32_t slot = -1;
      for (size_t st = 0; st < plan.state_nodes.size(); ++st)
        if (plan.state_nodes[st] == mb.leaf_node) slot = static_cast<int32_t>(st);
      if (slot < 0) return Status::Error(StatusCode::Internal, "configure_online: " + gp + ": state leaf has no slot");
      if (plan.nodes[mb.leaf_node].shape.empty() || plan.nodes[mb.leaf_node].shape[0] != rg.B)
        return arg(gp + ".members[" + std::to_string(m) + "]: every member must have batch size " +
                   std::to_string(rg.B) + ", got " + node_desc(plan, mb.leaf_node));
      rg.member_slot.push_back(slot);
    }
  }

  // Relations.
  r.relations.resize(c.relations.size());
  for (size_t ri = 0; ri < c.relations.size(); ++ri) {
    const OnlineRelation& rel = c.relations[ri];
    ResolvedRelation& rr = r.relations[ri];
    const std::string rp = "relations[" + std::to_string(ri) + "]";
    rr.kind = rel.kind;
    rr.y_node = rel.y_node;
    rr.weight_slot = rel.weight_slot;
    rr.bias_slot = rel.bias_slot;
    if (rel.kind != RelationKind::Dense && rel.kind != RelationKind::ElementWise)
      return arg(rp + ".kind must be Dense (0) or ElementWise (1), got " + std::to_string(static_cast<int>(rel.kind)));
    if (!valid_id(rel.y_node))
      return arg(rp + ".y_node must be a node id in [0, " + std::to_string(nn) + "), got " + std::to_string(rel.y_node));
    if (rel.weight_slot < 0 || rel.weight_slot >= np)
      return arg(rp + ".weight_slot must be a param slot in [0, " + std::to_string(np) + "), got " +
                 std::to_string(rel.weight_slot));
    if (rel.bias_slot < -1 || rel.bias_slot >= np)
      return arg(rp + ".bias_slot must be -1 or a param slot in [0, " + std::to_string(np) + "), got " +
                 std::to_string(rel.bias_slot));
    const PlanNode& y = plan.nodes[rel.y_node];
    if (rel.kind == RelationKind::Dense) {
      if (y.op != OpCode::EtpMatMul)
        return arg(rp + ".y_node must be an EtpMatMul for a Dense relation, got " + node_desc(plan, rel.y_node));
      if (!(s = check_weight_input(plan, rp + ".weight_node", rel.weight_node, y.inputs[1], rel.weight_slot,
                                   rel.y_node, "weight (input 1)", &rr.weight_node))
               .ok())
        return s;
      if (rel.x_node != y.inputs[0])
        return arg(rp + ".x_node must be the EtpMatMul's input 0 (node " + std::to_string(y.inputs[0]) + "), got " +
                   std::to_string(rel.x_node));
      if (rel.bias_slot >= 0) {
        if (y.inputs.size() != 3)
          return arg(rp + ".bias_slot " + std::to_string(rel.bias_slot) + ": " + node_desc(plan, rel.y_node) +
                     " has no bias input (input 2)");
        if (!(s = check_weight_input(plan, rp + ".bias_node", rel.bias_node, y.inputs[2], rel.bias_slot, rel.y_node,
                                     "bias (input 2)", &rr.bias_node))
                 .ok())
          return s;
      } else if (rel.bias_node != -1) {
        return arg(rp + ".bias_node must be -1 without a bias_slot, got " + std::to_string(rel.bias_node));
      }
      const PlanNode& x = plan.nodes[y.inputs[0]];
      if (x.shape.size() != 2 || y.shape.size() != 2)
        return arg(rp + ": a Dense relation needs x (B, I) and y (B, O), got x " + shape_str(x.shape) + " and y " +
                   shape_str(y.shape));
      rr.x_node = rel.x_node;
      rr.B = y.shape[0];
      rr.I = x.shape[1];
      rr.O = y.shape[1];
    } else {
      if (y.op != OpCode::EtpElementWise)
        return arg(rp + ".y_node must be an EtpElementWise for an ElementWise relation, got " +
                   node_desc(plan, rel.y_node));
      if (!(s = check_weight_input(plan, rp + ".weight_node", rel.weight_node, y.inputs[0], rel.weight_slot,
                                   rel.y_node, "weight (input 0)", &rr.weight_node))
               .ok())
        return s;
      if (rel.bias_slot >= 0) return arg(rp + ".bias_slot must be -1 for an ElementWise relation, got " +
                                         std::to_string(rel.bias_slot));
      if (rel.bias_node != -1)
        return arg(rp + ".bias_node must be -1 for an ElementWise relation, got " + std::to_string(rel.bias_node));
      rr.O = y.numel;
    }
    if (rel.groups.empty()) return arg(rp + ".groups must not be empty");
    if (!rel.tail_probe.empty() && rel.tail_probe.size() != rel.groups.size())
      return arg(rp + ".tail_probe must have one entry per target group (" + std::to_string(rel.groups.size()) +
                 "), got " + std::to_string(rel.tail_probe.size()));
    for (size_t k = 0; k < rel.groups.size(); ++k) {
      const int32_t gi = rel.groups[k];
      const std::string gk = rp + ".groups[" + std::to_string(k) + "]";
      if (gi < 0 || gi >= static_cast<int32_t>(r.groups.size()))
        return arg(gk + " must be a group index in [0, " + std::to_string(r.groups.size()) + "), got " +
                   std::to_string(gi));
      for (size_t k2 = 0; k2 < k; ++k2)
        if (rel.groups[k2] == gi) return arg(gk + ": group " + std::to_string(gi) + " is listed twice");
      ResolvedGroup& rg = r.groups[static_cast<size_t>(gi)];
      if (rel.kind == RelationKind::Dense) {
        if (rr.B != rg.B || rr.B * rr.O != rg.P)
          return arg(gk + ": y " + shape_str(y.shape) + " must be (B, O) with B = " + std::to_string(rg.B) +
                     " and B * O = the group's positions " + std::to_string(rg.P));
      } else {
        rr.B = rg.B;
        if (rr.O != rg.O)
          return arg(gk + ": the element-wise y has " + std::to_string(rr.O) +
                     " values; expected positions / B = " + std::to_string(rg.O));
      }
      ResolvedTarget t;
      t.group = gi;
      JacobianRequest& q = t.df_request;
      q.kind = JacobianRequest::Kind::Df;
      q.members = c.groups[static_cast<size_t>(gi)].members;
      q.y_node = rel.y_node;
      for (int32_t id : c.etp_nodes)
        if (id != rel.y_node) q.blocked.push_back(id);
      q.probe_positions = rel.tail_probe.empty() ? false : rel.tail_probe[k] != 0;
      q.positions = rg.P;
      if (!(s = check_jacobian_request(plan, "configure_online: " + gk + " (as a df request)", 0, q, nullptr)).ok())
        return s;
      rg.used = true;
      rg.need_d = rg.need_d || !c.groups[static_cast<size_t>(gi)].zero_recurrence;
      rr.targets.push_back(std::move(t));
    }
  }

  // Trace layout, in trace_info order. Every size is a checked product, and the buffers the
  // configuration allocates (traces, group Jacobians, learning signals, df Jacobians) must fit
  // kMaxTotalBytes together.
  const size_t es = plan.dtype == DType::F64 ? sizeof(double) : sizeof(float);
  ByteBudget budget(StatusCode::InvalidArgument, "configure_online: the configuration's buffers together");
  Status add_status;
  auto add = [&](const std::string& name, std::vector<int64_t> shape) -> int {
    int64_t n = 1;
    std::string dims;
    for (int64_t d : shape) {
      dims += (dims.empty() ? "" : " * ") + std::to_string(d);
      if (add_status.ok() && !checked_mul(n, d, &n))
        add_status = arg("the trace " + name + " (" + dims + "...) overflows the size limit of 2^42 bytes");
    }
    if (add_status.ok()) add_status = budget.add("the trace " + name + " " + shape_str(shape), n, es);
    TraceSpec ts;
    ts.name = name;
    ts.shape = std::move(shape);
    ts.numel = add_status.ok() ? n : 0;
    r.traces.push_back(std::move(ts));
    return static_cast<int>(r.traces.size()) - 1;
  };
  for (size_t gi = 0; gi < r.groups.size(); ++gi) {
    const ResolvedGroup& rg = r.groups[gi];
    const std::string gp = "groups[" + std::to_string(gi) + "]";
    int64_t n = 0;
    // P * S * S and P * S were checked by check_jacobian_request above; checked again here.
    if (rg.need_d) {
      BT_RETURN_IF_ERROR(checked_values(StatusCode::InvalidArgument, "configure_online: " + gp + " Jacobian",
                                        {rg.P, rg.S, rg.S}, es, &n));
      BT_RETURN_IF_ERROR(budget.add(gp + " Jacobian (positions * S * S)", n, es));
    }
    if (rg.used) {
      BT_RETURN_IF_ERROR(checked_values(StatusCode::InvalidArgument, "configure_online: " + gp + " learning signal",
                                        {rg.P, rg.S}, es, &n));
      BT_RETURN_IF_ERROR(budget.add(gp + " learning signal (positions * S)", n, es));
    }
  }
  for (size_t ri = 0; ri < r.relations.size(); ++ri) {
    ResolvedRelation& rr = r.relations[ri];
    const std::string rn = "r" + std::to_string(ri);
    if (c.algorithm == TraceAlgorithm::PpProp && rr.kind == RelationKind::Dense) {
      rr.xbar_trace = add(rn + "/xbar", {rr.B, rr.I});
      BT_RETURN_IF_ERROR(add_status);
      rr.pp_chunk = pp_chunk_length(rr.B, rr.I, rr.O, es);
      int64_t n = 0;
      BT_RETURN_IF_ERROR(checked_values(StatusCode::InvalidArgument, "configure_online: " + rn + " pp_prop gradient ring",
                                        {rr.pp_chunk, rr.B, rr.I + rr.O}, es, &n));
      BT_RETURN_IF_ERROR(budget.add(rn + " pp_prop gradient ring (chunk * B * (I + O))", n, es));
    }
    for (ResolvedTarget& t : rr.targets) {
      const ResolvedGroup& rg = r.groups[static_cast<size_t>(t.group)];
      const std::string gn = rn + "/g" + std::to_string(t.group);
      if (c.algorithm == TraceAlgorithm::DRtrl) {
        if (rr.kind == RelationKind::Dense) {
          t.weight_trace = add(gn + "/weight", {rr.B, rr.I, rr.O, rg.S});
          if (rr.bias_slot >= 0) t.bias_trace = add(gn + "/bias", {rr.B, rr.O, rg.S});
        } else {
          t.weight_trace = add(gn + "/elementwise", {rg.B, rg.O, rg.S});
        }
      } else {
        t.epsf_trace = add(gn + "/epsf", {rg.B, rg.O, rg.S});
      }
      BT_RETURN_IF_ERROR(add_status);
      int64_t n = 0;
      BT_RETURN_IF_ERROR(checked_values(StatusCode::InvalidArgument, "configure_online: " + gn + " df Jacobian",
                                        {rg.P, rg.S}, es, &n));
      BT_RETURN_IF_ERROR(budget.add(gn + " df Jacobian (positions * S)", n, es));
    }
    BT_RETURN_IF_ERROR(add_status);
  }
  *out = std::move(r);
  return Status::Ok();
}

}  // namespace bt
