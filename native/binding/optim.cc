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

const char* DTypeName(bt::DType d) { return d == bt::DType::F64 ? "float64" : "float32"; }

bt::DType ParseDType(Napi::Env env, const Napi::Value& v) {
  if (v.IsUndefined()) return bt::DType::F32;
  if (!v.IsString()) throw Napi::TypeError::New(env, "dtype must be 'float32' or 'float64' (got " + Describe(v) + ")");
  const std::string s = v.As<Napi::String>().Utf8Value();
  if (s == "float32") return bt::DType::F32;
  if (s == "float64") return bt::DType::F64;
  throw Napi::RangeError::New(env, "dtype must be 'float32' or 'float64' (got '" + s + "')");
}

// A finite number >= 0 (TypeError when not a number, RangeError otherwise).
double CheckNonNeg(Napi::Env env, const Napi::Value& v, const std::string& name) {
  if (!v.IsNumber()) throw Napi::TypeError::New(env, name + " must be a finite number >= 0 (got " + Describe(v) + ")");
  const double d = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d) || d < 0)
    throw Napi::RangeError::New(env, name + " must be a finite number >= 0 (got " + Describe(v) + ")");
  return d;
}

// Reads `hyper` ({ momentum?, dampening?, weightDecay?, nesterov?, beta1?, beta2?, eps?,
// alpha?, centered? }). Types are checked here; ranges by bt::Optimizer::Create.
bt::OptimHyper ParseHyper(Napi::Env env, const Napi::Value& v) {
  bt::OptimHyper h;
  if (v.IsUndefined() || v.IsNull()) return h;
  if (!v.IsObject() || v.IsArray() || v.IsTypedArray() || v.IsFunction())
    throw Napi::TypeError::New(env, "hyper must be an object of numbers and booleans (got " + Describe(v) + ")");
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
  for (uint32_t i = 0; i < keys.Length(); ++i) {
    const std::string key = keys.Get(i).ToString().Utf8Value();
    bool known = false;
    for (const auto& f : nums) known = known || key == f.name;
    for (const auto& f : bools) known = known || key == f.name;
    if (!known)
      throw Napi::TypeError::New(env, "hyper." + key +
                                          " is not a hyper-parameter (expected momentum, dampening, weightDecay, "
                                          "nesterov, beta1, beta2, eps, alpha, centered)");
  }
  for (const auto& f : nums) {
    Napi::Value x = o.Get(f.name);
    if (x.IsUndefined()) continue;
    if (!x.IsNumber())
      throw Napi::TypeError::New(env, std::string("hyper.") + f.name + " must be a number (got " + Describe(x) + ")");
    *f.dst = x.As<Napi::Number>().DoubleValue();
  }
  for (const auto& f : bools) {
    Napi::Value x = o.Get(f.name);
    if (x.IsUndefined()) continue;
    if (!x.IsBoolean())
      throw Napi::TypeError::New(env, std::string("hyper.") + f.name + " must be a boolean (got " + Describe(x) + ")");
    *f.dst = x.As<Napi::Boolean>().Value();
  }
  return h;
}

