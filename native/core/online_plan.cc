// Validation of an OnlineConfig against a plan and the resulting trace layout.
#include "core/online_plan.h"

#include <cmath>

namespace bt {
namespace {

Status arg(const std::string& m) { return Status::Error(StatusCode::InvalidArgument, "configure_online: " + m); }

std::string node_desc(const Plan& plan, int32_t id) {
  return "node " + std::to_string(id) + " (" + kOpNames[static_cast<int>(plan.nodes[id].op)] + " " +
         shape_str(plan.nodes[id].shape) + ")";
}

// Largest number of values one trace may hold (beyond it the allocation is refused).
constexpr double kMaxTraceValues = double(int64_t(1) << 48);

}  // namespace

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
    const int32_t wnode = plan.param_nodes[rel.weight_slot];
    if (rel.kind == RelationKind::Dense) {
      if (y.op != OpCode::EtpMatMul)
        return arg(rp + ".y_node must be an EtpMatMul for a Dense relation, got " + node_desc(plan, rel.y_node));
      if (y.inputs[1] != wnode)
        return arg(rp + ": the weight (input 1) of " + node_desc(plan, rel.y_node) + " is " +
                   node_desc(plan, y.inputs[1]) + ", not the Param leaf of weight_slot " +
                   std::to_string(rel.weight_slot) + " (" + node_desc(plan, wnode) +
                   "): the weight must be a raw ParamState; transformed weights are not supported yet");
      if (rel.x_node != y.inputs[0])
        return arg(rp + ".x_node must be the EtpMatMul's input 0 (node " + std::to_string(y.inputs[0]) + "), got " +
                   std::to_string(rel.x_node));
      if (rel.bias_slot >= 0 && (y.inputs.size() != 3 || y.inputs[2] != plan.param_nodes[rel.bias_slot]))
        return arg(rp + ".bias_slot " + std::to_string(rel.bias_slot) + ": its Param leaf (node " +
                   std::to_string(plan.param_nodes[rel.bias_slot]) + ") is not the bias input (input 2) of " +
                   node_desc(plan, rel.y_node));
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
      if (y.inputs[0] != wnode)
        return arg(rp + ": the weight (input 0) of " + node_desc(plan, rel.y_node) + " is " +
                   node_desc(plan, y.inputs[0]) + ", not the Param leaf of weight_slot " +
                   std::to_string(rel.weight_slot) + " (" + node_desc(plan, wnode) +
                   "): the weight must be a raw ParamState; transformed weights are not supported yet");
      if (rel.bias_slot >= 0) return arg(rp + ".bias_slot must be -1 for an ElementWise relation, got " +
                                         std::to_string(rel.bias_slot));
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

  // Trace layout, in trace_info order.
  auto add = [&](const std::string& name, std::vector<int64_t> shape) -> int {
    double n = 1;
    for (int64_t d : shape) n *= double(d);
    TraceSpec ts;
    ts.name = name;
    ts.shape = std::move(shape);
    ts.numel = static_cast<int64_t>(n);
    r.traces.push_back(std::move(ts));
    return static_cast<int>(r.traces.size()) - 1;
  };
  for (size_t ri = 0; ri < r.relations.size(); ++ri) {
    ResolvedRelation& rr = r.relations[ri];
    const std::string rn = "r" + std::to_string(ri);
    if (c.algorithm == TraceAlgorithm::PpProp && rr.kind == RelationKind::Dense)
      rr.xbar_trace = add(rn + "/xbar", {rr.B, rr.I});
    for (ResolvedTarget& t : rr.targets) {
      const ResolvedGroup& rg = r.groups[static_cast<size_t>(t.group)];
      const std::string gn = rn + "/g" + std::to_string(t.group);
      if (c.algorithm == TraceAlgorithm::DRtrl) {
        if (rr.kind == RelationKind::Dense) {
          if (double(rr.B) * double(rr.I) * double(rr.O) * double(rg.S) > kMaxTraceValues)
            return Status::Error(StatusCode::OutOfMemory, "configure_online: the trace " + gn + "/weight is too large");
          t.weight_trace = add(gn + "/weight", {rr.B, rr.I, rr.O, rg.S});
          if (rr.bias_slot >= 0) t.bias_trace = add(gn + "/bias", {rr.B, rr.O, rg.S});
        } else {
          t.weight_trace = add(gn + "/elementwise", {rg.B, rg.O, rg.S});
        }
      } else {
        t.epsf_trace = add(gn + "/epsf", {rg.B, rg.O, rg.S});
      }
    }
  }
  *out = std::move(r);
  return Status::Ok();
}

}  // namespace bt
