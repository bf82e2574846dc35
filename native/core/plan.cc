#include "core/plan.h"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "core/checked.h"
#include "core/status_util.h"
#include "kernels/elementwise.h"
#include "kernels/layout.h"

namespace bt {

std::string shape_str(const std::vector<int64_t>& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) {
    if (i) r += ", ";
    r += std::to_string(s[i]);
  }
  return r + "]";
}

namespace {

Status plan_error(const std::string& msg) { return Status::Error(StatusCode::InvalidPlan, msg); }

std::string node_tag(int id, OpCode op) {
  return "node " + std::to_string(id) + " (" + kOpNames[static_cast<int>(op)] + ")";
}

// Bounds-checked reader over the code array.
struct Reader {
  const int32_t* code;
  size_t len;
  size_t pos = 0;
  bool next(int32_t* v) {
    if (pos >= len) return false;
    *v = code[pos++];
    return true;
  }
};

std::vector<int64_t> drop_last(const std::vector<int64_t>& s) {
  return std::vector<int64_t>(s.begin(), s.end() - 1);
}

// Checks one decoded node against its op's rules; nodes[0..id) are already valid.
Status check_node(const std::vector<PlanNode>& nodes, int id) {
  const PlanNode& n = nodes[id];
  const std::string tag = node_tag(id, n.op);
  auto in_shape = [&](int k) -> const std::vector<int64_t>& { return nodes[n.inputs[k]].shape; };
  auto need_attrs = [&](size_t ni, size_t nf) -> Status {
    if (n.ints.size() != ni)
      return plan_error(tag + ": expected " + std::to_string(ni) + " int attributes, got " +
                        std::to_string(n.ints.size()));
    if (n.floats.size() != nf)
      return plan_error(tag + ": expected " + std::to_string(nf) + " float attributes, got " +
                        std::to_string(n.floats.size()));
    return Status::Ok();
  };
  auto finite_floats = [&]() -> Status {
    for (size_t k = 0; k < n.floats.size(); ++k)
      if (!std::isfinite(n.floats[k]))
        return plan_error(tag + ": float attribute " + std::to_string(k) + " must be finite, got " +
                          std::to_string(n.floats[k]));
    return Status::Ok();
  };
  auto same_as_out = [&](int k) -> Status {
    if (in_shape(k) != n.shape)
      return plan_error(tag + ": input " + std::to_string(k) + " (node " + std::to_string(n.inputs[k]) +
                        ") must have the output shape: expected " + shape_str(n.shape) + ", got " +
                        shape_str(in_shape(k)));
    return Status::Ok();
  };
  auto axis_attr = [&](int rank, int32_t* axis) -> Status {
    Status s = need_attrs(1, 0);
    if (!s.ok()) return s;
    if (n.ints[0] < 0 || n.ints[0] >= rank)
      return plan_error(tag + ": axis must be in [0, " + std::to_string(rank) + "), got " +
                        std::to_string(n.ints[0]));
    *axis = n.ints[0];
    return Status::Ok();
  };
  Status s;
  const OpCode op = n.op;
  if (ew_arity(op) > 0) {
    for (size_t k = 0; k < n.inputs.size(); ++k)
      if (!(s = same_as_out(static_cast<int>(k))).ok()) return s;
    switch (op) {
      case OpCode::LeakyRelu:
      case OpCode::Elu:
        if (!(s = need_attrs(0, 1)).ok()) return s;
        return finite_floats();
      case OpCode::Clamp:
        if (!(s = need_attrs(0, 2)).ok()) return s;
        if (!(s = finite_floats()).ok()) return s;
        if (n.floats[0] > n.floats[1])
          return plan_error(tag + ": clamp bounds must satisfy lo <= hi, got lo = " +
                            std::to_string(n.floats[0]) + ", hi = " + std::to_string(n.floats[1]));
        return Status::Ok();
      case OpCode::Spike: {
        if (n.ints.size() != 1)
          return plan_error(tag + ": expected 1 int attribute (surrogate kind), got " +
                            std::to_string(n.ints.size()));
        const int32_t kind = n.ints[0];
        if (kind < 0 || kind >= static_cast<int32_t>(Surrogate::Count_))
          return plan_error(tag + ": surrogate kind must be in [0, " +
                            std::to_string(static_cast<int>(Surrogate::Count_)) + "), got " +
                            std::to_string(kind));
        if (!(s = need_attrs(1, kSurrogateParamCount[kind])).ok()) return s;
        return finite_floats();
      }
      default:
        return need_attrs(0, 0);
    }
  }
  const int out_rank = static_cast<int>(n.shape.size());
  switch (op) {
    case OpCode::Input:
    case OpCode::Param:
    case OpCode::State:
      if (!(s = need_attrs(1, 0)).ok()) return s;
      if (n.ints[0] < 0) return plan_error(tag + ": slot must be >= 0, got " + std::to_string(n.ints[0]));
      return Status::Ok();
    case OpCode::Const:
      if (n.ints.size() != 0)
        return plan_error(tag + ": expected 0 int attributes, got " + std::to_string(n.ints.size()));
      if (static_cast<int64_t>(n.floats.size()) != n.numel)
        return plan_error(tag + ": number of float values must equal numel " + shape_str(n.shape) +
                          ": expected " + std::to_string(n.numel) + ", got " + std::to_string(n.floats.size()));
      return Status::Ok();
    case OpCode::BroadcastTo: {
      if (!(s = need_attrs(0, 0)).ok()) return s;
      const auto& is = in_shape(0);
      const int in_rank = static_cast<int>(is.size());
      if (in_rank > out_rank)
        return plan_error(tag + ": input rank must be <= output rank: expected <= " +
                          std::to_string(out_rank) + ", got " + std::to_string(in_rank) + " (" +
                          shape_str(is) + " -> " + shape_str(n.shape) + ")");
      for (int j = 0; j < in_rank; ++j) {
        const int64_t a = is[j], b = n.shape[out_rank - in_rank + j];
        if (a != b && a != 1)
          return plan_error(tag + ": cannot broadcast " + shape_str(is) + " to " + shape_str(n.shape) +
                            " (numpy rules, right-aligned): input dim " + std::to_string(j) + " is " +
                            std::to_string(a) + ", expected 1 or " + std::to_string(b));
      }
      return Status::Ok();
    }
    case OpCode::Reshape:
      if (!(s = need_attrs(0, 0)).ok()) return s;
      if (nodes[n.inputs[0]].numel != n.numel)
        return plan_error(tag + ": reshape must keep numel: input " + shape_str(in_shape(0)) + " has " +
                          std::to_string(nodes[n.inputs[0]].numel) + ", output " + shape_str(n.shape) +
                          " has " + std::to_string(n.numel));
      return Status::Ok();
    case OpCode::Transpose: {
      const auto& is = in_shape(0);
      const int r = static_cast<int>(is.size());
      if (!(s = need_attrs(static_cast<size_t>(r), 0)).ok()) return s;
      if (out_rank != r)
        return plan_error(tag + ": output rank must equal input rank: expected " + std::to_string(r) +
                          ", got " + std::to_string(out_rank));
      std::vector<bool> seen(r, false);
      for (int i = 0; i < r; ++i) {
        const int32_t p = n.ints[i];
        if (p < 0 || p >= r || seen[p])
          return plan_error(tag + ": perm must be a permutation of 0.." + std::to_string(r - 1) +
                            ", entry " + std::to_string(i) + " is " + std::to_string(p));
        seen[p] = true;
        if (n.shape[i] != is[p])
          return plan_error(tag + ": output dim " + std::to_string(i) + " must equal input dim perm[" +
                            std::to_string(i) + "] = " + std::to_string(p) + ": expected " +
                            std::to_string(is[p]) + ", got " + std::to_string(n.shape[i]));
      }
      return Status::Ok();
    }
    case OpCode::Slice: {
      const auto& is = in_shape(0);
      const int r = static_cast<int>(is.size());
      if (!(s = need_attrs(static_cast<size_t>(r), 0)).ok()) return s;
      if (out_rank != r)
        return plan_error(tag + ": output rank must equal input rank: expected " + std::to_string(r) +
                          ", got " + std::to_string(out_rank));
      for (int i = 0; i < r; ++i) {
        const int64_t b = n.ints[i];
        if (b < 0 || b + n.shape[i] > is[i])
          return plan_error(tag + ": slice out of bounds on axis " + std::to_string(i) + ": begin " +
                            std::to_string(b) + " + size " + std::to_string(n.shape[i]) +
                            " must be within [0, " + std::to_string(is[i]) + "]");
      }
      return Status::Ok();
    }
    case OpCode::Concat: {
      int32_t axis = 0;
      if (!(s = axis_attr(out_rank, &axis)).ok()) return s;
      int64_t total = 0;
      for (size_t k = 0; k < n.inputs.size(); ++k) {
        const auto& is = in_shape(static_cast<int>(k));
        if (static_cast<int>(is.size()) != out_rank)
          return plan_error(tag + ": input " + std::to_string(k) + " must have rank " +
                            std::to_string(out_rank) + ", got shape " + shape_str(is));
        for (int d = 0; d < out_rank; ++d)
          if (d != axis && is[d] != n.shape[d])
            return plan_error(tag + ": input " + std::to_string(k) + " dim " + std::to_string(d) +
                              " must equal the output's off the concat axis: expected " +
                              std::to_string(n.shape[d]) + ", got " + std::to_string(is[d]));
        total += is[axis];
      }
      if (total != n.shape[axis])
        return plan_error(tag + ": output dim " + std::to_string(axis) +
                          " must be the sum of the inputs' dims on the concat axis: expected " +
                          std::to_string(total) + ", got " + std::to_string(n.shape[axis]));
      return Status::Ok();
    }
    case OpCode::ReduceSum:
    case OpCode::ReduceMean:
    case OpCode::ReduceMax: {
      const auto& is = in_shape(0);
      const int r = static_cast<int>(is.size());
      if (n.floats.size() != 0)
        return plan_error(tag + ": expected 0 float attributes, got " + std::to_string(n.floats.size()));
      std::vector<bool> red(r, false);
      for (size_t k = 0; k < n.ints.size(); ++k) {
        const int32_t a = n.ints[k];
        if (a < 0 || a >= r)
          return plan_error(tag + ": reduced axis must be in [0, " + std::to_string(r) + "), got " +
                            std::to_string(a));
        if (k > 0 && a <= n.ints[k - 1])
          return plan_error(tag + ": reduced axes must be sorted and unique, got " + std::to_string(a) +
                            " after " + std::to_string(n.ints[k - 1]));
        red[a] = true;
      }
      std::vector<int64_t> removed, kept;
      int64_t red_numel = 1;
      for (int d = 0; d < r; ++d) {
        if (red[d]) {
          kept.push_back(1);
          red_numel *= is[d];
        } else {
          kept.push_back(is[d]);
          removed.push_back(is[d]);
        }
      }
      if (n.shape != removed && n.shape != kept)
        return plan_error(tag + ": output shape must be the input shape " + shape_str(is) +
                          " with the reduced axes removed " + shape_str(removed) + " or kept as 1 " +
                          shape_str(kept) + ", got " + shape_str(n.shape));
      if (op == OpCode::ReduceMax && red_numel == 0 && n.numel > 0)
        return plan_error(tag + ": max over an empty set of elements (reduced extent 0)");
      return Status::Ok();
    }
    case OpCode::Softmax:
    case OpCode::LogSoftmax: {
      if (!(s = same_as_out(0)).ok()) return s;
      int32_t axis = 0;
      if (!(s = axis_attr(out_rank, &axis)).ok()) return s;
      if (n.shape[axis] == 0 && n.numel > 0)
        return plan_error(tag + ": softmax axis " + std::to_string(axis) + " has size 0");
      return Status::Ok();
    }
    case OpCode::MatMul: {
      if (!(s = need_attrs(0, 0)).ok()) return s;
      const auto& a = in_shape(0);
      const auto& b = in_shape(1);
      const int ra = static_cast<int>(a.size()), rb = static_cast<int>(b.size());
      std::vector<int64_t> expect;
      if (ra < 1 || rb < 2)
        return plan_error(tag + ": operands must have rank >= 1 (a) and >= 2 (b), got " + shape_str(a) +
                          " x " + shape_str(b));
      if (rb == 2) {
        if (a[ra - 1] != b[0])
          return plan_error(tag + ": inner dims must agree: a " + shape_str(a) + " has K = " +
                            std::to_string(a[ra - 1]) + ", b " + shape_str(b) + " has K = " +
                            std::to_string(b[0]));
        expect = drop_last(a);
        expect.push_back(b[1]);
      } else {
        if (ra != rb)
          return plan_error(tag + ": batched matmul needs equal ranks: a " + shape_str(a) + ", b " +
                            shape_str(b));
        for (int d = 0; d < ra - 2; ++d)
          if (a[d] != b[d])
            return plan_error(tag + ": batched matmul leading dim " + std::to_string(d) +
                              " must agree: a " + shape_str(a) + ", b " + shape_str(b));
        if (a[ra - 1] != b[rb - 2])
          return plan_error(tag + ": inner dims must agree: a " + shape_str(a) + " has K = " +
                            std::to_string(a[ra - 1]) + ", b " + shape_str(b) + " has K = " +
                            std::to_string(b[rb - 2]));
        expect = drop_last(a);
        expect.push_back(b[rb - 1]);
      }
      if (n.shape != expect)
        return plan_error(tag + ": output shape must be " + shape_str(expect) + ", got " + shape_str(n.shape));
      return Status::Ok();
    }
    case OpCode::EtpMatMul: {
      if (!(s = need_attrs(0, 0)).ok()) return s;
      const auto& x = in_shape(0);
      const auto& w = in_shape(1);
      if (x.size() < 1 || w.size() != 2)
        return plan_error(tag + ": expected x (..., I) and W (I, O), got " + shape_str(x) + " and " +
                          shape_str(w));
      if (x.back() != w[0])
        return plan_error(tag + ": x's last dim must equal W's first: x " + shape_str(x) + ", W " +
                          shape_str(w));
      if (n.inputs.size() == 3) {
        const auto& b = in_shape(2);
        if (b != std::vector<int64_t>{w[1]})
          return plan_error(tag + ": bias shape must be " + shape_str({w[1]}) + ", got " + shape_str(b));
      }
      std::vector<int64_t> expect = drop_last(x);
      expect.push_back(w[1]);
      if (n.shape != expect)
        return plan_error(tag + ": output shape must be " + shape_str(expect) + ", got " + shape_str(n.shape));
      return Status::Ok();
    }
    default:
      return plan_error(tag + ": unhandled op in validation");
  }
}

}  // namespace

