// Cancellation and progress of the async session calls (runSequenceAsync, runOnlineAsync).
//
// Per call (CallControl, created on the JS thread when the call is queued):
//   * a cancel flag (std::atomic<bool>, owned here) that the core reads between steps and
//     nodes (bt::RunControl); session.cancelRun() sets it from JS (an AbortSignal listener);
//   * a thread-safe function (napi_threadsafe_function) through which the worker thread
//     wakes the JS thread at most every kWakeMs: each wake-up calls a native no-op function
//     first (a probe) and, when progress advanced and kProgressMs have passed since the last
//     delivery, the caller's onProgress(done, total). The final progress (total, total) is
//     delivered on the JS thread when the call settles successfully, and stale wake-ups are
//     dropped, so the numbers a callback sees only grow.
//   * If the probe cannot call into JS, the environment is going away (worker.terminate(),
//     or teardown): the call is cancelled at once. Node waits for in-flight thread-pool work
//     BEFORE it runs environment cleanup hooks, so without the probe terminate() would wait
//     for the whole call; the probe is what makes it return within one step.
//   * A throwing onProgress cancels the call; its promise rejects with that exception.
//
// Per environment (InFlightRegistry, held by the Addon): the flags of every in-flight call.
// An environment cleanup hook sets all of them and waits (bounded) for the calls' Execute()
// to return; a process-wide atexit handler does the same for every environment, so
// process.exit() during a call does not run static destructors under a working call.
#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <mutex>

#include "binding/binding.h"

