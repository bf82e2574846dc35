#include "braintrace/api.h"

namespace bt {

const char* status_code_name(StatusCode code) {
  switch (code) {
    case StatusCode::Ok: return "OK";
    case StatusCode::InvalidArgument: return "ERR_BRAINTRACE_INVALID_ARGUMENT";
    case StatusCode::InvalidPlan: return "ERR_BRAINTRACE_INVALID_PLAN";
    case StatusCode::OutOfMemory: return "ERR_BRAINTRACE_OUT_OF_MEMORY";
    case StatusCode::Cuda: return "ERR_BRAINTRACE_CUDA";
    case StatusCode::Busy: return "ERR_BRAINTRACE_BUSY";
    case StatusCode::Internal: return "ERR_BRAINTRACE_INTERNAL";
    case StatusCode::NonFinite: return "ERR_BRAINTRACE_NON_FINITE";
    case StatusCode::Cancelled: return "ERR_BRAINTRACE_ABORTED";
  }
  return "ERR_BRAINTRACE_INTERNAL";
}

}  // namespace bt