Status decode_plan(const int32_t* code, size_t code_len, const double* fattr, size_t fattr_len,
                   Plan* out) {
  if (code == nullptr && code_len > 0) return plan_error("plan code array is null");
  if (fattr == nullptr && fattr_len > 0) return plan_error("plan float array is null");
  Reader rd{code, code_len};
  int32_t magic, version, dtype, count;
  if (!rd.next(&magic) || !rd.next(&version) || !rd.next(&dtype) || !rd.next(&count))
    return plan_error("plan header truncated: expected 4 values, got " + std::to_string(code_len));
  if (magic != BT_PLAN_MAGIC)
    return plan_error("plan magic must be " + std::to_string(BT_PLAN_MAGIC) + ", got " + std::to_string(magic));
  if (version != BT_PLAN_VERSION)
    return plan_error("plan version must be " + std::to_string(BT_PLAN_VERSION) + ", got " +
                      std::to_string(version));
  if (dtype != 0 && dtype != 1) return plan_error("plan dtype must be 0 (f32) or 1 (f64), got " + std::to_string(dtype));
  if (count < 0) return plan_error("plan node count must be >= 0, got " + std::to_string(count));
  // Each node record is at least 5 values: a count larger than the array is truncation.
  if (static_cast<size_t>(count) > code_len / 5 + 1)
    return plan_error("plan node count " + std::to_string(count) + " exceeds what " +
                      std::to_string(code_len) + " code values can hold");

  Plan p;
  p.dtype = static_cast<DType>(dtype);
  const size_t es = dtype == 1 ? sizeof(double) : sizeof(float);
  // The sum over all nodes of their value bytes (a session keeps one slot per node).
  ByteBudget plan_bytes(StatusCode::InvalidPlan, "plan: the values of all nodes together");
  p.nodes.resize(static_cast<size_t>(count));
  for (int id = 0; id < count; ++id) {
    PlanNode& n = p.nodes[id];
    const std::string where = "node " + std::to_string(id);
    auto trunc = [&](const char* what) {
      return plan_error("plan truncated in " + where + " while reading " + what + " (code length " +
                        std::to_string(code_len) + ")");
    };
    int32_t opc, nin;
    if (!rd.next(&opc)) return trunc("the opcode");
    if (opc < 0 || opc >= kOpCount)
      return plan_error(where + ": opcode must be in [0, " + std::to_string(kOpCount) + "), got " +
                        std::to_string(opc));
    n.op = static_cast<OpCode>(opc);
    const std::string tag = node_tag(id, n.op);
    if (!rd.next(&nin)) return trunc("the input count");
    const int arity = kOpArity[opc];
    if (arity >= 0 && nin != arity)
      return plan_error(tag + ": expected " + std::to_string(arity) + " inputs, got " + std::to_string(nin));
    if (n.op == OpCode::Concat && (nin < 1 || nin > 4096))
      return plan_error(tag + ": expected 1 to 4096 inputs, got " + std::to_string(nin));
    if (n.op == OpCode::EtpMatMul && nin != 2 && nin != 3)
      return plan_error(tag + ": expected 2 or 3 inputs, got " + std::to_string(nin));
    n.inputs.resize(static_cast<size_t>(nin));
    for (int k = 0; k < nin; ++k) {
      if (!rd.next(&n.inputs[k])) return trunc("an input id");
      if (n.inputs[k] < 0 || n.inputs[k] >= id)
        return plan_error(tag + ": input " + std::to_string(k) + " must be a node id in [0, " +
                          std::to_string(id) + "), got " + std::to_string(n.inputs[k]));
    }
    int32_t rank;
    if (!rd.next(&rank)) return trunc("the rank");
    if (rank < 0 || rank > kMaxRank)
      return plan_error(tag + ": rank must be in [0, " + std::to_string(kMaxRank) + "], got " +
                        std::to_string(rank));
    n.shape.resize(static_cast<size_t>(rank));
    // numel, and the product of the non-zero dims (what strides reach even when numel is 0),
    // both checked against the size limit: no later product of this node's dims can overflow.
    n.numel = 1;
    int64_t extent = 1;
    for (int d = 0; d < rank; ++d) {
      int32_t v;
      if (!rd.next(&v)) return trunc("a dim");
      if (v < 0) return plan_error(tag + ": dim " + std::to_string(d) + " must be >= 0, got " + std::to_string(v));
      n.shape[d] = v;
    }
    for (int d = 0; d < rank; ++d) {
      size_t ignored = 0;
      if (!checked_mul(extent, std::max<int64_t>(n.shape[d], 1), &extent) || !checked_bytes(extent, es, &ignored))
        return plan_error(tag + ": shape " + shape_str(n.shape) + " of " + std::to_string(es) +
                          "-byte values exceeds the size limit of 2^42 bytes (kMaxTotalBytes)");
      n.numel *= n.shape[d];  // <= extent, checked just above
    }
    BT_RETURN_IF_ERROR(plan_bytes.add(tag + " " + shape_str(n.shape), n.numel, es));
    int32_t nint;
    if (!rd.next(&nint)) return trunc("the int attribute count");
    if (nint < 0 || static_cast<size_t>(nint) > code_len - rd.pos)
      return plan_error(tag + ": int attribute count " + std::to_string(nint) +
                        " is negative or runs past the end of the plan");
    n.ints.assign(code + rd.pos, code + rd.pos + nint);
    rd.pos += static_cast<size_t>(nint);
    int32_t nfloat, foff;
    if (!rd.next(&nfloat)) return trunc("the float attribute count");
    if (!rd.next(&foff)) return trunc("the float attribute offset");
    if (nfloat < 0 || foff < 0 || static_cast<size_t>(foff) + static_cast<size_t>(nfloat) > fattr_len)
      return plan_error(tag + ": float attributes [" + std::to_string(foff) + ", " + std::to_string(foff) +
                        " + " + std::to_string(nfloat) + ") must lie within the float array of length " +
                        std::to_string(fattr_len));
    n.floats.assign(fattr + foff, fattr + foff + nfloat);
    Status s = check_node(p.nodes, id);
    if (!s.ok()) return s;
  }

  // Leaf slots: dense from 0 within each kind, each slot in exactly one leaf.
  for (int id = 0; id < count; ++id) {
    const PlanNode& n = p.nodes[id];
    std::vector<int32_t>* slots = n.op == OpCode::Input   ? &p.input_nodes
                                  : n.op == OpCode::Param ? &p.param_nodes
                                  : n.op == OpCode::State ? &p.state_nodes
                                                          : nullptr;
    if (!slots) continue;
    const int32_t slot = n.ints[0];
    if (slot >= count)
      return plan_error(node_tag(id, n.op) + ": slot " + std::to_string(slot) +
                        " is larger than the number of nodes");
    if (static_cast<int32_t>(slots->size()) <= slot) slots->resize(static_cast<size_t>(slot) + 1, -1);
    if ((*slots)[slot] != -1)
      return plan_error(node_tag(id, n.op) + ": slot " + std::to_string(slot) + " is already used by node " +
                        std::to_string((*slots)[slot]));
    (*slots)[slot] = id;
  }
  for (auto* slots : {&p.input_nodes, &p.param_nodes, &p.state_nodes}) {
    const char* kind = slots == &p.input_nodes ? "Input" : slots == &p.param_nodes ? "Param" : "State";
    for (size_t s = 0; s < slots->size(); ++s)
      if ((*slots)[s] == -1)
        return plan_error(std::string(kind) + " slots must be dense from 0: slot " + std::to_string(s) +
                          " has no leaf but slot " + std::to_string(slots->size() - 1) + " does");
  }

  // Output table.
  int32_t nout;
  if (!rd.next(&nout)) return plan_error("plan truncated: missing the output table count");
  if (nout < 0 || static_cast<size_t>(nout) > (code_len - rd.pos) / 3)
    return plan_error("output table: " + std::to_string(nout) + " rows do not fit the " +
                      std::to_string(code_len - rd.pos) + " remaining code values");
  p.outputs.resize(static_cast<size_t>(nout));
  p.state_new_entry.assign(p.state_nodes.size(), -1);
  std::vector<int32_t> out_slots;
  for (int e = 0; e < nout; ++e) {
    int32_t kind = 0, node = 0, index = 0;
    rd.next(&kind);
    rd.next(&node);
    rd.next(&index);
    const std::string row = "output table row " + std::to_string(e);
    if (kind < 0 || kind > 2) return plan_error(row + ": kind must be 0, 1 or 2, got " + std::to_string(kind));
    if (node < 0 || node >= count)
      return plan_error(row + ": node id must be in [0, " + std::to_string(count) + "), got " + std::to_string(node));
    const PlanNode& n = p.nodes[node];
    p.outputs[e] = PlanOutput{static_cast<OutputKind>(kind), node, index};
    if (kind == 0) {
      if (index < 0 || index >= nout)
        return plan_error(row + ": output slot must be in [0, " + std::to_string(nout) + "), got " +
                          std::to_string(index));
      if (static_cast<int32_t>(out_slots.size()) <= index) out_slots.resize(static_cast<size_t>(index) + 1, -1);
      if (out_slots[index] != -1)
        return plan_error(row + ": output slot " + std::to_string(index) + " is already row " +
                          std::to_string(out_slots[index]));
      out_slots[index] = e;
    } else if (kind == 1) {
      if (index < 0 || index >= static_cast<int32_t>(p.state_nodes.size()))
        return plan_error(row + ": state slot must be in [0, " + std::to_string(p.state_nodes.size()) +
                          "), got " + std::to_string(index));
      if (p.state_new_entry[index] != -1)
        return plan_error(row + ": state slot " + std::to_string(index) + " already has a new value in row " +
                          std::to_string(p.state_new_entry[index]));
      const auto& ls = p.nodes[p.state_nodes[index]].shape;
      if (n.shape != ls)
        return plan_error(row + ": new value of state slot " + std::to_string(index) + " (node " +
                          std::to_string(node) + ") must have the state's shape: expected " + shape_str(ls) +
                          ", got " + shape_str(n.shape));
      p.state_new_entry[index] = e;
    } else {
      if (index != 0) return plan_error(row + ": loss index must be 0, got " + std::to_string(index));
      if (p.loss_entry != -1)
        return plan_error(row + ": a second loss row (the first is row " + std::to_string(p.loss_entry) + ")");
      if (n.numel != 1)
        return plan_error(row + ": the loss (node " + std::to_string(node) + ") must be a scalar, got shape " +
                          shape_str(n.shape));
      p.loss_entry = e;
    }
  }
  for (size_t s = 0; s < out_slots.size(); ++s)
    if (out_slots[s] == -1)
      return plan_error("output table: model-output slots must be dense from 0: slot " + std::to_string(s) +
                        " is missing");
  p.output_slot_entry = out_slots;
  if (rd.pos != code_len)
    return plan_error("plan has " + std::to_string(code_len - rd.pos) + " extra values after the output table");
  *out = std::move(p);
  return Status::Ok();
}

