// braintrace native core: the plain C++ API.
//
// No Node-API type appears here. Every fallible call returns a Status (code +
// message); nothing in the core calls abort() or exit(), and no C++ exception
// crosses this API (the implementation catches std::bad_alloc and friends and
// turns them into statuses). CUDA errors become StatusCode::Cuda.
//
// Data at this boundary is raw host memory in the session's dtype
// (float for DType::F32, double for DType::F64), dense and row-major. The
// caller (the Node-API binding) checks lengths against the metadata getters
// before calling; the core checks them again where a wrong length could read
// or write out of bounds.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "braintrace/ops.h"

namespace bt {

enum class StatusCode : int32_t {
  Ok = 0,
  InvalidArgument = 1,  // a length, slot or value passed by the caller is wrong
  InvalidPlan = 2,      // the plan failed validation (message names node and rule)
  OutOfMemory = 3,
  Cuda = 4,             // a CUDA runtime call failed (message has cudaGetErrorString)
  Busy = 5,             // the session is running another call
  Internal = 6,         // a bug: an invariant of the core did not hold
  NonFinite = 7,        // a NaN or infinity in data, params or a result (tensor, step, index say where)
  Cancelled = 8,        // RunControl::cancel was set; steps_done says how far the call got
};

struct Status {
  StatusCode code = StatusCode::Ok;
  std::string message;
  // NonFinite: the tensor that held the value ("inputs[0]", "params[2]", "states[1]",
  // "traces[3]", "loss", "grads[2]"; the binding and TypeScript rename slots to paths), the
  // step within the call (-1 when the tensor has no time axis) and the flat index of the
  // first bad element within that step's slice (-1 when not applicable).
  std::string tensor;
  int64_t step = -1;
  int64_t index = -1;
  // Cancelled (and NonFinite from a sequence call): the number of steps whose effect on the
  // stored states and traces was kept (see SequenceArgs / OnlineArgs for the exact state).
  int64_t steps_done = -1;
  bool ok() const { return code == StatusCode::Ok; }
  static Status Ok() { return Status{}; }
  static Status Error(StatusCode c, std::string m) {
    Status s;
    s.code = c;
    s.message = std::move(m);
    return s;
  }
  static Status NonFiniteValue(std::string m, std::string tensor, int64_t step, int64_t index) {
    Status s = Error(StatusCode::NonFinite, std::move(m));
    s.tensor = std::move(tensor);
    s.step = step;
    s.index = index;
    return s;
  }
};

// ---------------------------------------------------------------------------------------------
// Per-call control of a long call (run_sequence, run_online): cancellation and progress.
//
// `cancel`: when non-null, the call reads it (relaxed) between steps, between the nodes of a
// step's forward, Jacobian and reverse passes, and between the steps of a BPTT reverse sweep;
// once it is true the call stops at the next check and returns StatusCode::Cancelled with
// Status::steps_done set. Checks are a relaxed atomic load (a few ns), so a call stops within
// one node's work of the flag being set (well under 50 ms unless one op alone takes longer).
// The flag is owned by the caller and must outlive the call; the call never writes it.
//
// `progress`: when non-null, called on the calling (worker) thread after every finished unit
// of work with (ctx, done, total): total is T for forward-only and online calls and 2T for a
// BPTT call with gradients (T forward steps, then T reverse steps); done grows by one per
// unit, from 1 to total. It must be cheap (the binding only stores the numbers and wakes the
// JS thread at most every 50 ms) and must not call back into the session.
struct RunControl {
  const std::atomic<bool>* cancel = nullptr;
  void (*progress)(void* ctx, int64_t done, int64_t total) = nullptr;
  void* ctx = nullptr;
};

// What a session checks for NaN and infinity (set_finite_checks). Both default to true.
//   data:    inputs of run_sequence / run_online (each step's slice, in the pass that copies
//            it into the step block) and every set_param / set_state / set_trace copy.
//   results: per-step losses and the gradient accumulators of run_sequence (BPTT) and
//            run_online (after every step, or every reverse step / window).
// A failed check is StatusCode::NonFinite naming the tensor, the step and the first bad index.
struct FiniteChecks {
  bool data = true;
  bool results = true;
};

// What the session's element-wise fusion pass decided (core/fusion.h): whether fusion is
// on (BRAINTRACE_FUSE=0 turns it off when the session is created), how many fusion groups
// of two or more element-wise nodes the sweeps run as one fused task, the nodes in them,
// and the number of steps (groups and single nodes) of the sweep schedule.
struct FusionInfo {
  bool enabled = false;
  int groups = 0;
  int fused_nodes = 0;
  int items = 0;
  // Matrix products whose VJP writes the cotangents of their last-axis Concat operand's
  // inputs directly, block by block, skipping the unwanted blocks (split), and those whose
  // VJP computes only the wanted inputs' columns of the concat's cotangent (trimmed: the
  // concat has other readers, or a split would reorder a sum); BRAINTRACE_SPLIT_CONCAT=0
  // turns both off when the session is created.
  int split_concats = 0;
  int trimmed_concats = 0;
};

// Size limit. Every size the core computes from a plan, an online configuration or a
// request (element counts, byte counts, their sums over nodes and their products with
// batch, width, positions or step counts) is computed with overflow-checked arithmetic
// (core/checked.h) and refused when it exceeds this many bytes:
//   - a plan (Session::Create): every node, and the sum over all nodes, of numel * element
//     size (the session keeps one value slot per node, and tangent / cotangent slots of the
//     same total), InvalidPlan naming the node;
//   - an online configuration: each trace, and all its buffers together, InvalidArgument;
//   - a request (evaluate, run_sequence, run_online, an optimizer's state): each result and
//     tape, InvalidArgument naming the argument and the sizes.
// Why 2^42 bytes (4 TiB): more than any single host or GPU this library runs on can allocate,
// so no real model is refused, while every size below it times an element size (<= 8) and
// summed over up to 2^31 pieces stays far from int64 overflow. A size past it is a corrupt
// or hostile plan or a mistaken argument, and refusing it here gives a typed error naming
// the culprit instead of an overcommitted allocation that faults later.
constexpr int64_t kMaxTotalBytes = int64_t(1) << 42;

// Stable error code strings used by the JS layer: "ERR_BRAINTRACE_INVALID_ARGUMENT", ...
const char* status_code_name(StatusCode code);

// ---------------------------------------------------------------------------------------------
// Process-wide runtime

enum class Backend : int32_t { Cpu = 0, Cuda = 1 };

struct RuntimeInfo {
  bool cuda_compiled = false;     // this binary contains CUDA kernels
  int device_count = 0;           // CUDA devices that answered (0 when not compiled)
  int cuda_runtime_version = 0;   // e.g. 13000; 0 when not compiled
  Backend backend = Backend::Cpu; // the backend new sessions use
  std::string fallback_reason;    // why backend is Cpu ("" when Cuda); e.g. "built without CUDA"
  int threads = 1;                // size of the CPU thread pool
  // The CPU kernels' run-time choices (the widest clone this CPU runs, unless capped):
  std::string gemm_kernel;        // "avx512" | "avx2" | "neon" | "portable" (BRAINTRACE_GEMM_KERNEL)
  std::string elementwise_isa;    // "avx2" | "portable" (BRAINTRACE_EW_ISA)
  std::string trace_isa;          // "avx512" | "avx2" | "portable" (BRAINTRACE_TRACE_ISA)
};

// Probes CUDA lazily on first call (and caches the result). `preference` is
// "auto" (CUDA when a device answers), "cpu" or "cuda"; "cuda" without a usable
// device is still Cpu, with the reason recorded. Unknown strings: InvalidArgument.
Status runtime_info(const std::string& preference, RuntimeInfo* out);

// Bytes currently allocated by sessions, the peak since process start (or the
// last reset), and the number of allocations made. Used by tests of memory growth.
struct MemoryStats {
  int64_t live_bytes = 0;
  int64_t peak_bytes = 0;
  int64_t allocations = 0;
};
MemoryStats memory_stats();
void reset_peak_memory();

// ---------------------------------------------------------------------------------------------
// A session: one validated plan plus the stored values of its params and states.

// A host buffer in the session dtype.
struct Buffer {
  std::vector<unsigned char> bytes;
  size_t numel = 0;
};

// ---------------------------------------------------------------------------------------------
// Eligibility-trace pieces (issue 3: the ETraceVjpGraphExecutor).
//
// Positions: a hidden group with per-sample shape varshape and batch B has
// P = B * prod(varshape) positions, flat row-major over (B, *varshape). Each member
// of the group is a State leaf whose value is (B, *varshape) (width 1) or
// (B, *varshape, width); S = sum of widths; the group's state vector at position p
// is the members' values at p concatenated in member order.

struct GroupMember {
  int32_t leaf_node = -1;  // the State leaf (value at the start of the step)
  int32_t new_node = -1;   // the node holding the member's new value (its stateNew row)
  int32_t width = 1;       // 1 for a HiddenState, S_m for a HiddenGroupState
};

// A per-position Jacobian of one step, computed by forward-mode passes over the
// whole batch at once (no loop over positions unless `probe_positions`).
struct JacobianRequest {
  enum class Kind : int32_t {
    // D[p, a, b] = d h_a^t[p] / d h_b^{t-1}[p]: result P * S * S values (rows a, cols b).
    Hid2Hid = 0,
    // df[p, a] = d h_a^t[p] / d y[p] for the ETP output node y: result P * S values.
    // y has P values (batched) or P / B values (an unbatched weight-shaped y, e.g.
    // EtpElementWise; then y position q feeds h positions q, q + P/B, ...).
    Df = 1,
  };
  Kind kind = Kind::Hid2Hid;
  std::vector<GroupMember> members;
  int32_t y_node = -1;              // Df only
  std::vector<int32_t> blocked;     // nodes whose tangent is forced to zero (excluded ops)
  // false: one pass per input state b (Hid2Hid) or one pass (Df) with the seed on every
  // position at once: exact when the step never couples positions (the compiler checks).
  // true: seeds one position at a time (P*S passes, or P/B for an unbatched y): the
  // exact diagonal blocks even when positions couple; cross-position terms are dropped.
  bool probe_positions = false;
  int64_t positions = 0;            // P
};

// One step with explicit values (op tests, the executor). Stored values are not modified.
struct EvalArgs {
  // One pointer per slot of each leaf kind. inputs must all be non-null; a null
  // param/state pointer means "use the stored value".
  std::vector<const void*> inputs, params, states;
  // Forward-mode: leave all three empty for no JVP; otherwise one entry per slot,
  // nullptr meaning a zero tangent.
  std::vector<const void*> input_tangents, param_tangents, state_tangents;
  // Reverse-mode: empty for no VJP; otherwise one entry per output-table entry
  // (in table order), nullptr meaning a zero cotangent.
  std::vector<const void*> output_cotangents;
  // Values of these nodes after the forward pass (any node ids).
  std::vector<int32_t> fetch_values;
  // With a VJP: the complete cotangent of these nodes (all same-step consumers summed).
  std::vector<int32_t> fetch_cotangents;
  // With a VJP: the reverse sweep does not propagate through these nodes (their own
  // cotangent is still accumulated and can be fetched). Used for the learning signal
  // with the other hidden states' new values held fixed.
  std::vector<int32_t> stop_cotangents;
  // Per-position Jacobians at this step (independent of the JVP tangents above).
  std::vector<JacobianRequest> jacobians;
};

struct EvalResult {
  std::vector<Buffer> outputs;          // per output-table entry, in table order
  std::vector<Buffer> output_tangents;  // per output-table entry (JVP only)
  std::vector<Buffer> input_cotangents, param_cotangents, state_cotangents;  // VJP only
  std::vector<Buffer> fetched_values;      // per fetch_values entry
  std::vector<Buffer> fetched_cotangents;  // per fetch_cotangents entry (VJP only)
  std::vector<Buffer> jacobians;           // per JacobianRequest
};

// A whole sequence in one call: T steps, states carried from step to step,
// starting from (and finally written back to) the stored states.
struct SequenceArgs {
  int64_t steps = 0;                   // T >= 1
  std::vector<const void*> inputs;     // per input slot: T * numel(slot) values, time-major
  std::vector<double> loss_scale;      // T weights: objective = sum_t loss_scale[t] * loss_t
  bool compute_grads = false;          // reverse mode through all T steps (BPTT)
  // Per step: node values and Jacobians as in EvalArgs, stacked with a leading T axis.
  std::vector<int32_t> fetch_values;
  std::vector<JacobianRequest> jacobians;
  // Cancellation and progress (null: neither). On Cancelled (or NonFinite) the stored params
  // are never touched, and the stored states are:
  //   compute_grads = false: the states after steps_done = the finished steps (those of a
  //                          fresh run over the first steps_done steps);
  //   compute_grads = true:  unchanged (the call's entry states; steps_done = 0): BPTT
  //                          writes nothing back until the reverse sweep has finished.
  const RunControl* control = nullptr;
};

struct SequenceResult {
  std::vector<Buffer> outputs;             // per model-output slot: T * numel(slot) values
  std::vector<double> losses;              // T per-step losses (empty when the plan has no loss)
  std::vector<Buffer> param_grads;         // per param slot, d objective / d param (compute_grads)
  std::vector<Buffer> initial_state_grads; // per state slot, d objective / d initial state
  std::vector<Buffer> fetched_values;      // per fetch_values entry: T * numel(node)
  std::vector<Buffer> jacobians;           // per JacobianRequest: T * (P*S*S or P*S)
};

class Session {
 public:
  virtual ~Session() = default;

