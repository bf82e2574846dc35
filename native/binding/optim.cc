// The JS optimizer object (NativeOptimizer in types/binding.d.ts): a Napi::ObjectWrap
// over bt::Optimizer (core/optim.h), created by the addon's createOptimizer.
//
// step() is synchronous and zero-copy: it updates the caller's typed arrays in place
// (an optimizer step is one streaming pass over the weights, cheaper than a worker
// round trip). The state buffers live in native memory, are reported to V8 with
// AdjustExternalMemory, and are handed to JS only as copies (stateBuffers()).
#include <cmath>
#include <string>
#include <vector>

#include "binding/binding.h"
#include "core/optim.h"

namespace btnode {

namespace {

constexpr double kMaxSafeInteger = 9007199254740991.0;

// The type tag of NativeOptimizer objects (napi_type_tag_object, Node-API 8).
const napi_type_tag kOptimizerTag = {0x6274726163656f70ULL, 0x74696d697a657231ULL};

const char* DTypeName(bt::DType d) { return d == bt::DType::F64 ? "float64" : "float32"; }

bt::DType ParseDType(Napi::Env env, const Napi::Value& v) {
  if (v.IsUndefined()) return bt::DType::F32;
  if (!v.IsString()) throw ArgTypeError(env, "dtype must be 'float32' or 'float64' (got " + Describe(v) + ")");
  const std::string s = v.As<Napi::String>().Utf8Value();
  if (s == "float32") return bt::DType::F32;
  if (s == "float64") return bt::DType::F64;
  throw ArgRangeError(env, "dtype must be 'float32' or 'float64' (got '" + s + "')");
}

// A finite number >= 0 (TypeError when not a number, RangeError otherwise).
double CheckNonNeg(Napi::Env env, const Napi::Value& v, const std::string& name) {
  if (!v.IsNumber()) throw ArgTypeError(env, name + " must be a finite number >= 0 (got " + Describe(v) + ")");
  const double d = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d) || d < 0)
    throw ArgRangeError(env, name + " must be a finite number >= 0 (got " + Describe(v) + ")");
  return d;
}

// Reads `hyper` ({ momentum?, dampening?, weightDecay?, nesterov?, beta1?, beta2?, eps?,
// alpha?, centered? }). Types are checked here; ranges by bt::Optimizer::Create.
bt::OptimHyper ParseHyper(Napi::Env env, const Napi::Value& v) {
  bt::OptimHyper h;
  if (v.IsUndefined() || v.IsNull()) return h;
  if (!v.IsObject() || v.IsArray() || v.IsTypedArray() || v.IsFunction())
    throw ArgTypeError(env, "hyper must be an object of numbers and booleans (got " + Describe(v) + ")");
  Napi::Object o = v.As<Napi::Object>();
  struct NumField {
    const char* name;
    double* dst;
  } nums[] = {{"momentum", &h.momentum}, {"dampening", &h.dampening}, {"weightDecay", &h.weight_decay},
              {"beta1", &h.beta1},       {"beta2", &h.beta2},         {"eps", &h.eps},
              {"alpha", &h.alpha}};
  struct BoolField {
    const char* name;
    bool* dst;
  } bools[] = {{"nesterov", &h.nesterov}, {"centered", &h.centered}};
  Napi::Array keys = o.GetPropertyNames();
  for (uint32_t i = 0, i_end = keys.Length(); i < i_end; ++i) {
    const std::string key = keys.Get(i).ToString().Utf8Value();
    bool known = false;
    for (const auto& f : nums) known = known || key == f.name;
    for (const auto& f : bools) known = known || key == f.name;
    if (!known)
      throw ArgTypeError(env, "hyper." + key +
                                          " is not a hyper-parameter (expected momentum, dampening, weightDecay, "
                                          "nesterov, beta1, beta2, eps, alpha, centered)");
  }
  for (const auto& f : nums) {
    Napi::Value x = o.Get(f.name);
    if (x.IsUndefined()) continue;
    if (!x.IsNumber())
      throw ArgTypeError(env, std::string("hyper.") + f.name + " must be a number (got " + Describe(x) + ")");
    *f.dst = x.As<Napi::Number>().DoubleValue();
  }
  for (const auto& f : bools) {
    Napi::Value x = o.Get(f.name);
    if (x.IsUndefined()) continue;
    if (!x.IsBoolean())
      throw ArgTypeError(env, std::string("hyper.") + f.name + " must be a boolean (got " + Describe(x) + ")");
    *f.dst = x.As<Napi::Boolean>().Value();
  }
  return h;
}

