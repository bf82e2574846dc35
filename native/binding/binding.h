// The Node-API layer of braintrace: shared declarations of native/binding/*.cc.
//
// This layer is thin on purpose. It converts JS values to the plain C++ API of
// native/include/braintrace/api.h and back, and nothing else:
//   * argument checks: wrong JS types throw TypeError, wrong lengths or ranges
//     throw RangeError, both with code ERR_BRAINTRACE_INVALID_ARGUMENT (made by
//     ArgTypeError / ArgRangeError, the only way this layer builds them); the
//     message names the argument, the expected and the actual value
//     ("inputs[0] must be a Float64Array of length 6 (got Float32Array of length 4)");
//   * core statuses become an Error whose `code` is bt::status_code_name(code);
//     a disposed session throws code ERR_BRAINTRACE_DISPOSED, a busy one
//     ERR_BRAINTRACE_BUSY;
//   * every C++ exception is caught at the boundary (Guard), so nothing escapes
//     into V8 except Napi::Error;
//   * results are copied into fresh JS-owned typed arrays (no external buffers:
//     NODE_API_NO_EXTERNAL_BUFFERS_ALLOWED makes any use a compile error).
//
// The two-phase rule (no pointer into JS memory outlives a JS call-out). Reading
// a property (o.Get, a.Get) can run a getter or a Proxy trap, and such code can
// detach an ArrayBuffer (structuredClone(b, { transfer: [b] })), shrink a
// resizable one behind a length-tracking view, dispose the session, or start an
// async call on it. So every entry point is written in two phases:
//   1. read and validate ALL arguments: every o.Get / a.Get happens here; typed
//      arrays are checked (type, length) and recorded in a PinnedArrays list as
//      handles, never as data pointers;
//   2. with no further JS call-out: re-check that the object (session, optimizer)
//      is still live and not busy, then PinnedArrays::Pin() re-checks every array
//      (length unchanged, buffer not detached, byte range still inside the
//      buffer) and only then takes its data pointer (or copies it, for an async
//      worker); then the core runs, PinnedArrays::Unpin() drops the pointers,
//      and only then are results built (building them may run JS setters; the
//      inputs are not touched any more).
// Loops over a JS Array read its length once, when it is checked: a getter that
// grows the Array while it is read is not seen (no write past the parsed list).
// A buffer detached or shrunk during phase 1 is a TypeError / RangeError with
// code ERR_BRAINTRACE_INVALID_ARGUMENT ("inputs[0] must be a Float32Array of
// length 6 (got a typed array whose buffer was detached during the call)").
// The addon is context-aware (Napi::Addon<T>): all per-environment state lives in
// the Addon instance, so it loads in worker threads and Electron renderers.
#pragma once

#include <napi.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

#include "braintrace/api.h"
#include "braintrace/online.h"
#include "core/optim.h"  // bt::NonFinitePolicy, bt::Optimizer (runOnline's into.update)

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
// A TypeError (wrong JS type) / RangeError (wrong length or value) with code
// ERR_BRAINTRACE_INVALID_ARGUMENT: every argument error the binding throws is one of these.
Napi::Error ArgTypeError(Napi::Env env, const std::string& message);
Napi::Error ArgRangeError(Napi::Env env, const std::string& message);
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
// Property keys of the per-call hot paths (addon.cc)
//
// napi_get_named_property / napi_set_named_property make a fresh V8 string from the C name
// and look it up in the string table on every read (a good part of a tiny streaming step).
// The keys below are made once per environment (the Addon instance: an Array of the strings,
// held by a reference) and passed as values: V8 internalises a key at its first use and later reads
// take the fast path. Reading a property with them is exactly o.Get(name) (getters and
// Proxy traps run the same way).
enum class Key : int {
  Steps, Inputs, LossScale, ComputeGrads, Chunk,                   // NativeOnlineArgs
  Params, GradsOut, LossesOut, Outputs, OutputsOut, Update,        // NativeOnlineInto
  Optimizer, Slots, Lr, MaxNorm, NonFinite,                        // into.update
  Losses, ParamGrads, GradNorm, Skipped,                           // results
  Count
};
// The key's JS string (this environment's); its C name is KeyName(k).
napi_value KeyValue(Napi::Env env, Key k);
const char* KeyName(Key k);
// o[k] (may run a getter or a Proxy trap, as o.Get(KeyName(k)) would).
Napi::Value GetKey(Napi::Env env, const Napi::Object& o, Key k);
// o[k] = v (as o.Set(KeyName(k), v)).
void SetKey(Napi::Env env, Napi::Object& o, Key k, const Napi::Value& v);