  // Decodes and validates a plan (see ops.h for the encoding). Never throws.
  static Status Create(const int32_t* code, size_t code_len, const double* fattr,
                       size_t fattr_len, Backend backend, std::unique_ptr<Session>* out);

  virtual DType dtype() const = 0;
  virtual Backend backend() const = 0;
  virtual int num_inputs() const = 0;
  virtual int num_params() const = 0;
  virtual int num_states() const = 0;
  virtual int num_outputs() const = 0;        // model-output slots (kind 0)
  virtual int num_output_entries() const = 0; // rows of the output table (all kinds)
  virtual bool has_loss() const = 0;
  virtual const std::vector<int64_t>& input_shape(int slot) const = 0;
  virtual const std::vector<int64_t>& param_shape(int slot) const = 0;
  virtual const std::vector<int64_t>& state_shape(int slot) const = 0;
  virtual const std::vector<int64_t>& output_shape(int slot) const = 0;
  // Output-table entry: kind, slot index and shape.
  virtual OutputKind output_entry_kind(int entry) const = 0;
  virtual int output_entry_index(int entry) const = 0;
  virtual const std::vector<int64_t>& output_entry_shape(int entry) const = 0;

  // Stored values; n must equal the slot's numel.
  virtual Status set_param(int slot, const void* data, size_t n) = 0;
  virtual Status get_param(int slot, void* out, size_t n) const = 0;
  virtual Status set_state(int slot, const void* data, size_t n) = 0;
  virtual Status get_state(int slot, void* out, size_t n) const = 0;

