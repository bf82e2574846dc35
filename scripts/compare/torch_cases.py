#!/usr/bin/python3
"""PyTorch side of `npm run bench -- --compare` (scripts/bench-compare.js).

Started by the driver as a child process with /usr/bin/python3 (Debian python3-torch; torch is
never a dependency of braintrace). Argument: the thread count (torch.set_num_threads). Protocol:
one JSON request per stdin line, one JSON line per answer on stdout, in order:
  request  {"id": 3, "op": "gemm", ...params}
  response {"id": 3, "ok": true, "result": {...}}  or  {"id": 3, "ok": false, "error": "..."}
Timed ops return `seconds` (wall time per unit) and `cpuSeconds` (process CPU time per unit)
of one round; the driver interleaves rounds with braintrace's and takes medians.

The D_RTRL case is a hand-written eligibility-trace loop (no autograd, preallocated buffers,
in-place updates) computing the same thing as braintrace's D_RTRL on the diagonal RNN
h' = tanh(x W + b + wd * h), y = h ro, loss_t = mean((y - target)^2), summed over time:
  D = (1 - h'^2) * wd,  df = 1 - h'^2            (the diagonal Jacobian and dh'/dpre)
  eps_W <- D * eps_W + x (x) df   (B, I, H)      eps_b <- D * eps_b + df   eps_wd <- D * eps_wd + df * h
  g = dloss_t/dh' = (2 / (B O)) (y - target) ro^T
  dW += sum_b g * eps_W,  db += sum_b g * eps_b,  dwd += sum_b g * eps_wd,  dro += h'^T dloss/dy
`verifyDrtrl` checks it (float64) against braintrace's gradients and against torch autograd
BPTT (which it equals exactly on this model).
"""
import json
import os
import sys
import time

import torch

torch.set_grad_enabled(False)
THREADS = int(sys.argv[1]) if len(sys.argv) > 1 else 1
torch.set_num_threads(THREADS)
torch.manual_seed(0)
CACHE = {}


def timed(reps, units, fn):
    """Wall and CPU seconds of fn() run reps times, divided by reps * units."""
    c0 = time.process_time()
    t0 = time.perf_counter()
    for _ in range(reps):
        fn()
    wall = time.perf_counter() - t0
    return {"seconds": wall / (reps * units), "cpuSeconds": (time.process_time() - c0) / (reps * units)}


def cached(key, build):
    if key not in CACHE:
        fn = build()
        fn()  # warm-up
        CACHE[key] = fn
    return CACHE[key]


def blas_library():
    """The BLAS shared object torch loaded (after a matmul), from /proc/self/maps."""
    torch.ones(8, 8) @ torch.ones(8, 8)
    try:
        with open("/proc/self/maps") as f:
            libs = {line.split()[-1] for line in f if "blas" in line.lower() and "/" in line}
        return sorted(os.path.realpath(p) for p in libs)
    except OSError:
        return []


def op_info(req):
    cap = [l.strip() for l in torch.__config__.show().splitlines() if "CPU capability" in l]
    return {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpuCapability": cap[0].lstrip("- ") if cap else None,
        "blas": blas_library(),
        "mkldnn": torch.backends.mkldnn.is_available(),
    }


def op_gemm(req):
    m, n, k, steps, reps = req["m"], req["n"], req["k"], req["steps"], req["reps"]

    def build():
        a = torch.rand(m, k)
        b = torch.randn(k, n) / k ** 0.5
        c = torch.empty(m, n)

        def run():
            for _ in range(steps):
                torch.matmul(a, b, out=c)

        return run

    return timed(reps, steps, cached(("gemm", m, n, k, steps), build))


