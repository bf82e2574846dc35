// Host-loop drivers of the non-element-wise ops (layout, reductions, softmax, matmul):
// forward, JVP and VJP, split over the CPU thread pool. The math bodies live in
// native/kernels/; these functions only pick geometry from a node and loop.
//
// All pointers are dense row-major arrays of the node/input shapes. VJP functions
// accumulate (+=) into input cotangents. JVP functions write the output tangent; a
// null input tangent means zero.
#pragma once

#include <cstdint>
#include <vector>

#include "core/plan.h"

namespace bt {

template <typename T>
struct HostOps {
  static void forward(const Plan& p, int id, const std::vector<T*>& v);
  // t: tangents per node, or nullptr where a node has no (i.e. zero) tangent.
  static void jvp(const Plan& p, int id, const std::vector<T*>& v, const std::vector<const T*>& t,
                  T* out_tangent);
  // g: the node's cotangent; gin: per input, the cotangent to accumulate into, or nullptr.
  static void vjp(const Plan& p, int id, const std::vector<T*>& v, const T* g,
                  const std::vector<T*>& gin);
};

extern template struct HostOps<float>;
extern template struct HostOps<double>;

}  // namespace bt
