// The binding's GEMM hooks (types/binding.d.ts): gemmKernels (which CPU GEMM kernels
// exist and which is active), gemm (one product on caller typed arrays, for tests) and
// benchmarkGemm (timing on native buffers, for scripts/bench-gemm.js).
#include <cmath>

#include "binding/binding.h"
#include "cpu/bench.h"

namespace btnode {
namespace {

constexpr double kMaxDim = 9007199254740991.0;  // Number.MAX_SAFE_INTEGER

// An integer in [lo, max] (TypeError when not a number, else RangeError), or `def` when
// v is undefined and def >= 0.
int64_t IntegerArg(Napi::Env env, const Napi::Value& v, const std::string& name, double lo, double max,
                   int64_t def = -1) {
  if (v.IsUndefined() && def >= 0) return def;
  const std::string want = "an integer in [" + std::to_string(static_cast<int64_t>(lo)) + ", " +
                           std::to_string(static_cast<int64_t>(max)) + "]";
  if (!v.IsNumber()) throw ArgTypeError(env, name + " must be " + want + " (got " + Describe(v) + ")");
  const double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= lo) || d > max || std::floor(d) != d)
    throw ArgRangeError(env, name + " must be " + want + " (got " + Describe(v) + ")");
  return static_cast<int64_t>(d);
}

bool BoolArg(Napi::Env env, const Napi::Value& v, const std::string& name) {
  if (v.IsUndefined()) return false;
  if (!v.IsBoolean()) throw ArgTypeError(env, name + " must be a boolean (got " + Describe(v) + ")");
  return v.As<Napi::Boolean>().Value();
}

double FiniteArg(Napi::Env env, const Napi::Value& v, const std::string& name) {
  if (!v.IsNumber()) throw ArgTypeError(env, name + " must be a finite number (got " + Describe(v) + ")");
  const double d = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d)) throw ArgRangeError(env, name + " must be a finite number (got " + Describe(v) + ")");
  return d;
}

std::string KernelArg(Napi::Env env, const Napi::Value& v, const std::string& name) {
  if (v.IsUndefined()) return "";
  if (!v.IsString()) throw ArgTypeError(env, name + " must be a kernel name string (got " + Describe(v) + ")");
  return v.As<Napi::String>().Utf8Value();
}

Napi::Object OptsArg(Napi::Env env, const Napi::Value& v, const char* shape) {
  if (!v.IsObject() || v.IsArray() || v.IsFunction() || v.IsTypedArray())
    throw ArgTypeError(env, std::string("opts must be an object ") + shape + " (got " + Describe(v) + ")");
  return v.As<Napi::Object>();
}

// Throws InvalidArgument statuses as RangeError (a kernel name that is not usable here).
void ThrowStatus(Napi::Env env, const bt::Status& s) {
  if (s.code == bt::StatusCode::InvalidArgument) throw ArgRangeError(env, s.message);
  ThrowIfError(env, s);
}

}  // namespace

Napi::Value Addon::GemmKernels(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, [&]() -> Napi::Value {
    const bt::GemmKernelsInfo k = bt::gemm_kernels_info();
    Napi::Object o = Napi::Object::New(env);
    o.Set("active", Napi::String::New(env, k.active));
    o.Set("requested", Napi::String::New(env, k.requested));
    Napi::Array a = Napi::Array::New(env, k.available.size());
    for (size_t i = 0; i < k.available.size(); ++i) a.Set(static_cast<uint32_t>(i), Napi::String::New(env, k.available[i]));
    o.Set("available", a);
    Napi::Object pc = Napi::Object::New(env);
    pc.Set("packs", Napi::Number::New(env, static_cast<double>(k.pack_packs)));
    pc.Set("hits", Napi::Number::New(env, static_cast<double>(k.pack_hits)));
    pc.Set("bytes", Napi::Number::New(env, static_cast<double>(k.pack_bytes)));
    o.Set("packCache", pc);
    return o;
  });
}

