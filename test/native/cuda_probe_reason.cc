// The fallback reasons of the CUDA probe (native/cuda/probe_reason.h), on the host:
// for each situation the probe can meet, the printed sentence. The jest test
// (test/cuda-probe.test.ts) checks the lines. Prints one "case: reason" line per case.
#include <cstdio>

#include "cuda/probe_reason.h"

using bt::cuda_probe_text::fallback_reason;
using bt::cuda_probe_text::ProbeError;
using bt::cuda_probe_text::ProbeFacts;

static void print(const char* name, const ProbeFacts& f) {
  std::printf("%s: %s\n", name, fallback_reason(f).c_str());
}

int main() {
  ProbeFacts none;  // no driver at all: the runtime says "insufficient driver", libcuda does not load
  none.error = ProbeError::InsufficientDriver;
  none.error_text = "cudaErrorInsufficientDriver: CUDA driver version is insufficient for CUDA runtime version";
  none.load_error = "libcuda.so.1: cannot open shared object file: No such file or directory";
  none.runtime_version = 13000;
  print("no-driver", none);

  ProbeFacts old = none;  // a driver that loads but supports only CUDA 12.4
  old.driver_loadable = true;
  old.load_error.clear();
  old.driver_version = 12040;
  print("old-driver", old);

  ProbeFacts nodev;  // driver fine, no GPU
  nodev.error = ProbeError::NoDevice;
  nodev.error_text = "cudaErrorNoDevice: no CUDA-capable device is detected";
  nodev.driver_loadable = true;
  nodev.driver_version = 13000;
  nodev.runtime_version = 13000;
  print("no-device", nodev);

  ProbeFacts zero = nodev;  // success with a count of 0
  zero.error = ProbeError::None;
  print("zero-devices", zero);

  ProbeFacts other = nodev;  // any other failure keeps the CUDA error text
  other.error = ProbeError::Other;
  other.error_text = "cudaErrorDevicesUnavailable: CUDA-capable device(s) is/are busy or unavailable";
  print("other", other);

  ProbeFacts ok = nodev;  // a device answered: no reason
  ok.error = ProbeError::None;
  ok.device_count = 1;
  print("ok", ok);
  return 0;
}
