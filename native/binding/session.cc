// The JS session object: a Napi::ObjectWrap over bt::Session, plus the
// AsyncWorker behind runSequenceAsync.
//
// Lifetime and memory: the wrapper reports an estimate of the session's native
// bytes to V8 (AdjustExternalMemory) so the GC feels the pressure, and gives it
// back on dispose() or finalization, whichever comes first. The core session is
// shared with an in-flight worker, which keeps it alive until its Execute() has
// returned even if the wrapper is disposed or collected meanwhile.
//
// Concurrency: a session runs one call at a time. While runSequenceAsync is in
// flight, calls that touch values (setParam, getParam, evaluate, runSequence, a
// second runSequenceAsync, ...) fail with code ERR_BRAINTRACE_BUSY; metadata
// getters (shapes, counts) stay available. dispose() during a run marks the
// session disposed at once and frees its memory when the run settles.
#include <cmath>
#include <cstring>
#include <functional>

#include "binding/binding.h"

namespace btnode {

namespace {

const char* DTypeName(bt::DType d) { return d == bt::DType::F64 ? "float64" : "float32"; }

// Largest element count we accept for one argument (2^53, exact in a double and
// beyond any typed array V8 can allocate).
constexpr double kMaxElements = 9007199254740992.0;

// Parsed arguments of runSequence (phase 1): numbers in `args`, typed arrays in the
// caller's PinnedArrays (destinations args.inputs[i] and loss_scale). An async call
// pins with `owned`, so the worker reads copies after the JS call has returned.
struct ParsedSequence {
  bt::SequenceArgs args;
  const void* loss_scale = nullptr;  // pinned lossScale data (steps doubles), or null: all 1
  std::vector<std::vector<unsigned char>> owned;
  SequenceResultFields fields;  // optional result fields the call asked for
};

void ParseSequence(Napi::Env env, const Napi::Value& v, const bt::Session& s, bt::DType dtype, PinnedArrays* pins,
                   ParsedSequence* out) {
  if (!v.IsObject() || v.IsArray() || v.IsTypedArray()) {
    throw ArgTypeError(env, "args must be an object { steps, inputs, lossScale?, computeGrads?, fetchValues?, jacobians? } (got " +
                                        Describe(v) + ")");
  }
  Napi::Object o = v.As<Napi::Object>();
  Napi::Value steps_v = o.Get("steps");
  if (!steps_v.IsNumber()) {
    throw ArgTypeError(env, "steps must be an integer >= 1 (got " + Describe(steps_v) + ")");
  }
  const double steps_d = steps_v.As<Napi::Number>().DoubleValue();
  if (!(steps_d >= 1) || std::floor(steps_d) != steps_d || steps_d > kMaxElements) {
    throw ArgRangeError(env, "steps must be an integer >= 1 (got " + Describe(steps_v) + ")");
  }
  const int64_t steps = static_cast<int64_t>(steps_d);
  out->args.steps = steps;

  const int n_in = s.num_inputs();
  Napi::Array inputs = CheckArrayOf(env, o.Get("inputs"), "inputs", static_cast<size_t>(n_in));
  out->args.inputs.assign(static_cast<size_t>(n_in), nullptr);
  for (int i = 0; i < n_in; ++i) {
    const double total = double(steps) * double(Numel(s.input_shape(i)));
    const std::string name = "inputs[" + std::to_string(i) + "]";
    if (total > kMaxElements) {
      throw ArgRangeError(env, name + " would need " + std::to_string(total) +
                                           " elements (steps * numel of the slot): too large");
    }
    pins->Add(inputs.Get(static_cast<uint32_t>(i)), name, dtype, static_cast<size_t>(total),
              &out->args.inputs[static_cast<size_t>(i)]);
  }

  Napi::Value ls = o.Get("lossScale");
  out->loss_scale = nullptr;
  if (!ls.IsUndefined() && !ls.IsNull()) {
    pins->Add(ls, "lossScale", napi_float64_array, static_cast<size_t>(steps), &out->loss_scale);
  }

  Napi::Value cg = o.Get("computeGrads");
  if (cg.IsUndefined() || cg.IsNull()) {
    out->args.compute_grads = false;
  } else if (cg.IsBoolean()) {
    out->args.compute_grads = cg.As<Napi::Boolean>().Value();
  } else {
    throw ArgTypeError(env, "computeGrads must be a boolean (got " + Describe(cg) + ")");
  }
  out->fields.grads = out->args.compute_grads;
  // Numbers only, copied into the args (safe for the async worker).
  out->fields.fetched_values = OptionalNodeIds(env, o.Get("fetchValues"), "fetchValues", &out->args.fetch_values);
  out->fields.jacobians = OptionalJacobians(env, o.Get("jacobians"), "jacobians", &out->args.jacobians);
}

// After PinnedArrays::Pin: the loss weights (copied; empty = all 1 when not given).
void FinishSequence(ParsedSequence* p) {
  if (p->loss_scale == nullptr) {
    // Empty = weight 1 at every step (api.h): nothing sized by steps is allocated before
    // the core has checked the sizes of the call.
    p->args.loss_scale.clear();
  } else {
    const double* ls = static_cast<const double*>(p->loss_scale);
    p->args.loss_scale.assign(ls, ls + p->args.steps);
    p->loss_scale = nullptr;
  }
}

// A fresh typed array of the session dtype with n values, filled by `fill(data)` (a core
// getter returning a status; data is null when n == 0). Throws the status as a JS error.
template <typename Fill>
Napi::Value NewFilledArray(Napi::Env env, bt::DType dtype, size_t n, Fill&& fill) {
  if (dtype == bt::DType::F64) {
    Napi::Float64Array a = Napi::Float64Array::New(env, n);
    ThrowIfError(env, fill(n ? static_cast<void*>(a.Data()) : nullptr));
    return a;
  }
  Napi::Float32Array a = Napi::Float32Array::New(env, n);
  ThrowIfError(env, fill(n ? static_cast<void*>(a.Data()) : nullptr));
  return a;
}

// Runs one session call on the libuv thread pool. The job owns copies of its inputs
// (made at construction); Execute makes no Node-API call except through its CallControl's
// thread-safe function, and turns every C++ exception into a status; the promise settles
// on the JS thread. The CallControl (control.cc) carries the call's cancel flag
// (session.cancelRun()) and its progress reporting. A Job provides
//   bt::Status Run(bt::Session&, const bt::RunControl*)   (worker thread)
//   void ReleaseInputs()                   (worker thread, after Run)
//   Napi::Object ToJs(Napi::Env)           (JS thread, after a successful Run)
template <typename Job>
class SessionWorker : public Napi::AsyncWorker {
 public:
  SessionWorker(Napi::Env env, const char* name, Napi::Promise::Deferred deferred,
                std::shared_ptr<SessionCore> core, Job&& job, std::unique_ptr<CallControl> control)
      : Napi::AsyncWorker(env, name),
        name_(name),
        deferred_(deferred),
        core_(std::move(core)),
        session_(core_->session),
        job_(std::move(job)),
        control_(std::move(control)) {}