// ---------------------------------------------------------------------------------------------
// Argument conversion (convert.cc)

// "Float32Array of length 4", "Array of length 2", "number 3.5", "undefined", ...
std::string Describe(const Napi::Value& v);
// "Float32Array" / "Float64Array" for a dtype.
const char* ArrayTypeName(bt::DType dtype);
size_t ElementSize(bt::DType dtype);
// Product of the dims (1 for a scalar).
int64_t Numel(const std::vector<int64_t>& shape);

// The typed-array arguments of one binding call (the two-phase rule above).
//
// Phase 1: Add() checks a value (type and length: TypeError / RangeError with code
// ERR_BRAINTRACE_INVALID_ARGUMENT, naming the argument) and records its handle and
// where its data pointer goes; it takes no pointer. Phase 2: Pin() re-reads every
// recorded array from V8 (no JS runs) and writes the data pointers, or, given
// `owned`, copies the data there and writes pointers to the copies (async workers).
// Unpin() nulls the pointers once the core call has returned.
//
// Destinations must stay where they are between Add() and Unpin(): size the
// vectors they live in before the first Add() into them.
// An argument's name for messages, built only when a message needs it: `base`, or
// `base[index]` when index >= 0 (the hot paths name every array they check, and most
// names are longer than a short string's inline storage).
struct ArgName {
  const char* base;
  int64_t index = -1;
  std::string str() const { return index < 0 ? std::string(base) : std::string(base) + "[" + std::to_string(index) + "]"; }
};

class PinnedArrays {
 public:
  // Any length is accepted (Add returns it; Pin checks it did not change).
  static constexpr size_t kAnyLength = static_cast<size_t>(-1);

  explicit PinnedArrays(Napi::Env env) : env_(env) { entries_.reserve(16); }
  PinnedArrays(const PinnedArrays&) = delete;
  PinnedArrays& operator=(const PinnedArrays&) = delete;

  // A Float32Array (F32) / Float64Array (F64) of `length` elements (or kAnyLength);
  // its data pointer goes to *dst at Pin(). Returns the element count.
  size_t Add(const Napi::Value& v, std::string name, bt::DType dtype, size_t length, const void** dst);
  // The same for any element type ("an Int32Array", "a Float64Array", ...).
  size_t Add(const Napi::Value& v, std::string name, napi_typedarray_type type, size_t length, const void** dst);
  // The same, named lazily (the message is built only on failure).
  size_t Add(const Napi::Value& v, ArgName name, bt::DType dtype, size_t length, const void** dst);
  size_t Add(const Napi::Value& v, ArgName name, napi_typedarray_type type, size_t length, const void** dst);
  // Room for n more arrays (avoids re-allocation in loops).
  void Reserve(size_t n) { entries_.reserve(entries_.size() + n); }

  // Phase 2 (no JS call-out): re-checks each array and writes its pointer; with
  // `owned`, copies each into (*owned)[k] (resized to size()) and points at the copy.
  // A detached buffer: TypeError; a length or buffer that shrank: RangeError.
  void Pin(std::vector<std::vector<unsigned char>>* owned = nullptr);
  // Sets every destination back to nullptr (after the core call).
  void Unpin();

  size_t size() const { return entries_.size(); }

 private:
  struct Entry {
    napi_value value;
    std::string name;  // empty: `lazy` names it
    ArgName lazy;
    std::string Name() const { return name.empty() ? lazy.str() : name; }
    napi_typedarray_type type;
    size_t length;  // the element count seen in phase 1
    const void** dst;
  };
  Napi::Env env_;
  std::vector<Entry> entries_;
};