  // NaN / infinity checks of this session (see FiniteChecks; both on by default). Not
  // thread-safe against a running call: set it between calls.
  virtual void set_finite_checks(const FiniteChecks& checks) = 0;
  virtual FiniteChecks finite_checks() const = 0;

  virtual Status evaluate(const EvalArgs& args, EvalResult* out) = 0;
  virtual Status run_sequence(const SequenceArgs& args, SequenceResult* out) = 0;

  // Online learning (braintrace/online.h). configure_online validates the config
  // against the plan, allocates the traces (zeroed) and resets the trace step
  // counter; calling it again replaces the configuration.
  virtual Status configure_online(const struct OnlineConfig& config) = 0;
  // T steps (or T / chunk windows) forward in time; advances states and traces.
  virtual Status run_online(const struct OnlineArgs& args, struct OnlineResult* out) = 0;
  // Zeroes every trace and the trace step counter.
  virtual Status reset_traces() = 0;
  // Names and shapes of the trace buffers, in a fixed order.
  virtual Status trace_info(std::vector<struct TraceInfo>* out) const = 0;
  // Copies trace `index` (layout as in trace_info) out of / into the session.
  virtual Status get_trace(int index, void* out, size_t n) const = 0;
  virtual Status set_trace(int index, const void* data, size_t n) = 0;
  // Number of trace steps taken since configure_online / reset_traces (pp_prop's n).
  virtual int64_t trace_steps() const = 0;
  virtual Status set_trace_steps(int64_t n) = 0;
  // The element-wise fusion decided at creation (see FusionInfo).
  virtual FusionInfo fusion_info() const = 0;
};

}  // namespace bt
