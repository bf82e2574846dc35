// The CUDA backend: an Executor whose element-wise tasks run on the GPU.
//
// Memory is CUDA managed memory (cudaMallocManaged). Element-wise tasks run the single
// shared body bt::ew_apply (native/kernels/elementwise.h) in a grid-stride kernel; there
// is no CUDA-specific copy of any formula. Every other task of the seam (core/executor.h)
// has no device kernel yet: it runs through the CPU driver (cpu/host_tasks.h) over the
// same managed buffers after synchronize() (the CUDA backend issue replaces these with
// device kernels, task by task, with no change in native/core).
//
// Every CUDA error becomes a Status with StatusCode::Cuda whose message holds
// cudaGetErrorName and cudaGetErrorString; nothing here throws or aborts.
// The CUDA runtime is linked statically; the driver is loaded at the first call.
// Without one cudaGetDeviceCount returns cudaErrorInsufficientDriver, as it does with a
// driver older than the runtime, so the probe also tries to load the driver library
// itself and asks for the driver's version: cuda_probe_text::fallback_reason
// (cuda/probe_reason.h) then says "no NVIDIA driver found", "driver too old" or
// "driver present but no device", and what to install or check.
#include <cuda_runtime.h>

#if defined(_WIN32)
#include <windows.h>
#else
#include <dlfcn.h>
#endif

#include <memory>
#include <mutex>
#include <string>

#include "core/executor.h"
#include "cpu/host_tasks.h"
#include "cuda/launch.h"
#include "cuda/probe_reason.h"
#include "kernels/elementwise.h"

namespace bt {

namespace {

std::string cuda_error_text(cudaError_t err) {
  return std::string(cudaGetErrorName(err)) + ": " + cudaGetErrorString(err);
}

Status cuda_status(cudaError_t err, const char* what) {
  if (err == cudaSuccess) return Status::Ok();
  return Status::Error(StatusCode::Cuda, std::string(what) + " failed: " + cuda_error_text(err));
}

// Element-wise kernel: the task is passed by value (it is plain data: pointers,
// sizes and attributes) and each thread strides over the elements.
template <typename T>
__global__ void ew_kernel(EwTask<T> task) {
  const int64_t tid = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t nthreads = int64_t(gridDim.x) * blockDim.x;
  cuda_launch::grid_stride_range(tid, nthreads, task.n, [&](int64_t i) { ew_apply(task, i); });
}

class CudaExecutor final : public Executor {
 public:
  CudaExecutor(int device, int sm_count) : device_(device), sm_count_(sm_count) {}

  Backend kind() const override { return Backend::Cuda; }

  void* alloc(size_t bytes) override {
    if (cudaSetDevice(device_) != cudaSuccess) {
      (void)cudaGetLastError();
      return nullptr;
    }
    void* p = nullptr;
    // cudaMallocManaged rejects a size of 0; hand out a minimal block instead
    // so that "nullptr" keeps meaning "failed".
    const size_t n = bytes == 0 ? 256 : bytes;
    const cudaError_t err = cudaMallocManaged(&p, n, cudaMemAttachGlobal);
    if (err != cudaSuccess) {
      (void)cudaGetLastError();  // clear the (non-sticky) error so later calls are not confused
      return nullptr;
    }
    return p;
  }

  void free(void* p) override {
    if (p == nullptr) return;
    if (cudaFree(p) != cudaSuccess) (void)cudaGetLastError();
  }

