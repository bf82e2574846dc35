// Conversions between JS values and the core API: argument checks with
// messages that name the argument, errors with codes, results as fresh typed arrays.
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <sstream>
#include <utility>

#include "binding/binding.h"

namespace btnode {

namespace {

}  // namespace

const char* TypedArrayTypeName(napi_typedarray_type t) {
  switch (t) {
    case napi_int8_array: return "Int8Array";
    case napi_uint8_array: return "Uint8Array";
    case napi_uint8_clamped_array: return "Uint8ClampedArray";
    case napi_int16_array: return "Int16Array";
    case napi_uint16_array: return "Uint16Array";
    case napi_int32_array: return "Int32Array";
    case napi_uint32_array: return "Uint32Array";
    case napi_float32_array: return "Float32Array";
    case napi_float64_array: return "Float64Array";
    case napi_bigint64_array: return "BigInt64Array";
    case napi_biguint64_array: return "BigUint64Array";
    default: return "TypedArray";
  }
}

namespace {

// A non-null address for empty arrays: the core reads nothing from it, but a
// null pointer would mean "not given" in some argument lists.
alignas(16) unsigned char g_empty_data[16];

std::string Expected(const char* type, size_t length) {
  return std::string(type) + " of length " + std::to_string(length);
}

// "an " before Int/Uint array names, "a " before the others.
std::string Article(const char* type) { return (type[0] == 'I' || type[0] == 'U') ? "an " : "a "; }

size_t ElementSizeOf(napi_typedarray_type t) {
  switch (t) {
    case napi_int8_array:
    case napi_uint8_array:
    case napi_uint8_clamped_array: return 1;
    case napi_int16_array:
    case napi_uint16_array: return 2;
    case napi_int32_array:
    case napi_uint32_array:
    case napi_float32_array: return 4;
    default: return 8;
  }
}

}  // namespace

Napi::Error CodeError(Napi::Env env, const char* code, const std::string& message) {
  Napi::Error err = Napi::Error::New(env, message);
  err.Set("code", Napi::String::New(env, code));
  return err;
}

Napi::Error ArgTypeError(Napi::Env env, const std::string& message) {
  Napi::Error err = Napi::TypeError::New(env, message);
  err.Set("code", Napi::String::New(env, kCodeInvalidArgument));
  return err;
}

Napi::Error ArgRangeError(Napi::Env env, const std::string& message) {
  Napi::Error err = Napi::RangeError::New(env, message);
  err.Set("code", Napi::String::New(env, kCodeInvalidArgument));
  return err;
}

Napi::Error StatusError(Napi::Env env, const bt::Status& status) {
  const char* name = bt::status_code_name(status.code);
  Napi::Error err = CodeError(env, name != nullptr ? name : kCodeInternal,
                              status.message.empty() ? std::string(name != nullptr ? name : "error") : status.message);
  // Where a non-finite value was found, and how far a stopped call got (read by
  // lib/runtime/native.ts wrapNativeError into NonFiniteError / AbortError).
  if (status.code == bt::StatusCode::NonFinite) {
    err.Set("tensor", Napi::String::New(env, status.tensor));
    err.Set("step", Napi::Number::New(env, static_cast<double>(status.step)));
    err.Set("index", Napi::Number::New(env, static_cast<double>(status.index)));
  }
  if (status.steps_done >= 0) err.Set("stepsDone", Napi::Number::New(env, static_cast<double>(status.steps_done)));
  return err;
}

void ThrowIfError(Napi::Env env, const bt::Status& status) {
  if (!status.ok()) throw StatusError(env, status);
}

std::string Describe(const Napi::Value& v) {
  if (v.IsEmpty() || v.IsUndefined()) return "undefined";
  if (v.IsNull()) return "null";
  if (v.IsTypedArray()) {
    Napi::TypedArray ta = v.As<Napi::TypedArray>();
    return std::string(TypedArrayTypeName(ta.TypedArrayType())) + " of length " + std::to_string(ta.ElementLength());
  }
  if (v.IsArray()) return "Array of length " + std::to_string(v.As<Napi::Array>().Length());
  if (v.IsNumber()) {
    std::ostringstream os;
    os << "number " << v.As<Napi::Number>().DoubleValue();
    return os.str();
  }
  if (v.IsBoolean()) return v.As<Napi::Boolean>().Value() ? "boolean true" : "boolean false";
  if (v.IsString()) {
    std::string s = v.As<Napi::String>().Utf8Value();
    if (s.size() > 40) s = s.substr(0, 40) + "...";
    return "string '" + s + "'";
  }
  if (v.IsArrayBuffer()) return "ArrayBuffer";
  if (v.IsDataView()) return "DataView";
  if (v.IsFunction()) return "function";
  if (v.IsBigInt()) return "bigint";
  if (v.IsSymbol()) return "symbol";
  return "object";
}

const char* ArrayTypeName(bt::DType dtype) { return dtype == bt::DType::F64 ? "Float64Array" : "Float32Array"; }

size_t ElementSize(bt::DType dtype) { return dtype == bt::DType::F64 ? sizeof(double) : sizeof(float); }

int64_t Numel(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

namespace {
// Whether the buffer behind a typed array is detached (no JS runs).
bool IsDetached(napi_env env, napi_value typed_array) {
  napi_value ab = nullptr;
  bool detached = false;
  if (napi_get_typedarray_info(env, typed_array, nullptr, nullptr, nullptr, &ab, nullptr) != napi_ok) return false;
  if (napi_is_detached_arraybuffer(env, ab, &detached) != napi_ok) return false;
  return detached;
}
}  // namespace

napi_typedarray_type TypedArrayTypeOf(bt::DType dtype) {
  return dtype == bt::DType::F64 ? napi_float64_array : napi_float32_array;
}

namespace {
// CheckTypedArray's body; `name()` gives the argument's name (called only on failure).
template <typename Name>
size_t CheckTypedArrayImpl(Napi::Env env, const Napi::Value& v, const Name& name, napi_typedarray_type type,
                           size_t length) {
  // The messages are built only on failure (this runs for every array of every call).
  auto expected = [&] {
    const char* want = TypedArrayTypeName(type);
    return Article(want) + (length == PinnedArrays::kAnyLength ? std::string(want) : Expected(want, length));
  };
  // One Node-API call answers "a typed array?", its type and its length (it fails for
  // anything that is not a typed array, raising no JS exception); the checks below are
  // those of IsTypedArray / TypedArrayType / ElementLength, with the same messages.
  napi_typedarray_type got = napi_int8_array;
  size_t n = 0;
  if (v.IsEmpty() || napi_get_typedarray_info(env, v, &got, &n, nullptr, nullptr, nullptr) != napi_ok || got != type) {
    throw ArgTypeError(env, name() + " must be " + expected() + " (got " + Describe(v) + ")");
  }
  // A detached buffer has length 0; only then is it worth asking.
  if (n == 0 && IsDetached(env, v)) {
    throw ArgTypeError(env, name() + " must be " + expected() + " (got a typed array whose buffer is detached)");
  }
  if (length != PinnedArrays::kAnyLength && n != length) {
    throw ArgRangeError(env, name() + " must be " + expected() + " (got " + Describe(v) + ")");
  }
  return n;
}
}  // namespace

size_t CheckTypedArray(Napi::Env env, const Napi::Value& v, const std::string& name, napi_typedarray_type type,
                       size_t length) {
  return CheckTypedArrayImpl(env, v, [&] { return name; }, type, length);
}

size_t CheckTypedArray(Napi::Env env, const Napi::Value& v, const ArgName& name, napi_typedarray_type type,
                       size_t length) {
  return CheckTypedArrayImpl(env, v, [&] { return name.str(); }, type, length);
}

size_t PinnedArrays::Add(const Napi::Value& v, std::string name, bt::DType dtype, size_t length, const void** dst) {
  return Add(v, std::move(name), TypedArrayTypeOf(dtype), length, dst);
}

size_t PinnedArrays::Add(const Napi::Value& v, std::string name, napi_typedarray_type type, size_t length,
                         const void** dst) {
  const size_t n = CheckTypedArray(env_, v, name, type, length);
  entries_.push_back(Entry{static_cast<napi_value>(v), std::move(name), ArgName{""}, type, n, dst});
  return n;
}

size_t PinnedArrays::Add(const Napi::Value& v, ArgName name, bt::DType dtype, size_t length, const void** dst) {
  return Add(v, name, TypedArrayTypeOf(dtype), length, dst);
}

size_t PinnedArrays::Add(const Napi::Value& v, ArgName name, napi_typedarray_type type, size_t length,
                         const void** dst) {
  const size_t n = CheckTypedArray(env_, v, name, type, length);
  entries_.push_back(Entry{static_cast<napi_value>(v), std::string(), name, type, n, dst});
  return n;
}

void PinnedArrays::Pin(std::vector<std::vector<unsigned char>>* owned) {
  napi_env env = env_;
  // Re-read everything from V8 first (Napi::TypedArray caches its length, so the
  // raw calls are used), then copy: no JS runs in between.
  std::vector<const void*> data(entries_.size(), nullptr);
  for (size_t k = 0; k < entries_.size(); ++k) {
    const Entry& e = entries_[k];
    auto expected = [&] {
      const char* want = TypedArrayTypeName(e.type);
      return Article(want) + Expected(want, e.length);
    };
    napi_typedarray_type type = napi_int8_array;
    size_t length = 0, offset = 0;
    void* ptr = nullptr;
    napi_value ab = nullptr;
    if (napi_get_typedarray_info(env, e.value, &type, &length, &ptr, &ab, &offset) != napi_ok || type != e.type) {
      throw ArgTypeError(env_, e.Name() + " must be " + expected() + " (got a value that is no longer that typed array)");
    }
    if (length != e.length || (ptr == nullptr && length != 0)) {
      bool detached = false;
      if (napi_is_detached_arraybuffer(env, ab, &detached) != napi_ok) detached = false;
      if (detached || ptr == nullptr) {
        throw ArgTypeError(env_, e.Name() + " must be " + expected() +
                                     " (got a typed array whose buffer was detached during the call)");
      }
      throw ArgRangeError(env_, e.Name() + " must be " + expected() + " (got a typed array of length " +
                                    std::to_string(length) + ": its buffer was resized during the call)");
    }
    const size_t bytes = length * ElementSizeOf(e.type);
    if (bytes != 0) {
      // Defensive: V8 keeps a view inside its buffer, but the pointer is only taken if it is.
      void* ab_data = nullptr;
      size_t ab_bytes = 0;
      if (napi_get_arraybuffer_info(env, ab, &ab_data, &ab_bytes) != napi_ok || offset > ab_bytes ||
          ab_bytes - offset < bytes) {
        throw ArgRangeError(env_, e.Name() + " must be " + expected() + " (got a typed array whose buffer holds " +
                                      std::to_string(ab_bytes) + " bytes from offset " + std::to_string(offset) +
                                      ", fewer than its " + std::to_string(bytes) + ": resized during the call)");
      }
    }
    data[k] = (length == 0 || ptr == nullptr) ? static_cast<const void*>(g_empty_data) : ptr;
  }
  if (owned != nullptr) {
    owned->assign(entries_.size(), {});
    for (size_t k = 0; k < entries_.size(); ++k) {
      const size_t bytes = entries_[k].length * ElementSizeOf(entries_[k].type);
      std::vector<unsigned char>& buf = (*owned)[k];
      buf.resize(bytes == 0 ? 1 : bytes);
      if (bytes != 0) std::memcpy(buf.data(), data[k], bytes);
      data[k] = buf.data();
    }
  }
  for (size_t k = 0; k < entries_.size(); ++k) *entries_[k].dst = data[k];
}

void PinnedArrays::Unpin() {
  for (const Entry& e : entries_) *e.dst = nullptr;
}

int CheckSlot(Napi::Env env, const Napi::Value& v, const std::string& name, int count) {
  if (!v.IsNumber()) {
    throw ArgTypeError(env, name + " must be an integer in [0, " + std::to_string(count) + ") (got " +
                                        Describe(v) + ")");
  }
  const double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= 0) || d >= count || std::floor(d) != d) {
    throw ArgRangeError(env, name + " must be an integer in [0, " + std::to_string(count) + ") (got " +
                                         Describe(v) + ")");
  }
  return static_cast<int>(d);
}