// Phase-1 checks without recording (also used by PinnedArrays::Add): v must be a
// typed array of the type with exactly `length` elements (any with kAnyLength).
// Wrong type: TypeError; wrong length: RangeError. Returns the element count.
size_t CheckTypedArray(Napi::Env env, const Napi::Value& v, const std::string& name, napi_typedarray_type type,
                       size_t length);
size_t CheckTypedArray(Napi::Env env, const Napi::Value& v, const ArgName& name, napi_typedarray_type type,
                       size_t length);
// "Float32Array" / "Float64Array" / "Int32Array" / ... for a typed-array type.
const char* TypedArrayTypeName(napi_typedarray_type type);
napi_typedarray_type TypedArrayTypeOf(bt::DType dtype);

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
// runOnline's optional second argument `into` (NativeOnlineInto; the per-call overhead of
// streaming steps; runOnlineAsync has none): `params` (one array per param slot, stored with
// the checks of setParams before the run, as one setParams call just before would), `gradsOut`
// (one array per param slot: the gradients are written there instead of into fresh arrays;
// needs computeGrads), `lossesOut` (a Float64Array with one entry per loss of the call: the
// losses are written there), `outputs` (false: no outputs), `outputsOut` (one array per
// model-output slot, steps * its numel: the outputs are written there; needs outputs true).
// The result then holds only the fields these did not take (`outputs` unless false or given
// outputsOut, `losses` without lossesOut, `paramGrads` with computeGrads and without gradsOut
// or `update`: an update consumes the gradients, which then come back only into gradsOut). Their arrays are pinned with the inputs (phase 1
// reads them, phase 2 takes their pointers).
struct OnlineExtras {
  bool has_params = false;
  std::vector<const void*> params;  // per param slot, pinned
  std::vector<size_t> param_sizes;  // numel per param slot
  bool has_grads_out = false;
  std::vector<const void*> grads_out;  // per param slot, pinned (written after the run)
  bool has_losses_out = false;
  const void* losses_out = nullptr;    // pinned (null again after Unpin)
  bool outputs = true;
  bool has_outputs_out = false;
  std::vector<const void*> outputs_out;  // per model-output slot, pinned (written after the run)
  // into.update { optimizer, params, slots, lr, maxNorm?, nonFinite? }: after the run, one step
  // of the optimizer on `params` (its bound path order; slots[k]: the param slot of path k)
  // from the call's gradients, then the updated params stored into the session (unless the
  // step was skipped). The result then carries `gradNorm` and `skipped`.
  bool has_update = false;
  void* optimizer = nullptr;               // UnwrapOptimizer
  std::vector<int64_t> update_sizes;       // the optimizer's bound sizes
  std::vector<const void*> update_params;  // pinned, written by the step
  std::vector<int> update_slots;
  double lr = 0, max_norm = 0;
  bt::NonFinitePolicy policy = bt::NonFinitePolicy::Error;
  double grad_norm = 0;
  bool skipped = false;
  // runOnlineStep's `stats` (a Float64Array of 2, with an update): gradNorm and skipped (1 / 0)
  // are written there (phase 2) instead of into the result object.
  bool has_stats_out = false;
  const void* stats_out = nullptr;  // pinned
};

// NativeOnlineArgs, phase 1: numbers into *out; the inputs go into `pins` (pointers
// into out->inputs) and lossScale, when given, into `pins` with *loss_scale as its
// destination. After pins->Pin(), FinishOnlineArgs copies lossScale into out->loss_scale.
void ParseOnlineArgs(Napi::Env env, const Napi::Value& v, const bt::Session& s, bt::DType dtype, PinnedArrays* pins,
                     bt::OnlineArgs* out, const void** loss_scale);
// runOnline's `into` (undefined: no extras), phase 1, after ParseOnlineArgs filled `args`:
// its arrays go into `pins` with destinations in *extras. Wrong types: TypeError; wrong
// lengths: RangeError (named into.params[i], into.gradsOut[i], into.lossesOut).
void ParseOnlineExtras(Napi::Env env, const Napi::Value& v, const bt::Session& s, bt::DType dtype, PinnedArrays* pins,
                       const bt::OnlineArgs& args, OnlineExtras* extras);