  Status synchronize() override {
    Status s = cuda_status(cudaSetDevice(device_), "cudaSetDevice");
    if (!s.ok()) return s;
    return cuda_status(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
  }

  Status elementwise(const EwTask<float>& task) override {
    count_task(TaskId::elementwise);
    return launch(task);
  }
  Status elementwise(const EwTask<double>& task) override {
    count_task(TaskId::elementwise);
    return launch(task);
  }

  // A fused chain: its tasks one after the other, one launch each (no tiling on the device yet).
  Status elementwise_chain(const EwChainTask<float>& chain) override {
    count_task(TaskId::elementwise_chain);
    return launch_chain(chain);
  }
  Status elementwise_chain(const EwChainTask<double>& chain) override {
    count_task(TaskId::elementwise_chain);
    return launch_chain(chain);
  }

  // The other tasks: the CPU driver over managed memory, once the device is idle.
#define BT_CUDA_HOST_TASK(method, Task)                                                             \
  Status method(const Task<float>& task) override {                                                  \
    count_task(TaskId::method);                                                                      \
    return on_host(task, host_##method<float>);                                                      \
  }                                                                                                  \
  Status method(const Task<double>& task) override {                                                 \
    count_task(TaskId::method);                                                                      \
    return on_host(task, host_##method<double>);                                                     \
  }
  BT_EXECUTOR_NON_EW_TASKS(BT_CUDA_HOST_TASK)
#undef BT_CUDA_HOST_TASK

 private:
  template <typename Task>
  Status on_host(const Task& task, Status (*run)(const Task&)) {
    Status s = synchronize();
    if (!s.ok()) return s;
    return run(task);
  }

  template <typename T>
  Status launch_chain(const EwChainTask<T>& chain) {
    if (chain.count < 0 || chain.count > kEwChainMax)
      return Status::Error(StatusCode::Internal, "elementwise_chain: task count out of range");
    for (int k = 0; k < chain.count; ++k) {
      Status s = launch(chain.tasks[k]);
      if (!s.ok()) return s;
    }
    return Status::Ok();
  }

  template <typename T>
  Status launch(const EwTask<T>& task) {
    const cuda_launch::Geometry g = cuda_launch::geometry_for(task.n, sm_count_);
    if (g.blocks == 0) return Status::Ok();
    // The current device is per host thread (AsyncWorker threads included).
    Status s = cuda_status(cudaSetDevice(device_), "cudaSetDevice");
    if (!s.ok()) return s;
    // EwTask::zero_gin: the flagged input cotangents are zeroed before the accumulation.
    if (task.mode == EwMode::Vjp && task.zero_gin != 0)
      for (int k = 0; k < 3; ++k)
        if (((task.zero_gin >> k) & 1u) && task.gin[k] != nullptr) {
          s = cuda_status(cudaMemset(task.gin[k], 0, sizeof(T) * static_cast<size_t>(task.n)), "cudaMemset");
          if (!s.ok()) return s;
        }
    ew_kernel<T><<<g.blocks, g.threads>>>(task);
    s = cuda_status(cudaGetLastError(), "element-wise kernel launch");
    if (!s.ok()) return s;
    // The interpreter may read the result from the host right after this call.
    return cuda_status(cudaDeviceSynchronize(), "element-wise kernel");
  }

  int device_;
  int sm_count_;
};

struct ProbeResult {
  int runtime_version = 0;
  int device_count = 0;
  std::string reason;
};

// Whether the driver library loads (it is then unloaded again: the runtime loads its own).
void driver_library_facts(cuda_probe_text::ProbeFacts* f) {
  const char* name = cuda_probe_text::driver_library_name();
#if defined(_WIN32)
  HMODULE h = LoadLibraryA(name);
  f->driver_loadable = h != nullptr;
  if (h != nullptr) FreeLibrary(h);
  else f->load_error = "LoadLibrary error " + std::to_string(GetLastError());
#else
  void* h = dlopen(name, RTLD_NOW | RTLD_LOCAL);
  f->driver_loadable = h != nullptr;
  if (h != nullptr) {
    dlclose(h);
  } else {
    const char* e = dlerror();
    f->load_error = e != nullptr ? e : "unknown dlopen error";
  }
#endif
}

// Probed once per process: with a driver, the first CUDA call initialises it
// (costly); without one, it fails quickly and the failure is remembered.
const ProbeResult& probe_once() {
  static ProbeResult result;
  static std::once_flag once;
  std::call_once(once, [] {
    cuda_probe_text::ProbeFacts f;
    int version = 0;
    if (cudaRuntimeGetVersion(&version) == cudaSuccess) result.runtime_version = version;
    f.runtime_version = result.runtime_version;
    int count = 0;
    const cudaError_t err = cudaGetDeviceCount(&count);
    if (err != cudaSuccess) {
      (void)cudaGetLastError();
      f.error = err == cudaErrorInsufficientDriver ? cuda_probe_text::ProbeError::InsufficientDriver
                : err == cudaErrorNoDevice         ? cuda_probe_text::ProbeError::NoDevice
                                                   : cuda_probe_text::ProbeError::Other;
      f.error_text = cuda_error_text(err);
      count = 0;
    }
    f.device_count = count > 0 ? count : 0;
    if (f.device_count == 0) {
      // Only on the failure path: is there a driver library at all, and which CUDA does it support?
      driver_library_facts(&f);
      int driver = 0;
      if (cudaDriverGetVersion(&driver) == cudaSuccess) f.driver_version = driver;
      (void)cudaGetLastError();
    }
    result.device_count = f.device_count;
    result.reason = cuda_probe_text::fallback_reason(f);
  });
  return result;
}

}  // namespace

std::unique_ptr<Executor> make_cuda_executor(Status* status) {
  try {
    const ProbeResult& p = probe_once();
    if (p.device_count <= 0) {
      if (status) *status = Status::Error(StatusCode::Cuda, "no usable CUDA device: " + p.reason);
      return nullptr;
    }
    const int device = 0;
    Status s = cuda_status(cudaSetDevice(device), "cudaSetDevice");
    if (!s.ok()) {
      if (status) *status = s;
      return nullptr;
    }
    int sm_count = 0;
    if (cudaDeviceGetAttribute(&sm_count, cudaDevAttrMultiProcessorCount, device) != cudaSuccess) {
      (void)cudaGetLastError();
      sm_count = 0;  // unknown: geometry_for caps the grid at 65535 blocks
    }
    if (status) *status = Status::Ok();
    return std::unique_ptr<Executor>(new CudaExecutor(device, sm_count));
  } catch (const std::bad_alloc&) {
    if (status) *status = Status::Error(StatusCode::OutOfMemory, "out of host memory creating the CUDA executor");
    return nullptr;
  } catch (...) {
    if (status) *status = Status::Error(StatusCode::Internal, "unexpected exception creating the CUDA executor");
    return nullptr;
  }
}

void cuda_probe(bool* cuda_compiled, int* device_count, int* runtime_version, std::string* reason) {
  if (cuda_compiled) *cuda_compiled = true;
  try {
    const ProbeResult& p = probe_once();
    if (device_count) *device_count = p.device_count;
    if (runtime_version) *runtime_version = p.runtime_version;
    if (reason) *reason = p.reason;
  } catch (...) {
    if (device_count) *device_count = 0;
    if (runtime_version) *runtime_version = 0;
    if (reason) *reason = "CUDA probe failed with an unexpected exception";
  }
}

}  // namespace bt