Napi::Value Addon::Gemm(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, [&]() -> Napi::Value {
    const char* shape = "{ M, N, K, a, b, c, alpha, beta, transA?, transB?, lda?, ldb?, ldc?, kernel?, threads? }";
    Napi::Object o = OptsArg(env, info[0], shape);
    bt::GemmDims d;
    d.M = IntegerArg(env, o.Get("M"), "opts.M", 0, kMaxDim);
    d.N = IntegerArg(env, o.Get("N"), "opts.N", 0, kMaxDim);
    d.K = IntegerArg(env, o.Get("K"), "opts.K", 0, kMaxDim);
    d.trans_a = BoolArg(env, o.Get("transA"), "opts.transA");
    d.trans_b = BoolArg(env, o.Get("transB"), "opts.transB");
    // Stored (row-major) shapes: A is rows_a x cols_a, B rows_b x cols_b, C M x N.
    const int64_t rows_a = d.trans_a ? d.K : d.M, cols_a = d.trans_a ? d.M : d.K;
    const int64_t rows_b = d.trans_b ? d.N : d.K, cols_b = d.trans_b ? d.K : d.N;
    d.lda = IntegerArg(env, o.Get("lda"), "opts.lda", double(std::max<int64_t>(cols_a, 1)), kMaxDim,
                       std::max<int64_t>(cols_a, 1));
    d.ldb = IntegerArg(env, o.Get("ldb"), "opts.ldb", double(std::max<int64_t>(cols_b, 1)), kMaxDim,
                       std::max<int64_t>(cols_b, 1));
    d.ldc = IntegerArg(env, o.Get("ldc"), "opts.ldc", double(std::max<int64_t>(d.N, 1)), kMaxDim,
                       std::max<int64_t>(d.N, 1));
    const double alpha = FiniteArg(env, o.Get("alpha"), "opts.alpha");
    const double beta = FiniteArg(env, o.Get("beta"), "opts.beta");
    const std::string kernel = KernelArg(env, o.Get("kernel"), "opts.kernel");
    const int threads = static_cast<int>(IntegerArg(env, o.Get("threads"), "opts.threads", 1, 1024, 1024));
    const Napi::Value cv = o.Get("c");
    bt::DType dtype = bt::DType::F32;
    if (cv.IsTypedArray() && cv.As<Napi::TypedArray>().TypedArrayType() == napi_float64_array) dtype = bt::DType::F64;
    // Elements each operand must hold: (rows - 1) * ld + cols (0 for an empty one).
    auto need = [](int64_t rows, int64_t cols, int64_t ld) -> double {
      return rows == 0 || cols == 0 ? 0.0 : double(rows - 1) * double(ld) + double(cols);
    };
    PinnedArrays pins(env);
    const void* a = nullptr;
    const void* b = nullptr;
    const void* c = nullptr;
    const size_t na = pins.Add(o.Get("a"), "opts.a", dtype, PinnedArrays::kAnyLength, &a);
    const size_t nb = pins.Add(o.Get("b"), "opts.b", dtype, PinnedArrays::kAnyLength, &b);
    const size_t nc = pins.Add(cv, "opts.c", dtype, PinnedArrays::kAnyLength, &c);
    const struct {
      const char* name;
      double have, want;
    } sizes[] = {{"opts.a", double(na), need(rows_a, cols_a, d.lda)},
                 {"opts.b", double(nb), need(rows_b, cols_b, d.ldb)},
                 {"opts.c", double(nc), need(d.M, d.N, d.ldc)}};
    for (const auto& s : sizes)
      if (s.have < s.want)
        throw ArgRangeError(env, std::string(s.name) + " has " + std::to_string(static_cast<int64_t>(s.have)) +
                                     " elements, the shape and leading dimension need " +
                                     std::to_string(static_cast<int64_t>(s.want)));
    pins.Pin();
    const bt::Status st = bt::gemm_call(kernel, threads, d, dtype, alpha, a, b, beta, const_cast<void*>(c));
    pins.Unpin();
    ThrowStatus(env, st);
    return env.Undefined();
  });
}

Napi::Value Addon::BenchmarkGemm(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, [&]() -> Napi::Value {
    Napi::Object o = OptsArg(env, info[0], "{ M, N, K, dtype, reps, transA?, transB?, kernel?, threads? }");
    bt::GemmBenchArgs a;
    a.d.M = IntegerArg(env, o.Get("M"), "opts.M", 1, kMaxDim);
    a.d.N = IntegerArg(env, o.Get("N"), "opts.N", 1, kMaxDim);
    a.d.K = IntegerArg(env, o.Get("K"), "opts.K", 1, kMaxDim);
    a.d.trans_a = BoolArg(env, o.Get("transA"), "opts.transA");
    a.d.trans_b = BoolArg(env, o.Get("transB"), "opts.transB");
    const Napi::Value dt = o.Get("dtype");
    if (!dt.IsString()) throw ArgTypeError(env, "opts.dtype must be 'float32' or 'float64' (got " + Describe(dt) + ")");
    const std::string dts = dt.As<Napi::String>().Utf8Value();
    if (dts == "float32") a.dtype = bt::DType::F32;
    else if (dts == "float64") a.dtype = bt::DType::F64;
    else throw ArgRangeError(env, "opts.dtype must be 'float32' or 'float64' (got \"" + dts + "\")");
    a.reps = IntegerArg(env, o.Get("reps"), "opts.reps", 1, 1e6);
    a.kernel = KernelArg(env, o.Get("kernel"), "opts.kernel");
    a.threads = static_cast<int>(IntegerArg(env, o.Get("threads"), "opts.threads", 1, 1024, 1024));
    bt::GemmBenchResult r;
    ThrowStatus(env, bt::benchmark_gemm(a, &r));
    Napi::Object res = Napi::Object::New(env);
    res.Set("secondsPerRep", Napi::Number::New(env, r.seconds_per_rep));
    res.Set("flops", Napi::Number::New(env, r.flops));
    res.Set("kernel", Napi::String::New(env, r.kernel));
    return res;
  });
}

}  // namespace btnode
