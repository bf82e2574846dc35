// The Node-API layer of braintrace: shared declarations of native/binding/*.cc.
//
// This layer is thin on purpose. It converts JS values to the plain C++ API of
// native/include/braintrace/api.h and back, and nothing else:
//   * argument checks: wrong JS types throw TypeError, wrong lengths or ranges
//     throw RangeError; the message names the argument, the expected and the
//     actual value ("inputs[0] must be a Float64Array of length 6 (got
//     Float32Array of length 4)");
//   * core statuses become an Error whose `code` is bt::status_code_name(code);
//     a disposed session throws code ERR_BRAINTRACE_DISPOSED;
//   * every C++ exception is caught at the boundary (Guard), so nothing escapes
//     into V8 except Napi::Error;
//   * results are copied into fresh JS-owned typed arrays (no external buffers:
//     NODE_API_NO_EXTERNAL_BUFFERS_ALLOWED makes any use a compile error).
// The addon is context-aware (Napi::Addon<T>): all per-environment state lives in
// the Addon instance, so it loads in worker threads and Electron renderers.
#pragma once

#include <napi.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

#include "braintrace/api.h"
#include "braintrace/online.h"

namespace btnode {

// Error codes of errors raised by the binding itself (the others come from
// bt::status_code_name).
constexpr const char* kCodeDisposed = "ERR_BRAINTRACE_DISPOSED";
constexpr const char* kCodeBusy = "ERR_BRAINTRACE_BUSY";
constexpr const char* kCodeInvalidArgument = "ERR_BRAINTRACE_INVALID_ARGUMENT";
constexpr const char* kCodeOutOfMemory = "ERR_BRAINTRACE_OUT_OF_MEMORY";
constexpr const char* kCodeInternal = "ERR_BRAINTRACE_INTERNAL";

// ---------------------------------------------------------------------------------------------
// Errors (convert.cc)

// An Error with a `code` property.
Napi::Error CodeError(Napi::Env env, const char* code, const std::string& message);
// The Error for a failed core status (code = bt::status_code_name(status.code)).
Napi::Error StatusError(Napi::Env env, const bt::Status& status);
// Throws StatusError when !status.ok().
void ThrowIfError(Napi::Env env, const bt::Status& status);

// Runs f, turning any C++ exception other than Napi::Error into a JS Error
// with a code (std::bad_alloc: OUT_OF_MEMORY; anything else: INTERNAL).
template <typename F>
auto Guard(Napi::Env env, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const Napi::Error&) {
    throw;
  } catch (const std::bad_alloc&) {
    throw CodeError(env, kCodeOutOfMemory, "out of memory in the braintrace native binding");
  } catch (const std::exception& e) {
    throw CodeError(env, kCodeInternal, std::string("internal error in the braintrace native binding: ") + e.what());
  } catch (...) {
    throw CodeError(env, kCodeInternal, "internal error in the braintrace native binding: unknown exception");
  }
}

// ---------------------------------------------------------------------------------------------
// Argument conversion (convert.cc)

// "Float32Array of length 4", "Array of length 2", "number 3.5", "undefined", ...
std::string Describe(const Napi::Value& v);
// "Float32Array" / "Float64Array" for a dtype.
const char* ArrayTypeName(bt::DType dtype);
size_t ElementSize(bt::DType dtype);
// Product of the dims (1 for a scalar).
int64_t Numel(const std::vector<int64_t>& shape);

// Checks that v is a typed array of the dtype with exactly `length` elements and
// returns its data. Wrong type: TypeError; wrong length: RangeError.
const void* CheckArray(Napi::Env env, const Napi::Value& v, const std::string& name, bt::DType dtype,
                       size_t length);
// The same for an Int32Array / Float64Array of any length (plan arrays, lossScale).
Napi::Int32Array CheckInt32Array(Napi::Env env, const Napi::Value& v, const std::string& name);
Napi::Float64Array CheckFloat64Array(Napi::Env env, const Napi::Value& v, const std::string& name);

// An integer in [0, count): non-number TypeError, otherwise RangeError.
int CheckSlot(Napi::Env env, const Napi::Value& v, const std::string& name, int count);
// A JS Array of exactly `length` entries (TypeError / RangeError).
Napi::Array CheckArrayOf(Napi::Env env, const Napi::Value& v, const std::string& name, size_t length);
// undefined/null -> empty optional; otherwise an Array of at most `max_length` entries.
bool OptionalArray(Napi::Env env, const Napi::Value& v, const std::string& name, size_t max_length,
                   Napi::Array* out);

// The backend preference: the argument when given (must be a string), else the
// environment variable BRAINTRACE_DEVICE, else "auto". Checked: auto | cpu | cuda.
std::string Preference(const Napi::CallbackInfo& info, size_t index);

