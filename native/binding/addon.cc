// Module entry of the braintrace addon: info, opNames, opTasks, taskCounts, memoryStats,
// resetPeakMemory, createSession, createOptimizer, benchmarkCopy, benchmarkTraceStep,
// and the GEMM hooks gemmKernels, gemm, benchmarkGemm (gemm_hooks.cc) (see
// types/binding.d.ts for the contract).
#include <cmath>

#include "binding/binding.h"
#include "cpu/bench.h"
#include "core/executor.h"
#include "kernels/finite.h"

namespace btnode {

namespace {
constexpr const char* kKeyNames[static_cast<int>(Key::Count)] = {
    "steps",  "inputs",    "lossScale", "computeGrads", "chunk",    "params", "gradsOut",
    "lossesOut", "outputs", "outputsOut", "update",   "optimizer", "slots",  "lr",
    "maxNorm", "nonFinite", "losses",    "paramGrads", "gradNorm",  "skipped",
};
}  // namespace

const char* KeyName(Key k) { return kKeyNames[static_cast<int>(k)]; }

napi_value KeyValue(Napi::Env env, Key k) {
  Addon* addon = env.GetInstanceData<Addon>();
  const int i = static_cast<int>(k);
  // Before the Addon is registered (never on the call paths), a fresh string.
  if (addon == nullptr || addon->keys.IsEmpty()) return Napi::String::New(env, KeyName(k));
  napi_value list = addon->keys.Value();
  napi_value key = nullptr;
  if (napi_get_element(env, list, static_cast<uint32_t>(i), &key) != napi_ok) return Napi::String::New(env, KeyName(k));
  return key;
}

Napi::Value GetKey(Napi::Env env, const Napi::Object& o, Key k) { return o.Get(KeyValue(env, k)); }

void SetKey(Napi::Env env, Napi::Object& o, Key k, const Napi::Value& v) { o.Set(KeyValue(env, k), v); }

Addon::Addon(Napi::Env env, Napi::Object exports) {
  {
    // Node-API keeps references to objects only: the strings live in an Array held by one.
    Napi::Array list = Napi::Array::New(env, static_cast<size_t>(Key::Count));
    for (int i = 0; i < static_cast<int>(Key::Count); ++i) list.Set(static_cast<uint32_t>(i), Napi::String::New(env, kKeyNames[i]));
    keys = Napi::Persistent(list);
  }
  session_ctor = Napi::Persistent(SessionWrap::Define(env));
  optimizer_ctor = Napi::Persistent(DefineOptimizer(env));
  inflight = InFlightRegistry::ForEnv(env);
  DefineAddon(exports, {
                           InstanceMethod("info", &Addon::Info),
                           InstanceMethod("opNames", &Addon::OpNames),
                           InstanceMethod("opTasks", &Addon::OpTasks),
                           InstanceMethod("taskCounts", &Addon::TaskCounts),
                           InstanceMethod("memoryStats", &Addon::MemoryStats),
                           InstanceMethod("resetPeakMemory", &Addon::ResetPeakMemory),
                           InstanceMethod("createSession", &Addon::CreateSession),
                           InstanceMethod("createOptimizer", &Addon::CreateOptimizer),
                           InstanceMethod("checkFinite", &Addon::CheckFinite),
                           InstanceMethod("cancelAll", &Addon::CancelAll),
                           InstanceMethod("benchmarkCopy", &Addon::BenchmarkCopy),
                           InstanceMethod("benchmarkTraceStep", &Addon::BenchmarkTraceStep),
                           InstanceMethod("gemmKernels", &Addon::GemmKernels),
                           InstanceMethod("gemm", &Addon::Gemm),
                           InstanceMethod("benchmarkGemm", &Addon::BenchmarkGemm),
                       });
}

Napi::Value Addon::Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, [&]() -> Napi::Value {
    const std::string pref = Preference(info, 0);
    bt::RuntimeInfo ri;
    ThrowIfError(env, bt::runtime_info(pref, &ri));
    Napi::Object o = Napi::Object::New(env);
    o.Set("cudaCompiled", Napi::Boolean::New(env, ri.cuda_compiled));
    o.Set("deviceCount", Napi::Number::New(env, ri.device_count));
    o.Set("cudaRuntimeVersion", Napi::Number::New(env, ri.cuda_runtime_version));
    o.Set("backend", Napi::String::New(env, ri.backend == bt::Backend::Cuda ? "cuda" : "cpu"));
    o.Set("fallbackReason", Napi::String::New(env, ri.fallback_reason));
    o.Set("threads", Napi::Number::New(env, ri.threads));
    Napi::Object k = Napi::Object::New(env);
    k.Set("gemm", Napi::String::New(env, ri.gemm_kernel));
    k.Set("elementWise", Napi::String::New(env, ri.elementwise_isa));
    k.Set("trace", Napi::String::New(env, ri.trace_isa));
    o.Set("cpuKernels", k);
    return o;
  });
}