Napi::Array CheckArrayOf(Napi::Env env, const Napi::Value& v, const std::string& name, size_t length) {
  // The message is built only on failure (this runs for the array lists of every call).
  auto want = [&] { return "an Array of length " + std::to_string(length); };
  if (!v.IsArray()) throw ArgTypeError(env, name + " must be " + want() + " (got " + Describe(v) + ")");
  Napi::Array a = v.As<Napi::Array>();
  if (a.Length() != length) {
    throw ArgRangeError(env, name + " must be " + want() + " (got " + Describe(v) + ")");
  }
  return a;
}

bool OptionalArray(Napi::Env env, const Napi::Value& v, const std::string& name, size_t max_length,
                   Napi::Array* out) {
  if (v.IsEmpty() || v.IsUndefined() || v.IsNull()) return false;
  const std::string want = "an Array of at most " + std::to_string(max_length) + " entries";
  if (!v.IsArray()) {
    throw ArgTypeError(env, name + " must be " + want + " or undefined (got " + Describe(v) + ")");
  }
  Napi::Array a = v.As<Napi::Array>();
  if (a.Length() > max_length) {
    throw ArgRangeError(env, name + " must be " + want + " (got " + Describe(v) + ")");
  }
  *out = a;
  return true;
}

std::string Preference(const Napi::CallbackInfo& info, size_t index) {
  Napi::Env env = info.Env();
  std::string pref;
  if (index < info.Length() && !info[index].IsUndefined()) {
    if (!info[index].IsString()) {
      throw ArgTypeError(env, "preference must be a string ('auto' | 'cpu' | 'cuda') (got " +
                                          Describe(info[index]) + ")");
    }
    pref = info[index].As<Napi::String>().Utf8Value();
  } else {
    const char* e = std::getenv("BRAINTRACE_DEVICE");
    pref = (e != nullptr && e[0] != '\0') ? std::string(e) : std::string("auto");
  }
  if (pref != "auto" && pref != "cpu" && pref != "cuda") {
    throw ArgRangeError(env, "preference (or BRAINTRACE_DEVICE) must be 'auto', 'cpu' or 'cuda' (got '" + pref + "')");
  }
  return pref;
}