Napi::Array ShapeToJs(Napi::Env env, const std::vector<int64_t>& shape);
// Copies a core buffer into a fresh typed array of the dtype.
Napi::TypedArray BufferToJs(Napi::Env env, const bt::Buffer& buf, bt::DType dtype);
Napi::Array BuffersToJs(Napi::Env env, const std::vector<bt::Buffer>& bufs, bt::DType dtype);
// Which optional fields a sequence result carries (the ones the call asked for).
struct SequenceResultFields {
  bool grads = false;          // paramGrads, initialStateGrads
  bool fetched_values = false; // fetchedValues
  bool jacobians = false;      // jacobians
};
Napi::Object SequenceResultToJs(Napi::Env env, const bt::SequenceResult& r, bt::DType dtype,
                                const SequenceResultFields& fields);

// Eligibility-trace request fields (evaluate and runSequence). Only numbers are read and
// they are copied into C++ structs, so the result can be used on a worker thread.
//
// A node id: a non-negative integer (number) below 2^31. Not a number: TypeError;
// otherwise RangeError ("jacobians[1].members[0].leafNode must be an integer node id (got -1)").
// The upper bound (the plan's node count) is checked by the core (INVALID_ARGUMENT).
int32_t CheckNodeId(Napi::Env env, const Napi::Value& v, const std::string& name);
// undefined/null -> false; otherwise an Array of node ids, copied into *out.
bool OptionalNodeIds(Napi::Env env, const Napi::Value& v, const std::string& name,
                     std::vector<int32_t>* out);
// undefined/null -> false; otherwise an Array of NativeJacobianRequest objects
// ({ kind: 'hid2hid' | 'df', members: [{ leafNode, newNode, width }], yNode?, blocked?,
// probePositions?, positions }), copied into *out.
bool OptionalJacobians(Napi::Env env, const Napi::Value& v, const std::string& name,
                       std::vector<bt::JacobianRequest>* out);

// Online learning (online.cc). NativeOnlineConfig -> bt::OnlineConfig (numbers only,
// copied). Wrong types: TypeError; out-of-range numbers: RangeError; consistency with
// the plan is checked by the core (INVALID_ARGUMENT).
void ParseOnlineConfig(Napi::Env env, const Napi::Value& v, bt::OnlineConfig* out);
// NativeOnlineArgs; with `copy` the inputs are copied into `owned` (async workers).
void ParseOnlineArgs(Napi::Env env, const Napi::Value& v, const bt::Session& s, bt::DType dtype, bool copy,
                     bt::OnlineArgs* out, std::vector<std::vector<unsigned char>>* owned);
Napi::Object OnlineResultToJs(Napi::Env env, const bt::OnlineResult& r, bt::DType dtype, bool grads);

// ---------------------------------------------------------------------------------------------
// Cancellation and progress of async calls (control.cc; the design is described there)

// The cancel flags of one environment's in-flight async calls. The Addon creates one per
// environment (ForEnv also registers the environment cleanup hook and, once per process,
// an atexit handler, that cancel every call and wait for its Execute() to return).
struct InFlightRegistry {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::shared_ptr<std::atomic<bool>>> flags;
  int running = 0;  // registered calls whose Execute() has not returned
  void Add(const std::shared_ptr<std::atomic<bool>>& flag);
  void Done(const std::shared_ptr<std::atomic<bool>>& flag);
  // Sets every flag, then waits up to timeout_ms for running == 0.
  void CancelAllAndWait(int timeout_ms);
  static std::shared_ptr<InFlightRegistry> ForEnv(Napi::Env env);
};

// One async call's control: its cancel flag, its progress thread-safe function and its
// entry in the registry. Created and destroyed on the JS thread; run_control() and
// ExecuteDone() are for the worker thread.
class CallControl {
 public:
  CallControl(Napi::Env env, std::shared_ptr<InFlightRegistry> registry, const Napi::Value& on_progress,
              const char* name);
  ~CallControl();
  CallControl(const CallControl&) = delete;
  CallControl& operator=(const CallControl&) = delete;
  const bt::RunControl* run_control() const { return &rc_; }
  // Worker thread, after the core call: releases the thread-safe function, unregisters.
  void ExecuteDone();
  // JS thread, when the call settles: delivers the final progress (ok) and returns true
  // with *error set when onProgress threw (the call then rejects with that exception).
  bool Settle(Napi::Env env, bool ok, Napi::Value* error);
  // Any thread: asks the call to stop (session.cancelRun()).
  void Cancel();

 private:
  struct Shared;
  static void Progress(void* ctx, int64_t done, int64_t total);
  static void CallJs(napi_env env, napi_value probe, void* context, void* data);
  static bool DeliverProgress(napi_env env, Shared& s, int64_t done, int64_t total);
  static void Finalize(napi_env env, void* data, void* hint);

  napi_env env_;
  std::shared_ptr<InFlightRegistry> registry_;
  std::shared_ptr<Shared> shared_;
  napi_threadsafe_function tsfn_ = nullptr;
  bt::RunControl rc_;
  std::chrono::steady_clock::time_point last_wake_{};  // worker thread only
  bool released_ = false;
  bool registered_ = false;
};

// The optional `control` argument ({ onProgress? }): the onProgress function, or undefined.
// Wrong types and unknown keys throw TypeError.
Napi::Value ParseControl(Napi::Env env, const Napi::Value& v);

// ---------------------------------------------------------------------------------------------
// Session (session.cc)