// The two parts of ParseOnlineExtras on values already read (runOnline reads them from
// `into` and `into.update`, runOnlineStep takes them as arguments); the same checks and
// names (into.params[i], into.update.slots[k], ...). ParseOnlineUpdateValues needs
// computeGrads (checked by the caller).
void ParseOnlineIntoValues(Napi::Env env, const bt::Session& s, bt::DType dtype, PinnedArrays* pins,
                           const bt::OnlineArgs& args, const Napi::Value& params, const Napi::Value& grads_out,
                           const Napi::Value& losses_out, const Napi::Value& outputs, const Napi::Value& outputs_out,
                           OnlineExtras* extras);
void ParseOnlineUpdateValues(Napi::Env env, const bt::Session& s, bt::DType dtype, PinnedArrays* pins,
                             const Napi::Value& optimizer, const Napi::Value& params, const Napi::Value& slots,
                             const Napi::Value& lr, const Napi::Value& max_norm, const Napi::Value& non_finite,
                             OnlineExtras* extras);
void FinishOnlineArgs(bt::OnlineArgs* out, const void* loss_scale);
Napi::Object OnlineResultToJs(Napi::Env env, const bt::OnlineResult& r, bt::DType dtype, bool grads);
// The result of a runOnline call with `extras` (gradsOut / lossesOut / outputs): phase 2,
// while the arrays are pinned, WriteOnlineExtras copies the gradients and losses into the
// caller's arrays; after Unpin, OnlineExtrasResultToJs builds the result object (the fields
// the caller's arrays did not take; see OnlineExtras).
void WriteOnlineExtras(const bt::OnlineResult& r, bt::DType dtype, const OnlineExtras& extras);
Napi::Object OnlineExtrasResultToJs(Napi::Env env, const bt::OnlineResult& r, bt::DType dtype, bool grads,
                                    const OnlineExtras& extras);

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
  // Live(env, false), returned as a shared reference that keeps the core session
  // alive for the whole call even if a getter disposes the wrapper (each entry
  // point calls Live again after its phase 1 and throws DISPOSED / BUSY then).
  std::shared_ptr<bt::Session> Hold(Napi::Env env);
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
  // setParam for every slot in one call (arrays[i] -> slot i, in order).
  Napi::Value SetParams(const Napi::CallbackInfo& info);
  Napi::Value GetParam(const Napi::CallbackInfo& info);
  Napi::Value SetState(const Napi::CallbackInfo& info);
  Napi::Value GetState(const Napi::CallbackInfo& info);
  Napi::Value Evaluate(const Napi::CallbackInfo& info);
  Napi::Value RunSequence(const Napi::CallbackInfo& info);
  Napi::Value RunSequenceAsync(const Napi::CallbackInfo& info);
  Napi::Value ConfigureOnline(const Napi::CallbackInfo& info);
  Napi::Value RunOnline(const Napi::CallbackInfo& info);
  // runOnline of one step (chunk 1, no lossScale) with its arguments positional (no property
  // reads; see NativeSession.runOnlineStep): the same checks, run and result.
  Napi::Value RunOnlineStep(const Napi::CallbackInfo& info);
  // The run and result of RunOnline / RunOnlineStep after their phase 1 (*loss_scale: the
  // pinned lossScale's destination, read after Pin).
  Napi::Value RunOnlineParsed(Napi::Env env, const std::shared_ptr<bt::Session>& held, PinnedArrays& pins,
                              bt::OnlineArgs& args, const void* const* loss_scale, OnlineExtras& extras);
  Napi::Value RunOnlineAsync(const Napi::CallbackInfo& info);
  Napi::Value ResetTraces(const Napi::CallbackInfo& info);
  Napi::Value TraceInfo(const Napi::CallbackInfo& info);
  Napi::Value GetTrace(const Napi::CallbackInfo& info);
  Napi::Value SetTrace(const Napi::CallbackInfo& info);
  Napi::Value TraceSteps(const Napi::CallbackInfo& info);
  Napi::Value SetTraceSteps(const Napi::CallbackInfo& info);
  Napi::Value SetFiniteChecks(const Napi::CallbackInfo& info);
  Napi::Value CancelRun(const Napi::CallbackInfo& info);
  Napi::Value FusionInfo(const Napi::CallbackInfo& info);
  Napi::Value SplitConcats(const Napi::CallbackInfo& info);
  Napi::Value Dispose(const Napi::CallbackInfo& info);

  std::shared_ptr<SessionCore> core_;
  bt::DType dtype_ = bt::DType::F32;
  int64_t external_bytes_ = 0;  // reported to V8 with AdjustExternalMemory
  bool disposed_ = false;
  // runOnline's result buffers, kept between calls so that a streaming step allocates none
  // (run_online reuses their storage); kept only up to 1 MiB (a larger call frees them). A
  // call takes them out for its duration (a call re-entered from a setter while results are
  // built finds none and uses fresh ones).
  bt::OnlineResult online_scratch_;
};