Napi::Array ShapeToJs(Napi::Env env, const std::vector<int64_t>& shape) {
  Napi::Array a = Napi::Array::New(env, shape.size());
  for (size_t i = 0; i < shape.size(); ++i) a.Set(static_cast<uint32_t>(i), Napi::Number::New(env, double(shape[i])));
  return a;
}

Napi::TypedArray BufferToJs(Napi::Env env, const bt::Buffer& buf, bt::DType dtype) {
  const size_t bytes = buf.numel * ElementSize(dtype);
  if (buf.bytes.size() < bytes) {
    throw CodeError(env, kCodeInternal,
                    "internal error: a result buffer holds " + std::to_string(buf.bytes.size()) +
                        " bytes for " + std::to_string(buf.numel) + " elements");
  }
  if (dtype == bt::DType::F64) {
    Napi::Float64Array a = Napi::Float64Array::New(env, buf.numel);
    if (bytes != 0) std::memcpy(a.Data(), buf.bytes.data(), bytes);
    return a;
  }
  Napi::Float32Array a = Napi::Float32Array::New(env, buf.numel);
  if (bytes != 0) std::memcpy(a.Data(), buf.bytes.data(), bytes);
  return a;
}

Napi::Array BuffersToJs(Napi::Env env, const std::vector<bt::Buffer>& bufs, bt::DType dtype) {
  Napi::Array a = Napi::Array::New(env, bufs.size());
  for (size_t i = 0; i < bufs.size(); ++i) a.Set(static_cast<uint32_t>(i), BufferToJs(env, bufs[i], dtype));
  return a;
}

Napi::Object SequenceResultToJs(Napi::Env env, const bt::SequenceResult& r, bt::DType dtype,
                                const SequenceResultFields& fields) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("outputs", BuffersToJs(env, r.outputs, dtype));
  Napi::Float64Array losses = Napi::Float64Array::New(env, r.losses.size());
  if (!r.losses.empty()) std::memcpy(losses.Data(), r.losses.data(), r.losses.size() * sizeof(double));
  o.Set("losses", losses);
  if (fields.grads) {
    o.Set("paramGrads", BuffersToJs(env, r.param_grads, dtype));
    o.Set("initialStateGrads", BuffersToJs(env, r.initial_state_grads, dtype));
  }
  if (fields.fetched_values) o.Set("fetchedValues", BuffersToJs(env, r.fetched_values, dtype));
  if (fields.jacobians) o.Set("jacobians", BuffersToJs(env, r.jacobians, dtype));
  return o;
}

// ---- eligibility-trace requests ----------------------------------------------------------------

