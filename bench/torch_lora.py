"""PyTorch CPU autograd LoRA on Qwen2.5 shapes: the reference `bench/torch.ts` runs beside mesp.

A plain Qwen2 decoder (RMSNorm, GQA attention with RoPE and q/k/v biases, SwiGLU MLP, tied LM head) with
random fp32 weights, frozen; LoRA on all seven projections (q, k, v, o, gate, up, down), the only
parameters with gradients; one sequence of T random tokens per step, next-token cross-entropy over the
whole vocabulary, autograd backward, plain SGD. What a PyTorch user would write: every activation autograd
needs is kept (no checkpointing).

    python3 bench/torch_lora.py --threads 2 --steps 3 --seq-len 256 --rank 8 [--preset qwen2.5-0.5b]

Prints one JSON line: seconds of every step (wall, and CPU time of the process: all its threads), peak memory (VmHWM of this process), the bytes of the fp32
weights, torch's version and thread count.
"""

import argparse
import json
import math
import time

import torch
import torch.nn.functional as F

PRESETS = {
    # hidden, layers, heads, kv heads, intermediate, vocabulary, tied embeddings
    "qwen2.5-0.5b": (896, 24, 14, 2, 4864, 151936, True),
    "qwen2.5-1.5b": (1536, 28, 12, 2, 8960, 151936, True),
    "qwen2.5-3b": (2048, 36, 16, 2, 11008, 151936, True),
    "tiny": (64, 4, 4, 2, 256, 151936, True),  # make-model --preset tiny: a quick check of the bench itself
}


def peak_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024 / 1e6
    return float("nan")


class LoraLinear(torch.nn.Module):
    def __init__(self, n_in, n_out, rank, bias):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.randn(n_out, n_in) * 0.02, requires_grad=False)
        self.bias = torch.nn.Parameter(torch.randn(n_out) * 0.02, requires_grad=False) if bias else None
        self.a = torch.nn.Parameter(torch.randn(rank, n_in) / math.sqrt(n_in))
        self.b = torch.nn.Parameter(torch.randn(n_out, rank) * 0.01)
        self.scale = 2.0  # alpha 16 / rank 8, as PEFT's default alpha would give

    def forward(self, x):
        return F.linear(x, self.weight, self.bias) + F.linear(F.linear(x, self.a), self.b) * self.scale


def rms_norm(x, w, eps=1e-6):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


class Layer(torch.nn.Module):
    def __init__(self, d, heads, kv, inter, rank):
        super().__init__()
        hd = d // heads
        self.heads, self.kv, self.hd = heads, kv, hd
        self.q = LoraLinear(d, heads * hd, rank, True)
        self.k = LoraLinear(d, kv * hd, rank, True)
        self.v = LoraLinear(d, kv * hd, rank, True)
        self.o = LoraLinear(heads * hd, d, rank, False)
        self.gate = LoraLinear(d, inter, rank, False)
        self.up = LoraLinear(d, inter, rank, False)
        self.down = LoraLinear(inter, d, rank, False)
        self.n1 = torch.nn.Parameter(torch.ones(d), requires_grad=False)
        self.n2 = torch.nn.Parameter(torch.ones(d), requires_grad=False)

    def forward(self, x, cos, sin, mask):
        t = x.shape[0]
        h = rms_norm(x, self.n1)
        q = self.q(h).view(t, self.heads, self.hd).transpose(0, 1)
        k = self.k(h).view(t, self.kv, self.hd).transpose(0, 1)
        v = self.v(h).view(t, self.kv, self.hd).transpose(0, 1)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        rep = self.heads // self.kv
        k = k.repeat_interleave(rep, dim=0)
        v = v.repeat_interleave(rep, dim=0)
        att = (q @ k.transpose(1, 2)) / math.sqrt(self.hd) + mask
        y = (att.softmax(-1) @ v).transpose(0, 1).reshape(t, -1)
        x = x + self.o(y)
        h = rms_norm(x, self.n2)
        return x + self.down(F.silu(self.gate(h)) * self.up(h))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--preset", default="qwen2.5-0.5b", choices=sorted(PRESETS))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--seq-len", type=int, default=256)
    p.add_argument("--rank", type=int, default=8)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    d, n_layers, heads, kv, inter, vocab, _tied = PRESETS[a.preset]
    with torch.no_grad():
        embed = torch.randn(vocab, d) * 0.02
        layers = torch.nn.ModuleList(Layer(d, heads, kv, inter, a.rank) for _ in range(n_layers))
        final_norm = torch.ones(d)
    frozen = embed.numel() + final_norm.numel() + sum(
        p.numel() for p in layers.parameters() if not p.requires_grad
    )
    params = [p for p in layers.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=1e-4)
    T, hd = a.seq_len, d // heads
    inv = 1.0 / (1e6 ** (torch.arange(0, hd, 2).float() / hd))
    ang = torch.outer(torch.arange(T).float(), inv)
    ang = torch.cat((ang, ang), dim=-1)
    cos, sin = ang.cos()[None], ang.sin()[None]
    mask = torch.full((T, T), float("-inf")).triu(1)
    gen = torch.Generator().manual_seed(1)
    times, cpu = [], []
    for _ in range(a.steps):
        ids = torch.randint(0, vocab, (T,), generator=gen)
        t0, c0 = time.perf_counter(), time.process_time()
        x = embed[ids]
        for layer in layers:
            x = layer(x, cos, sin, mask)
        logits = rms_norm(x, final_norm) @ embed.T  # tied LM head
        loss = F.cross_entropy(logits[:-1], ids[1:])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
        if not math.isfinite(loss.item()):
            raise SystemExit("non-finite loss")
    print(json.dumps({
        "step_s": times,
        "step_cpu_s": cpu,
        "peak_mb": round(peak_mb(), 1),
        "weights_mb": round(frozen * 4 / 1e6, 1),
        "lora_params": sum(p.numel() for p in params),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "loss": loss.item(),
    }))


if __name__ == "__main__":
    main()
