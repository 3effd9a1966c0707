"""Train a byte-level Mamba language model on the standard-library corpus, on a GPU.

Runs where PyTorch and transformers are installed (the GPU host; specmx itself is not needed):

    python3 train/train_byte_mamba.py --corpus corpus.npz --preset py-mamba1 --out ckpt/py-mamba1 \
        --minutes 7 [--resume]

It trains `ParallelMamba`, a PyTorch Mamba-1 or Mamba-2 with HuggingFace `MambaForCausalLM` /
`Mamba2ForCausalLM` parameter names and arithmetic whose selective scan runs as a parallel
(Hillis-Steele) scan over the sequence instead of HF's token-by-token or chunked reference
paths (HF's fast CUDA kernels are not installed there). After training the weights load into
the HF model and the script checks both give the same logits. AdamW (fixed seed, cosine schedule over `--steps`), bf16 autocast, batches of random windows
of the training bytes. It stops after `--steps` steps or `--minutes` of wall time, whichever
comes first, and writes a checkpoint (model, optimizer moments, step, RNG, loss log) that
`--resume` continues from; runs of at most 10 minutes add up to the whole schedule. At the end
of each run it evaluates held-out bits per byte and writes the model in safetensors (fp16) with
config.json, plus `train_log.json` (loss curve, steps, tokens seen, held-out bits per byte).
"""

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.utils.checkpoint

PRESETS = {
    # target: a few million parameters; draft: much smaller (same vocabulary)
    "py-mamba1": dict(family="mamba1", hidden_size=256, num_hidden_layers=6, state_size=16, expand=2),
    "py-mamba1-draft": dict(family="mamba1", hidden_size=64, num_hidden_layers=2, state_size=16, expand=2),
    # Mamba-2: heads of 32 channels, B/C in 2 groups (target) or 1 (draft)
    "py-mamba2": dict(family="mamba2", hidden_size=256, num_hidden_layers=6, state_size=16, expand=2,
                      head_dim=32, n_groups=2),
    "py-mamba2-draft": dict(family="mamba2", hidden_size=64, num_hidden_layers=2, state_size=16, expand=2,
                            head_dim=16, n_groups=1),
}
VOCAB = 256


def make_model(preset):
    p = dict(PRESETS[preset])
    family = p.pop("family")
    common = dict(vocab_size=VOCAB, conv_kernel=4, use_conv_bias=True, use_bias=False, tie_word_embeddings=True,
                  pad_token_id=0, bos_token_id=0, eos_token_id=0, residual_in_fp32=True)
    if family == "mamba1":
        from transformers import MambaConfig, MambaForCausalLM
        return MambaForCausalLM(MambaConfig(**common, **p))
    from transformers import Mamba2Config, Mamba2ForCausalLM
    heads = p["expand"] * p["hidden_size"] // p["head_dim"]
    return Mamba2ForCausalLM(Mamba2Config(**common, **p, num_heads=heads, chunk_size=256,
                                          time_step_limit=(0.0, float("inf"))))


