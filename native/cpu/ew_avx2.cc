// The AVX2 table of the element-wise loops (cpu/ew_dispatch.h: ew_loop_fixed_avx2), in its
// own translation unit so that the addon's build spreads the two tables' instantiations over
// two files (host_tasks.cc declares these extern). The ISA is selected per function
// (__attribute__((target("avx2")))), never for the whole file: the rest of this file is
// baseline code, and the loops only run where ew_isa_active() found AVX2.
#include "cpu/ew_dispatch.h"

namespace bt {

#ifdef BT_EW_AVX2
template EwLoop<float> ew_select_isa<float, EwIsa::Avx2>(const EwTask<float>&);
template EwLoop<double> ew_select_isa<double, EwIsa::Avx2>(const EwTask<double>&);
#endif

}  // namespace bt