  ~SessionWorker() override {
    if (core_ && core_->control == control_.get()) core_->control = nullptr;
  }

  void Execute() override {
    try {
      status_ = job_.Run(*session_, control_->run_control());
    } catch (const std::bad_alloc&) {
      status_ = bt::Status::Error(bt::StatusCode::OutOfMemory, std::string("out of memory in ") + name_);
    } catch (const std::exception& e) {
      status_ = bt::Status::Error(bt::StatusCode::Internal, std::string("internal error in ") + name_ + ": " + e.what());
    } catch (...) {
      status_ = bt::Status::Error(bt::StatusCode::Internal, std::string("internal error in ") + name_ + ": unknown exception");
    }
    // Free the copied inputs on the worker thread rather than the JS thread.
    job_.ReleaseInputs();
    control_->ExecuteDone();
  }

  void OnOK() override {
    core_->busy = false;
    core_->control = nullptr;
    Napi::Env env = Env();
    Napi::Value progress_error;
    if (control_->Settle(env, status_.ok(), &progress_error)) {
      deferred_.Reject(progress_error);
      return;
    }
    if (!status_.ok()) {
      deferred_.Reject(StatusError(env, status_).Value());
      return;
    }
    try {
      Napi::Object r = Guard(env, [&] { return job_.ToJs(env); });
      deferred_.Resolve(r);
    } catch (const Napi::Error& e) {
      deferred_.Reject(e.Value());
    }
  }

  void OnError(const Napi::Error& e) override {
    core_->busy = false;
    core_->control = nullptr;
    Napi::Value progress_error;
    control_->Settle(Env(), false, &progress_error);
    deferred_.Reject(e.Value());
  }