namespace {

// Most entries accepted in one request list (node ids, members, blocked nodes, requests).
constexpr size_t kMaxListLength = size_t(1) << 24;

// "-1" for a number, Describe() otherwise.
std::string GotValue(const Napi::Value& v) {
  if (v.IsNumber()) {
    std::ostringstream os;
    os << v.As<Napi::Number>().DoubleValue();
    return os.str();
  }
  return Describe(v);
}

// An Array (TypeError otherwise) of at most kMaxListLength entries (RangeError).
Napi::Array CheckList(Napi::Env env, const Napi::Value& v, const std::string& name, const char* of) {
  if (!v.IsArray()) {
    throw ArgTypeError(env, name + " must be an Array of " + of + " (got " + Describe(v) + ")");
  }
  Napi::Array a = v.As<Napi::Array>();
  if (a.Length() > kMaxListLength) {
    throw ArgRangeError(env, name + " must be an Array of at most " + std::to_string(kMaxListLength) + " " +
                                         of + " (got " + Describe(v) + ")");
  }
  return a;
}

// A plain object (not an Array or typed array): TypeError otherwise.
Napi::Object CheckObject(Napi::Env env, const Napi::Value& v, const std::string& name, const char* what) {
  if (!v.IsObject() || v.IsArray() || v.IsTypedArray() || v.IsFunction()) {
    throw ArgTypeError(env, name + " must be " + what + " (got " + Describe(v) + ")");
  }
  return v.As<Napi::Object>();
}

// An integer in [lo, hi] (number: TypeError otherwise; RangeError outside).
int64_t CheckInteger(Napi::Env env, const Napi::Value& v, const std::string& name, const std::string& what, double lo,
                     double hi) {
  if (!v.IsNumber()) throw ArgTypeError(env, name + " must be " + what + " (got " + GotValue(v) + ")");
  const double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= lo && d <= hi) || std::floor(d) != d) {
    throw ArgRangeError(env, name + " must be " + what + " (got " + GotValue(v) + ")");
  }
  return static_cast<int64_t>(d);
}

}  // namespace

int32_t CheckNodeId(Napi::Env env, const Napi::Value& v, const std::string& name) {
  return static_cast<int32_t>(
      CheckInteger(env, v, name, "an integer node id", 0, double(std::numeric_limits<int32_t>::max())));
}

bool OptionalNodeIds(Napi::Env env, const Napi::Value& v, const std::string& name, std::vector<int32_t>* out) {
  out->clear();
  if (v.IsEmpty() || v.IsUndefined() || v.IsNull()) return false;
  Napi::Array a = CheckList(env, v, name, "node ids");
  out->reserve(a.Length());
  for (uint32_t i = 0, i_end = a.Length(); i < i_end; ++i) {
    out->push_back(CheckNodeId(env, a.Get(i), name + "[" + std::to_string(i) + "]"));
  }
  return true;
}
// A non-empty list of hidden-group members { leafNode, newNode, width } named `what` in errors.
std::vector<bt::GroupMember> ParseMembers(Napi::Env env, Napi::Value v, const std::string& what) {
  Napi::Array members = CheckList(env, v, what, "group members { leafNode, newNode, width }");
  if (members.Length() == 0) {
    throw ArgRangeError(env, what + " must be a non-empty Array of group members (got an empty Array)");
  }
  std::vector<bt::GroupMember> out(members.Length());
  for (uint32_t m = 0, m_end = members.Length(); m < m_end; ++m) {
    const std::string mn = what + "[" + std::to_string(m) + "]";
    Napi::Object mo = CheckObject(env, members.Get(m), mn, "a group member { leafNode, newNode, width }");
    out[m].leaf_node = CheckNodeId(env, mo.Get("leafNode"), mn + ".leafNode");
    out[m].new_node = CheckNodeId(env, mo.Get("newNode"), mn + ".newNode");
    out[m].width = static_cast<int32_t>(CheckInteger(env, mo.Get("width"), mn + ".width", "an integer >= 1", 1,
                                                     double(std::numeric_limits<int32_t>::max())));
  }
  return out;
}


bool OptionalJacobians(Napi::Env env, const Napi::Value& v, const std::string& name,
                       std::vector<bt::JacobianRequest>* out) {
  out->clear();
  if (v.IsEmpty() || v.IsUndefined() || v.IsNull()) return false;
  Napi::Array list = CheckList(env, v, name, "Jacobian requests");
  out->resize(list.Length());
  for (uint32_t i = 0, i_end = list.Length(); i < i_end; ++i) {
    const std::string rn = name + "[" + std::to_string(i) + "]";
    Napi::Object o = CheckObject(env, list.Get(i), rn,
                                 "a Jacobian request { kind, members, yNode?, blocked?, probePositions?, positions }");
    bt::JacobianRequest& r = (*out)[i];

    Napi::Value kind = o.Get("kind");
    const std::string kind_s = kind.IsString() ? kind.As<Napi::String>().Utf8Value() : std::string();
    if (kind_s == "hid2hid") {
      r.kind = bt::JacobianRequest::Kind::Hid2Hid;
    } else if (kind_s == "df") {
      r.kind = bt::JacobianRequest::Kind::Df;
    } else {
      throw ArgTypeError(env, rn + ".kind must be 'hid2hid' or 'df' (got " + Describe(kind) + ")");
    }

    r.members = ParseMembers(env, o.Get("members"), rn + ".members");

    Napi::Value y = o.Get("yNode");
    if (r.kind == bt::JacobianRequest::Kind::Df) {
      if (y.IsUndefined() || y.IsNull()) {
        throw ArgTypeError(env, rn + ".yNode must be an integer node id for kind 'df' (got " + Describe(y) + ")");
      }
      r.y_node = CheckNodeId(env, y, rn + ".yNode");
    } else if (!y.IsUndefined() && !y.IsNull()) {
      r.y_node = CheckNodeId(env, y, rn + ".yNode");  // unused by 'hid2hid', but must be well-formed
    }

    OptionalNodeIds(env, o.Get("blocked"), rn + ".blocked", &r.blocked);

    Napi::Value pp = o.Get("probePositions");
    if (pp.IsUndefined() || pp.IsNull()) {
      r.probe_positions = false;
    } else if (pp.IsBoolean()) {
      r.probe_positions = pp.As<Napi::Boolean>().Value();
    } else {
      throw ArgTypeError(env, rn + ".probePositions must be a boolean (got " + Describe(pp) + ")");
    }

    r.positions = CheckInteger(env, o.Get("positions"), rn + ".positions", "an integer >= 1", 1, 9007199254740992.0);
  }
  return true;
}

