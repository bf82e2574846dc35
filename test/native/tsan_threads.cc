// ThreadSanitizer driver (scripts/test-tsan.sh): the process-wide thread pool and sessions
// used from several threads at once, as the binding's AsyncWorkers and worker_threads use
// them. No Node: node's own threads are not instrumented, so TSan inside node would report
// their (correct, but invisible to it) synchronisation as races.
//
// Threads, all at the same time:
//  - 4 threads, each with its own session of the fuzzers' fixed plan (fuzz/online_plan.inc):
//    run_sequence with BPTT gradients, then configure_online + run_online (chunk 1 and 2),
//    then trace and state copies, several rounds;
//  - 2 threads sharing one session: every call either runs or returns Busy (never both
//    running), as the binding's busy flag promises;
//  - 1 thread stepping an Adam optimizer (parallel_for over large buffers);
//  - 1 thread calling parallel_for with nested parallel_for calls inside;
//  - 1 thread running many tiny jobs back to back (the spin-then-sleep hand-off: some
//    jobs follow at once, some after a pause longer than the spin window), every 50th
//    throwing from one chunk (the exception must reach the caller, the job still complete).
// Results of the private sessions must agree across threads (same inputs, same numbers).
// Exit status 0 when every check holds; TSan reports are fatal (halt_on_error=1).
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <stdexcept>
#include <thread>
#include <vector>

#include "braintrace/api.h"
#include "braintrace/online.h"
#include "core/optim.h"
#include "cpu/thread_pool.h"
#include "fuzz_input.h"

namespace {

#include "../../fuzz/online_plan.inc"  // kPlanCode, kPlanFattr

std::atomic<int> failures{0};

void check(bool ok, const char* what, const bt::Status& s = bt::Status::Ok()) {
  if (!ok) {
    std::fprintf(stderr, "FAILED: %s %s\n", what, s.message.c_str());
    failures++;
  }
}

int64_t numel(const std::vector<int64_t>& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

std::unique_ptr<bt::Session> make_session() {
  std::unique_ptr<bt::Session> s;
  bt::Status st = bt::Session::Create(kPlanCode, sizeof(kPlanCode) / sizeof(kPlanCode[0]), kPlanFattr,
                                      sizeof(kPlanFattr) / sizeof(kPlanFattr[0]), bt::Backend::Cpu, &s);
  check(st.ok(), "Session::Create", st);
  if (!st.ok()) std::exit(1);
  for (int i = 0; i < s->num_params(); ++i) {
    std::vector<double> v(static_cast<size_t>(numel(s->param_shape(i))));
    for (size_t k = 0; k < v.size(); ++k) v[k] = 0.1 * std::sin(double(k + 3 * i));
    check(s->set_param(i, v.data(), v.size()).ok(), "set_param");
  }
  return s;
}

std::vector<double> inputs_for(const bt::Session& s, int slot, int64_t T) {
  std::vector<double> x(static_cast<size_t>(T * numel(s.input_shape(slot))));
  for (size_t k = 0; k < x.size(); ++k) x[k] = 0.3 * std::cos(double(k) * 0.7 + slot);
  return x;
}

// One private session's work; returns the sum of its losses (compared across threads).
double private_work(int rounds, const bt::OnlineConfig* cfg) {
  std::unique_ptr<bt::Session> s = make_session();
  double total = 0;
  const int64_t T = 6;
  std::vector<std::vector<double>> xs;
  for (int i = 0; i < s->num_inputs(); ++i) xs.push_back(inputs_for(*s, i, T));
  for (int r = 0; r < rounds; ++r) {
    for (int i = 0; i < s->num_states(); ++i) {
      std::vector<double> h(static_cast<size_t>(numel(s->state_shape(i))), 0.2);
      check(s->set_state(i, h.data(), h.size()).ok(), "set_state");
    }
    bt::SequenceArgs a;
    a.steps = T;
    for (auto& x : xs) a.inputs.push_back(x.data());
    a.compute_grads = true;
    bt::SequenceResult res;
    bt::Status st = s->run_sequence(a, &res);
    check(st.ok(), "run_sequence", st);
    for (double l : res.losses) total += l;
    if (cfg) {
      st = s->configure_online(*cfg);
      check(st.ok(), "configure_online", st);
      for (int64_t chunk : {1, 2}) {
        bt::OnlineArgs o;
        o.steps = T;
        o.chunk = chunk;
        for (auto& x : xs) o.inputs.push_back(x.data());
        bt::OnlineResult orr;
        st = s->run_online(o, &orr);
        check(st.ok(), "run_online", st);
        for (double l : orr.losses) total += l;
      }
      std::vector<bt::TraceInfo> info;
      check(s->trace_info(&info).ok(), "trace_info");
      for (size_t k = 0; k < info.size(); ++k) {
        std::vector<double> t(static_cast<size_t>(numel(info[k].shape)));
        check(s->get_trace(static_cast<int>(k), t.data(), t.size()).ok(), "get_trace");
        check(s->set_trace(static_cast<int>(k), t.data(), t.size()).ok(), "set_trace");
      }
    }
  }
  return total;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s fuzz/corpus/online_fuzzer/coupled-drtrl.bin\n", argv[0]);
    return 2;
  }
  // The library's own D_RTRL configuration of the plan: the online fuzzer's first seed.
  std::vector<uint8_t> seed;
  if (FILE* f = std::fopen(argv[1], "rb")) {
    int c;
    while ((c = std::fgetc(f)) != EOF) seed.push_back(static_cast<uint8_t>(c));
    std::fclose(f);
  }
  check(!seed.empty(), "reading the configuration seed");
  const bt::OnlineConfig cfg = btfuzz::parse_online_input(seed.data(), seed.size()).config;
  std::printf("thread pool size %d\n", bt::thread_pool_size());

  const int rounds = 3;
  std::vector<double> totals(4, 0.0);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) threads.emplace_back([&, t] { totals[static_cast<size_t>(t)] = private_work(rounds, &cfg); });