 private:
  const char* name_;
  Napi::Promise::Deferred deferred_;
  std::shared_ptr<SessionCore> core_;
  std::shared_ptr<bt::Session> session_;
  Job job_;
  std::unique_ptr<CallControl> control_;
  bt::Status status_;
};

// Queues a SessionWorker for `job` with the call's control (info[1]); the session is busy
// until it settles and session.cancelRun() reaches its cancel flag meanwhile.
template <typename Job>
void QueueSessionJob(Napi::Env env, const char* name, Napi::Promise::Deferred deferred,
                     const std::shared_ptr<SessionCore>& core, Job&& job, const Napi::Value& on_progress) {
  Addon* addon = env.GetInstanceData<Addon>();
  if (addon == nullptr || !addon->inflight) throw CodeError(env, kCodeInternal, "the braintrace addon is not initialised");
  std::unique_ptr<CallControl> control(new CallControl(env, addon->inflight, on_progress, name));
  CallControl* c = control.get();
  auto* worker = new SessionWorker<Job>(env, name, deferred, core, std::move(job), std::move(control));
  try {
    worker->Queue();
  } catch (...) {
    delete worker;
    throw;
  }
  core->busy = true;
  core->control = c;
}

// runSequenceAsync: run_sequence over copied inputs.
struct SequenceJob {
  ParsedSequence parsed;
  bt::DType dtype;
  bt::SequenceResult result;
  bt::Status Run(bt::Session& s, const bt::RunControl* c) {
    parsed.args.control = c;
    return s.run_sequence(parsed.args, &result);
  }
  void ReleaseInputs() {
    parsed.owned.clear();
    parsed.owned.shrink_to_fit();
  }
  Napi::Object ToJs(Napi::Env env) { return SequenceResultToJs(env, result, dtype, parsed.fields); }
};

// runOnlineAsync: run_online over copied inputs.
struct OnlineJob {
  bt::OnlineArgs args;
  std::vector<std::vector<unsigned char>> owned;
  bt::DType dtype;
  bt::OnlineResult result;
  bt::Status Run(bt::Session& s, const bt::RunControl* c) {
    args.control = c;
    return s.run_online(args, &result);
  }
  void ReleaseInputs() {
    owned.clear();
    owned.shrink_to_fit();
  }
  Napi::Object ToJs(Napi::Env env) { return OnlineResultToJs(env, result, dtype, args.compute_grads); }
};

}  // namespace

Napi::Function SessionWrap::Define(Napi::Env env) {
  return DefineClass(env, "NativeSession",
                     {
                         InstanceAccessor("dtype", &SessionWrap::GetDType, nullptr),
                         InstanceAccessor("backend", &SessionWrap::GetBackend, nullptr),
                         InstanceAccessor("numInputs", &SessionWrap::GetNumInputs, nullptr),
                         InstanceAccessor("numParams", &SessionWrap::GetNumParams, nullptr),
                         InstanceAccessor("numStates", &SessionWrap::GetNumStates, nullptr),
                         InstanceAccessor("numOutputs", &SessionWrap::GetNumOutputs, nullptr),
                         InstanceAccessor("hasLoss", &SessionWrap::GetHasLoss, nullptr),
                         InstanceAccessor("disposed", &SessionWrap::GetDisposed, nullptr),
                         InstanceMethod("inputShape", &SessionWrap::InputShape),
                         InstanceMethod("paramShape", &SessionWrap::ParamShape),
                         InstanceMethod("stateShape", &SessionWrap::StateShape),
                         InstanceMethod("outputShape", &SessionWrap::OutputShape),
                         InstanceMethod("outputEntries", &SessionWrap::OutputEntries),
                         InstanceMethod("setParam", &SessionWrap::SetParam),
                         InstanceMethod("setParams", &SessionWrap::SetParams),
                         InstanceMethod("getParam", &SessionWrap::GetParam),
                         InstanceMethod("setState", &SessionWrap::SetState),
                         InstanceMethod("getState", &SessionWrap::GetState),
                         InstanceMethod("evaluate", &SessionWrap::Evaluate),
                         InstanceMethod("runSequence", &SessionWrap::RunSequence),
                         InstanceMethod("runSequenceAsync", &SessionWrap::RunSequenceAsync),
                         InstanceMethod("configureOnline", &SessionWrap::ConfigureOnline),
                         InstanceMethod("runOnline", &SessionWrap::RunOnline),
                         InstanceMethod("runOnlineStep", &SessionWrap::RunOnlineStep),
                         InstanceMethod("runOnlineAsync", &SessionWrap::RunOnlineAsync),
                         InstanceMethod("resetTraces", &SessionWrap::ResetTraces),
                         InstanceMethod("traceInfo", &SessionWrap::TraceInfo),
                         InstanceMethod("getTrace", &SessionWrap::GetTrace),
                         InstanceMethod("setTrace", &SessionWrap::SetTrace),
                         InstanceMethod("traceSteps", &SessionWrap::TraceSteps),
                         InstanceMethod("setTraceSteps", &SessionWrap::SetTraceSteps),
                         InstanceMethod("setFiniteChecks", &SessionWrap::SetFiniteChecks),
                         InstanceMethod("cancelRun", &SessionWrap::CancelRun),
                         InstanceMethod("fusionInfo", &SessionWrap::FusionInfo),
                         InstanceMethod("splitConcats", &SessionWrap::SplitConcats),
                         InstanceMethod("dispose", &SessionWrap::Dispose),
                     });
}

SessionWrap::SessionWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<SessionWrap>(info) {
  Napi::Env env = info.Env();
  Addon* addon = env.GetInstanceData<Addon>();
  if (addon == nullptr || !addon->pending_session) {
    throw ArgTypeError(env, "NativeSession cannot be constructed directly; use createSession(code, fattr)");
  }
  core_ = std::make_shared<SessionCore>();
  core_->session = std::shared_ptr<bt::Session>(std::move(addon->pending_session));
  const bt::Session& s = *core_->session;
  dtype_ = s.dtype();
  // Estimate of the native bytes this session holds: stored params and states
  // plus one step of inputs and output-table values.
  int64_t elems = 0;
  for (int i = 0; i < s.num_params(); ++i) elems += Numel(s.param_shape(i));
  for (int i = 0; i < s.num_states(); ++i) elems += Numel(s.state_shape(i));
  for (int i = 0; i < s.num_inputs(); ++i) elems += Numel(s.input_shape(i));
  for (int e = 0; e < s.num_output_entries(); ++e) elems += Numel(s.output_entry_shape(e));
  external_bytes_ = elems * static_cast<int64_t>(ElementSize(dtype_));
  if (external_bytes_ > 0) Napi::MemoryManagement::AdjustExternalMemory(env, external_bytes_);
}

SessionWrap::~SessionWrap() {
  // No Node-API calls here; Finalize (or dispose) already gave the bytes back.
  core_.reset();
}

void SessionWrap::Finalize(Napi::Env env) { Release(env); }

void SessionWrap::Release(Napi::Env env) {
  if (external_bytes_ > 0) {
    Napi::MemoryManagement::AdjustExternalMemory(env, -external_bytes_);
    external_bytes_ = 0;
  }
  // An in-flight worker holds its own reference; the core session is freed when
  // the last holder lets go.
  if (core_) core_->session.reset();
  online_scratch_ = bt::OnlineResult{};  // the kept result buffers go with the session
}

std::shared_ptr<bt::Session> SessionWrap::Hold(Napi::Env env) {
  Live(env, false);
  return core_->session;
}

bt::Session& SessionWrap::Live(Napi::Env env, bool allow_busy) {
  if (disposed_ || !core_ || !core_->session) {
    throw CodeError(env, kCodeDisposed, "the session has been disposed");
  }
  if (!allow_busy && core_->busy) {
    throw CodeError(env, kCodeBusy,
                    "the session is busy: a runSequenceAsync or runOnlineAsync call is in flight; await it before using the session");
  }
  return *core_->session;
}

// ---- metadata (available while busy) ----------------------------------------------------------

Napi::Value SessionWrap::GetDType(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, [&]() -> Napi::Value { return Napi::String::New(env, DTypeName(Live(env, true).dtype())); });
}

