#!/usr/bin/env python3
"""One L1 training step of EMFlow's RealNVP flow in PyTorch, timed, for comparison with the TorchSharp step
(`bench/run step`).

The step is the first half of Training.trainStep: the ridge added to the latent covariance, x -> z = f^-1(x)
through the coupling layers in reverse order, L1 = -mean[log N(z; mu, Sigma) + log|det df^-1/dx|], zeroed
gradients, backward, gradient norm clipped to 10, one Adam update. The architecture follows Flow.defaultConfig:
six affine couplings with alternating even/odd masks, separate s and t networks of two tanh hidden layers of
128 units with zero output layers, s bounded as scale * tanh(raw_s) with a learned per-feature scale; float64.

With --init DIR the data, the latent Gaussian and every parameter come from the TorchSharp side, so the losses of
the first steps can be compared value for value. Prints one JSON object.
"""
import argparse
import json
import math
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F

DTYPE = torch.float64


def alternating_mask(p, k):
    if p == 1:
        return [False]
    return [(j + k) % 2 == 0 for j in range(p)]


class Coupling:
    """Parameters are plain leaf tensors named as the project names them (s.w0 ... s.b2, t.*, scale), so a
    TorchSharp flow's state maps onto them one to one."""

    def __init__(self, p, kept, hidden, depth, gen):
        self.kept = torch.tensor([j for j in range(p) if kept[j]], dtype=torch.int64)
        self.trans = torch.tensor([j for j in range(p) if not kept[j]], dtype=torch.int64)
        order = self.kept.tolist() + self.trans.tolist()
        inv = [0] * p
        for pos, j in enumerate(order):
            inv[j] = pos
        self.unpermute = torch.tensor(inv, dtype=torch.int64)
        dims = [len(self.kept)] + [hidden] * depth + [len(self.trans)]
        if dims[0] == 0:
            raise ValueError("p = 1 (a constant s, t network) is not covered by this benchmark")
        self.params = {}
        for net in ("s", "t"):
            ws, bs = [], []
            for i in range(len(dims) - 1):
                w = torch.zeros(dims[i + 1], dims[i], dtype=DTYPE)
                b = torch.zeros(dims[i + 1], dtype=DTYPE)
                if i < len(dims) - 2:
                    bound = 1.0 / math.sqrt(dims[i])
                    w.uniform_(-bound, bound, generator=gen)
                    b.uniform_(-bound, bound, generator=gen)
                ws.append(w)
                bs.append(b)
            for i, w in enumerate(ws):
                self.params[f"{net}.w{i}"] = w
            for i, b in enumerate(bs):
                self.params[f"{net}.b{i}"] = b
        self.params["scale"] = torch.ones(len(self.trans), dtype=DTYPE)
        self.layers = len(dims) - 1
        for v in self.params.values():
            v.requires_grad_(True)

    def mlp(self, net, h):
        for i in range(self.layers):
            h = F.linear(h, self.params[f"{net}.w{i}"], self.params[f"{net}.b{i}"])
            if i < self.layers - 1:
                h = torch.tanh(h)
        return h

    def inverse(self, x):
        a = x.index_select(1, self.kept)
        b = x.index_select(1, self.trans)
        s = torch.tanh(self.mlp("s", a)) * self.params["scale"]
        t = self.mlp("t", a)
        neg_s = -s
        z = (b - t) * torch.exp(neg_s)
        return torch.cat([a, z], 1).index_select(1, self.unpermute), neg_s.sum(1)


class Flow:
    def __init__(self, p, layers, hidden, depth, seed):
        gen = torch.Generator().manual_seed(seed)
        self.couplings = [Coupling(p, alternating_mask(p, k), hidden, depth, gen) for k in range(layers)]

    def named_parameters(self):
        for k, c in enumerate(self.couplings):
            for name, v in c.params.items():
                yield f"coupling{k}.{name}", v

    def to_latent(self, x):
        total = torch.zeros(x.shape[0], dtype=DTYPE)
        for c in reversed(self.couplings):
            x, ld = c.inverse(x)
            total = total + ld
        return x, total


def cholesky(sigma):
    # The project checks finiteness and the factorisation's status on every call (and would add jitter on a
    # failure), so this side pays for the same two synchronising reads.
    if not bool(torch.isfinite(sigma).all()):
        raise RuntimeError("non-finite covariance")
    l, info = torch.linalg.cholesky_ex(sigma)
    if int(info) != 0:
        raise RuntimeError("covariance not positive definite")
    return l


def log_density(mu, sigma, z):
    p = z.shape[1]
    l = cholesky(sigma)
    y = torch.linalg.solve_triangular(l, (z - mu).T, upper=False)
    maha = (y * y).sum(0)
    log_det = 2.0 * l.diagonal().log().sum()
    return -0.5 * (maha + log_det + p * math.log(2.0 * math.pi))