class OptimizerWrap : public Napi::ObjectWrap<OptimizerWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "NativeOptimizer",
                       {
                           InstanceAccessor("kind", &OptimizerWrap::GetKind, nullptr),
                           InstanceAccessor("dtype", &OptimizerWrap::GetDType, nullptr),
                           InstanceAccessor("stateNames", &OptimizerWrap::GetStateNames, nullptr),
                           InstanceAccessor("stepCount", &OptimizerWrap::GetStepCount, &OptimizerWrap::SetStepCount),
                           InstanceAccessor("disposed", &OptimizerWrap::GetDisposed, nullptr),
                           InstanceAccessor("lastStepSkipped", &OptimizerWrap::GetLastStepSkipped, nullptr),
                           InstanceMethod("step", &OptimizerWrap::Step),
                           InstanceMethod("stateBuffers", &OptimizerWrap::StateBuffers),
                           InstanceMethod("setStateBuffers", &OptimizerWrap::SetStateBuffers),
                           InstanceMethod("dispose", &OptimizerWrap::Dispose),
                       });
  }

  // new NativeOptimizer(kind, hyper, dtype): not exported; createOptimizer forwards its arguments.
  explicit OptimizerWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<OptimizerWrap>(info) {
    Napi::Env env = info.Env();
    Guard(env, [&]() {
      Napi::Value kv = info[0];
      if (!kv.IsString())
        throw ArgTypeError(env, "kind must be 'sgd', 'adam', 'adamw' or 'rmsprop' (got " + Describe(kv) + ")");
      bt::OptimKind kind;
      const bt::Status ks = bt::optim_kind_from_name(kv.As<Napi::String>().Utf8Value(), &kind);
      if (!ks.ok()) throw ArgRangeError(env, ks.message);
      const bt::OptimHyper h = ParseHyper(env, info[1]);
      const bt::DType dtype = ParseDType(env, info[2]);
      std::unique_ptr<bt::Optimizer> created;
      const bt::Status s = bt::Optimizer::Create(kind, h, dtype, &created);
      if (s.code == bt::StatusCode::InvalidArgument) throw ArgRangeError(env, s.message);
      ThrowIfError(env, s);
      opt_ = std::move(created);
      // The tag says "a NativeOptimizer" to UnwrapOptimizer (runOnline's into.update), which
      // must not trust the prototype chain (any object can claim this class's prototype).
      if (napi_type_tag_object(env, info.This(), &kOptimizerTag) != napi_ok)
        throw CodeError(env, kCodeInternal, "could not tag the optimizer object");
    });
  }

  // runOnline's fused optimizer step (binding.h, UnwrapOptimizer / StepUnwrappedOptimizer).
  static OptimizerWrap* FromValue(Napi::Env env, const Napi::Value& v, const std::string& name) {
    bool tagged = false;
    if (!v.IsObject() || napi_check_object_type_tag(env, v, &kOptimizerTag, &tagged) != napi_ok || !tagged)
      throw ArgTypeError(env, name + " must be a NativeOptimizer (got " + Describe(v) + ")");
    OptimizerWrap* w = Napi::ObjectWrap<OptimizerWrap>::Unwrap(v.As<Napi::Object>());
    if (w == nullptr) throw ArgTypeError(env, name + " must be a NativeOptimizer (got " + Describe(v) + ")");
    return w;
  }
  bt::Optimizer& LiveFor(Napi::Env env) { return Live(env); }
  void AfterFusedStep(Napi::Env env, bool skipped) {
    last_skipped_ = skipped;
    SyncExternal(env);
  }

  void Finalize(Napi::Env env) override { Release(env); }

 private:
  bt::Optimizer& Live(Napi::Env env) {
    if (!opt_) throw CodeError(env, kCodeDisposed, "the optimizer has been disposed");
    return *opt_;
  }

  // Reports the state bytes' change to V8.
  void SyncExternal(Napi::Env env) {
    const int64_t now = opt_ ? static_cast<int64_t>(opt_->state_bytes()) : 0;
    if (now != external_bytes_) {
      Napi::MemoryManagement::AdjustExternalMemory(env, now - external_bytes_);
      external_bytes_ = now;
    }
  }

  void Release(Napi::Env env) {
    opt_.reset();
    SyncExternal(env);
  }

  Napi::Value GetKind(const Napi::CallbackInfo& info) {
    return Napi::String::New(info.Env(), bt::optim_kind_name(Live(info.Env()).kind()));
  }
  Napi::Value GetDType(const Napi::CallbackInfo& info) {
    return Napi::String::New(info.Env(), DTypeName(Live(info.Env()).dtype()));
  }
  Napi::Value GetStateNames(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return Guard(env, [&]() -> Napi::Value {
      bt::Optimizer& o = Live(env);
      Napi::Array a = Napi::Array::New(env, static_cast<size_t>(o.num_state_slots()));
      for (int k = 0; k < o.num_state_slots(); ++k)
        a.Set(static_cast<uint32_t>(k), Napi::String::New(env, o.state_slot_name(k)));
      return a;
    });
  }
  Napi::Value GetStepCount(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), double(Live(info.Env()).step_count()));
  }
  void SetStepCount(const Napi::CallbackInfo& info, const Napi::Value& v) {
    Napi::Env env = info.Env();
    Guard(env, [&]() {
      bt::Optimizer& o = Live(env);
      const std::string want = "stepCount must be an integer in [0, 2^53 - 1]";
      if (!v.IsNumber()) throw ArgTypeError(env, want + " (got " + Describe(v) + ")");
      const double d = v.As<Napi::Number>().DoubleValue();
      if (!(d >= 0) || d > kMaxSafeInteger || std::floor(d) != d)
        throw ArgRangeError(env, want + " (got " + Describe(v) + ")");
      ThrowIfError(env, o.set_step_count(static_cast<int64_t>(d)));
    });
  }
  Napi::Value GetDisposed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), !opt_); }
  Napi::Value GetLastStepSkipped(const Napi::CallbackInfo& info) {
    return Napi::Boolean::New(info.Env(), last_skipped_);
  }

  // The optimizer for a call, held so that a getter that disposes it during phase 1
  // cannot free it; Live() is called again after phase 1 (DISPOSED then).
  std::shared_ptr<bt::Optimizer> Hold(Napi::Env env) {
    Live(env);
    return opt_;
  }

  Napi::Value Step(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return Guard(env, [&]() -> Napi::Value {
      const std::shared_ptr<bt::Optimizer> held = Hold(env);
      bt::Optimizer& o = *held;
      const bt::DType dtype = o.dtype();
      const bt::NonFinitePolicy policy = ParseNonFinitePolicy(env, info[4]);
      Napi::Value pv = info[0];
      if (!pv.IsArray())
        throw ArgTypeError(env, std::string("params must be an Array of ") + ArrayTypeName(dtype) + " (got " +
                                            Describe(pv) + ")");
      Napi::Array pa = pv.As<Napi::Array>();
      const size_t n = pa.Length();
      if (o.bound() && n != o.sizes().size())
        throw ArgRangeError(env, "params must be an Array of length " + std::to_string(o.sizes().size()) +
                                             ", as in the first step (got " + Describe(pv) + ")");
      Napi::Array ga = CheckArrayOf(env, info[1], "grads", n);
      // Phase 1: every element read (a.Get may run getters); pointers only at Pin().
      PinnedArrays pins(env);
      pins.Reserve(2 * n);
      std::vector<const void*> params(n, nullptr);
      std::vector<const void*> grads(n, nullptr);
      std::vector<int64_t> sizes(n);
      for (size_t i = 0; i < n; ++i) {
        const std::string pn = "params[" + std::to_string(i) + "]";
        const size_t want = o.bound() ? static_cast<size_t>(o.sizes()[i]) : PinnedArrays::kAnyLength;
        const size_t len = pins.Add(pa.Get(static_cast<uint32_t>(i)), pn, dtype, want, &params[i]);
        sizes[i] = static_cast<int64_t>(len);
        pins.Add(ga.Get(static_cast<uint32_t>(i)), "grads[" + std::to_string(i) + "]", dtype, len, &grads[i]);
      }
      const double lr = CheckNonNeg(env, info[2], "lr");
      const double max_norm = info[3].IsUndefined() ? 0.0 : CheckNonNeg(env, info[3], "maxNorm");
      // Phase 2: no JS runs until the core step has returned.
      Live(env);
      pins.Pin();
      // The parameters are the caller's writable typed arrays, updated in place.
      std::vector<void*> writable(n);
      for (size_t i = 0; i < n; ++i) writable[i] = const_cast<void*>(params[i]);
      double norm = 0;
      bool skipped = false;
      const bt::Status st = o.step(writable, grads, sizes, lr, max_norm, &norm, policy, &skipped);
      pins.Unpin();
      writable.assign(n, nullptr);
      ThrowIfError(env, st);
      last_skipped_ = skipped;
      SyncExternal(env);
      return Napi::Number::New(env, norm);
    });
  }

  Napi::Value StateBuffers(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return Guard(env, [&]() -> Napi::Value {
      bt::Optimizer& o = Live(env);
      std::vector<bt::Buffer> bufs;
      ThrowIfError(env, o.get_state(&bufs));
      return BuffersToJs(env, bufs, o.dtype());
    });
  }

  Napi::Value SetStateBuffers(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return Guard(env, [&]() -> Napi::Value {
      const std::shared_ptr<bt::Optimizer> held = Hold(env);
      bt::Optimizer& o = *held;
      const bt::DType dtype = o.dtype();
      const size_t K = static_cast<size_t>(o.num_state_slots());
      Napi::Value lv = info[0];
      if (!lv.IsArray())
        throw ArgTypeError(env, std::string("list must be an Array of ") + ArrayTypeName(dtype) + " (got " +
                                            Describe(lv) + ")");
      Napi::Array la = lv.As<Napi::Array>();
      const size_t m = la.Length();
      if (o.bound() && m != o.sizes().size() * K)
        throw ArgRangeError(env, "list must be an Array of length " + std::to_string(o.sizes().size() * K) +
                                             " (" + std::to_string(K) + " buffers per parameter; got " + Describe(lv) +
                                             ")");
      PinnedArrays pins(env);
      std::vector<const void*> data(m, nullptr);
      std::vector<int64_t> sizes(m);
      for (size_t j = 0; j < m; ++j) {
        const size_t want = o.bound() ? static_cast<size_t>(o.sizes()[j / K]) : PinnedArrays::kAnyLength;
        sizes[j] = static_cast<int64_t>(
            pins.Add(la.Get(static_cast<uint32_t>(j)), "list[" + std::to_string(j) + "]", dtype, want, &data[j]));
      }
      Live(env);
      pins.Pin();
      const bt::Status st = o.set_state(data, sizes);
      pins.Unpin();
      ThrowIfError(env, st);
      SyncExternal(env);
      return env.Undefined();
    });
  }

  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return Guard(env, [&]() -> Napi::Value {
      Release(env);
      return env.Undefined();
    });
  }

  std::shared_ptr<bt::Optimizer> opt_;  // shared only with in-progress calls (Hold)
  int64_t external_bytes_ = 0;
  bool last_skipped_ = false;  // whether the last step() skipped its update (policy 'skipUpdate')
};

}  // namespace