Napi::Value SessionWrap::GetBackend(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, [&]() -> Napi::Value {
    return Napi::String::New(env, Live(env, true).backend() == bt::Backend::Cuda ? "cuda" : "cpu");
  });
}

Napi::Value SessionWrap::GetNumInputs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, [&]() -> Napi::Value { return Napi::Number::New(env, Live(env, true).num_inputs()); });
}

Napi::Value SessionWrap::GetNumParams(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, [&]() -> Napi::Value { return Napi::Number::New(env, Live(env, true).num_params()); });
}

Napi::Value SessionWrap::GetNumStates(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, [&]() -> Napi::Value { return Napi::Number::New(env, Live(env, true).num_states()); });
}

Napi::Value SessionWrap::GetNumOutputs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, [&]() -> Napi::Value { return Napi::Number::New(env, Live(env, true).num_outputs()); });
}

Napi::Value SessionWrap::GetHasLoss(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, [&]() -> Napi::Value { return Napi::Boolean::New(env, Live(env, true).has_loss()); });
}

Napi::Value SessionWrap::GetDisposed(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), disposed_);
}

Napi::Value SessionWrap::InputShape(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, [&]() -> Napi::Value {
    bt::Session& s = Live(env, true);
    return ShapeToJs(env, s.input_shape(CheckSlot(env, info[0], "slot", s.num_inputs())));
  });
}

Napi::Value SessionWrap::ParamShape(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, [&]() -> Napi::Value {
    bt::Session& s = Live(env, true);
    return ShapeToJs(env, s.param_shape(CheckSlot(env, info[0], "slot", s.num_params())));
  });
}

Napi::Value SessionWrap::StateShape(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, [&]() -> Napi::Value {
    bt::Session& s = Live(env, true);
    return ShapeToJs(env, s.state_shape(CheckSlot(env, info[0], "slot", s.num_states())));
  });
}

Napi::Value SessionWrap::OutputShape(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, [&]() -> Napi::Value {
    bt::Session& s = Live(env, true);
    return ShapeToJs(env, s.output_shape(CheckSlot(env, info[0], "slot", s.num_outputs())));
  });
}

Napi::Value SessionWrap::OutputEntries(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, [&]() -> Napi::Value {
    bt::Session& s = Live(env, true);
    const int n = s.num_output_entries();
    Napi::Array a = Napi::Array::New(env, static_cast<size_t>(n));
    for (int e = 0; e < n; ++e) {
      Napi::Object o = Napi::Object::New(env);
      o.Set("kind", Napi::Number::New(env, static_cast<int32_t>(s.output_entry_kind(e))));
      o.Set("index", Napi::Number::New(env, s.output_entry_index(e)));
      o.Set("shape", ShapeToJs(env, s.output_entry_shape(e)));
      a.Set(static_cast<uint32_t>(e), o);
    }
    return a;
  });
}

// ---- stored values ---------------------------------------------------------------------------

Napi::Value SessionWrap::SetParam(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, [&]() -> Napi::Value {
    const std::shared_ptr<bt::Session> held = Hold(env);
    bt::Session& s = *held;
    PinnedArrays pins(env);
    const void* data = nullptr;
    const int slot = CheckSlot(env, info[0], "slot", s.num_params());
    const size_t n = static_cast<size_t>(Numel(s.param_shape(slot)));
    pins.Add(info[1], "data", dtype_, n, &data);
    Live(env, false);
    pins.Pin();
    const bt::Status st = s.set_param(slot, data, n);
    pins.Unpin();
    ThrowIfError(env, st);
    return env.Undefined();
  });
}

// setParams(arrays): setParam(i, arrays[i]) for every slot i in order, in one call (a learner
// pushing its weights after an optimizer update); stops at the first failure, as the calls one
// by one would (earlier slots keep their new values).
Napi::Value SessionWrap::SetParams(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, [&]() -> Napi::Value {
    const std::shared_ptr<bt::Session> held = Hold(env);
    bt::Session& s = *held;
    const int np = s.num_params();
    Napi::Array list = CheckArrayOf(env, info[0], "data", static_cast<size_t>(np));
    PinnedArrays pins(env);
    pins.Reserve(static_cast<size_t>(np));
    std::vector<const void*> data(static_cast<size_t>(np), nullptr);
    std::vector<size_t> sizes(static_cast<size_t>(np));
    for (int i = 0; i < np; ++i) {
      const size_t k = static_cast<size_t>(i);
      sizes[k] = static_cast<size_t>(Numel(s.param_shape(i)));
      pins.Add(list.Get(static_cast<uint32_t>(i)), "data[" + std::to_string(i) + "]", dtype_, sizes[k], &data[k]);
    }
    Live(env, false);
    pins.Pin();
    bt::Status st;
    for (int i = 0; i < np && st.ok(); ++i) st = s.set_param(i, data[static_cast<size_t>(i)], sizes[static_cast<size_t>(i)]);
    pins.Unpin();
    ThrowIfError(env, st);
    return env.Undefined();
  });
}

