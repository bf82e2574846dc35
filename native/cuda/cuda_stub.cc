// The CUDA seam in the CPU-only build (binding.gyp, or CMake without nvcc).
//
// Compiled instead of native/cuda/*.cu: no CUDA executor exists, and the probe
// says why, so runtime_info() reports backend 'cpu' with fallbackReason
// "built without CUDA".
#include <memory>
#include <string>

#include "core/executor.h"

namespace bt {

namespace {
constexpr const char* kBuiltWithoutCuda = "built without CUDA";
}  // namespace

std::unique_ptr<Executor> make_cuda_executor(Status* status) {
  if (status != nullptr) *status = Status::Error(StatusCode::Cuda, kBuiltWithoutCuda);
  return nullptr;
}

void cuda_probe(bool* cuda_compiled, int* device_count, int* runtime_version, std::string* reason) {
  if (cuda_compiled != nullptr) *cuda_compiled = false;
  if (device_count != nullptr) *device_count = 0;
  if (runtime_version != nullptr) *runtime_version = 0;
  if (reason != nullptr) *reason = kBuiltWithoutCuda;
}

}  // namespace bt