def with_ridge(r, sigma):
    p = sigma.shape[0]
    return sigma + torch.eye(p, dtype=DTYPE) * (r * max(float(sigma.diagonal().mean()), 1e-12))


def read_init(directory):
    with open(os.path.join(directory, "manifest.json")) as f:
        manifest = json.load(f)
    with open(os.path.join(directory, "data.bin"), "rb") as f:
        flat = torch.frombuffer(bytearray(f.read()), dtype=torch.float64)
    out, at = {}, 0
    for entry in manifest["tensors"]:
        n = math.prod(entry["shape"])
        out[entry["name"]] = flat[at:at + n].reshape(entry["shape"]).clone()
        at += n
    return manifest, out


def blas_of_config(config):
    for line in config.splitlines():
        line = line.strip()
        if line.startswith("- BLAS_INFO") or "BLAS_INFO=" in line:
            for part in line.replace(",", " ").split():
                if part.startswith("BLAS_INFO="):
                    return part.split("=", 1)[1]
    return "unknown"


def loaded_blas():
    """The BLAS shared object actually mapped into this process. Debian's torch is built against the generic
    libblas.so.3, which the alternatives system resolves to the reference BLAS or to OpenBLAS, so the build
    configuration alone does not say which one runs."""
    try:
        with open("/proc/self/maps") as f:
            paths = {line.split()[-1] for line in f if "/" in line}
    except OSError:
        return []
    keys = ("blas", "mkl", "lapack")
    return sorted(os.path.realpath(p) for p in paths if any(k in os.path.basename(p).lower() for k in keys))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--features", type=int, default=16)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--layers", type=int, default=6)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--depth", type=int, default=2)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--max-grad-norm", type=float, default=10.0)
    ap.add_argument("--ridge", type=float, default=1e-6)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--init", help="directory written by the TorchSharp side: data, latent Gaussian, parameters")
    args = ap.parse_args()

    torch.set_num_threads(1)
    p, batch = args.features, args.batch
    given = None
    if args.init:
        manifest, given = read_init(args.init)
        p, batch = manifest["features"], manifest["batch"]
    flow = Flow(p, args.layers, args.hidden, args.depth, args.seed)
    named = dict(flow.named_parameters())
    if given is not None:
        missing = set(named) - set(given)
        if missing:
            sys.exit(f"--init lacks parameters {sorted(missing)[:3]}...")
        with torch.no_grad():
            for name, v in named.items():
                if tuple(v.shape) != tuple(given[name].shape):
                    sys.exit(f"{name}: shape {tuple(given[name].shape)} there, {tuple(v.shape)} here")
                v.copy_(given[name])
        x, mu, sigma = given["x"], given["mu"], given["sigma"]
    else:
        gen = torch.Generator().manual_seed(args.seed + 1)
        x = torch.randn(batch, p, dtype=DTYPE, generator=gen)
        mu = x.mean(0)
        d = x - mu
        sigma = d.T @ d / batch

    params = list(named.values())
    # foreach=False: the project's Adam walks the parameters one by one, as torch's single-tensor Adam does.
    opt = torch.optim.Adam(params, lr=args.lr, foreach=False)

    def step():
        sigma_r = with_ridge(args.ridge, sigma)
        z, log_det = flow.to_latent(x)
        loss = -(log_density(mu, sigma_r, z) + log_det).mean()
        # set_to_none=False: the project zeroes the existing gradient tensors in place.
        opt.zero_grad(set_to_none=False)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(params, args.max_grad_norm)
        if math.isfinite(float(norm)):
            opt.step()
        else:
            opt.zero_grad(set_to_none=False)
        return float(loss)

    losses = [step() for _ in range(args.warmup)]
    times = []
    for _ in range(args.steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)

    config = torch.__config__.show()
    print(json.dumps({
        "side": "pytorch",
        "ms_per_step_median": statistics.median(times) * 1e3,
        "ms_per_step_min": min(times) * 1e3,
        "steps": args.steps, "warmup": args.warmup,
        "features": p, "batch": batch, "layers": args.layers, "hidden": args.hidden, "depth": args.depth,
        "dtype": str(DTYPE).replace("torch.", ""), "threads": torch.get_num_threads(),
        "lr": args.lr, "parameters": sum(v.numel() for v in params),
        "losses": losses,
        "torch_version": torch.__version__, "blas": blas_of_config(config), "blas_loaded": loaded_blas(),
        "parallel_info": torch.__config__.parallel_info().splitlines()[:6],
        "config": config,
        "python": sys.version.split()[0],
    }))


if __name__ == "__main__":
    main()