// ---- online learning -----------------------------------------------------------------------------

namespace {

bool OptionalBool(Napi::Env env, const Napi::Value& v, const std::string& name, bool dflt) {
  if (v.IsEmpty() || v.IsUndefined() || v.IsNull()) return dflt;
  if (!v.IsBoolean()) throw ArgTypeError(env, name + " must be a boolean (got " + Describe(v) + ")");
  return v.As<Napi::Boolean>().Value();
}

double OptionalNumber(Napi::Env env, const Napi::Value& v, const std::string& name, double dflt) {
  if (v.IsEmpty() || v.IsUndefined() || v.IsNull()) return dflt;
  if (!v.IsNumber()) throw ArgTypeError(env, name + " must be a number (got " + Describe(v) + ")");
  return v.As<Napi::Number>().DoubleValue();
}

std::vector<int32_t> SlotList(Napi::Env env, const Napi::Value& v, const std::string& name, const char* what) {
  Napi::Array a = CheckList(env, v, name, what);
  std::vector<int32_t> out(a.Length());
  for (uint32_t i = 0, i_end = a.Length(); i < i_end; ++i) {
    out[i] = static_cast<int32_t>(CheckInteger(env, a.Get(i), name + "[" + std::to_string(i) + "]",
                                               "an integer >= 0", 0, double(std::numeric_limits<int32_t>::max())));
  }
  return out;
}

}  // namespace

void ParseOnlineConfig(Napi::Env env, const Napi::Value& v, bt::OnlineConfig* out) {
  Napi::Object o = CheckObject(env, v, "config",
                               "an object { algorithm, decayX?, decayF?, groups, relations, blockedTransition, "
                               "etpNodes, nonTemporalSlots }");
  Napi::Value alg = o.Get("algorithm");
  const std::string alg_s = alg.IsString() ? alg.As<Napi::String>().Utf8Value() : std::string();
  if (alg_s == "d_rtrl") {
    out->algorithm = bt::TraceAlgorithm::DRtrl;
  } else if (alg_s == "pp_prop") {
    out->algorithm = bt::TraceAlgorithm::PpProp;
  } else {
    throw ArgTypeError(env, "config.algorithm must be 'd_rtrl' or 'pp_prop' (got " + Describe(alg) + ")");
  }
  out->decay_x = OptionalNumber(env, o.Get("decayX"), "config.decayX", 0.0);
  out->decay_f = OptionalNumber(env, o.Get("decayF"), "config.decayF", 0.0);
  const std::pair<const char*, double> decays[] = {{"decayX", out->decay_x}, {"decayF", out->decay_f}};
  for (const auto& d : decays) {
    if (!(d.second >= 0.0 && d.second < 1.0)) {
      throw ArgRangeError(env, std::string("config.") + d.first + " must be in [0, 1) (got " +
                                           GotValue(o.Get(d.first)) + ")");
    }
  }

  Napi::Array groups = CheckList(env, o.Get("groups"), "config.groups", "groups { members, positions, ... }");
  out->groups.resize(groups.Length());
  for (uint32_t g = 0, g_end = groups.Length(); g < g_end; ++g) {
    const std::string gn = "config.groups[" + std::to_string(g) + "]";
    Napi::Object go = CheckObject(env, groups.Get(g), gn, "a group { members, positions, zeroRecurrence, probePositions }");
    bt::OnlineGroup& og = out->groups[g];
    og.members = ParseMembers(env, go.Get("members"), gn + ".members");
    og.positions = CheckInteger(env, go.Get("positions"), gn + ".positions", "an integer >= 1", 1, 9007199254740992.0);
    og.zero_recurrence = OptionalBool(env, go.Get("zeroRecurrence"), gn + ".zeroRecurrence", false);
    og.probe_positions = OptionalBool(env, go.Get("probePositions"), gn + ".probePositions", false);
  }

  Napi::Array rels = CheckList(env, o.Get("relations"), "config.relations", "relations");
  out->relations.resize(rels.Length());
  for (uint32_t r = 0, r_end = rels.Length(); r < r_end; ++r) {
    const std::string rn = "config.relations[" + std::to_string(r) + "]";
    Napi::Object ro = CheckObject(env, rels.Get(r), rn,
                                  "a relation { kind, xNode?, yNode, weightSlot, biasSlot?, weightNode?, biasNode?, groups, tailProbe }");
    bt::OnlineRelation& rel = out->relations[r];
    Napi::Value kind = ro.Get("kind");
    const std::string ks = kind.IsString() ? kind.As<Napi::String>().Utf8Value() : std::string();
    if (ks == "dense") {
      rel.kind = bt::RelationKind::Dense;
      rel.x_node = CheckNodeId(env, ro.Get("xNode"), rn + ".xNode");
    } else if (ks == "elementWise") {
      rel.kind = bt::RelationKind::ElementWise;
      Napi::Value xn = ro.Get("xNode");
      rel.x_node = (xn.IsUndefined() || xn.IsNull()) ? -1 : CheckNodeId(env, xn, rn + ".xNode");
    } else {
      throw ArgTypeError(env, rn + ".kind must be 'dense' or 'elementWise' (got " + Describe(kind) + ")");
    }
    rel.y_node = CheckNodeId(env, ro.Get("yNode"), rn + ".yNode");
    rel.weight_slot = static_cast<int32_t>(CheckInteger(env, ro.Get("weightSlot"), rn + ".weightSlot",
                                                        "an integer param slot", 0,
                                                        double(std::numeric_limits<int32_t>::max())));
    Napi::Value bs = ro.Get("biasSlot");
    rel.bias_slot = (bs.IsUndefined() || bs.IsNull())
                        ? -1
                        : static_cast<int32_t>(CheckInteger(env, bs, rn + ".biasSlot", "-1 or an integer param slot", -1,
                                                            double(std::numeric_limits<int32_t>::max())));
    auto optional_node = [&](const char* key) -> int32_t {
      Napi::Value v = ro.Get(key);
      if (v.IsUndefined() || v.IsNull()) return -1;
      return static_cast<int32_t>(CheckInteger(env, v, rn + "." + key, "-1 or a node id", -1,
                                               double(std::numeric_limits<int32_t>::max())));
    };
    rel.weight_node = optional_node("weightNode");
    rel.bias_node = optional_node("biasNode");
    rel.groups = SlotList(env, ro.Get("groups"), rn + ".groups", "group indices");
    Napi::Value tp = ro.Get("tailProbe");
    rel.tail_probe.clear();
    if (!tp.IsUndefined() && !tp.IsNull()) {
      Napi::Array ta = CheckList(env, tp, rn + ".tailProbe", "booleans");
      for (uint32_t i = 0, i_end = ta.Length(); i < i_end; ++i) {
        rel.tail_probe.push_back(OptionalBool(env, ta.Get(i), rn + ".tailProbe[" + std::to_string(i) + "]", false) ? 1 : 0);
      }
    }
  }
  out->blocked_transition = SlotList(env, o.Get("blockedTransition"), "config.blockedTransition", "node ids");
  out->etp_nodes = SlotList(env, o.Get("etpNodes"), "config.etpNodes", "node ids");
  out->non_temporal_slots = SlotList(env, o.Get("nonTemporalSlots"), "config.nonTemporalSlots", "param slots");
}