  // Two threads on one session: each call runs or is Busy.
  std::unique_ptr<bt::Session> shared = make_session();
  std::atomic<int> ran{0}, busy{0};
  for (int t = 0; t < 2; ++t)
    threads.emplace_back([&] {
      std::vector<std::vector<double>> xs;
      for (int i = 0; i < shared->num_inputs(); ++i) xs.push_back(inputs_for(*shared, i, 4));
      for (int r = 0; r < 20; ++r) {
        bt::SequenceArgs a;
        a.steps = 4;
        for (auto& x : xs) a.inputs.push_back(x.data());
        a.compute_grads = (r % 2) == 0;
        bt::SequenceResult res;
        bt::Status st = shared->run_sequence(a, &res);
        if (st.ok()) ran++;
        else if (st.code == bt::StatusCode::Busy) busy++;
        else check(false, "shared run_sequence", st);
      }
    });

  // An optimizer stepping big buffers (parallel_for over chunks).
  threads.emplace_back([&] {
    std::unique_ptr<bt::Optimizer> opt;
    bt::OptimHyper h;
    check(bt::Optimizer::Create(bt::OptimKind::Adam, h, bt::DType::F32, &opt).ok(), "Optimizer::Create");
    std::vector<float> p(1 << 18, 0.5f), g(1 << 18, 0.01f);
    for (int r = 0; r < 20; ++r) {
      double norm = 0;
      bt::Status st = opt->step({p.data()}, {g.data()}, {static_cast<int64_t>(p.size())}, 1e-3, 1.0, &norm);
      check(st.ok(), "optimizer step", st);
    }
  });

  // parallel_for with nested calls inside.
  threads.emplace_back([&] {
    std::vector<std::atomic<int>> hits(1 << 14);
    for (int r = 0; r < 10; ++r)
      bt::parallel_for(static_cast<int64_t>(hits.size()), 256, [&](int64_t b, int64_t e) {
        bt::parallel_for(e - b, 64, [&](int64_t b2, int64_t e2) {
          for (int64_t k = b + b2; k < b + e2; ++k) hits[static_cast<size_t>(k)]++;
        });
      });
    for (auto& h : hits) check(h.load() == 10, "nested parallel_for covered every index exactly 10 times");
  });

  // Tiny jobs back to back, some after a pause past the spin window, some throwing.
  threads.emplace_back([&] {
    std::vector<int> out(64);
    for (int r = 0; r < 400; ++r) {
      if (r % 40 == 39) std::this_thread::sleep_for(std::chrono::milliseconds(2));
      const bool throws = (r % 50) == 7;
      bool caught = false;
      try {
        bt::parallel_for(static_cast<int64_t>(out.size()), 4, [&](int64_t b, int64_t e) {
          for (int64_t k = b; k < e; ++k) out[static_cast<size_t>(k)] = r;
          if (throws && b == 0) throw std::runtime_error("chunk 0 failed");
        });
      } catch (const std::runtime_error&) {
        caught = true;
      }
      bool all = true;
      for (int v : out) all = all && v == r;
      check(all, "tiny parallel_for job wrote every index before returning");
      check(caught == throws, "a chunk's exception reached the caller (and only then)");
    }
  });

  for (auto& th : threads) th.join();
  for (int t = 1; t < 4; ++t)
    check(totals[static_cast<size_t>(t)] == totals[0], "private sessions on different threads agree");
  check(std::isfinite(totals[0]) && totals[0] != 0, "the private sessions computed losses");
  check(ran.load() + busy.load() == 40 && ran.load() >= 1, "shared session: every call ran or was Busy");
  std::printf("private loss total %.17g (x4 threads), shared: %d ran, %d busy; %d failures\n", totals[0], ran.load(),
              busy.load(), failures.load());
  return failures.load() == 0 ? 0 : 1;
}