Napi::Function DefineOptimizer(Napi::Env env) { return OptimizerWrap::Define(env); }

void* UnwrapOptimizer(Napi::Env env, const Napi::Value& v, const std::string& name, bt::DType dtype,
                      std::vector<int64_t>* sizes) {
  OptimizerWrap* w = OptimizerWrap::FromValue(env, v, name);
  bt::Optimizer& o = w->LiveFor(env);
  if (!o.bound()) throw ArgTypeError(env, name + " must be bound by a first step (it has taken none)");
  if (o.dtype() != dtype)
    throw ArgTypeError(env, name + " must be an optimizer of the session's dtype " +
                                std::string(dtype == bt::DType::F64 ? "float64" : "float32"));
  *sizes = o.sizes();
  return w;
}

void CheckOptimizerLive(Napi::Env env, void* wrap) { static_cast<OptimizerWrap*>(wrap)->LiveFor(env); }

bt::Status StepUnwrappedOptimizer(Napi::Env env, void* wrap, const std::vector<void*>& params,
                                  const std::vector<const void*>& grads, const std::vector<int64_t>& sizes, double lr,
                                  double max_norm, bt::NonFinitePolicy policy, double* norm, bool* skipped) {
  OptimizerWrap* w = static_cast<OptimizerWrap*>(wrap);
  bt::Optimizer& o = w->LiveFor(env);  // DISPOSED if a getter of phase 1 disposed it
  const bt::Status st = o.step(params, grads, sizes, lr, max_norm, norm, policy, skipped);
  if (st.ok()) w->AfterFusedStep(env, *skipped);
  return st;
}

// nonFinite: 'error' (default) | 'skipUpdate' | 'allow' (bt::NonFinitePolicy). A primitive
// argument: reading it runs no JS.
bt::NonFinitePolicy ParseNonFinitePolicy(Napi::Env env, const Napi::Value& v) {
  if (v.IsUndefined()) return bt::NonFinitePolicy::Error;
  const std::string want = "nonFinite must be 'error', 'skipUpdate' or 'allow'";
  if (!v.IsString()) throw ArgTypeError(env, want + " (got " + Describe(v) + ")");
  const std::string s = v.As<Napi::String>().Utf8Value();
  if (s == "error") return bt::NonFinitePolicy::Error;
  if (s == "skipUpdate") return bt::NonFinitePolicy::Skip;
  if (s == "allow") return bt::NonFinitePolicy::Allow;
  throw ArgRangeError(env, want + " (got '" + s + "')");
}

Napi::Value Addon::CreateOptimizer(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, [&]() -> Napi::Value { return optimizer_ctor.New({info[0], info[1], info[2]}); });
}

}  // namespace btnode