// State shared by a session's JS wrapper and its in-flight async worker, so that
// neither outlives the native session it uses (the worker keeps it alive even if
// the wrapper is disposed or garbage-collected while it runs).
struct SessionCore {
  std::shared_ptr<bt::Session> session;
  bool busy = false;  // touched only on the JS thread
  CallControl* control = nullptr;  // the in-flight async call's control (JS thread), or null
};

class SessionWrap : public Napi::ObjectWrap<SessionWrap> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit SessionWrap(const Napi::CallbackInfo& info);
  ~SessionWrap() override;
  void Finalize(Napi::Env env) override;

 private:
  // The live session for a call; throws DISPOSED (and BUSY unless allow_busy).
  bt::Session& Live(Napi::Env env, bool allow_busy);
  void Release(Napi::Env env);

  Napi::Value GetDType(const Napi::CallbackInfo& info);
  Napi::Value GetBackend(const Napi::CallbackInfo& info);
  Napi::Value GetNumInputs(const Napi::CallbackInfo& info);
  Napi::Value GetNumParams(const Napi::CallbackInfo& info);
  Napi::Value GetNumStates(const Napi::CallbackInfo& info);
  Napi::Value GetNumOutputs(const Napi::CallbackInfo& info);
  Napi::Value GetHasLoss(const Napi::CallbackInfo& info);
  Napi::Value GetDisposed(const Napi::CallbackInfo& info);
  Napi::Value InputShape(const Napi::CallbackInfo& info);
  Napi::Value ParamShape(const Napi::CallbackInfo& info);
  Napi::Value StateShape(const Napi::CallbackInfo& info);
  Napi::Value OutputShape(const Napi::CallbackInfo& info);
  Napi::Value OutputEntries(const Napi::CallbackInfo& info);
  Napi::Value SetParam(const Napi::CallbackInfo& info);
  Napi::Value GetParam(const Napi::CallbackInfo& info);
  Napi::Value SetState(const Napi::CallbackInfo& info);
  Napi::Value GetState(const Napi::CallbackInfo& info);
  Napi::Value Evaluate(const Napi::CallbackInfo& info);
  Napi::Value RunSequence(const Napi::CallbackInfo& info);
  Napi::Value RunSequenceAsync(const Napi::CallbackInfo& info);
  Napi::Value ConfigureOnline(const Napi::CallbackInfo& info);
  Napi::Value RunOnline(const Napi::CallbackInfo& info);
  Napi::Value RunOnlineAsync(const Napi::CallbackInfo& info);
  Napi::Value ResetTraces(const Napi::CallbackInfo& info);
  Napi::Value TraceInfo(const Napi::CallbackInfo& info);
  Napi::Value GetTrace(const Napi::CallbackInfo& info);
  Napi::Value SetTrace(const Napi::CallbackInfo& info);
  Napi::Value TraceSteps(const Napi::CallbackInfo& info);
  Napi::Value SetTraceSteps(const Napi::CallbackInfo& info);
  Napi::Value SetFiniteChecks(const Napi::CallbackInfo& info);
  Napi::Value CancelRun(const Napi::CallbackInfo& info);
  Napi::Value Dispose(const Napi::CallbackInfo& info);

  std::shared_ptr<SessionCore> core_;
  bt::DType dtype_ = bt::DType::F32;
  int64_t external_bytes_ = 0;  // reported to V8 with AdjustExternalMemory
  bool disposed_ = false;
};

// ---------------------------------------------------------------------------------------------
// Optimizer (optim.cc): the class of createOptimizer's objects (NativeOptimizer).
Napi::Function DefineOptimizer(Napi::Env env);

// ---------------------------------------------------------------------------------------------
// The addon instance (addon.cc): one per Node environment (main thread or worker).

class Addon : public Napi::Addon<Addon> {
 public:
  Addon(Napi::Env env, Napi::Object exports);

  // Constructor of the session class (not exported: sessions come from createSession).
  Napi::FunctionReference session_ctor;
  // Hands a created core session to SessionWrap's constructor (JS thread only).
  std::unique_ptr<bt::Session> pending_session;
  // Constructor of the optimizer class (not exported: optimizers come from createOptimizer).
  Napi::FunctionReference optimizer_ctor;
  // The cancel flags of this environment's in-flight async calls (control.cc).
  std::shared_ptr<InFlightRegistry> inflight;

 private:
  Napi::Value Info(const Napi::CallbackInfo& info);
  Napi::Value OpNames(const Napi::CallbackInfo& info);
  Napi::Value MemoryStats(const Napi::CallbackInfo& info);
  Napi::Value ResetPeakMemory(const Napi::CallbackInfo& info);
  Napi::Value CreateSession(const Napi::CallbackInfo& info);
  Napi::Value CreateOptimizer(const Napi::CallbackInfo& info);  // optim.cc
  Napi::Value CheckFinite(const Napi::CallbackInfo& info);
  Napi::Value BenchmarkCopy(const Napi::CallbackInfo& info);
  Napi::Value BenchmarkTraceStep(const Napi::CallbackInfo& info);
};

}  // namespace btnode