def op_gru_bptt(req):
    B, I, H, O, T, reps = req["B"], req["I"], req["H"], req["O"], req["T"], req["reps"]

    def build():
        gru = torch.nn.GRU(I, H)
        ro = torch.nn.Linear(H, O, bias=False)
        params = list(gru.parameters()) + list(ro.parameters())
        xs = torch.rand(T, B, I)
        ys = torch.rand(T, B, O)

        def run():
            for p in params:
                p.grad = None
            with torch.enable_grad():
                out, _ = gru(xs)
                loss = ((ro(out) - ys) ** 2).mean(dim=(1, 2)).sum()
                loss.backward()

        return run

    return timed(reps, 1, cached(("gru", B, I, H, O, T), build))


def trace_step(eps, D, x, df, g, dW):
    """eps <- D * eps + x (x) df (B, I, H), then dW += sum_b g * eps: the D_RTRL weight trace step.

    The fastest eager form found here (1 thread, B 64, I = H = 256): mul_ + addcmul(out=eps) for
    the update (0.74 ms, against 0.96 ms for mul_ + baddbmm_), and one addcmul_ per sample for
    the contraction (1.3 ms: each eps[b] slab is read once and dW stays in cache; against 3.0 ms
    for mul + sum(0) and 27 ms for einsum, which copies eps into a permuted layout). Blocking the
    update and the contraction per sample (so each slab is read from memory once) measured the same.
    """
    torch.addcmul(eps.mul_(D.unsqueeze(1)), x.unsqueeze(2), df.unsqueeze(1), out=eps)
    for b in range(eps.shape[0]):
        dW.addcmul_(eps[b], g[b])


class DrtrlDiag:
    """The hand-tuned D_RTRL loop on DiagRNN (see the module docstring); state and traces carry."""

    def __init__(self, W, b, wd, ro, h0):
        self.W, self.b, self.wd, self.ro = W, b, wd, ro
        B, (I, H), O = h0.shape[0], W.shape, ro.shape[1]
        kw = {"dtype": W.dtype}
        self.hbuf = [h0.clone(), torch.empty_like(h0)]  # h and h' (swapped every step)
        self.cur = 0
        self.epsW = torch.zeros(B, I, H, **kw)
        self.epsb = torch.zeros(B, H, **kw)
        self.epswd = torch.zeros(B, H, **kw)
        self.pre = torch.empty(B, H, **kw)
        self.df = torch.empty(B, H, **kw)
        self.D = torch.empty(B, H, **kw)
        self.dfh = torch.empty(B, H, **kw)
        self.y = torch.empty(B, O, **kw)
        self.g = torch.empty(B, H, **kw)
        self.scale = 2.0 / (B * O)
        self.zero_grads()

    def zero_grads(self):
        self.dW = torch.zeros_like(self.W)
        self.db = torch.zeros_like(self.b)
        self.dwd = torch.zeros_like(self.wd)
        self.dro = torch.zeros_like(self.ro)

    def steps(self, xs, ys):
        W, b, wd, ro = self.W, self.b, self.wd, self.ro
        epsW, epsb, epswd, pre, df, D, dfh, y, g = (
            self.epsW, self.epsb, self.epswd, self.pre, self.df, self.D, self.dfh, self.y, self.g)
        loss = 0.0
        for t in range(xs.shape[0]):
            x, hp, h = xs[t], self.hbuf[self.cur], self.hbuf[1 - self.cur]
            torch.addmm(b, x, W, out=pre)          # x W + b
            pre.addcmul_(wd, hp)                    # + wd * h
            torch.tanh(pre, out=h)
            torch.mul(h, h, out=df)
            df.neg_().add_(1.0)                     # df = 1 - h'^2
            torch.mul(df, wd, out=D)                # D = diag(dh'/dh)
            torch.mul(df, hp, out=dfh)              # dh'/dwd
            epsb.mul_(D).add_(df)
            epswd.mul_(D).add_(dfh)
            torch.mm(h, ro, out=y)
            y.sub_(ys[t])
            loss += float(y.square().sum()) / y.numel()
            y.mul_(self.scale)                      # dloss/dy
            torch.mm(y, ro.t(), out=g)              # learning signal dloss/dh'
            trace_step(epsW, D, x, df, g, self.dW)  # eps_W <- D eps_W + x (x) df; dW += sum_b g eps_W
            self.db.add_((g * epsb).sum(0))
            self.dwd.add_((g * epswd).sum(0))
            self.dro.addmm_(h.t(), y)
            self.cur = 1 - self.cur
        return loss