// ---------------------------------------------------------------------------------------------
// Optimizer (optim.cc): the class of createOptimizer's objects (NativeOptimizer).
Napi::Function DefineOptimizer(Napi::Env env);
// The optimizer step runOnline's into.update runs after the online step. Phase 1:
// UnwrapOptimizer checks that `v` is a NativeOptimizer (by its type tag; TypeError otherwise,
// DISPOSED when disposed), bound by a first step, of `dtype`, and returns it (opaque) with its
// bound sizes. Phase 2: StepUnwrappedOptimizer re-checks that it is live and runs its step
// (as NativeOptimizer.step would, lastStepSkipped included).
void* UnwrapOptimizer(Napi::Env env, const Napi::Value& v, const std::string& name, bt::DType dtype,
                      std::vector<int64_t>* sizes);
// Throws DISPOSED when the optimizer UnwrapOptimizer returned has been disposed since.
void CheckOptimizerLive(Napi::Env env, void* wrap);
bt::Status StepUnwrappedOptimizer(Napi::Env env, void* wrap, const std::vector<void*>& params,
                                  const std::vector<const void*>& grads, const std::vector<int64_t>& sizes, double lr,
                                  double max_norm, bt::NonFinitePolicy policy, double* norm, bool* skipped);
// 'error' (undefined too) | 'skipUpdate' | 'allow' (TypeError / RangeError otherwise).
bt::NonFinitePolicy ParseNonFinitePolicy(Napi::Env env, const Napi::Value& v);

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
  // The property keys of the hot paths (see Key): an Array of strings, indexed by Key.
  Napi::Reference<Napi::Array> keys;

 private:
  Napi::Value Info(const Napi::CallbackInfo& info);
  Napi::Value OpNames(const Napi::CallbackInfo& info);
  Napi::Value OpTasks(const Napi::CallbackInfo& info);
  Napi::Value TaskCounts(const Napi::CallbackInfo& info);
  Napi::Value MemoryStats(const Napi::CallbackInfo& info);
  Napi::Value ResetPeakMemory(const Napi::CallbackInfo& info);
  Napi::Value CreateSession(const Napi::CallbackInfo& info);
  Napi::Value CreateOptimizer(const Napi::CallbackInfo& info);  // optim.cc
  Napi::Value CheckFinite(const Napi::CallbackInfo& info);
  Napi::Value CancelAll(const Napi::CallbackInfo& info);
  Napi::Value BenchmarkCopy(const Napi::CallbackInfo& info);
  Napi::Value BenchmarkTraceStep(const Napi::CallbackInfo& info);
  Napi::Value GemmKernels(const Napi::CallbackInfo& info);     // gemm_hooks.cc
  Napi::Value Gemm(const Napi::CallbackInfo& info);            // gemm_hooks.cc
  Napi::Value BenchmarkGemm(const Napi::CallbackInfo& info);   // gemm_hooks.cc
};

}  // namespace btnode
