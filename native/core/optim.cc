// The optimizer state and its CPU step driver (see core/optim.h). The math is in
// kernels/optim.h; this file checks, allocates, computes the per-step scalars in double
// and runs the bodies over the thread pool.
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
#include "cpu/thread_pool.h"
#include "kernels/finite.h"
#include "kernels/optim.h"

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

// Elements per work item of the update loops and per partial sum of the norm. Fixed
// (not derived from the thread count) so the norm's summation order never changes.
constexpr int64_t kGrain = 16384;
constexpr int64_t kNormBlock = 16384;

size_t elem_size(DType d) { return d == DType::F64 ? sizeof(double) : sizeof(float); }

bool finite_nonneg(double x) { return std::isfinite(x) && x >= 0; }

Status bad(const std::string& m) { return Status::Error(StatusCode::InvalidArgument, m); }

std::string num(double x) {
  char b[64];
  std::snprintf(b, sizeof b, "%.17g", x);
  return b;
}

template <typename F>
void for_elements(int64_t n, F&& f) {
  if (n <= kGrain) {
    for (int64_t i = 0; i < n; ++i) f(i);
    return;
  }
  parallel_for(n, kGrain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) f(i);
  });
}

// First i in [0, n) with !ok(i), or -1: the elements split like for_elements, the first
// bad index of each work item kept, the lowest returned (independent of the thread count).
template <typename F>
int64_t first_failing(int64_t n, F&& ok) {
  if (n <= kGrain) {
    for (int64_t i = 0; i < n; ++i)
      if (!ok(i)) return i;
    return -1;
  }
  const int64_t chunks = (n + kGrain - 1) / kGrain;
  std::vector<int64_t> first(static_cast<size_t>(chunks), -1);
  parallel_for(chunks, 1, [&](int64_t b, int64_t e) {
    for (int64_t c = b; c < e; ++c) {
      const int64_t end = std::min(n, (c + 1) * kGrain);
      for (int64_t i = c * kGrain; i < end; ++i)
        if (!ok(i)) {
          first[static_cast<size_t>(c)] = i;
          break;
        }
    }
  });
  for (int64_t f : first)
    if (f >= 0) return f;
  return -1;
}

// Runs body(i) over [0, n): the update (commit) or a dry run returning the first failure.
template <typename F>
int64_t drive(int64_t n, bool commit, F&& body) {
  if (!commit) return first_failing(n, [&body](int64_t j) { return body(j, false); });
  for_elements(n, [&body](int64_t j) { body(j, true); });
  return -1;
}

// Global L2 norm of all gradients: fixed blocks, partial sums in double, summed in order.
template <typename T>
double global_norm(const std::vector<const void*>& grads, const std::vector<int64_t>& sizes) {
  struct Block {
    const T* g;
    int64_t b, e;
  };
  std::vector<Block> blocks;
  for (size_t i = 0; i < grads.size(); ++i) {
    const T* g = static_cast<const T*>(grads[i]);
    for (int64_t b = 0; b < sizes[i]; b += kNormBlock) blocks.push_back({g, b, std::min(sizes[i], b + kNormBlock)});
  }
  std::vector<double> partial(blocks.size(), 0.0);
  const int64_t nb = static_cast<int64_t>(blocks.size());
  int64_t total = 0;
  for (int64_t n : sizes) total += n;
  // Less than one block of work in all (many tiny tensors): the pool's wake-up would cost
  // more than the sums; the same partials, summed in the same order, on this thread.
  if (nb > 1 && total > kNormBlock) {
    parallel_for(nb, 1, [&](int64_t b, int64_t e) {
      for (int64_t j = b; j < e; ++j) partial[j] = sum_squares(blocks[j].g, blocks[j].b, blocks[j].e);
    });
  } else {
    for (int64_t j = 0; j < nb; ++j) partial[j] = sum_squares(blocks[j].g, blocks[j].b, blocks[j].e);
  }
  double s = 0;
  for (double p : partial) s += p;
  return std::sqrt(s);
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
    : kind_(kind), hyper_(hyper), dtype_(dtype) {
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
std::pair<int64_t, int64_t> Optimizer::run_step(const std::vector<void*>& params, const std::vector<const void*>& grads,
                                                double lr, double scale, bool commit) {
  const OptimHyper& h = hyper_;
  const int64_t t = step_count_ + 1;
  for (size_t i = 0; i < params.size(); ++i) {
    int64_t bad = -1;
    const int64_t n = sizes_[i];
    T* p = static_cast<T*>(params[i]);
    const T* g = static_cast<const T*>(grads[i]);
    switch (kind_) {
      case OptimKind::Sgd: {
        SgdTask<T> k;
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
        bad = drive(n, commit, [&k](int64_t j, bool c) { return sgd_update(k, j, c); });
        break;
      }
      case OptimKind::Adam:
      case OptimKind::AdamW: {
        AdamTask<T> k;
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
        bad = drive(n, commit, [&k](int64_t j, bool c) { return adam_update(k, j, c); });
        break;
      }
      case OptimKind::RmsProp: {
        RmsPropTask<T> k;
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
        bad = drive(n, commit, [&k](int64_t j, bool c) { return rmsprop_update(k, j, c); });
        break;
      }
    }
    if (bad >= 0) return {static_cast<int64_t>(i), bad};
  }
  return {-1, -1};
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
    const double norm = f64 ? global_norm<double>(grads, sizes_) : global_norm<float>(grads, sizes_);
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
        const int64_t bad = f64 ? first_non_finite(static_cast<const double*>(grads[i]), sizes_[i])
                                : first_non_finite(static_cast<const float*>(grads[i]), sizes_[i]);
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
      const std::pair<int64_t, int64_t> bad =
          f64 ? run_step<double>(params, grads, lr, scale, false) : run_step<float>(params, grads, lr, scale, false);
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
    if (f64) run_step<double>(params, grads, lr, scale, true);
    else run_step<float>(params, grads, lr, scale, true);
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
