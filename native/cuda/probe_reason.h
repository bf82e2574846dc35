// The words of the CUDA probe's fallback reason (info().fallbackReason), kept free of
// CUDA types so the same code is compiled and checked on any host
// (test/native/cuda_probe_reason.cc): the probe in executor.cu gathers the facts,
// this header turns them into a sentence that says what is missing and what to do.
#pragma once

#include <string>

namespace bt {
namespace cuda_probe_text {

// What cudaGetDeviceCount answered.
enum class ProbeError {
  None,                // success (device_count may still be 0)
  InsufficientDriver,  // cudaErrorInsufficientDriver: no driver, or one older than the runtime
  NoDevice,            // cudaErrorNoDevice
  Other,               // anything else (error_text says what)
};

struct ProbeFacts {
  ProbeError error = ProbeError::None;
  std::string error_text;        // "cudaErrorXxx: description" for Other
  int device_count = 0;
  bool driver_loadable = false;  // the driver library (libcuda.so.1 / nvcuda.dll) could be loaded
  std::string load_error;        // why not (dlerror), when it could not
  int driver_version = 0;        // cudaDriverGetVersion: CUDA version the driver supports (12040), 0 if none
  int runtime_version = 0;       // cudaRuntimeGetVersion: the linked runtime (13000)
};

// 13000 -> "13.0", 12040 -> "12.4".
inline std::string version_text(int v) {
  return std::to_string(v / 1000) + "." + std::to_string((v % 1000) / 10);
}

inline const char* driver_library_name() {
#if defined(_WIN32)
  return "nvcuda.dll";
#else
  return "libcuda.so.1";
#endif
}

// "" when a device answered; otherwise why the CPU is used, and what to install or check.
inline std::string fallback_reason(const ProbeFacts& f) {
  if (f.error == ProbeError::None && f.device_count > 0) return "";
  const std::string needs = f.runtime_version > 0 ? "CUDA " + version_text(f.runtime_version) : "this CUDA runtime";
  if (!f.driver_loadable && f.error != ProbeError::None && f.error != ProbeError::NoDevice) {
    std::string s = std::string("no NVIDIA driver found (") + driver_library_name() + " could not be loaded";
    if (!f.load_error.empty()) s += ": " + f.load_error;
    s += "); to use a GPU, install the NVIDIA driver for " + needs +
         " or newer (e.g. the nvidia-driver package of your distribution, or the driver from "
         "https://www.nvidia.com/drivers); running on the CPU";
    return s;
  }
  if (f.error == ProbeError::InsufficientDriver) {  // a driver library loads, but it is too old
    const std::string s = "the NVIDIA driver is too old for this CUDA runtime (driver version " +
                    (f.driver_version > 0 ? "for CUDA " + version_text(f.driver_version) : std::string("unknown")) +
                    ", needs " + needs + "); update the NVIDIA driver to one for " + needs +
                    " or newer; running on the CPU";
    return s;
  }
  if (f.error == ProbeError::NoDevice || f.error == ProbeError::None) {
    std::string s = "NVIDIA driver present";
    if (f.driver_version > 0) s += " (for CUDA " + version_text(f.driver_version) + ")";
    s += " but no CUDA device found; check that a GPU is installed and visible to this process "
         "(nvidia-smi, CUDA_VISIBLE_DEVICES); running on the CPU";
    return s;
  }
  std::string s = "CUDA initialisation failed (" + f.error_text + ")";
  if (f.driver_version > 0) s += " with the NVIDIA driver for CUDA " + version_text(f.driver_version);
  s += "; running on the CPU";
  return s;
}

}  // namespace cuda_probe_text
}  // namespace bt
