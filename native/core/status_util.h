// Small helpers for code that returns bt::Status (core only; never exported).
#pragma once

#include <exception>
#include <new>
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

// Runs f() (returning Status) and turns an exception thrown out of it into a status naming
// `what`: OutOfMemory for std::bad_alloc, Internal otherwise. Native code never lets an
// exception cross the C++ API.
template <typename F>
inline Status guarded(const char* what, F&& f) {
  try {
    return f();
  } catch (const std::bad_alloc&) {
    return Status::Error(StatusCode::OutOfMemory, std::string(what) + ": out of host memory");
  } catch (const std::exception& e) {
    return Status::Error(StatusCode::Internal, std::string(what) + ": " + e.what());
  } catch (...) {
    return Status::Error(StatusCode::Internal, std::string(what) + ": unknown exception");
  }
}

}  // namespace bt
