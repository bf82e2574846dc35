// A decoded, validated plan (the encoding is specified in braintrace/ops.h).
//
// decode_plan checks every field before anything else reads it: lengths and
// offsets against the arrays (a truncated or corrupt plan never reads out of
// bounds), opcodes, arities, input ids (< node id), ranks (<= kMaxRank), dims,
// attribute counts and values, every op's shape rule, leaf slots (dense, each
// once) and the output table. Error messages name the node id and op, the rule,
// and the expected and actual values.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "braintrace/api.h"
#include "braintrace/ops.h"

namespace bt {

struct PlanNode {
  OpCode op = OpCode::Input;
  std::vector<int32_t> inputs;
  std::vector<int64_t> shape;
  int64_t numel = 1;
  std::vector<int32_t> ints;
  std::vector<double> floats;
};

struct PlanOutput {
  OutputKind kind = OutputKind::Output;
  int32_t node = 0;
  int32_t index = 0;
};

struct Plan {
  DType dtype = DType::F32;
  std::vector<PlanNode> nodes;
  std::vector<PlanOutput> outputs;             // the output table, in order
  std::vector<int32_t> input_nodes;            // per input slot: its leaf node
  std::vector<int32_t> param_nodes;            // per param slot
  std::vector<int32_t> state_nodes;            // per state slot
  std::vector<int32_t> output_slot_entry;      // per model-output slot: its table row
  std::vector<int32_t> state_new_entry;        // per state slot: its StateNew row, or -1
  int32_t loss_entry = -1;                     // table row of the loss, or -1
};

Status decode_plan(const int32_t* code, size_t code_len, const double* fattr, size_t fattr_len,
                   Plan* out);

// "[2, 3]"
std::string shape_str(const std::vector<int64_t>& s);

// --- request validation (eligibility-trace pieces of EvalArgs / SequenceArgs) ---------------
// All return InvalidArgument with a message that starts with `what` ("evaluate",
// "run_sequence") and names the list, the index, the field, the expected and the actual value.

// Every id in `ids` is a node of the plan; `field` is "fetch_values" / "fetch_cotangents".
Status check_node_ids(const Plan& plan, const std::string& what, const char* field,
                      const std::vector<int32_t>& ids);

// One Jacobian request (index = its position in the list): kind, positions >= 1, members
// non-empty with State leaves and any new node, widths >= 1, numel(leaf) == numel(new) ==
// positions * width; Df: y_node a node with numel(y) == positions or positions a multiple of
// numel(y); blocked ids valid. On success *values = the result size per step
// (P*S*S or P*S), a checked product; one past the size limit (kMaxTotalBytes) is InvalidArgument.
Status check_jacobian_request(const Plan& plan, const std::string& what, size_t index,
                              const JacobianRequest& r, int64_t* values);

}  // namespace bt
