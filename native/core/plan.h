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

}  // namespace bt