Napi::Value SessionWrap::SetState(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, [&]() -> Napi::Value {
    const std::shared_ptr<bt::Session> held = Hold(env);
    bt::Session& s = *held;
    PinnedArrays pins(env);
    const void* data = nullptr;
    const int slot = CheckSlot(env, info[0], "slot", s.num_states());
    const size_t n = static_cast<size_t>(Numel(s.state_shape(slot)));
    pins.Add(info[1], "data", dtype_, n, &data);
    Live(env, false);
    pins.Pin();
    const bt::Status st = s.set_state(slot, data, n);
    pins.Unpin();
    ThrowIfError(env, st);
    return env.Undefined();
  });
}

Napi::Value SessionWrap::GetParam(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, [&]() -> Napi::Value {
    bt::Session& s = Live(env, false);
    const int slot = CheckSlot(env, info[0], "slot", s.num_params());
    const size_t n = static_cast<size_t>(Numel(s.param_shape(slot)));
    return NewFilledArray(env, dtype_, n, [&](void* p) { return s.get_param(slot, p, n); });
  });
}

Napi::Value SessionWrap::GetState(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, [&]() -> Napi::Value {
    bt::Session& s = Live(env, false);
    const int slot = CheckSlot(env, info[0], "slot", s.num_states());
    const size_t n = static_cast<size_t>(Numel(s.state_shape(slot)));
    return NewFilledArray(env, dtype_, n, [&](void* p) { return s.get_state(slot, p, n); });
  });
}

// ---- evaluate --------------------------------------------------------------------------------

Napi::Value SessionWrap::Evaluate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, [&]() -> Napi::Value {
    const std::shared_ptr<bt::Session> held = Hold(env);
    bt::Session& s = *held;
    if (!info[0].IsObject() || info[0].IsArray() || info[0].IsTypedArray()) {
      throw ArgTypeError(env, "args must be an object { inputs, params?, states?, ... } (got " +
                                          Describe(info[0]) + ")");
    }
    Napi::Object o = info[0].As<Napi::Object>();
    bt::EvalArgs args;
    PinnedArrays pins(env);

    // Phase 1: every property read. Each pointer list is sized before arrays are added to it.
    const int n_in = s.num_inputs(), n_par = s.num_params(), n_st = s.num_states();
    const int n_ent = s.num_output_entries();
    auto input_len = [&](int i) { return static_cast<size_t>(Numel(s.input_shape(i))); };
    auto param_len = [&](int i) { return static_cast<size_t>(Numel(s.param_shape(i))); };
    auto state_len = [&](int i) { return static_cast<size_t>(Numel(s.state_shape(i))); };
    auto entry_len = [&](int i) { return static_cast<size_t>(Numel(s.output_entry_shape(i))); };

    Napi::Array inputs = CheckArrayOf(env, o.Get("inputs"), "inputs", static_cast<size_t>(n_in));
    args.inputs.assign(static_cast<size_t>(n_in), nullptr);
    for (int i = 0; i < n_in; ++i) {
      pins.Add(inputs.Get(static_cast<uint32_t>(i)), "inputs[" + std::to_string(i) + "]", dtype_, input_len(i),
               &args.inputs[static_cast<size_t>(i)]);
    }

    // An optional list: absent -> false; else `out` gets one pointer per slot,
    // nullptr for null/undefined/missing entries.
    auto optional_list = [&](const char* key, int count, const std::function<size_t(int)>& len,
                             std::vector<const void*>* out) -> bool {
      Napi::Array a;
      if (!OptionalArray(env, o.Get(key), key, static_cast<size_t>(count), &a)) return false;
      out->assign(static_cast<size_t>(count), nullptr);
      for (uint32_t i = 0, i_end = a.Length(); i < i_end; ++i) {
        Napi::Value v = a.Get(i);
        if (v.IsUndefined() || v.IsNull()) continue;
        pins.Add(v, std::string(key) + "[" + std::to_string(i) + "]", dtype_, len(static_cast<int>(i)), &(*out)[i]);
      }
      return true;
    };

    if (!optional_list("params", n_par, param_len, &args.params)) args.params.assign(size_t(n_par), nullptr);
    if (!optional_list("states", n_st, state_len, &args.states)) args.states.assign(size_t(n_st), nullptr);

    bool jvp = false;
    jvp |= optional_list("inputTangents", n_in, input_len, &args.input_tangents);
    jvp |= optional_list("paramTangents", n_par, param_len, &args.param_tangents);
    jvp |= optional_list("stateTangents", n_st, state_len, &args.state_tangents);
    if (jvp) {
      if (args.input_tangents.empty()) args.input_tangents.assign(size_t(n_in), nullptr);
      if (args.param_tangents.empty()) args.param_tangents.assign(size_t(n_par), nullptr);
      if (args.state_tangents.empty()) args.state_tangents.assign(size_t(n_st), nullptr);
    }
    const bool vjp = optional_list("outputCotangents", n_ent, entry_len, &args.output_cotangents);
    const bool want_values = OptionalNodeIds(env, o.Get("fetchValues"), "fetchValues", &args.fetch_values);
    const bool want_cotangents =
        OptionalNodeIds(env, o.Get("fetchCotangents"), "fetchCotangents", &args.fetch_cotangents);
        OptionalNodeIds(env, o.Get("stopCotangents"), "stopCotangents", &args.stop_cotangents);
    const bool want_jacobians = OptionalJacobians(env, o.Get("jacobians"), "jacobians", &args.jacobians);

    // Phase 2: no JS runs from here until the core call has returned.
    Live(env, false);
    pins.Pin();
    bt::EvalResult r;
    const bt::Status st = s.evaluate(args, &r);
    pins.Unpin();
    ThrowIfError(env, st);

    Napi::Object res = Napi::Object::New(env);
    res.Set("outputs", BuffersToJs(env, r.outputs, dtype_));
    if (jvp) res.Set("outputTangents", BuffersToJs(env, r.output_tangents, dtype_));
    if (vjp) {
      res.Set("inputCotangents", BuffersToJs(env, r.input_cotangents, dtype_));
      res.Set("paramCotangents", BuffersToJs(env, r.param_cotangents, dtype_));
      res.Set("stateCotangents", BuffersToJs(env, r.state_cotangents, dtype_));
    }
    if (want_values) res.Set("fetchedValues", BuffersToJs(env, r.fetched_values, dtype_));
    if (want_cotangents) res.Set("fetchedCotangents", BuffersToJs(env, r.fetched_cotangents, dtype_));
    if (want_jacobians) res.Set("jacobians", BuffersToJs(env, r.jacobians, dtype_));
    return res;
  });
}

