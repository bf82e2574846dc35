// Element-wise fusion groups and the sweep schedule (see fusion.h).
#include "core/fusion.h"

#include <cstdlib>
#include <cstring>

#include "core/executor.h"
#include "kernels/elementwise.h"

namespace bt {

FusionSchedule plan_fusion(const Plan& plan, bool enabled) {
  const int n = static_cast<int>(plan.nodes.size());
  FusionSchedule s;
  s.enabled = enabled;
  s.order.reserve(static_cast<size_t>(n));
  auto single = [&s](int i) {
    s.items.push_back(FusionItem{static_cast<int32_t>(s.order.size()), static_cast<int32_t>(s.order.size()) + 1, false});
    s.order.push_back(i);
  };
  if (!enabled) {
    for (int i = 0; i < n; ++i) single(i);
    return s;
  }
  std::vector<int32_t> cur;               // the open group's members, in id order
  int64_t cur_numel = 0;
  std::vector<char> in_cur(static_cast<size_t>(n), 0);   // node is a member of the open group
  std::vector<int32_t> read_by_cur(static_cast<size_t>(n), 0);  // members reading node j
  auto close = [&]() {
    if (cur.empty()) return;
    const int32_t b = static_cast<int32_t>(s.order.size());
    for (int32_t i : cur) {
      s.order.push_back(i);
      in_cur[i] = 0;
      for (int32_t j : plan.nodes[i].inputs) read_by_cur[j] = 0;
    }
    s.items.push_back(FusionItem{b, static_cast<int32_t>(s.order.size()), true});
    if (cur.size() >= 2) {
      ++s.groups;
      s.fused_nodes += static_cast<int>(cur.size());
    }
    cur.clear();
  };
  for (int i = 0; i < n; ++i) {
    const PlanNode& node = plan.nodes[i];
    if (ew_arity(node.op) > 0) {
      if (!cur.empty() && (node.numel != cur_numel || static_cast<int>(cur.size()) >= kEwChainMax)) close();
      if (cur.empty()) cur_numel = node.numel;
      cur.push_back(i);
      in_cur[i] = 1;
      for (int32_t j : node.inputs) ++read_by_cur[j];
      continue;
    }
    bool independent = true;
    for (int32_t j : node.inputs)
      if (in_cur[j] || read_by_cur[j] > 0) independent = false;
    if (!independent) close();
    single(i);  // in front of the open group (if any)
  }
  close();
  return s;
}

bool fusion_enabled_by_env() {
  const char* e = std::getenv("BRAINTRACE_FUSE");
  return !(e != nullptr && std::strcmp(e, "0") == 0);
}

}  // namespace bt
