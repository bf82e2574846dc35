// The optimizer state and its step (see core/optim.h). The math is in kernels/optim.h;
// this file checks, allocates, computes the per-step scalars in double and hands the
// updates, the norm and the non-finite scans to its executor (optim_step, sum_squares,
// find_non_finite tasks of core/executor.h), the CPU executor today.
#include "core/optim.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <exception>
#include <new>

#include "core/checked.h"
#include "core/memory.h"
#include "core/status_util.h"
#include "core/executor.h"

namespace bt {

// One 64-byte aligned state buffer, recorded in the memory accounting.
struct Optimizer::HostBlock {
  void* p = nullptr;
  size_t bytes = 0;
  HostBlock() = default;
  HostBlock(const HostBlock&) = delete;
  HostBlock& operator=(const HostBlock&) = delete;
  ~HostBlock() {
    if (p != nullptr) {
      aligned_host_free(p);
      memory_record_free(bytes);
    }
  }
  bool allocate(size_t n) {
    p = aligned_host_alloc(n);
    if (p == nullptr) return false;
    bytes = n == 0 ? 64 : n;
    std::memset(p, 0, n);
    memory_record_alloc(bytes);
    return true;
  }
};

namespace {

size_t elem_size(DType d) { return d == DType::F64 ? sizeof(double) : sizeof(float); }

bool finite_nonneg(double x) { return std::isfinite(x) && x >= 0; }

Status bad(const std::string& m) { return Status::Error(StatusCode::InvalidArgument, m); }

std::string num(double x) {
  char b[64];
  std::snprintf(b, sizeof b, "%.17g", x);
  return b;
}

// Global L2 norm of all gradients (sum_squares task: fixed blocks, partial sums in double,
// summed in order).
template <typename T>
Status global_norm(Executor* ex, const std::vector<const void*>& grads, const std::vector<int64_t>& sizes,
                   double* norm) {
  std::vector<const T*> x(grads.size());
  for (size_t i = 0; i < grads.size(); ++i) x[i] = static_cast<const T*>(grads[i]);
  double s = 0;
  SumSquaresTask<T> t;
  t.x = x.data();
  t.n = sizes.data();
  t.arrays = static_cast<int64_t>(x.size());
  t.out = &s;
  BT_RETURN_IF_ERROR(ex->sum_squares(t));
  *norm = std::sqrt(s);
  return Status::Ok();
}

template <typename T>
Status first_non_finite_in(Executor* ex, const void* x, int64_t n, int64_t* first) {
  FiniteScanTask<T> t;
  t.x = static_cast<const T*>(x);
  t.n = n;
  t.first = first;
  return ex->find_non_finite(t);
}

}  // namespace

Status optim_kind_from_name(const std::string& name, OptimKind* out) {
  if (name == "sgd") *out = OptimKind::Sgd;
  else if (name == "adam") *out = OptimKind::Adam;
  else if (name == "adamw") *out = OptimKind::AdamW;
  else if (name == "rmsprop") *out = OptimKind::RmsProp;
  else return bad("kind must be 'sgd', 'adam', 'adamw' or 'rmsprop' (got '" + name + "')");
  return Status::Ok();
}

const char* optim_kind_name(OptimKind kind) {
  switch (kind) {
    case OptimKind::Sgd: return "sgd";
    case OptimKind::Adam: return "adam";
    case OptimKind::AdamW: return "adamw";
    case OptimKind::RmsProp: return "rmsprop";
  }
  return "?";
}

Optimizer::Optimizer(OptimKind kind, const OptimHyper& hyper, DType dtype)
    : kind_(kind), hyper_(hyper), dtype_(dtype), ex_(make_cpu_executor()) {
  switch (kind) {
    case OptimKind::Sgd:
      if (hyper.momentum > 0) slot_names_ = {"momentum"};
      break;
    case OptimKind::Adam:
    case OptimKind::AdamW:
      slot_names_ = {"m", "v"};
      break;
    case OptimKind::RmsProp:
      slot_names_ = {"squareAvg"};
      if (hyper.momentum > 0) slot_names_.push_back("momentum");
      if (hyper.centered) slot_names_.push_back("gradAvg");
      break;
  }
}

Optimizer::~Optimizer() = default;

Status Optimizer::Create(OptimKind kind, const OptimHyper& h, DType dtype, std::unique_ptr<Optimizer>* out) {
  try {
    if (dtype != DType::F32 && dtype != DType::F64) return bad("dtype must be float32 or float64");
    const struct {
      const char* name;
      double v;
      double hi;  // inclusive upper bound
      bool hi_open;
    } checks[] = {
        {"momentum", h.momentum, INFINITY, true}, {"dampening", h.dampening, 1, false},
        {"weightDecay", h.weight_decay, INFINITY, true}, {"beta1", h.beta1, 1, true},
        {"beta2", h.beta2, 1, true},               {"eps", h.eps, INFINITY, true},
        {"alpha", h.alpha, 1, false},
    };
    for (const auto& c : checks) {
      const bool ok = finite_nonneg(c.v) && (c.hi_open ? c.v < c.hi : c.v <= c.hi);
      if (!ok) {
        const std::string range = std::isinf(c.hi) ? "a finite number >= 0"
                                                   : std::string("a number in [0, ") + num(c.hi) + (c.hi_open ? ")" : "]");
        return bad(std::string("hyper.") + c.name + " must be " + range + " (got " + num(c.v) + ")");
      }
    }
    if (kind == OptimKind::Sgd && h.nesterov && !(h.momentum > 0 && h.dampening == 0))
      return bad("hyper.nesterov requires momentum > 0 and dampening 0 (got momentum " + num(h.momentum) +
                 ", dampening " + num(h.dampening) + ")");
    out->reset(new Optimizer(kind, h, dtype));
    return Status::Ok();
  } catch (const std::bad_alloc&) {
    return Status::Error(StatusCode::OutOfMemory, "out of memory creating an optimizer");
  }
}

Status Optimizer::set_step_count(int64_t n) {
  if (n < 0) return bad("stepCount must be an integer >= 0 (got " + std::to_string(n) + ")");
  step_count_ = n;
  return Status::Ok();
}

void* Optimizer::slot(size_t param, int k) const {
  return state_[param * slot_names_.size() + static_cast<size_t>(k)]->p;
}

Status Optimizer::bind(const std::vector<int64_t>& sizes) {
  const size_t K = slot_names_.size();
  const size_t es = elem_size(dtype_);
  std::vector<std::unique_ptr<HostBlock>> blocks;
  size_t total = 0;
  // Sizes come from the caller (parameter lengths, or a restored state's): every byte count
  // is checked, and the state of all parameters together must fit kMaxTotalBytes.
  ByteBudget budget(StatusCode::InvalidArgument, "optimizer state");
  for (size_t i = 0; i < sizes.size(); ++i)
    for (size_t k = 0; k < K; ++k)
      BT_RETURN_IF_ERROR(budget.add("'" + slot_names_[k] + "' of params[" + std::to_string(i) + "]", sizes[i], es));
  try {
    blocks.reserve(sizes.size() * K);
    for (size_t i = 0; i < sizes.size(); ++i) {
      const size_t bytes = static_cast<size_t>(sizes[i]) * es;  // within the budget checked above
      for (size_t k = 0; k < K; ++k) {
        std::unique_ptr<HostBlock> b(new HostBlock());
        if (!b->allocate(bytes))
          return Status::Error(StatusCode::OutOfMemory, "could not allocate " + std::to_string(bytes) +
                                                            " bytes of optimizer state '" + slot_names_[k] +
                                                            "' for params[" + std::to_string(i) + "]");
        total += b->bytes;
        blocks.push_back(std::move(b));
      }
    }
    sizes_ = sizes;
  } catch (const std::bad_alloc&) {
    return Status::Error(StatusCode::OutOfMemory, "out of memory allocating optimizer state");
  }
  state_ = std::move(blocks);
  state_bytes_ = total;
  bound_ = true;
  return Status::Ok();
}

template <typename T>
Status Optimizer::run_step(const std::vector<void*>& params, const std::vector<const void*>& grads, double lr,
                           double scale, bool commit, std::pair<int64_t, int64_t>* first_bad) {
  *first_bad = {-1, -1};
  const OptimHyper& h = hyper_;
  const int64_t t = step_count_ + 1;
  for (size_t i = 0; i < params.size(); ++i) {
    int64_t bad = -1;
    OptimTask<T> task;
    task.n = sizes_[i];
    task.commit = commit;
    task.first_bad = &bad;
    T* p = static_cast<T*>(params[i]);
    const T* g = static_cast<const T*>(grads[i]);
    switch (kind_) {
      case OptimKind::Sgd: {
        task.kind = 0;
        SgdTask<T>& k = task.sgd;
        k.p = p;
        k.g = g;
        k.buf = h.momentum > 0 ? static_cast<T*>(slot(i, 0)) : nullptr;
        k.lr = T(lr);
        k.scale = T(scale);
        k.momentum = T(h.momentum);
        k.dampening = T(h.dampening);
        k.weight_decay = T(h.weight_decay);
        k.nesterov = h.nesterov;
        k.first = step_count_ == 0;
        break;
      }
      case OptimKind::Adam:
      case OptimKind::AdamW: {
        task.kind = 1;
        AdamTask<T>& k = task.adam;
        k.p = p;
        k.g = g;
        k.m = static_cast<T*>(slot(i, 0));
        k.v = static_cast<T*>(slot(i, 1));
        k.lr = T(lr);
        k.scale = T(scale);
        k.beta1 = T(h.beta1);
        k.beta2 = T(h.beta2);
        k.eps = T(h.eps);
        k.weight_decay = T(h.weight_decay);
        // Bias corrections in double, as torch computes them in Python floats.
        const double bc1 = 1.0 - std::pow(h.beta1, double(t));
        const double bc2 = 1.0 - std::pow(h.beta2, double(t));
        k.step_size = T(lr / bc1);
        k.bc2_sqrt = T(std::sqrt(bc2));
        k.decoupled = kind_ == OptimKind::AdamW;
        break;
      }
      case OptimKind::RmsProp: {
        task.kind = 2;
        RmsPropTask<T>& k = task.rmsprop;
        k.p = p;
        k.g = g;
        int next = 0;
        k.sq = static_cast<T*>(slot(i, next++));
        k.buf = h.momentum > 0 ? static_cast<T*>(slot(i, next++)) : nullptr;
        k.avg = h.centered ? static_cast<T*>(slot(i, next++)) : nullptr;
        k.lr = T(lr);
        k.scale = T(scale);
        k.alpha = T(h.alpha);
        k.eps = T(h.eps);
        k.momentum = T(h.momentum);
        k.weight_decay = T(h.weight_decay);
        break;
      }
    }
    BT_RETURN_IF_ERROR(ex_->optim_step(task));
    if (bad >= 0) {
      *first_bad = {static_cast<int64_t>(i), bad};
      return Status::Ok();
    }
  }
  return Status::Ok();
}

Status Optimizer::step(const std::vector<void*>& params, const std::vector<const void*>& grads,
                       const std::vector<int64_t>& sizes, double lr, double max_norm, double* grad_norm,
                       NonFinitePolicy policy, bool* skipped) {
  try {
    if (skipped != nullptr) *skipped = false;
    if (!finite_nonneg(lr)) return bad("lr must be a finite number >= 0 (got " + num(lr) + ")");
    if (!finite_nonneg(max_norm)) return bad("maxNorm must be a finite number >= 0 (got " + num(max_norm) + ")");
    if (params.size() != sizes.size() || grads.size() != sizes.size())
      return bad("params, grads and sizes must have the same length (got " + std::to_string(params.size()) + ", " +
                 std::to_string(grads.size()) + ", " + std::to_string(sizes.size()) + ")");
    if (bound_) {
      if (sizes.size() != sizes_.size())
        return bad("params must have " + std::to_string(sizes_.size()) +
                   " entries, as in the first step (got " + std::to_string(sizes.size()) + ")");
      for (size_t i = 0; i < sizes.size(); ++i)
        if (sizes[i] != sizes_[i])
          return bad("params[" + std::to_string(i) + "] must have " + std::to_string(sizes_[i]) +
                     " elements, as in the first step (got " + std::to_string(sizes[i]) + ")");
    } else {
      for (size_t i = 0; i < sizes.size(); ++i)
        if (sizes[i] < 0) return bad("params[" + std::to_string(i) + "] has a negative size");
    }
    for (size_t i = 0; i < sizes.size(); ++i)
      if (sizes[i] > 0 && (params[i] == nullptr || grads[i] == nullptr))
        return bad("params[" + std::to_string(i) + "] / grads[" + std::to_string(i) + "] has no data");
    if (!bound_) {
      Status s = bind(sizes);
      if (!s.ok()) return s;
    }
    const bool f64 = dtype_ == DType::F64;
    double norm = 0;
    BT_RETURN_IF_ERROR(f64 ? global_norm<double>(ex_.get(), grads, sizes_, &norm)
                           : global_norm<float>(ex_.get(), grads, sizes_, &norm));
    const bool check = policy != NonFinitePolicy::Allow;
    // A non-finite norm means a non-finite gradient (the norm pass read every one); only then
    // is the first bad element looked for.
    if (check && !std::isfinite(norm)) {
      if (grad_norm != nullptr) *grad_norm = norm;
      if (policy == NonFinitePolicy::Skip) {
        if (skipped != nullptr) *skipped = true;
        return Status::Ok();
      }
      for (size_t i = 0; i < grads.size(); ++i) {
        int64_t bad = -1;
        BT_RETURN_IF_ERROR(f64 ? first_non_finite_in<double>(ex_.get(), grads[i], sizes_[i], &bad)
                               : first_non_finite_in<float>(ex_.get(), grads[i], sizes_[i], &bad));
        if (bad < 0) continue;
        const double v = f64 ? static_cast<const double*>(grads[i])[bad] : static_cast<const float*>(grads[i])[bad];
        return Status::NonFiniteValue("optimizer step: grads[" + std::to_string(i) + "] holds a non-finite value (" +
                                          num(v) + ") at index " + std::to_string(bad) +
                                          "; the parameters were not updated",
                                      "grads[" + std::to_string(i) + "]", -1, bad);
      }
      // The squares overflowed although every gradient is finite: treat as non-finite too.
      return Status::NonFiniteValue("optimizer step: the global gradient norm overflows (" + num(norm) +
                                        "); the parameters were not updated",
                                    "grads", -1, -1);
    }
    // torch.nn.utils.clip_grad_norm_: coef = max_norm / (norm + 1e-6), clamped to 1.
    double scale = 1.0;
    if (max_norm > 0) {
      const double c = max_norm / (norm + 1e-6);
      scale = c < 1.0 ? c : 1.0;
    }
    if (check) {
      std::pair<int64_t, int64_t> bad;
      BT_RETURN_IF_ERROR(f64 ? run_step<double>(params, grads, lr, scale, false, &bad)
                             : run_step<float>(params, grads, lr, scale, false, &bad));
      if (bad.first >= 0) {
        if (grad_norm != nullptr) *grad_norm = norm;
        if (policy == NonFinitePolicy::Skip) {
          if (skipped != nullptr) *skipped = true;
          return Status::Ok();
        }
        const std::string name = "params[" + std::to_string(bad.first) + "]";
        return Status::NonFiniteValue("optimizer step: the update of " + name + " with lr " + num(lr) +
                                          " would write a non-finite value at index " + std::to_string(bad.second) +
                                          " (the parameter, its gradient or the learning rate is too large, or the "
                                          "parameter is not finite); the parameters were not updated",
                                      name, -1, bad.second);
      }
    }
    std::pair<int64_t, int64_t> none;
    BT_RETURN_IF_ERROR(f64 ? run_step<double>(params, grads, lr, scale, true, &none)
                           : run_step<float>(params, grads, lr, scale, true, &none));
    ++step_count_;
    if (grad_norm != nullptr) *grad_norm = norm;
    return Status::Ok();
  } catch (const std::bad_alloc&) {
    return Status::Error(StatusCode::OutOfMemory, "out of memory in the optimizer step");
  } catch (const std::exception& e) {
    return Status::Error(StatusCode::Internal, std::string("internal error in the optimizer step: ") + e.what());
  }
}

Status Optimizer::get_state(std::vector<Buffer>* out) const {
  try {
    out->clear();
    if (!bound_) return Status::Ok();
    const size_t K = slot_names_.size();
    const size_t es = elem_size(dtype_);
    out->resize(sizes_.size() * K);
    for (size_t i = 0; i < sizes_.size(); ++i) {
      for (size_t k = 0; k < K; ++k) {
        Buffer& b = (*out)[i * K + k];
        b.numel = static_cast<size_t>(sizes_[i]);
        b.bytes.resize(b.numel * es);
        if (b.numel != 0) std::memcpy(b.bytes.data(), slot(i, static_cast<int>(k)), b.numel * es);
      }
    }
    return Status::Ok();
  } catch (const std::bad_alloc&) {
    out->clear();
    return Status::Error(StatusCode::OutOfMemory, "out of memory copying the optimizer state");
  }
}

Status Optimizer::set_state(const std::vector<const void*>& data, const std::vector<int64_t>& sizes) {
  try {
    const size_t K = slot_names_.size();
    if (data.size() != sizes.size()) return bad("set_state: data and sizes differ in length");
    if (K == 0) {
      if (!data.empty())
        return bad(std::string("list must be empty: a ") + optim_kind_name(kind_) +
                   " optimizer with these hyper-parameters has no state (got " + std::to_string(data.size()) +
                   " buffers)");
      return Status::Ok();
    }
    if (data.size() % K != 0)
      return bad("list must hold " + std::to_string(K) + " buffers per parameter (got " + std::to_string(data.size()) +
                 ")");
    const size_t n = data.size() / K;
    if (bound_ && n != sizes_.size())
      return bad("list must have " + std::to_string(sizes_.size() * K) + " entries (" + std::to_string(K) +
                 " per parameter; got " + std::to_string(data.size()) + ")");
    std::vector<int64_t> want(n);
    for (size_t i = 0; i < n; ++i) {
      want[i] = bound_ ? sizes_[i] : sizes[i * K];
      if (want[i] < 0) return bad("list[" + std::to_string(i * K) + "] has a negative size");
      for (size_t k = 0; k < K; ++k) {
        const size_t j = i * K + k;
        if (sizes[j] != want[i])
          return bad("list[" + std::to_string(j) + "] ('" + slot_names_[k] + "' of params[" + std::to_string(i) +
                     "]) must have " + std::to_string(want[i]) + " elements (got " + std::to_string(sizes[j]) + ")");
        if (sizes[j] > 0 && data[j] == nullptr) return bad("list[" + std::to_string(j) + "] has no data");
      }
    }
    if (!bound_) {
      Status s = bind(want);
      if (!s.ok()) return s;
    }
    const size_t es = elem_size(dtype_);
    for (size_t j = 0; j < data.size(); ++j)
      if (sizes[j] > 0) std::memcpy(state_[j]->p, data[j], static_cast<size_t>(sizes[j]) * es);
    return Status::Ok();
  } catch (const std::bad_alloc&) {
    return Status::Error(StatusCode::OutOfMemory, "out of memory loading the optimizer state");
  }
}

}  // namespace bt