// ---- sequences -------------------------------------------------------------------------------

Napi::Value SessionWrap::RunSequence(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, [&]() -> Napi::Value {
    const std::shared_ptr<bt::Session> held = Hold(env);
    bt::Session& s = *held;
    PinnedArrays pins(env);
    ParsedSequence p;
    ParseSequence(env, info[0], s, dtype_, &pins, &p);
    Live(env, false);
    pins.Pin();
    FinishSequence(&p);
    bt::SequenceResult r;
    const bt::Status st = s.run_sequence(p.args, &r);
    pins.Unpin();
    ThrowIfError(env, st);
    return SequenceResultToJs(env, r, dtype_, p.fields);
  });
}

Napi::Value SessionWrap::RunSequenceAsync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Promise::Deferred deferred = Napi::Promise::Deferred::New(env);
  // Every failure, including a busy or disposed session and bad arguments,
  // rejects the promise rather than throwing synchronously.
  try {
    Guard(env, [&] {
      const std::shared_ptr<bt::Session> held = Hold(env);
      PinnedArrays pins(env);
      ParsedSequence p;
      ParseSequence(env, info[0], *held, dtype_, &pins, &p);
      const Napi::Value on_progress = ParseControl(env, info[1]);  // phase 1: may run getters
      Live(env, false);
      pins.Pin(&p.owned);  // copies: the worker reads them after this call returns
      FinishSequence(&p);
      QueueSessionJob(env, "runSequenceAsync", deferred, core_, SequenceJob{std::move(p), dtype_, {}}, on_progress);
    });
  } catch (const Napi::Error& e) {
    deferred.Reject(e.Value());
  }
  return deferred.Promise();
}

// ---- online learning -----------------------------------------------------------------------------

Napi::Value SessionWrap::ConfigureOnline(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, [&]() -> Napi::Value {
    const std::shared_ptr<bt::Session> held = Hold(env);
    bt::OnlineConfig config;
    ParseOnlineConfig(env, info[0], &config);  // numbers only, copied
    Live(env, false);  // a getter may have disposed the session or started an async call
    ThrowIfError(env, held->configure_online(config));
    return env.Undefined();
  });
}

Napi::Value SessionWrap::RunOnline(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, [&]() -> Napi::Value {
    const std::shared_ptr<bt::Session> held = Hold(env);
    PinnedArrays pins(env);
    bt::OnlineArgs args;
    const void* loss_scale = nullptr;
    OnlineExtras extras;
    ParseOnlineArgs(env, info[0], *held, dtype_, &pins, &args, &loss_scale);
    ParseOnlineExtras(env, info[1], *held, dtype_, &pins, args, &extras);
    return RunOnlineParsed(env, held, pins, args, &loss_scale, extras);
  });
}

// runOnlineStep(x, y, computeGrads, params, gradsOut, lossesOut, outputs, outputsOut,
//               optimizer, updateParams, slots, lr, maxNorm, nonFinite, stats)
// is runOnline({ steps: 1, inputs: [x, y] (y undefined for a session of one input),
// computeGrads }, { params, gradsOut, lossesOut, outputs, outputsOut, update: optimizer ===
// undefined ? undefined : { optimizer, params: updateParams, slots, lr, maxNorm, nonFinite } }):
// the same checks and names, without a property read. With an update, `stats` (a
// Float64Array of 2, optional) receives [gradNorm, skipped ? 1 : 0] instead of the result.
Napi::Value SessionWrap::RunOnlineStep(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, [&]() -> Napi::Value {
    const std::shared_ptr<bt::Session> held = Hold(env);
    const bt::Session& s = *held;
    PinnedArrays pins(env);
    bt::OnlineArgs args;
    OnlineExtras extras;
    args.steps = 1;
    args.chunk = 1;
    const int n_in = s.num_inputs();
    if (n_in < 1 || n_in > 2) {
      throw ArgRangeError(env, "runOnlineStep takes a session of 1 or 2 inputs (this one has " + std::to_string(n_in) +
                                   "): use runOnline");
    }
    if (n_in == 1 && !info[1].IsUndefined()) {
      throw ArgRangeError(env, "inputs[1] must be undefined: the session has 1 input (got " + Describe(info[1]) + ")");
    }
    args.inputs.assign(static_cast<size_t>(n_in), nullptr);
    for (int i = 0; i < n_in; ++i) {
      pins.Add(info[static_cast<size_t>(i)], ArgName{"inputs", i}, dtype_, static_cast<size_t>(Numel(s.input_shape(i))),
               &args.inputs[static_cast<size_t>(i)]);
    }
    const Napi::Value cg = info[2];
    if (cg.IsBoolean()) {
      args.compute_grads = cg.As<Napi::Boolean>().Value();
    } else if (cg.IsUndefined() || cg.IsNull()) {
      args.compute_grads = true;
    } else {
      throw ArgTypeError(env, "computeGrads must be a boolean (got " + Describe(cg) + ")");
    }
    ParseOnlineIntoValues(env, s, dtype_, &pins, args, info[3], info[4], info[5], info[6], info[7], &extras);
    const Napi::Value opt = info[8];
    if (!opt.IsUndefined() && !opt.IsNull()) {
      if (!args.compute_grads) {
        throw ArgTypeError(env, "into.update needs computeGrads: true (got computeGrads false and update " +
                                    Describe(opt) + ")");
      }
      ParseOnlineUpdateValues(env, s, dtype_, &pins, opt, info[9], info[10], info[11], info[12], info[13], &extras);
      const Napi::Value stats = info[14];
      if (!stats.IsUndefined()) {
        pins.Add(stats, ArgName{"stats"}, napi_float64_array, 2, &extras.stats_out);
        extras.has_stats_out = true;
      }
    }
    const void* no_loss_scale = nullptr;
    return RunOnlineParsed(env, held, pins, args, &no_loss_scale, extras);
  });
}

