"""cocotb co-simulation of speculative decoding with the SSM in series on the RTL (`hdl.tree_ssm`):
the conv and scan units in tree mode run every node's conv and SSM step from its parent's state
slot, while the host runs the linear layers, norms and the draft in the hardware numerics model
(the matrix engine's part until the engine composes them in RTL).

Parameters come from the environment (`sim.tree_ssm_check` sets them): $SPECMX_CASE (JSON:
model preset, seed, draft, tree, backtrack, tokens, prompt, lanes, slots, negative controls),
$SPECMX_IDLE and $SPECMX_BACKPRESSURE (random source gaps and sink stalls on every stream).

Every verification pass runs, per layer: a load token with the starting conv window and a conv
token per node on the conv unit; the host's x_proj/dt_proj (or Mamba-2's dt softplus); a load
token with the starting SSM state and a scan token per node on the scan unit (gated outputs);
the host's out_proj. `store` backtracking takes the accepted node's window and state from the
units' state streams; `recompute` re-runs the accepted path on the units from the starting
state. The same `specdec.speculative_generate` drives it with these in place of `verify_tree`
and its recompute, and every pass is compared with the golden `verify_tree` on the same
inputs: per-node logits bit for bit, and (store) every node's states. Each unit run's cycles
are compared with the unit's cycle model. Writes $SPECMX_REPORT.
"""

import json
import os

import cocotb
import numpy as np
from cocotb.task import bridge, resume

from specmx.models.mamba import MambaState
from specmx.models.perf.ssm import conv_cycles, scan_cycles
from specmx.models.specdec import _recompute, assign_slots, speculative_generate, verify_tree
from specmx.sim.engine_jobs import conv_job, scan_job, state_mismatches
from specmx.sim.streams import TB, StreamMonitor, StreamSink, StreamSource, write_report
from specmx.sim.tree_ssm_check import build_models, unit_configs


class UnitPort:
    """One tree-mode unit's three streams: a fresh source per run, sinks for the whole test."""

    def __init__(self, tb, name, idle, backpressure):
        self.tb, self.name, self.idle = tb, name, idle
        self.o = StreamSink(tb, tb.stream(f"{name}_o"), backpressure)
        self.s = StreamSink(tb, tb.stream(f"{name}_s"), backpressure)
        self.monitors = [StreamMonitor(tb, tb.stream(f"{name}_{k}"), f"{name}_{k}") for k in ("o", "s")]
        self.source = None

    async def run(self, beats, n_out, n_state):
        """Send `beats`; return (output beats, state beats, cycles, starved, held)."""
        o0, s0 = len(self.o.words), len(self.s.words)
        self.source = StreamSource(self.tb, self.tb.stream(f"{self.name}_i"), beats, self.idle)
        limit = self.tb.cycle + 20 * len(beats) + 1000
        while (len(self.o.words) - o0 < n_out or len(self.s.words) - s0 < n_state) and self.tb.cycle < limit:
            await self.tb.cycles(1)
        while not self.source.done and self.tb.cycle < limit:
            await self.tb.cycles(1)
        first, last = self.source.accepted[0], max(self.o.accepted[-1], self.s.accepted[-1])
        held = len({c for c in self.o.held_cycles + self.s.held_cycles if first <= c <= last})
        await self.tb.cycles(2)                  # the source's last falling edge is behind us
        return (self.o.words[o0:], self.s.words[s0:], last - first + 1, self.source.starved, held)


