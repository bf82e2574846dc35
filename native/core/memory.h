// Process-wide accounting of the memory sessions allocate (behind memory_stats()).
//
// Every allocation a session makes through its Executor is recorded here by the
// core (DeviceBuffer in core/device_buffer.h does it), so executors need not
// record anything themselves. Counters are atomics; safe from any thread.
#pragma once

#include <cstddef>

namespace bt {

void memory_record_alloc(size_t bytes);
void memory_record_free(size_t bytes);

// 64-byte aligned host memory (nullptr on failure; never throws). Not recorded:
// the caller (the core) records what it keeps.
void* aligned_host_alloc(size_t bytes);
void aligned_host_free(void* p);

}  // namespace bt