Napi::Value SessionWrap::RunOnlineParsed(Napi::Env env, const std::shared_ptr<bt::Session>& held, PinnedArrays& pins,
                                         bt::OnlineArgs& args, const void* const* loss_scale, OnlineExtras& extras) {
  Live(env, false);
  // A getter of phase 1 may have disposed the update's optimizer: DISPOSED before anything runs.
  if (extras.has_update) CheckOptimizerLive(env, extras.optimizer);
  pins.Pin();  // writes *loss_scale (a destination of phase 1)
  FinishOnlineArgs(&args, *loss_scale);
  // The kept result buffers (see online_scratch_), given back when the call returns; a large
  // call's buffers are freed instead (only small results are worth keeping between calls).
  struct Scratch {
    bt::OnlineResult& home;
    bt::OnlineResult r;
    explicit Scratch(bt::OnlineResult& h) : home(h), r(std::move(h)) {}
    ~Scratch() {
      constexpr size_t kKeepBytes = size_t(1) << 20;
      size_t bytes = r.losses.capacity() * sizeof(double);
      for (const bt::Buffer& b : r.outputs) bytes += b.bytes.capacity();
      for (const bt::Buffer& b : r.param_grads) bytes += b.bytes.capacity();
      if (bytes <= kKeepBytes) home = std::move(r);
    }
  } scratch(online_scratch_);
  bt::OnlineResult& r = scratch.r;
  bt::Status st;
  // `params`: stored first, slot by slot with setParam's checks (as setParams would).
  for (size_t i = 0; extras.has_params && i < extras.params.size() && st.ok(); ++i) {
    st = held->set_param(static_cast<int>(i), extras.params[i], extras.param_sizes[i]);
  }
  if (st.ok()) st = held->run_online(args, &r);
  if (st.ok()) WriteOnlineExtras(r, dtype_, extras);  // still pinned: no JS has run
  bool update_failed = false;
  if (st.ok() && extras.has_update) {
    // The optimizer step on the caller's arrays (its path order) from the call's gradients,
    // then the updated weights stored (as NativeOptimizer.step followed by setParams).
    const size_t n = extras.update_params.size();
    std::vector<void*> w(n, nullptr);
    std::vector<const void*> g(n, nullptr);
    for (size_t k = 0; k < n; ++k) {
      w[k] = const_cast<void*>(extras.update_params[k]);
      g[k] = r.param_grads[static_cast<size_t>(extras.update_slots[k])].bytes.data();
    }
    st = StepUnwrappedOptimizer(env, extras.optimizer, w, g, extras.update_sizes, extras.lr, extras.max_norm,
                                extras.policy, &extras.grad_norm, &extras.skipped);
    update_failed = !st.ok();
    for (size_t k = 0; k < n && st.ok() && !extras.skipped; ++k) {
      st = held->set_param(extras.update_slots[k], w[k], static_cast<size_t>(extras.update_sizes[k]));
    }
    if (st.ok() && extras.has_stats_out) {  // still pinned
      double* stats = static_cast<double*>(const_cast<void*>(extras.stats_out));
      stats[0] = extras.grad_norm;
      stats[1] = extras.skipped ? 1.0 : 0.0;
    }
  }
  pins.Unpin();
  if (!st.ok()) {
    Napi::Error err = StatusError(env, st);
    // The optimizer's own names (params[k] / grads[k] in its path order), not the session's.
    if (update_failed) err.Set("stage", Napi::String::New(env, "update"));
    throw err;
  }
  return OnlineExtrasResultToJs(env, r, dtype_, args.compute_grads, extras);
}

Napi::Value SessionWrap::RunOnlineAsync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Promise::Deferred deferred = Napi::Promise::Deferred::New(env);
  try {
    Guard(env, [&] {
      const std::shared_ptr<bt::Session> held = Hold(env);
      PinnedArrays pins(env);
      bt::OnlineArgs args;
      const void* loss_scale = nullptr;
      std::vector<std::vector<unsigned char>> owned;
      ParseOnlineArgs(env, info[0], *held, dtype_, &pins, &args, &loss_scale);
      const Napi::Value on_progress = ParseControl(env, info[1]);  // phase 1: may run getters
      Live(env, false);
      pins.Pin(&owned);  // copies: the worker reads them after this call returns
      FinishOnlineArgs(&args, loss_scale);
      QueueSessionJob(env, "runOnlineAsync", deferred, core_,
                      OnlineJob{std::move(args), std::move(owned), dtype_, {}}, on_progress);
    });
  } catch (const Napi::Error& e) {
    deferred.Reject(e.Value());
  }
  return deferred.Promise();
}