namespace {
// The integer of CheckInteger(env, v, name, what, lo, hi) without building its strings when
// `v` passes (the hot paths): a failing value goes to CheckInteger, which throws its error.
int64_t FastInteger(Napi::Env env, const Napi::Value& v, const char* name, const char* what, double lo, double hi) {
  if (v.IsNumber()) {
    const double d = v.As<Napi::Number>().DoubleValue();
    if (d >= lo && d <= hi && std::floor(d) == d) return static_cast<int64_t>(d);
  }
  return CheckInteger(env, v, name, what, lo, hi);
}

// CheckArrayOf without building the name unless it fails.
Napi::Array FastArrayOf(Napi::Env env, const Napi::Value& v, const char* name, size_t length) {
  if (v.IsArray()) {
    Napi::Array a = v.As<Napi::Array>();
    if (a.Length() == length) return a;
  }
  return CheckArrayOf(env, v, name, length);
}

// OptionalBool without building the name unless it fails.
bool FastOptionalBool(Napi::Env env, const Napi::Value& v, const char* name, bool dflt) {
  if (v.IsBoolean()) return v.As<Napi::Boolean>().Value();
  return OptionalBool(env, v, name, dflt);
}

// CheckObject without building the name unless it fails.
Napi::Object FastObject(Napi::Env env, const Napi::Value& v, const char* name, const char* what) {
  if (v.IsObject() && !v.IsArray() && !v.IsTypedArray() && !v.IsFunction()) return v.As<Napi::Object>();
  return CheckObject(env, v, name, what);
}
}  // namespace

void ParseOnlineArgs(Napi::Env env, const Napi::Value& v, const bt::Session& s, bt::DType dtype, PinnedArrays* pins,
                     bt::OnlineArgs* out, const void** loss_scale) {
  // Keys as values (see Key) and names built only on failure: this runs for every call.
  Napi::Object o = FastObject(env, v, "args", "an object { steps, inputs, lossScale?, computeGrads?, chunk? }");
  const int64_t steps = FastInteger(env, GetKey(env, o, Key::Steps), "steps", "an integer >= 1", 1, 9007199254740992.0);
  out->steps = steps;
  const int n_in = s.num_inputs();
  Napi::Array inputs = FastArrayOf(env, GetKey(env, o, Key::Inputs), "inputs", static_cast<size_t>(n_in));
  out->inputs.assign(static_cast<size_t>(n_in), nullptr);
  for (int i = 0; i < n_in; ++i) {
    const double total = double(steps) * double(Numel(s.input_shape(i)));
    if (total > 9007199254740992.0) {
      throw ArgRangeError(env, ArgName{"inputs", i}.str() + " would need " + std::to_string(total) +
                                   " elements (steps * numel of the slot): too large");
    }
    pins->Add(inputs.Get(static_cast<uint32_t>(i)), ArgName{"inputs", i}, dtype, static_cast<size_t>(total),
              &out->inputs[static_cast<size_t>(i)]);
  }
  Napi::Value ls = GetKey(env, o, Key::LossScale);
  out->loss_scale.clear();
  *loss_scale = nullptr;
  if (!ls.IsUndefined() && !ls.IsNull()) {
    pins->Add(ls, ArgName{"lossScale"}, napi_float64_array, static_cast<size_t>(steps), loss_scale);
  }
  out->compute_grads = FastOptionalBool(env, GetKey(env, o, Key::ComputeGrads), "computeGrads", true);
  Napi::Value ch = GetKey(env, o, Key::Chunk);
  out->chunk = (ch.IsUndefined() || ch.IsNull()) ? 1
                                                 : FastInteger(env, ch, "chunk", "an integer >= 1", 1, 9007199254740992.0);
}

