// runtime_info: the CUDA probe (run once per process) and the backend choice.
#include <mutex>
#include <new>
#include <string>

#include "braintrace/api.h"
#include "core/executor.h"
#include "cpu/ew_dispatch.h"
#include "cpu/gemm_kernels.h"
#include "cpu/thread_pool.h"
#include "cpu/trace_cpu.h"

namespace bt {
namespace {

struct ProbeResult {
  bool cuda_compiled = false;
  int device_count = 0;
  int runtime_version = 0;
  std::string reason;
};

const ProbeResult& probe() {
  static ProbeResult r;
  static std::once_flag once;
  std::call_once(once, [] {
    cuda_probe(&r.cuda_compiled, &r.device_count, &r.runtime_version, &r.reason);
    if (r.device_count < 0) r.device_count = 0;
    if (r.device_count == 0 && r.reason.empty())
      r.reason = r.cuda_compiled ? "no CUDA device found" : "built without CUDA";
  });
  return r;
}

}  // namespace

Status runtime_info(const std::string& preference, RuntimeInfo* out) {
  if (out == nullptr) return Status::Error(StatusCode::InvalidArgument, "runtime_info: out is null");
  if (preference != "auto" && preference != "cpu" && preference != "cuda") {
    return Status::Error(StatusCode::InvalidArgument,
                         "device preference must be \"auto\", \"cpu\" or \"cuda\", got \"" +
                             preference + "\"");
  }
  try {
    const ProbeResult& p = probe();
    RuntimeInfo info;
    info.cuda_compiled = p.cuda_compiled;
    info.device_count = p.device_count;
    info.cuda_runtime_version = p.runtime_version;
    info.threads = thread_pool_size();
    info.gemm_kernel = gemm_kernel_active()->name;
    info.elementwise_isa = cpu_isa_name(ew_isa_active() == EwIsa::Avx2 ? CpuIsa::Avx2 : CpuIsa::Portable);
    info.trace_isa = cpu_isa_name(trace_isa());
    if (preference == "cpu") {
      info.backend = Backend::Cpu;
      info.fallback_reason = "BRAINTRACE_DEVICE=cpu";
    } else if (p.device_count > 0) {
      info.backend = Backend::Cuda;
      info.fallback_reason.clear();
    } else {
      info.backend = Backend::Cpu;
      info.fallback_reason = p.reason;
    }
    *out = std::move(info);
    return Status::Ok();
  } catch (const std::bad_alloc&) {
    return Status::Error(StatusCode::OutOfMemory, "runtime_info: out of memory");
  } catch (const std::exception& e) {
    return Status::Error(StatusCode::Internal, std::string("runtime_info: ") + e.what());
  }
}

}  // namespace bt