Napi::Value SessionWrap::ResetTraces(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, [&]() -> Napi::Value {
    ThrowIfError(env, Live(env, false).reset_traces());
    return env.Undefined();
  });
}

Napi::Value SessionWrap::TraceInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, [&]() -> Napi::Value {
    std::vector<bt::TraceInfo> list;
    ThrowIfError(env, Live(env, false).trace_info(&list));
    Napi::Array a = Napi::Array::New(env, list.size());
    for (size_t i = 0; i < list.size(); ++i) {
      Napi::Object o = Napi::Object::New(env);
      o.Set("name", Napi::String::New(env, list[i].name));
      o.Set("shape", ShapeToJs(env, list[i].shape));
      a.Set(static_cast<uint32_t>(i), o);
    }
    return a;
  });
}

namespace {
// Index and element count of a trace, from trace_info (TypeError / RangeError on a bad index).
size_t TraceNumel(Napi::Env env, bt::Session& s, const Napi::Value& v, int* index) {
  std::vector<bt::TraceInfo> list;
  ThrowIfError(env, s.trace_info(&list));
  *index = CheckSlot(env, v, "index", static_cast<int>(list.size()));
  return static_cast<size_t>(Numel(list[static_cast<size_t>(*index)].shape));
}
}  // namespace

Napi::Value SessionWrap::GetTrace(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, [&]() -> Napi::Value {
    bt::Session& s = Live(env, false);
    int index = 0;
    const size_t n = TraceNumel(env, s, info[0], &index);
    return NewFilledArray(env, dtype_, n, [&](void* p) { return s.get_trace(index, p, n); });
  });
}

Napi::Value SessionWrap::SetTrace(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, [&]() -> Napi::Value {
    const std::shared_ptr<bt::Session> held = Hold(env);
    bt::Session& s = *held;
    PinnedArrays pins(env);
    const void* data = nullptr;
    int index = 0;
    const size_t n = TraceNumel(env, s, info[0], &index);
    pins.Add(info[1], "data", dtype_, n, &data);
    Live(env, false);
    pins.Pin();
    const bt::Status st = s.set_trace(index, data, n);
    pins.Unpin();
    ThrowIfError(env, st);
    return env.Undefined();
  });
}

Napi::Value SessionWrap::TraceSteps(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, [&]() -> Napi::Value { return Napi::Number::New(env, double(Live(env, false).trace_steps())); });
}

Napi::Value SessionWrap::SetTraceSteps(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, [&]() -> Napi::Value {
    bt::Session& s = Live(env, false);
    if (!info[0].IsNumber()) throw ArgTypeError(env, "n must be an integer >= 0 (got " + Describe(info[0]) + ")");
    const double d = info[0].As<Napi::Number>().DoubleValue();
    if (!(d >= 0 && d <= 9007199254740992.0) || std::floor(d) != d) {
      throw ArgRangeError(env, "n must be an integer >= 0 (got " + Describe(info[0]) + ")");
    }
    ThrowIfError(env, s.set_trace_steps(static_cast<int64_t>(d)));
    return env.Undefined();
  });
}

Napi::Value SessionWrap::SetFiniteChecks(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, [&]() -> Napi::Value {
    bt::Session& s = Live(env, false);
    for (size_t i = 0; i < 2; ++i)
      if (!info[i].IsBoolean())
        throw ArgTypeError(env, std::string(i == 0 ? "data" : "results") + " must be a boolean (got " +
                                            Describe(info[i]) + ")");
    bt::FiniteChecks c;
    c.data = info[0].As<Napi::Boolean>().Value();
    c.results = info[1].As<Napi::Boolean>().Value();
    s.set_finite_checks(c);
    return env.Undefined();
  });
}

Napi::Value SessionWrap::CancelRun(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, [&]() -> Napi::Value {
    const bool in_flight = core_ && core_->control != nullptr;
    if (in_flight) core_->control->Cancel();
    return Napi::Boolean::New(env, in_flight);
  });
}

// { split, trimmed }: the session's split and trimmed concats (bt::FusionInfo).
Napi::Value SessionWrap::SplitConcats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, [&]() -> Napi::Value {
    const bt::FusionInfo f = Live(env, true).fusion_info();
    Napi::Object o = Napi::Object::New(env);
    o.Set("split", Napi::Number::New(env, f.split_concats));
    o.Set("trimmed", Napi::Number::New(env, f.trimmed_concats));
    return o;
  });
}

// { enabled, groups, fusedNodes, items }: the session's element-wise fusion (bt::FusionInfo).
Napi::Value SessionWrap::FusionInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, [&]() -> Napi::Value {
    const bt::FusionInfo f = Live(env, true).fusion_info();
    Napi::Object o = Napi::Object::New(env);
    o.Set("enabled", Napi::Boolean::New(env, f.enabled));
    o.Set("groups", Napi::Number::New(env, f.groups));
    o.Set("fusedNodes", Napi::Number::New(env, f.fused_nodes));
    o.Set("items", Napi::Number::New(env, f.items));
    return o;
  });
}

Napi::Value SessionWrap::Dispose(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, [&]() -> Napi::Value {
    if (!disposed_) {
      disposed_ = true;
      Release(env);
    }
    return env.Undefined();
  });
}

}  // namespace btnode