Napi::Value Addon::OpNames(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, [&]() -> Napi::Value {
    Napi::Array a = Napi::Array::New(env, bt::kOpCount);
    for (int32_t i = 0; i < bt::kOpCount; ++i) a.Set(static_cast<uint32_t>(i), Napi::String::New(env, bt::kOpNames[i]));
    return a;
  });
}

Napi::Value Addon::OpTasks(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, [&]() -> Napi::Value {
    Napi::Array a = Napi::Array::New(env, bt::kOpCount);
    for (int32_t i = 0; i < bt::kOpCount; ++i)
      a.Set(static_cast<uint32_t>(i),
            Napi::String::New(env, bt::task_kind_name(bt::op_task(static_cast<bt::OpCode>(i)))));
    return a;
  });
}

Napi::Value Addon::TaskCounts(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, [&]() -> Napi::Value {
    Napi::Object o = Napi::Object::New(env);
    for (const auto& c : bt::task_counts()) o.Set(c.first, Napi::Number::New(env, static_cast<double>(c.second)));
    return o;
  });
}

Napi::Value Addon::MemoryStats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, [&]() -> Napi::Value {
    const bt::MemoryStats s = bt::memory_stats();
    Napi::Object o = Napi::Object::New(env);
    o.Set("liveBytes", Napi::Number::New(env, double(s.live_bytes)));
    o.Set("peakBytes", Napi::Number::New(env, double(s.peak_bytes)));
    o.Set("allocations", Napi::Number::New(env, double(s.allocations)));
    return o;
  });
}

Napi::Value Addon::ResetPeakMemory(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, [&]() -> Napi::Value {
    bt::reset_peak_memory();
    return env.Undefined();
  });
}

Napi::Value Addon::CreateSession(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, [&]() -> Napi::Value {
    // Phase 1: arguments (positional: no getters run, but the rule is the same everywhere).
    PinnedArrays pins(env);
    const void* code_data = nullptr;
    const void* fattr_data = nullptr;
    const size_t code_len = pins.Add(info[0], "code", napi_int32_array, PinnedArrays::kAnyLength, &code_data);
    const size_t fattr_len = pins.Add(info[1], "fattr", napi_float64_array, PinnedArrays::kAnyLength, &fattr_data);
    const std::string pref = Preference(info, 2);
    bt::RuntimeInfo ri;
    ThrowIfError(env, bt::runtime_info(pref, &ri));
    // Phase 2: the core decodes the plan straight from the caller's arrays.
    pins.Pin();
    std::unique_ptr<bt::Session> session;
    const bt::Status st = bt::Session::Create(static_cast<const int32_t*>(code_data), code_len,
                                              static_cast<const double*>(fattr_data), fattr_len, ri.backend, &session);
    pins.Unpin();
    ThrowIfError(env, st);
    if (!session) throw CodeError(env, kCodeInternal, "internal error: Session::Create returned no session");
    // SessionWrap's constructor takes the session from here (same thread, same call).
    pending_session = std::move(session);
    Napi::Object obj;
    try {
      obj = session_ctor.New({});
    } catch (...) {
      pending_session.reset();
      throw;
    }
    pending_session.reset();
    return obj;
  });
}

Napi::Value Addon::CancelAll(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, [&]() -> Napi::Value {
    // Sets the flags only: process.exit() joins the thread pool right after the 'exit'
    // handlers, and the calls return from their next check.
    if (inflight) inflight->CancelAllAndWait(0);
    return env.Undefined();
  });
}