class ParallelMamba(torch.nn.Module):
    """Mamba-1/2 LM with the HF model's state_dict names; the scan is parallel over time."""

    def __init__(self, hf_model):
        super().__init__()
        self.hf = hf_model                      # owns the parameters (same names when saved)
        self.cfg = hf_model.config

    @staticmethod
    def _rmsnorm(x, weight, eps):
        x32 = x.float()
        return (x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + eps)).to(x.dtype) * weight

    @staticmethod
    def _scan(dA, dBu):
        """h_t = dA_t * h_{t-1} + dBu_t over dim 1 (time), h_{-1} = 0, in log2(T) steps."""
        a, b = dA, dBu
        k = 1
        while k < a.shape[1]:
            b = torch.cat([b[:, :k], b[:, k:] + a[:, k:] * b[:, :-k]], dim=1)
            a = torch.cat([a[:, :k], a[:, k:] * a[:, :-k]], dim=1)
            k *= 2
        return b

    def _mixer(self, mixer, x):
        B_, T, _ = x.shape
        di, n, r = self.cfg.intermediate_size, self.cfg.state_size, self.cfg.time_step_rank
        xz = mixer.in_proj(x)
        u, z = xz[..., :di], xz[..., di:]
        u = torch.nn.functional.conv1d(u.transpose(1, 2), mixer.conv1d.weight, mixer.conv1d.bias,
                                       padding=self.cfg.conv_kernel - 1, groups=di)[..., :T].transpose(1, 2)
        u = torch.nn.functional.silu(u)
        proj = mixer.x_proj(u)
        dt = torch.nn.functional.softplus(mixer.dt_proj(proj[..., :r]).float())      # [B, T, di]
        Bm, Cm = proj[..., r:r + n].float(), proj[..., r + n:].float()              # [B, T, n]
        A = -torch.exp(mixer.A_log.float())                                          # [di, n]
        with torch.autocast(x.device.type, enabled=False):
            dA = torch.exp(dt[..., None] * A)                                        # [B, T, di, n]
            dBu = (dt * u.float())[..., None] * Bm[:, :, None, :]
            h = self._scan(dA, dBu)
            y = (h * Cm[:, :, None, :]).sum(-1) + u.float() * mixer.D.float()
        y = y.to(u.dtype) * torch.nn.functional.silu(z)
        return mixer.out_proj(y)

    def _mixer2(self, mixer, x):
        """Mamba-2 mixer (HF Mamba2Mixer's torch path, one scan per head instead of chunks)."""
        cfg = self.cfg
        B_, T, _ = x.shape
        H, P, G, N = cfg.num_heads, cfg.head_dim, cfg.n_groups, cfg.state_size
        di = H * P
        z, xbc, dt = torch.split(mixer.in_proj(x), [di, di + 2 * G * N, H], dim=-1)
        xbc = torch.nn.functional.conv1d(xbc.transpose(1, 2), mixer.conv1d.weight, mixer.conv1d.bias,
                                         padding=cfg.conv_kernel - 1, groups=di + 2 * G * N)[..., :T].transpose(1, 2)
        xs, Bm, Cm = torch.split(torch.nn.functional.silu(xbc), [di, G * N, G * N], dim=-1)
        with torch.autocast(x.device.type, enabled=False):
            dt = torch.nn.functional.softplus(dt.float() + mixer.dt_bias.float())            # [B, T, H]
            A = -torch.exp(mixer.A_log.float())                                               # [H]
            xs = xs.float().reshape(B_, T, H, P)
            Bm = Bm.float().reshape(B_, T, G, N).repeat_interleave(H // G, dim=2)              # [B, T, H, N]
            Cm = Cm.float().reshape(B_, T, G, N).repeat_interleave(H // G, dim=2)
            dA = torch.exp(dt * A)[..., None, None]                                           # [B, T, H, 1, 1]
            dBx = (dt[..., None] * xs)[..., None] * Bm[:, :, :, None, :]                      # [B, T, H, P, N]
            h = self._scan(dA, dBx)
            y = (h * Cm[:, :, :, None, :]).sum(-1) + xs * mixer.D.float()[:, None]
            g = y.reshape(B_, T, di) * torch.nn.functional.silu(z.float())
            g = g.reshape(B_, T, G, di // G)
            g = (g * torch.rsqrt(g.pow(2).mean(-1, keepdim=True) + cfg.layer_norm_epsilon)).reshape(B_, T, di)
        return mixer.out_proj(mixer.norm.weight * g.to(x.dtype))

    def forward(self, ids):
        bb = self.hf.backbone
        x = bb.embeddings(ids)
        mixer_fn = self._mixer2 if self.cfg.model_type == "mamba2" else self._mixer
        for layer in bb.layers:
            h = self._rmsnorm(x, layer.norm.weight, self.cfg.layer_norm_epsilon)
            # recompute each mixer in the backward pass: the scan's [B, T, d_inner, n] tensors
            # of every layer would not all fit at once
            x = x + torch.utils.checkpoint.checkpoint(mixer_fn, layer.mixer, h, use_reentrant=False)
        x = self._rmsnorm(x, bb.norm_f.weight, self.cfg.layer_norm_epsilon)
        return x @ bb.embeddings.weight.T


def batches(data, batch, seq, gen):
    idx = torch.randint(0, data.numel() - seq - 1, (batch,), generator=gen)
    win = torch.stack([data[i:i + seq + 1] for i in idx.tolist()])
    return win[:, :-1].long(), win[:, 1:].long()


@torch.no_grad()
def heldout_bits_per_byte(model, data, seq, windows, device):
    """Mean cross-entropy in bits per byte over `windows` fixed, evenly spaced held-out windows."""
    model.eval()
    starts = np.linspace(0, data.numel() - seq - 2, windows).astype(int)
    total, count = 0.0, 0
    for chunk in np.array_split(starts, max(1, windows // 32)):
        win = torch.stack([data[i:i + seq + 1] for i in chunk]).long().to(device)
        with torch.autocast(device, dtype=torch.bfloat16):
            logits = model(win[:, :-1]).float()
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, VOCAB), win[:, 1:].reshape(-1), reduction="sum")
        total += loss.item()
        count += win[:, 1:].numel()
    model.train()
    return total / count / math.log(2)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--preset", choices=PRESETS, required=True)
    ap.add_argument("--out", required=True, help="checkpoint and model folder")
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--minutes", type=float, default=8.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--device", default="cuda", help="cuda, or cpu for a quick dry run")
    args = ap.parse_args()
    t0 = time.time()
    device = args.device
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    corpus = np.load(args.corpus)
    train = torch.from_numpy(corpus["train"].astype(np.uint8))
    heldout = torch.from_numpy(corpus["heldout"].astype(np.uint8))
    meta = json.loads(bytes(corpus["meta"]).decode())
    torch.manual_seed(args.seed)
    hf = make_model(args.preset).to(device)
    model = ParallelMamba(hf)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.95), weight_decay=0.1)
    gen = torch.Generator().manual_seed(args.seed)
    log = {"preset": args.preset, "args": vars(args), "python_of_corpus": meta["python"],
           "heldout_modules": len(meta["heldout_modules"]), "train_bytes": int(train.numel()),
           "loss": [], "runs": []}
    step = 0
    if args.resume and (out / "state.json").exists():
        hf.load_state_dict(torch.load(out / "model.pt", map_location=device))
        moments = [torch.load(out / f"opt_{k}.pt", map_location=device) for k in ("m", "v")]
        opt.load_state_dict({"state": {int(i): {"step": torch.tensor(float(s["step"])), "exp_avg": moments[0][int(i)],
                                                "exp_avg_sq": moments[1][int(i)]}
                                       for i, s in json.loads((out / "state.json").read_text())["opt"].items()},
                             "param_groups": opt.state_dict()["param_groups"]})
        state = json.loads((out / "state.json").read_text())
        step, log = state["step"], state["log"]
        gen.set_state(torch.tensor(state["gen"], dtype=torch.uint8))
        print(f"resumed at step {step}", flush=True)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"{args.preset}: {n_params:,} parameters, {train.numel():,} training bytes", flush=True)
    warmup = min(100, args.steps // 10)
    run_start = step
    while step < args.steps and time.time() - t0 < args.minutes * 60:
        lr = args.lr * (step + 1) / warmup if step < warmup else \
            args.lr * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, args.steps - warmup)))
        for g in opt.param_groups:
            g["lr"] = lr
        x, y = batches(train, args.batch, args.seq, gen)
        x, y = x.to(device), y.to(device)
        with torch.autocast(device, dtype=torch.bfloat16):
            logits = model(x)
        loss = torch.nn.functional.cross_entropy(logits.float().reshape(-1, VOCAB), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        if step % 25 == 0 or step == 1:
            bpb = loss.item() / math.log(2)
            log["loss"].append([step, round(bpb, 4)])
            print(f"step {step}/{args.steps}  train {bpb:.3f} bits/byte  lr {lr:.2e}  "
                  f"{time.time() - t0:.0f} s", flush=True)
    bpb = heldout_bits_per_byte(model, heldout, args.seq, 256, device)
    log["runs"].append({"from_step": run_start, "to_step": step, "seconds": round(time.time() - t0, 1),
                        "heldout_bits_per_byte": round(bpb, 4)})
    log.update(steps=step, tokens_seen=step * args.batch * args.seq, parameters=n_params,
               heldout_bits_per_byte=round(bpb, 4), final_train_bits_per_byte=log["loss"][-1][1] if log["loss"] else None)
    print(f"held-out {bpb:.3f} bits/byte after {step} steps", flush=True)
    # checkpoint for --resume: model, the two Adam moments (each under 16 MiB), small state
    torch.save(hf.state_dict(), out / "model.pt")
    st = opt.state_dict()["state"]
    torch.save({i: s["exp_avg"] for i, s in st.items()}, out / "opt_m.pt")
    torch.save({i: s["exp_avg_sq"] for i, s in st.items()}, out / "opt_v.pt")
    (out / "state.json").write_text(json.dumps({"step": step, "log": log, "gen": gen.get_state().tolist(),
                                                "opt": {str(i): {"step": float(s["step"])} for i, s in st.items()}}))
    # the parallel scan computes what HF's MambaForCausalLM computes: check on held-out bytes
    with torch.no_grad():
        win = heldout[:2 * 128].reshape(2, 128).long().to(device)
        ours, theirs = model(win).float(), hf(win).logits.float()
        log["max_abs_logit_diff_vs_hf_fp32"] = float((ours - theirs).abs().max())
    print(f"max |logit difference| vs MambaForCausalLM (fp32): {log['max_abs_logit_diff_vs_hf_fp32']:.2e}", flush=True)
    # the model as shipped: fp16 safetensors + config.json, and the log
    hf.half().save_pretrained(out / "model", safe_serialization=True)
    (out / "train_log.json").write_text(json.dumps(log, indent=1))


if __name__ == "__main__":
    main()
