#include "core/memory.h"

#include <atomic>
#include <cstdint>
#include <cstdlib>

#include "braintrace/api.h"

namespace bt {
namespace {
std::atomic<int64_t> g_live{0};
std::atomic<int64_t> g_peak{0};
std::atomic<int64_t> g_count{0};
}  // namespace

void memory_record_alloc(size_t bytes) {
  const int64_t now = g_live.fetch_add(static_cast<int64_t>(bytes)) + static_cast<int64_t>(bytes);
  g_count.fetch_add(1);
  int64_t peak = g_peak.load();
  while (now > peak && !g_peak.compare_exchange_weak(peak, now)) {
  }
}

void memory_record_free(size_t bytes) { g_live.fetch_sub(static_cast<int64_t>(bytes)); }

MemoryStats memory_stats() {
  MemoryStats s;
  s.live_bytes = g_live.load();
  s.peak_bytes = g_peak.load();
  s.allocations = g_count.load();
  return s;
}

void reset_peak_memory() { g_peak.store(g_live.load()); }

void* aligned_host_alloc(size_t bytes) {
  constexpr size_t kAlign = 64;
  if (bytes == 0) bytes = kAlign;
  const size_t rounded = (bytes + kAlign - 1) / kAlign * kAlign;
  if (rounded < bytes) return nullptr;  // overflow
  return std::aligned_alloc(kAlign, rounded);
}

void aligned_host_free(void* p) { std::free(p); }

}  // namespace bt
