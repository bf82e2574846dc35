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
};

struct Status {
  StatusCode code = StatusCode::Ok;
  std::string message;
  bool ok() const { return code == StatusCode::Ok; }
  static Status Ok() { return Status{}; }
  static Status Error(StatusCode c, std::string m) { return Status{c, std::move(m)}; }
};

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
};

struct EvalResult {
  std::vector<Buffer> outputs;          // per output-table entry, in table order
  std::vector<Buffer> output_tangents;  // per output-table entry (JVP only)
  std::vector<Buffer> input_cotangents, param_cotangents, state_cotangents;  // VJP only
};

// A whole sequence in one call: T steps, states carried from step to step,
// starting from (and finally written back to) the stored states.
struct SequenceArgs {
  int64_t steps = 0;                   // T >= 1
  std::vector<const void*> inputs;     // per input slot: T * numel(slot) values, time-major
  std::vector<double> loss_scale;      // T weights: objective = sum_t loss_scale[t] * loss_t
  bool compute_grads = false;          // reverse mode through all T steps (BPTT)
};

struct SequenceResult {
  std::vector<Buffer> outputs;             // per model-output slot: T * numel(slot) values
  std::vector<double> losses;              // T per-step losses (empty when the plan has no loss)
  std::vector<Buffer> param_grads;         // per param slot, d objective / d param (compute_grads)
  std::vector<Buffer> initial_state_grads; // per state slot, d objective / d initial state
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

  virtual Status evaluate(const EvalArgs& args, EvalResult* out) = 0;
  virtual Status run_sequence(const SequenceArgs& args, SequenceResult* out) = 0;
};

}  // namespace bt