def op_drtrl_diag(req):
    B, I, H, O, T, reps = req["B"], req["I"], req["H"], req["O"], req["T"], req["reps"]

    def build():
        W = torch.randn(I, H) * (2.0 / (I + H)) ** 0.5
        loop = DrtrlDiag(W, torch.randn(H) * 0.2, torch.rand(H) * 1.8 - 0.9, torch.randn(H, O) * (2.0 / (H + O)) ** 0.5,
                         torch.zeros(B, H))
        xs, ys = torch.rand(T, B, I), torch.rand(T, B, O)

        def run():
            loop.zero_grads()
            loop.steps(xs, ys)

        return run

    return timed(reps, T, cached(("drtrl", B, I, H, O, T), build))


def op_trace_kernel(req):
    """The trace step of the loop alone (trace_step), on the synthetic values of benchmarkTraceStep."""
    B, I, O, reps = req["B"], req["I"], req["O"], req["reps"]

    def build():
        eps = torch.full((B, I, O), 0.01)
        D, df, g = torch.full((B, O), 0.9), torch.full((B, O), 0.5), torch.full((B, O), 0.125)
        x = torch.full((B, I), 0.25)
        dW = torch.zeros(I, O)

        return lambda: trace_step(eps, D, x, df, g, dW)

    # The best of reps, as braintrace's benchmarkTraceStep reports.
    fn = cached(("trace", B, I, O), build)
    best = min(timed(1, 1, fn)["seconds"] for _ in range(reps))
    return {"seconds": best, "cpuSeconds": None}


def tensor_of(t):
    return torch.tensor(t["data"], dtype=torch.float64).reshape(t["shape"])


def op_verify_drtrl(req):
    """float64: the loop's gradients and autograd BPTT's, for braintrace's weights and data."""
    p = {k: tensor_of(v) for k, v in req["params"].items()}
    h0, xs, ys = tensor_of(req["h0"]), tensor_of(req["xs"]), tensor_of(req["ys"])
    loop = DrtrlDiag(p["w"], p["b"], p["wd"], p["ro"], h0)
    loop_loss = loop.steps(xs, ys)
    loop_grads = {"w": loop.dW, "b": loop.db, "wd": loop.dwd, "ro": loop.dro}
    with torch.enable_grad():
        q = {k: v.clone().requires_grad_(True) for k, v in p.items()}
        h, loss = h0, 0.0
        for t in range(xs.shape[0]):
            h = torch.tanh(xs[t] @ q["w"] + q["b"] + q["wd"] * h)
            loss = loss + ((h @ q["ro"] - ys[t]) ** 2).mean()
        loss.backward()
    bptt_grads = {k: v.grad for k, v in q.items()}
    flat = lambda d: {k: v.detach().reshape(-1).tolist() for k, v in d.items()}
    return {"loop": flat(loop_grads), "bptt": flat(bptt_grads), "loopLoss": loop_loss, "bpttLoss": float(loss)}


OPS = {
    "info": op_info,
    "gemm": op_gemm,
    "gruBptt": op_gru_bptt,
    "drtrlDiag": op_drtrl_diag,
    "traceKernel": op_trace_kernel,
    "verifyDrtrl": op_verify_drtrl,
}


def main():
    for line in sys.stdin:
        if not line.strip():
            continue
        rid = None
        try:
            req = json.loads(line)
            rid = req.get("id")
            f = OPS.get(req.get("op"))
            if f is None:
                out = {"id": rid, "ok": False, "error": "unknown op %r" % req.get("op")}
            else:
                out = {"id": rid, "ok": True, "result": f(req)}
        except Exception as e:  # reported to the driver, which prints it
            out = {"id": rid, "ok": False, "error": "%s: %s" % (type(e).__name__, e)}
        sys.stdout.write(json.dumps(out) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