class RTLSSM:
    """The verification pass and the recompute backtracking with conv and scan on the RTL."""

    def __init__(self, tb, case, target, idle, backpressure):
        self.case, self.model, self.ops = case, target, target.ops
        self.conv_cfg, self.scan_cfg = unit_configs(target.cfg, case["lanes"])
        self.mamba2 = self.scan_cfg.family == "mamba2"
        self.conv = UnitPort(tb, "conv", idle, backpressure)
        self.scan = UnitPort(tb, "scan", idle, backpressure)
        self.runs, self.cycle_errors, self.passes = [], [], []

    def _check_cycles(self, unit, cycles, starved, held, tokens):
        model = conv_cycles(self.conv_cfg, tokens, starved, held) if unit == "conv" else \
            scan_cycles(self.scan_cfg, tokens, starved, held)
        self.runs.append({"unit": unit, "tokens": tokens, "cycles": cycles, "predicted": model.total})
        if cycles != model.total:
            self.cycle_errors.append(self.runs[-1])

    async def conv_run(self, L, start, pre, src, dst):
        """Conv tokens: a load of `start` (the starting window) into slot 0, then one per row of
        `pre` reading `src` and writing `dst` (`engine_jobs.conv_job`)."""
        beats, n_out, n_state, decoded = conv_job(self.conv_cfg, self.conv.tb.conv_layout, self.ops, L, start, pre,
                                                  src, dst, self.case.get("corrupt_weight"))
        outs, states, cycles, starved, held = await self.conv.run(beats, n_out, n_state)
        self._check_cycles("conv", cycles, starved, held, len(src) + 1)
        return decoded(outs, states)

    async def scan_run(self, L, start, u, dt, z, B, C, src, dst):
        """Scan tokens: a load of `start` into slot 0, then one per node (`engine_jobs.scan_job`)."""
        beats, n_out, n_state, decoded = scan_job(self.scan_cfg, self.scan.tb.scan_layout, self.ops, L, start, u, dt,
                                                  z, B, C, src, dst)
        outs, states, cycles, starved, held = await self.scan.run(beats, n_out, n_state)
        self._check_cycles("scan", cycles, starved, held, len(src) + 1)
        return decoded(outs, states)

    def _scan_inputs(self, L, act, row_inputs, z):
        """(u, dt, B, C) rows for the scan unit from conv outputs and the host's SSM inputs."""
        cfg = self.model.cfg
        if not self.mamba2:
            dt, B, C = row_inputs
            return act, dt, B, C
        di, G, N = cfg.intermediate_size, cfg.n_groups, cfg.state_size
        dt = self.ops.softplus(row_inputs[0] + L["dt_bias"])
        return (act[:, :di], dt, act[:, di:di + G * N].reshape(-1, G, N), act[:, di + G * N:].reshape(-1, G, N))

    def _out(self, L, g):
        """The layer's residual update from the scan unit's gated outputs."""
        cfg = self.model.cfg
        if not self.mamba2:
            return self.ops.linear(g, L["out_proj"])
        normed = self.ops.group_norm(g, L["gate_norm"], cfg.n_groups, cfg.layer_norm_epsilon)
        return self.ops.linear(normed, L["out_proj"]) + L["out_bias"]

    async def verify(self, state, tokens, parent, tile, cache, store):
        """`verify_tree` with the conv and SSM steps of every layer on the RTL."""
        model, n = self.model, len(tokens)
        src, dst, used = assign_slots(parent)
        if self.case.get("wrong_parent") and n > 2:
            src = list(src)
            src[-1] = dst[0] if src[-1] != dst[0] else dst[1]    # the last node reads the wrong state
        assert used <= self.case["slots"], (used, self.case["slots"])
        x = model.embed(model.check_tokens(np.asarray(tokens))).copy()
        tiles = [slice(t0, min(n, t0 + tile)) for t0 in range(0, n, tile)]
        states = [MambaState() for _ in range(n)] if store else None
        caches = [[] for _ in range(n)] if cache else None
        for li, L in enumerate(model.layers):
            parts = [model.mixer_in(L, x[idx]) for idx in tiles]
            pre = np.concatenate([p[0] for p in parts])
            extras = tuple(np.concatenate([p[1][k] for p in parts]) for k in range(len(parts[0][1])))
            act, windows = await self.conv_run(L, state.conv[li], pre, src, dst)
            inputs = tuple(np.concatenate(c) for c in zip(*[model.ssm_inputs_rows(L, act[idx], tuple(e[idx] for e in extras))
                                                           for idx in tiles]))
            u, dt, B, C = self._scan_inputs(L, act, inputs, extras[0])
            g, hs = await self.scan_run(L, state.ssm[li], u, dt, extras[0], B, C, src, dst)
            for idx in tiles:
                x[idx] += self._out(L, g[idx])
            for i in range(n):
                if store:
                    states[i].conv.append(windows[i])
                    states[i].ssm.append(hs[i])
                if cache:
                    caches[i].append((pre[i].copy(), act[i].copy(), tuple(r[i].copy() for r in inputs)))
        result = {"logits": model.logits(x), "states": states, "cache": caches, "peak_live_states": used}
        self._compare(state, tokens, parent, tile, cache, store, result)
        return result

    def _compare(self, state, tokens, parent, tile, cache, store, rtl):
        """The golden pass on the same inputs: logits bit for bit; with store, every node's
        states (conv windows as the operands they hold)."""
        gold = verify_tree(self.model, state, tokens, parent, tile, cache=cache, store=store)
        bad = int(np.sum(gold["logits"].view(np.int32) != rtl["logits"].view(np.int32)))
        state_bad = state_mismatches(self.ops, gold["states"], rtl["states"]) if store else 0
        self.passes.append({"nodes": len(tokens), "logit_mismatches": bad, "state_mismatches": state_bad})

    async def recompute(self, state, path_caches):
        """Re-run the accepted path's conv and SSM steps on the RTL from the starting state."""
        new = state.copy()
        k = len(path_caches)
        chain = [0] * k
        for li, L in enumerate(self.model.layers):
            pre = np.stack([c[li][0] for c in path_caches])
            act, windows = await self.conv_run(L, state.conv[li], pre, chain, chain)
            inputs = tuple(np.stack([c[li][2][j] for c in path_caches]) for j in range(len(path_caches[0][li][2])))
            u, dt, B, C = self._scan_inputs(L, act, inputs, None)
            _, hs = await self.scan_run(L, state.ssm[li], u, dt, np.zeros_like(u), B, C, chain, chain)
            new.conv[li], new.ssm[li] = windows[-1], hs[-1]
        gold = _recompute(self.model, state, path_caches)
        bad = state_mismatches(self.ops, [gold], [new])
        self.passes.append({"recompute_path": k, "state_mismatches": bad})
        return new