// Type check only (any length): the data of a typed array of the dtype.
void* TypedData(Napi::Env env, const Napi::Value& v, const std::string& name, bt::DType dtype, size_t* length) {
  const napi_typedarray_type want = dtype == bt::DType::F64 ? napi_float64_array : napi_float32_array;
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != want)
    throw Napi::TypeError::New(env, name + " must be a " + ArrayTypeName(dtype) + " (got " + Describe(v) + ")");
  *length = v.As<Napi::TypedArray>().ElementLength();
  // CheckArray also rejects a detached buffer.
  return const_cast<void*>(CheckArray(env, v, name, dtype, *length));
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
        throw Napi::TypeError::New(env, "kind must be 'sgd', 'adam', 'adamw' or 'rmsprop' (got " + Describe(kv) + ")");
      bt::OptimKind kind;
      const bt::Status ks = bt::optim_kind_from_name(kv.As<Napi::String>().Utf8Value(), &kind);
      if (!ks.ok()) throw Napi::RangeError::New(env, ks.message);
      const bt::OptimHyper h = ParseHyper(env, info[1]);
      const bt::DType dtype = ParseDType(env, info[2]);
      const bt::Status s = bt::Optimizer::Create(kind, h, dtype, &opt_);
      if (s.code == bt::StatusCode::InvalidArgument) throw Napi::RangeError::New(env, s.message);
      ThrowIfError(env, s);
    });
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
      if (!v.IsNumber()) throw Napi::TypeError::New(env, want + " (got " + Describe(v) + ")");
      const double d = v.As<Napi::Number>().DoubleValue();
      if (!(d >= 0) || d > kMaxSafeInteger || std::floor(d) != d)
        throw Napi::RangeError::New(env, want + " (got " + Describe(v) + ")");
      ThrowIfError(env, o.set_step_count(static_cast<int64_t>(d)));
    });
  }
  Napi::Value GetDisposed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), !opt_); }
  Napi::Value GetLastStepSkipped(const Napi::CallbackInfo& info) {
    return Napi::Boolean::New(info.Env(), last_skipped_);
  }

  Napi::Value Step(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return Guard(env, [&]() -> Napi::Value {
      bt::Optimizer& o = Live(env);
      const bt::DType dtype = o.dtype();
      const bt::NonFinitePolicy policy = ParsePolicy(env, info[4]);
      Napi::Value pv = info[0];
      if (!pv.IsArray())
        throw Napi::TypeError::New(env, std::string("params must be an Array of ") + ArrayTypeName(dtype) + " (got " +
                                            Describe(pv) + ")");
      Napi::Array pa = pv.As<Napi::Array>();
      const size_t n = pa.Length();
      if (o.bound() && n != o.sizes().size())
        throw Napi::RangeError::New(env, "params must be an Array of length " + std::to_string(o.sizes().size()) +
                                             ", as in the first step (got " + Describe(pv) + ")");
      Napi::Array ga = CheckArrayOf(env, info[1], "grads", n);
      std::vector<void*> params(n);
      std::vector<const void*> grads(n);
      std::vector<int64_t> sizes(n);
      for (size_t i = 0; i < n; ++i) {
        const std::string pn = "params[" + std::to_string(i) + "]";
        size_t len = 0;
        if (o.bound()) {
          len = static_cast<size_t>(o.sizes()[i]);
          params[i] = const_cast<void*>(CheckArray(env, pa.Get(static_cast<uint32_t>(i)), pn, dtype, len));
        } else {
          params[i] = TypedData(env, pa.Get(static_cast<uint32_t>(i)), pn, dtype, &len);
        }
        sizes[i] = static_cast<int64_t>(len);
        grads[i] = CheckArray(env, ga.Get(static_cast<uint32_t>(i)), "grads[" + std::to_string(i) + "]", dtype, len);
      }
      const double lr = CheckNonNeg(env, info[2], "lr");
      const double max_norm = info[3].IsUndefined() ? 0.0 : CheckNonNeg(env, info[3], "maxNorm");
      double norm = 0;
      bool skipped = false;
      ThrowIfError(env, o.step(params, grads, sizes, lr, max_norm, &norm, policy, &skipped));
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
      bt::Optimizer& o = Live(env);
      const bt::DType dtype = o.dtype();
      const size_t K = static_cast<size_t>(o.num_state_slots());
      Napi::Value lv = info[0];
      if (!lv.IsArray())
        throw Napi::TypeError::New(env, std::string("list must be an Array of ") + ArrayTypeName(dtype) + " (got " +
                                            Describe(lv) + ")");
      Napi::Array la = lv.As<Napi::Array>();
      const size_t m = la.Length();
      if (o.bound() && m != o.sizes().size() * K)
        throw Napi::RangeError::New(env, "list must be an Array of length " + std::to_string(o.sizes().size() * K) +
                                             " (" + std::to_string(K) + " buffers per parameter; got " + Describe(lv) +
                                             ")");
      std::vector<const void*> data(m);
      std::vector<int64_t> sizes(m);
      for (size_t j = 0; j < m; ++j) {
        const std::string name = "list[" + std::to_string(j) + "]";
        size_t len = 0;
        if (o.bound()) {
          len = static_cast<size_t>(o.sizes()[j / K]);
          data[j] = CheckArray(env, la.Get(static_cast<uint32_t>(j)), name, dtype, len);
        } else {
          data[j] = TypedData(env, la.Get(static_cast<uint32_t>(j)), name, dtype, &len);
        }
        sizes[j] = static_cast<int64_t>(len);
      }
      ThrowIfError(env, o.set_state(data, sizes));
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

  // nonFinite: 'error' (default) | 'skipUpdate' | 'allow' (bt::NonFinitePolicy).
  static bt::NonFinitePolicy ParsePolicy(Napi::Env env, const Napi::Value& v) {
    if (v.IsUndefined()) return bt::NonFinitePolicy::Error;
    const std::string want = "nonFinite must be 'error', 'skipUpdate' or 'allow'";
    if (!v.IsString()) throw Napi::TypeError::New(env, want + " (got " + Describe(v) + ")");
    const std::string s = v.As<Napi::String>().Utf8Value();
    if (s == "error") return bt::NonFinitePolicy::Error;
    if (s == "skipUpdate") return bt::NonFinitePolicy::Skip;
    if (s == "allow") return bt::NonFinitePolicy::Allow;
    throw Napi::RangeError::New(env, want + " (got '" + s + "')");
  }

  std::unique_ptr<bt::Optimizer> opt_;
  int64_t external_bytes_ = 0;
  bool last_skipped_ = false;  // whether the last step() skipped its update (policy 'skipUpdate')
};

}  // namespace

Napi::Function DefineOptimizer(Napi::Env env) { return OptimizerWrap::Define(env); }

Napi::Value Addon::CreateOptimizer(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, [&]() -> Napi::Value { return optimizer_ctor.New({info[0], info[1], info[2]}); });
}

}  // namespace btnode