void ParseOnlineExtras(Napi::Env env, const Napi::Value& v, const bt::Session& s, bt::DType dtype, PinnedArrays* pins,
                       const bt::OnlineArgs& args, OnlineExtras* extras) {
  if (v.IsEmpty() || v.IsUndefined()) return;
  Napi::Object o = FastObject(env, v, "into", "an object { params?, gradsOut?, lossesOut?, outputs?, outputsOut? } or undefined");
  // Every key is read (phase 1) before any array is pinned.
  Napi::Value pv = GetKey(env, o, Key::Params);
  Napi::Value gv = GetKey(env, o, Key::GradsOut);
  Napi::Value lv = GetKey(env, o, Key::LossesOut);
  Napi::Value ov = GetKey(env, o, Key::Outputs);
  Napi::Value oov = GetKey(env, o, Key::OutputsOut);
  ParseOnlineIntoValues(env, s, dtype, pins, args, pv, gv, lv, ov, oov, extras);
  Napi::Value uv = GetKey(env, o, Key::Update);
  if (uv.IsUndefined() || uv.IsNull()) return;
  if (!args.compute_grads) {
    throw ArgTypeError(env, "into.update needs computeGrads: true (got computeGrads false and update " + Describe(uv) + ")");
  }
  Napi::Object u = FastObject(env, uv, "into.update", "an object { optimizer, params, slots, lr, maxNorm?, nonFinite? }");
  Napi::Value opt_v = GetKey(env, u, Key::Optimizer);
  Napi::Value up_v = GetKey(env, u, Key::Params);
  Napi::Value sl_v = GetKey(env, u, Key::Slots);
  Napi::Value lr_v = GetKey(env, u, Key::Lr);
  Napi::Value mn_v = GetKey(env, u, Key::MaxNorm);
  Napi::Value nf_v = GetKey(env, u, Key::NonFinite);
  ParseOnlineUpdateValues(env, s, dtype, pins, opt_v, up_v, sl_v, lr_v, mn_v, nf_v, extras);
}

void ParseOnlineIntoValues(Napi::Env env, const bt::Session& s, bt::DType dtype, PinnedArrays* pins,
                           const bt::OnlineArgs& args, const Napi::Value& pv, const Napi::Value& gv,
                           const Napi::Value& lv, const Napi::Value& ov, const Napi::Value& oov, OnlineExtras* extras) {
  auto given = [](const Napi::Value& x) { return !x.IsEmpty() && !x.IsUndefined() && !x.IsNull(); };
  const int np = s.num_params();
  if (given(pv)) {
    Napi::Array a = FastArrayOf(env, pv, "into.params", static_cast<size_t>(np));
    extras->has_params = true;
    extras->params.assign(static_cast<size_t>(np), nullptr);
    extras->param_sizes.assign(static_cast<size_t>(np), 0);
    for (int i = 0; i < np; ++i) {
      const size_t k = static_cast<size_t>(i);
      extras->param_sizes[k] = static_cast<size_t>(Numel(s.param_shape(i)));
      pins->Add(a.Get(static_cast<uint32_t>(i)), ArgName{"into.params", i}, dtype, extras->param_sizes[k],
                &extras->params[k]);
    }
  }
  if (given(gv)) {
    if (!args.compute_grads) {
      throw ArgTypeError(env, "into.gradsOut needs computeGrads: true (got computeGrads false and gradsOut " +
                                  Describe(gv) + ")");
    }
    Napi::Array a = FastArrayOf(env, gv, "into.gradsOut", static_cast<size_t>(np));
    extras->has_grads_out = true;
    extras->grads_out.assign(static_cast<size_t>(np), nullptr);
    for (int i = 0; i < np; ++i) {
      pins->Add(a.Get(static_cast<uint32_t>(i)), ArgName{"into.gradsOut", i}, dtype,
                static_cast<size_t>(Numel(s.param_shape(i))), &extras->grads_out[static_cast<size_t>(i)]);
    }
  }
  if (given(lv)) {
    const size_t n = (args.compute_grads && s.has_loss()) ? static_cast<size_t>(args.steps) : 0;
    pins->Add(lv, ArgName{"into.lossesOut"}, napi_float64_array, n, &extras->losses_out);
    extras->has_losses_out = true;
  }
  extras->outputs = FastOptionalBool(env, ov, "into.outputs", true);
  if (given(oov)) {
    // One array per model-output slot (steps * numel of the slot), written instead of fresh ones.
    if (!extras->outputs) {
      throw ArgTypeError(env, "into.outputsOut needs outputs: true (got outputs false and outputsOut " + Describe(oov) + ")");
    }
    const int no = s.num_outputs();
    Napi::Array a = FastArrayOf(env, oov, "into.outputsOut", static_cast<size_t>(no));
    extras->has_outputs_out = true;
    extras->outputs_out.assign(static_cast<size_t>(no), nullptr);
    for (int i = 0; i < no; ++i) {
      const double total = double(args.steps) * double(Numel(s.output_shape(i)));
      if (total > 9007199254740992.0) {
        throw ArgRangeError(env, ArgName{"into.outputsOut", i}.str() + " would need " + std::to_string(total) +
                                     " elements (steps * numel of the output): too large");
      }
      pins->Add(a.Get(static_cast<uint32_t>(i)), ArgName{"into.outputsOut", i}, dtype, static_cast<size_t>(total),
                &extras->outputs_out[static_cast<size_t>(i)]);
    }
  }
}

