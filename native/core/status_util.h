// Small helpers for code that returns bt::Status (core only; never exported).
#pragma once

#include <string>

#include "braintrace/api.h"

// Returns the status of `expr` from the enclosing function when it is not Ok.
#define BT_RETURN_IF_ERROR(expr) \
  do {                           \
    ::bt::Status _st = (expr);   \
    if (!_st.ok()) return _st;   \
  } while (0)

namespace bt {

// An InvalidArgument status with message `m`.
inline Status invalid(const std::string& m) { return Status::Error(StatusCode::InvalidArgument, m); }

}  // namespace bt