// ---------------------------------------------------------------------------------------------
// Request validation

namespace {

Status arg_error(const std::string& msg) { return Status::Error(StatusCode::InvalidArgument, msg); }

}  // namespace

Status check_node_ids(const Plan& plan, const std::string& what, const char* field,
                      const std::vector<int32_t>& ids) {
  const size_t n = plan.nodes.size();
  for (size_t k = 0; k < ids.size(); ++k) {
    if (ids[k] < 0 || static_cast<size_t>(ids[k]) >= n)
      return arg_error(what + ": " + field + "[" + std::to_string(k) + "] must be a node id in [0, " +
                       std::to_string(n) + "), got " + std::to_string(ids[k]));
  }
  return Status::Ok();
}

Status check_jacobian_request(const Plan& plan, const std::string& what, size_t index,
                              const JacobianRequest& r, int64_t* values) {
  const std::string pre = what + ": jacobians[" + std::to_string(index) + "]";
  const int64_t nn = static_cast<int64_t>(plan.nodes.size());
  auto valid_id = [&](int32_t id) { return id >= 0 && id < nn; };
  auto node_desc = [&](int32_t id) { return node_tag(id, plan.nodes[id].op) + " " + shape_str(plan.nodes[id].shape); };
  if (r.kind != JacobianRequest::Kind::Hid2Hid && r.kind != JacobianRequest::Kind::Df)
    return arg_error(pre + ".kind must be Hid2Hid (0) or Df (1), got " + std::to_string(static_cast<int>(r.kind)));
  if (r.positions < 1)
    return arg_error(pre + ".positions must be >= 1, got " + std::to_string(r.positions));
  if (r.members.empty()) return arg_error(pre + ".members must not be empty");
  const int64_t P = r.positions;
  int64_t S = 0;
  for (size_t m = 0; m < r.members.size(); ++m) {
    const GroupMember& g = r.members[m];
    const std::string mp = pre + ".members[" + std::to_string(m) + "]";
    if (!valid_id(g.leaf_node))
      return arg_error(mp + ".leaf_node must be a node id in [0, " + std::to_string(nn) + "), got " +
                       std::to_string(g.leaf_node));
    if (plan.nodes[g.leaf_node].op != OpCode::State)
      return arg_error(mp + ".leaf_node must be a State leaf, got " + node_desc(g.leaf_node));
    if (!valid_id(g.new_node))
      return arg_error(mp + ".new_node must be a node id in [0, " + std::to_string(nn) + "), got " +
                       std::to_string(g.new_node));
    if (g.width < 1) return arg_error(mp + ".width must be >= 1, got " + std::to_string(g.width));
    int64_t want = 0;
    if (!checked_mul(P, g.width, &want))
      return arg_error(mp + ": positions * width = " + std::to_string(P) + " * " + std::to_string(g.width) +
                       " overflows (it exceeds every node size)");
    if (plan.nodes[g.leaf_node].numel != want)
      return arg_error(mp + ".leaf_node: expected positions * width = " + std::to_string(P) + " * " +
                       std::to_string(g.width) + " = " + std::to_string(want) + " values, got " +
                       node_desc(g.leaf_node) + " with " + std::to_string(plan.nodes[g.leaf_node].numel) + " values");
    if (plan.nodes[g.new_node].numel != want)
      return arg_error(mp + ".new_node: expected positions * width = " + std::to_string(P) + " * " +
                       std::to_string(g.width) + " = " + std::to_string(want) + " values, got " +
                       node_desc(g.new_node) + " with " + std::to_string(plan.nodes[g.new_node].numel) + " values");
    if (!checked_add(S, g.width, &S))
      return arg_error(pre + ": the sum of the member widths overflows at members[" + std::to_string(m) + "]");
  }
  if (r.kind == JacobianRequest::Kind::Df) {
    if (!valid_id(r.y_node))
      return arg_error(pre + ".y_node must be a node id in [0, " + std::to_string(nn) + ") for a Df request, got " +
                       std::to_string(r.y_node));
    const int64_t ny = plan.nodes[r.y_node].numel;
    if (ny < 1 || (ny != P && P % ny != 0))
      return arg_error(pre + ".y_node: expected positions = " + std::to_string(P) +
                       " values (batched y) or a divisor of it (unbatched y), got " + node_desc(r.y_node) +
                       " with " + std::to_string(ny) + " values");
  }
  for (size_t k = 0; k < r.blocked.size(); ++k) {
    if (!valid_id(r.blocked[k]))
      return arg_error(pre + ".blocked[" + std::to_string(k) + "] must be a node id in [0, " + std::to_string(nn) +
                       "), got " + std::to_string(r.blocked[k]));
  }
  const size_t es = plan.dtype == DType::F64 ? sizeof(double) : sizeof(float);
  int64_t size = 0;
  if (r.kind == JacobianRequest::Kind::Hid2Hid)
    BT_RETURN_IF_ERROR(checked_values(StatusCode::InvalidArgument, pre + ": the result (positions * S * S)",
                                      {P, S, S}, es, &size));
  else
    BT_RETURN_IF_ERROR(checked_values(StatusCode::InvalidArgument, pre + ": the result (positions * S)", {P, S},
                                      es, &size));
  if (values != nullptr) *values = size;
  return Status::Ok();
}

}  // namespace bt