Napi::Value Addon::CheckFinite(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, [&]() -> Napi::Value {
    const Napi::Value v = info[0];
    const bool f32 = v.IsTypedArray() && v.As<Napi::TypedArray>().TypedArrayType() == napi_float32_array;
    const bool f64 = v.IsTypedArray() && v.As<Napi::TypedArray>().TypedArrayType() == napi_float64_array;
    if (!f32 && !f64)
      throw ArgTypeError(env, "data must be a Float32Array or Float64Array (got " + Describe(v) + ")");
    // Phase 1 records the array, phase 2 takes its pointer; the scan makes no JS call-out.
    PinnedArrays pins(env);
    const void* data = nullptr;
    const size_t n = pins.Add(v, "data", f64 ? bt::DType::F64 : bt::DType::F32, PinnedArrays::kAnyLength, &data);
    pins.Pin();
    const int64_t bad = n == 0 ? -1
                        : f64  ? bt::first_non_finite(static_cast<const double*>(data), static_cast<int64_t>(n))
                               : bt::first_non_finite(static_cast<const float*>(data), static_cast<int64_t>(n));
    pins.Unpin();
    return Napi::Number::New(env, static_cast<double>(bad));
  });
}

namespace {

// Largest integer a benchmark argument may take (Number.MAX_SAFE_INTEGER).
constexpr double kMaxSafeInteger = 9007199254740991.0;

// A positive integer in [1, max]: not a number TypeError, otherwise RangeError.
int64_t CheckPositiveInteger(Napi::Env env, const Napi::Value& v, const std::string& name, double max) {
  const std::string want = "an integer in [1, " + std::to_string(static_cast<int64_t>(max)) + "]";
  if (!v.IsNumber()) throw ArgTypeError(env, name + " must be " + want + " (got " + Describe(v) + ")");
  const double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= 1) || d > max || std::floor(d) != d)
    throw ArgRangeError(env, name + " must be " + want + " (got " + Describe(v) + ")");
  return static_cast<int64_t>(d);
}

constexpr double kMaxReps = 1e6;

}  // namespace

Napi::Value Addon::BenchmarkCopy(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, [&]() -> Napi::Value {
    const int64_t bytes = CheckPositiveInteger(env, info[0], "bytes", kMaxSafeInteger);
    const int64_t reps = CheckPositiveInteger(env, info[1], "reps", kMaxReps);
    bt::CopyBenchResult r;
    ThrowIfError(env, bt::benchmark_copy(bytes, reps, &r));
    Napi::Object o = Napi::Object::New(env);
    o.Set("secondsPerRep", Napi::Number::New(env, r.seconds_per_rep));
    o.Set("bytesMoved", Napi::Number::New(env, r.bytes_moved));
    return o;
  });
}

Napi::Value Addon::BenchmarkTraceStep(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, [&]() -> Napi::Value {
    const Napi::Value ov = info[0];
    if (!ov.IsObject() || ov.IsArray() || ov.IsFunction() || ov.IsTypedArray())
      throw ArgTypeError(env, "opts must be an object { batch, inputs, outputs, states, dtype, reps } (got " +
                                          Describe(ov) + ")");
    Napi::Object o = ov.As<Napi::Object>();
    bt::TraceBenchArgs a;
    a.batch = CheckPositiveInteger(env, o.Get("batch"), "opts.batch", kMaxSafeInteger);
    a.inputs = CheckPositiveInteger(env, o.Get("inputs"), "opts.inputs", kMaxSafeInteger);
    a.outputs = CheckPositiveInteger(env, o.Get("outputs"), "opts.outputs", kMaxSafeInteger);
    a.states = CheckPositiveInteger(env, o.Get("states"), "opts.states", kMaxSafeInteger);
    const Napi::Value dt = o.Get("dtype");
    if (!dt.IsString())
      throw ArgTypeError(env, "opts.dtype must be 'float32' or 'float64' (got " + Describe(dt) + ")");
    const std::string dts = dt.As<Napi::String>().Utf8Value();
    if (dts == "float32") a.dtype = bt::DType::F32;
    else if (dts == "float64") a.dtype = bt::DType::F64;
    else throw ArgRangeError(env, "opts.dtype must be 'float32' or 'float64' (got \"" + dts + "\")");
    a.reps = CheckPositiveInteger(env, o.Get("reps"), "opts.reps", kMaxReps);
    bt::TraceBenchResult r;
    ThrowIfError(env, bt::benchmark_trace_step(a, &r));
    Napi::Object res = Napi::Object::New(env);
    res.Set("secondsPerStep", Napi::Number::New(env, r.seconds_per_step));
    res.Set("bytesMoved", Napi::Number::New(env, r.bytes_moved));
    return res;
  });
}

}  // namespace btnode

// NODE_API_ADDON pastes the class name into an identifier, so it must be unqualified.
using btnode::Addon;
NODE_API_ADDON(Addon)