namespace btnode {

namespace {

constexpr int kWakeMs = 20;      // worker -> JS wake-ups (probe + progress), at most this often
constexpr int kProgressMs = 50;  // onProgress deliveries, at most this often (plus the final one)
constexpr int kCleanupWaitMs = 2000;

using Clock = std::chrono::steady_clock;

// Every environment's registry, for the atexit handler. Leaked on purpose: it must outlive
// static destruction, which runs after atexit handlers.
struct ProcessRegistries {
  std::mutex mu;
  std::vector<std::weak_ptr<InFlightRegistry>> list;
};
ProcessRegistries& process_registries() {
  static ProcessRegistries* r = new ProcessRegistries();
  return *r;
}

void CancelEverywhereAtExit() {
  std::vector<std::shared_ptr<InFlightRegistry>> regs;
  {
    ProcessRegistries& p = process_registries();
    std::lock_guard<std::mutex> lock(p.mu);
    for (const auto& w : p.list)
      if (auto r = w.lock()) regs.push_back(r);
  }
  for (auto& r : regs) r->CancelAllAndWait(200);
}

void EnvCleanupHook(void* arg) {
  auto* reg = static_cast<std::shared_ptr<InFlightRegistry>*>(arg);
  (*reg)->CancelAllAndWait(kCleanupWaitMs);
  delete reg;
}

void Noop(napi_env, napi_callback_info) {}
napi_value NoopCallback(napi_env env, napi_callback_info info) {
  Noop(env, info);
  return nullptr;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// InFlightRegistry

void InFlightRegistry::Add(const std::shared_ptr<std::atomic<bool>>& flag) {
  std::lock_guard<std::mutex> lock(mu);
  flags.push_back(flag);
  ++running;
}

void InFlightRegistry::Done(const std::shared_ptr<std::atomic<bool>>& flag) {
  std::lock_guard<std::mutex> lock(mu);
  auto it = std::find(flags.begin(), flags.end(), flag);
  if (it != flags.end()) flags.erase(it);
  --running;
  cv.notify_all();
}

void InFlightRegistry::CancelAllAndWait(int timeout_ms) {
  std::unique_lock<std::mutex> lock(mu);
  for (auto& f : flags) f->store(true);
  cv.wait_for(lock, std::chrono::milliseconds(timeout_ms), [this] { return running <= 0; });
}

std::shared_ptr<InFlightRegistry> InFlightRegistry::ForEnv(Napi::Env env) {
  auto reg = std::make_shared<InFlightRegistry>();
  napi_add_env_cleanup_hook(env, EnvCleanupHook, new std::shared_ptr<InFlightRegistry>(reg));
  static std::once_flag once;
  std::call_once(once, [] { std::atexit(CancelEverywhereAtExit); });
  ProcessRegistries& p = process_registries();
  std::lock_guard<std::mutex> lock(p.mu);
  p.list.erase(std::remove_if(p.list.begin(), p.list.end(), [](const std::weak_ptr<InFlightRegistry>& w) {
                 return w.expired();
               }),
               p.list.end());
  p.list.push_back(reg);
  return reg;
}

// ---------------------------------------------------------------------------------------------
// CallControl

// State shared by the worker thread, the thread-safe function's JS callback and the
// CallControl (the TSFN context owns one reference; it is freed by the TSFN finalizer).
struct CallControl::Shared {
  std::shared_ptr<std::atomic<bool>> cancel;
  std::atomic<int64_t> done{0};
  std::atomic<int64_t> total{0};
  std::atomic<bool> queued{false};  // a wake-up is queued and not yet handled
  // JS thread only:
  napi_ref on_progress = nullptr;   // the caller's callback (null: none)
  napi_ref error = nullptr;         // the exception onProgress threw, if any
  int64_t delivered = 0;            // the largest `done` delivered
  Clock::time_point last_delivery{};
  bool settled = false;
};

CallControl::CallControl(Napi::Env env, std::shared_ptr<InFlightRegistry> registry, const Napi::Value& on_progress,
                         const char* name)
    : env_(env), registry_(std::move(registry)), shared_(std::make_shared<Shared>()) {
  shared_->cancel = std::make_shared<std::atomic<bool>>(false);
  if (!on_progress.IsEmpty() && on_progress.IsFunction())
    napi_create_reference(env, on_progress, 1, &shared_->on_progress);
  napi_value noop = nullptr, resource_name = nullptr;
  napi_status st = napi_create_function(env, "braintraceProbe", NAPI_AUTO_LENGTH, NoopCallback, nullptr, &noop);
  if (st == napi_ok) st = napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &resource_name);
  auto* ctx = new std::shared_ptr<Shared>(shared_);
  if (st == napi_ok)
    st = napi_create_threadsafe_function(env, noop, nullptr, resource_name, 0, 1, nullptr, Finalize, ctx, CallJs,
                                         &tsfn_);
  if (st != napi_ok) {
    delete ctx;
    tsfn_ = nullptr;  // progress and the probe are unavailable; cancelRun still works
  } else {
    // The wake-ups must not keep the event loop alive on their own (the work does).
    napi_unref_threadsafe_function(env, tsfn_);
  }
  rc_.cancel = shared_->cancel.get();
  rc_.progress = &CallControl::Progress;
  rc_.ctx = this;
  registry_->Add(shared_->cancel);
  registered_ = true;
}

CallControl::~CallControl() {
  // JS thread. A call whose Execute never ran (a failed Queue) is unregistered here.
  if (registered_) registry_->Done(shared_->cancel);
  if (tsfn_ != nullptr && !released_) napi_release_threadsafe_function(tsfn_, napi_tsfn_release);
  shared_->settled = true;
  if (shared_->on_progress != nullptr) {
    napi_delete_reference(env_, shared_->on_progress);
    shared_->on_progress = nullptr;
  }
  if (shared_->error != nullptr) {
    napi_delete_reference(env_, shared_->error);
    shared_->error = nullptr;
  }
}

void CallControl::Progress(void* ctx, int64_t done, int64_t total) {
  // Worker thread: record, and wake the JS thread at most every kWakeMs.
  auto* self = static_cast<CallControl*>(ctx);
  Shared& s = *self->shared_;
  s.done.store(done, std::memory_order_relaxed);
  s.total.store(total, std::memory_order_relaxed);
  if (self->tsfn_ == nullptr) return;
  const Clock::time_point now = Clock::now();
  if (now - self->last_wake_ < std::chrono::milliseconds(kWakeMs)) return;
  if (s.queued.exchange(true)) return;
  self->last_wake_ = now;
  const napi_status st = napi_call_threadsafe_function(self->tsfn_, nullptr, napi_tsfn_nonblocking);
  if (st != napi_ok) {
    s.queued.store(false);
    // napi_closing: the environment is tearing the function down: stop the call.
    if (st == napi_closing) s.cancel->store(true);
  }
}

void CallControl::ExecuteDone() {
  // Worker thread, after the core call returned.
  if (tsfn_ != nullptr) {
    napi_release_threadsafe_function(tsfn_, napi_tsfn_release);
    released_ = true;
  }
  registry_->Done(shared_->cancel);
  registered_ = false;
}

void CallControl::CallJs(napi_env env, napi_value probe, void* context, void*) {
  if (env == nullptr || context == nullptr) return;
  Shared& s = **static_cast<std::shared_ptr<Shared>*>(context);
  s.queued.store(false);
  if (s.settled) return;
  napi_value undefined = nullptr;
  napi_get_undefined(env, &undefined);
  napi_value ignored = nullptr;
  // The probe: fails exactly when JS cannot run any more (worker.terminate(), teardown).
  if (probe == nullptr || napi_call_function(env, undefined, probe, 0, nullptr, &ignored) != napi_ok) {
    s.cancel->store(true);
    bool pending = false;
    napi_is_exception_pending(env, &pending);
    if (pending) napi_get_and_clear_last_exception(env, &ignored);
    return;
  }
  if (s.on_progress == nullptr) return;
  const int64_t done = s.done.load(std::memory_order_relaxed);
  const int64_t total = s.total.load(std::memory_order_relaxed);
  const Clock::time_point now = Clock::now();
  if (done <= s.delivered || now - s.last_delivery < std::chrono::milliseconds(kProgressMs)) return;
  DeliverProgress(env, s, done, total);
  s.last_delivery = now;
}

bool CallControl::DeliverProgress(napi_env env, Shared& s, int64_t done, int64_t total) {
  napi_value fn = nullptr, undefined = nullptr, result = nullptr;
  napi_value argv[2];
  if (napi_get_reference_value(env, s.on_progress, &fn) != napi_ok || fn == nullptr) return true;
  napi_get_undefined(env, &undefined);
  napi_create_double(env, static_cast<double>(done), &argv[0]);
  napi_create_double(env, static_cast<double>(total), &argv[1]);
  s.delivered = done;
  if (napi_call_function(env, undefined, fn, 2, argv, &result) == napi_ok) return true;
  // onProgress threw (or JS cannot run): stop the call; keep the exception for the rejection.
  s.cancel->store(true);
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (pending) {
    napi_value exc = nullptr;
    if (napi_get_and_clear_last_exception(env, &exc) == napi_ok && exc != nullptr && s.error == nullptr)
      napi_create_reference(env, exc, 1, &s.error);
  }
  return false;
}

bool CallControl::Settle(Napi::Env env, bool ok, Napi::Value* error) {
  Shared& s = *shared_;
  if (ok && s.error == nullptr && s.on_progress != nullptr) {
    const int64_t total = s.total.load();
    if (total > s.delivered) DeliverProgress(env, s, total, total);
  }
  s.settled = true;
  if (s.error == nullptr) return false;
  napi_value exc = nullptr;
  napi_get_reference_value(env, s.error, &exc);
  *error = Napi::Value(env, exc);
  return exc != nullptr;
}

void CallControl::Cancel() { shared_->cancel->store(true); }

void CallControl::Finalize(napi_env, void* data, void*) { delete static_cast<std::shared_ptr<Shared>*>(data); }

// The optional `control` argument of the async calls: undefined / null, or { onProgress? }.
Napi::Value ParseControl(Napi::Env env, const Napi::Value& v) {
  if (v.IsUndefined() || v.IsNull()) return env.Undefined();
  if (!v.IsObject() || v.IsArray() || v.IsFunction() || v.IsTypedArray())
    throw ArgTypeError(env, "control must be an object { onProgress? } (got " + Describe(v) + ")");
  Napi::Object o = v.As<Napi::Object>();
  Napi::Array keys = o.GetPropertyNames();
  for (uint32_t i = 0; i < keys.Length(); ++i) {
    const std::string key = keys.Get(i).ToString().Utf8Value();
    if (key != "onProgress")
      throw ArgTypeError(env, "control." + key + " is not a control field (expected onProgress)");
  }
  Napi::Value p = o.Get("onProgress");
  if (p.IsUndefined()) return env.Undefined();
  if (!p.IsFunction())
    throw ArgTypeError(env, "control.onProgress must be a function (done, total) => void (got " + Describe(p) +
                                        ")");
  return p;
}

}  // namespace btnode