@cocotb.test()
async def speculative_generation_matches_golden(dut):
    case = json.loads(os.environ["SPECMX_CASE"])
    idle, backpressure = float(os.environ.get("SPECMX_IDLE", "0")), float(os.environ.get("SPECMX_BACKPRESSURE", "0"))
    target, draft = build_models(case)
    tb = TB(dut)
    from specmx.hdl.conv import conv_layout
    from specmx.hdl.scan import scan_layout
    rtl = RTLSSM(tb, case, target, idle, backpressure)
    tb.conv_layout, tb.scan_layout = conv_layout(rtl.conv_cfg, case["slots"]), scan_layout(rtl.scan_cfg, case["slots"])
    await tb.start()
    verify_rtl = resume(rtl.verify)
    recompute_rtl = resume(rtl.recompute)
    kwargs = dict(tree=case["tree"], backtrack=case["backtrack"], memory_budget=case.get("memory_budget", 1 << 20),
                  tile=case["tile"])
    run = bridge(lambda: speculative_generate(
        target, draft, case["prompt"], case["tokens"], **kwargs,
        verify=lambda m, s, t, p, tile, cache, store: verify_rtl(s, t, p, tile, cache, store),
        recompute=lambda m, s, path: recompute_rtl(s, path)))
    tokens, stats = await run()
    golden, gstats = speculative_generate(target, draft, case["prompt"], case["tokens"], **kwargs)
    report = {"tokens": len(tokens), "token_mismatches": int(sum(a != b for a, b in zip(tokens, golden)))
              + abs(len(tokens) - len(golden)),
              "verifications": stats.target_passes, "strategies": stats.strategy_used,
              "logit_mismatches": sum(p.get("logit_mismatches", 0) for p in rtl.passes),
              "state_mismatches": sum(p.get("state_mismatches", 0) for p in rtl.passes),
              "nodes": sum(p.get("nodes", 0) for p in rtl.passes),
              "unit_runs": len(rtl.runs), "cycle_mismatches": len(rtl.cycle_errors),
              "first_cycle_mismatches": rtl.cycle_errors[:5],
              "cycles": {u: sum(r["cycles"] for r in rtl.runs if r["unit"] == u) for u in ("conv", "scan")},
              "measured_cycles": sum(r["cycles"] for r in rtl.runs),
              "predicted_cycles": sum(r["predicted"] for r in rtl.runs),
              "accepted_draft_tokens": stats.accepted_draft_tokens,
              "protocol_errors": sum((m.errors for p in (rtl.conv, rtl.scan) for m in p.monitors), [])[:10]}
    write_report(report)