void ParseOnlineUpdateValues(Napi::Env env, const bt::Session& s, bt::DType dtype, PinnedArrays* pins,
                             const Napi::Value& opt_v, const Napi::Value& up_v, const Napi::Value& sl_v,
                             const Napi::Value& lr_v, const Napi::Value& mn_v, const Napi::Value& nf_v,
                             OnlineExtras* extras) {
  const int np = s.num_params();
  extras->optimizer = UnwrapOptimizer(env, opt_v, "into.update.optimizer", dtype, &extras->update_sizes);
  const size_t n = extras->update_sizes.size();
  if (n != static_cast<size_t>(np)) {
    throw ArgRangeError(env, "into.update.optimizer must be bound to " + std::to_string(np) +
                                 " parameters, one per param slot (it is bound to " + std::to_string(n) + ")");
  }
  Napi::Array sa = FastArrayOf(env, sl_v, "into.update.slots", n);
  extras->update_slots.assign(n, -1);
  std::vector<char> seen(n, 0);
  for (size_t k = 0; k < n; ++k) {
    auto sn = [&] { return ArgName{"into.update.slots", static_cast<int64_t>(k)}.str(); };
    const Napi::Value sv = sa.Get(static_cast<uint32_t>(k));
    int slot = -1;
    if (sv.IsNumber()) {
      const double d = sv.As<Napi::Number>().DoubleValue();
      if (d >= 0 && d <= np - 1 && std::floor(d) == d) slot = static_cast<int>(d);
    }
    if (slot < 0) {  // throws the error of the checked form
      slot = static_cast<int>(CheckInteger(env, sv, sn(), "a param slot in [0, " + std::to_string(np) + ")", 0, np - 1));
    }
    if (seen[static_cast<size_t>(slot)]) throw ArgRangeError(env, sn() + " repeats param slot " + std::to_string(slot));
    seen[static_cast<size_t>(slot)] = 1;
    if (Numel(s.param_shape(slot)) != extras->update_sizes[k]) {
      throw ArgRangeError(env, sn() + " is param slot " + std::to_string(slot) + " of " +
                                   std::to_string(Numel(s.param_shape(slot))) + " values, but the optimizer's parameter " +
                                   std::to_string(k) + " has " + std::to_string(extras->update_sizes[k]));
    }
    extras->update_slots[k] = slot;
  }
  auto nonneg = [&](const Napi::Value& x, const char* what, bool optional) {
    if (optional && x.IsUndefined()) return 0.0;
    if (!x.IsNumber()) throw ArgTypeError(env, std::string(what) + " must be a finite number >= 0 (got " + Describe(x) + ")");
    const double d = x.As<Napi::Number>().DoubleValue();
    if (!std::isfinite(d) || d < 0) throw ArgRangeError(env, std::string(what) + " must be a finite number >= 0 (got " + Describe(x) + ")");
    return d;
  };
  extras->lr = nonneg(lr_v, "into.update.lr", false);
  extras->max_norm = nonneg(mn_v, "into.update.maxNorm", true);
  extras->policy = ParseNonFinitePolicy(env, nf_v);
  Napi::Array pa = FastArrayOf(env, up_v, "into.update.params", n);
  extras->update_params.assign(n, nullptr);
  for (size_t k = 0; k < n; ++k) {
    pins->Add(pa.Get(static_cast<uint32_t>(k)), ArgName{"into.update.params", static_cast<int64_t>(k)}, dtype,
              static_cast<size_t>(extras->update_sizes[k]), &extras->update_params[k]);
  }
  extras->has_update = true;
}

void WriteOnlineExtras(const bt::OnlineResult& r, bt::DType dtype, const OnlineExtras& extras) {
  const size_t es = ElementSize(dtype);
  if (extras.has_grads_out) {
    for (size_t k = 0; k < extras.grads_out.size() && k < r.param_grads.size(); ++k) {
      const size_t bytes = r.param_grads[k].numel * es;
      if (bytes != 0) std::memcpy(const_cast<void*>(extras.grads_out[k]), r.param_grads[k].bytes.data(), bytes);
    }
  }
  if (extras.has_outputs_out) {
    for (size_t k = 0; k < extras.outputs_out.size() && k < r.outputs.size(); ++k) {
      const size_t bytes = r.outputs[k].numel * es;
      if (bytes != 0) std::memcpy(const_cast<void*>(extras.outputs_out[k]), r.outputs[k].bytes.data(), bytes);
    }
  }
  if (extras.has_losses_out && extras.losses_out != nullptr && !r.losses.empty()) {
    std::memcpy(const_cast<void*>(extras.losses_out), r.losses.data(), r.losses.size() * sizeof(double));
  }
}

Napi::Object OnlineExtrasResultToJs(Napi::Env env, const bt::OnlineResult& r, bt::DType dtype, bool grads,
                                    const OnlineExtras& extras) {
  // Only what the `into` arrays did not receive (each field costs an allocation and a
  // property definition, a good part of a tiny streaming step).
  // Every value is built (copied out of `r`) before the first property is set: a setter on
  // Object.prototype may run JS, which must not see `r` half read.
  Napi::Object o = Napi::Object::New(env);
  Napi::Value outputs, losses_v, grads_v;
  if (extras.outputs && !extras.has_outputs_out) outputs = BuffersToJs(env, r.outputs, dtype);
  if (!extras.has_losses_out) {
    Napi::Float64Array losses = Napi::Float64Array::New(env, r.losses.size());
    if (!r.losses.empty()) std::memcpy(losses.Data(), r.losses.data(), r.losses.size() * sizeof(double));
    losses_v = losses;
  }
  // With an update the gradients were consumed by it: returned only into gradsOut.
  if (grads && !extras.has_grads_out && !extras.has_update) grads_v = BuffersToJs(env, r.param_grads, dtype);
  if (!outputs.IsEmpty()) SetKey(env, o, Key::Outputs, outputs);
  if (!losses_v.IsEmpty()) SetKey(env, o, Key::Losses, losses_v);
  if (!grads_v.IsEmpty()) SetKey(env, o, Key::ParamGrads, grads_v);
  if (extras.has_update && !extras.has_stats_out) {
    SetKey(env, o, Key::GradNorm, Napi::Number::New(env, extras.grad_norm));
    SetKey(env, o, Key::Skipped, Napi::Boolean::New(env, extras.skipped));
  }
  return o;
}

void FinishOnlineArgs(bt::OnlineArgs* out, const void* loss_scale) {
  if (loss_scale == nullptr) return;
  const double* ls = static_cast<const double*>(loss_scale);
  out->loss_scale.assign(ls, ls + out->steps);
}

Napi::Object OnlineResultToJs(Napi::Env env, const bt::OnlineResult& r, bt::DType dtype, bool grads) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("outputs", BuffersToJs(env, r.outputs, dtype));
  Napi::Float64Array losses = Napi::Float64Array::New(env, r.losses.size());
  if (!r.losses.empty()) std::memcpy(losses.Data(), r.losses.data(), r.losses.size() * sizeof(double));
  o.Set("losses", losses);
  if (grads) o.Set("paramGrads", BuffersToJs(env, r.param_grads, dtype));
  return o;
}

}  // namespace btnode
