"""Speculative decoding for Mamba (plain numpy): token trees, tree verification for a
recurrence, greedy / rejection-sampling acceptance, and state backtracking.

A round starts from the target state S after all committed tokens but the last one (`last`):
1. the draft grows a token tree rooted at `last`: `tree=(3, 2, 1)` gives the root 3 children
   (the draft's top-3; i.i.d. draft samples when sampling), each of those 2, each of those 1;
2. the target verifies the whole tree in one pass (`verify_tree`): nodes are visited in FIFO
   (breadth-first) order; per layer, the linear layers (in_proj, x_proj/dt_proj, out_proj) run
   batched over tiles of `tile` nodes while the conv and SSM steps run in series, each from
   its parent's state. A parent's state is held only until its last child has used it (a
   chain overwrites in place, so states are kept at branch points only);
3. acceptance walks the tree: greedy takes the child equal to the target's argmax; sampling
   tries the children in order with probability min(1, p/q) and, on rejection, continues with
   the residual max(p - q, 0) (SpecInfer's multi-candidate rule, exact for i.i.d. candidates).
   The round always ends with one token chosen by the target (the "bonus" token);
4. backtracking sets S to the target state at the last accepted node:
   store      snapshot every node's state during verification and pick one;
   recompute  cache each node's small SSM inputs (conv input, activated input, dt, B) and
              re-run only the recurrences along the accepted path;
   hybrid     store when nodes x state bytes fits `memory_budget`, otherwise recompute.
All three give bit-identical states, hence identical tokens; their costs are counted.
"""

from dataclasses import dataclass, field

import numpy as np

from specmx.models.mamba import MambaLM, MambaState

__all__ = ["TreeShape", "SpecStats", "speculative_generate", "verify_tree", "verify_cost", "make_draft",
           "BACKTRACK", "check_parents", "live_states", "assign_slots"]

BACKTRACK = ("store", "recompute", "hybrid")


def TreeShape(text_or_seq):
    """Parse a tree shape: widths per depth ('3,2,1' or a sequence of positive ints), or a
    node budget ('budget=12' or {"budget": 12}: the draft's most probable paths, best first)."""
    if isinstance(text_or_seq, dict):
        text_or_seq = f"budget={text_or_seq.get('budget')}"
    if isinstance(text_or_seq, str) and text_or_seq.startswith("budget="):
        try:
            budget = int(text_or_seq[7:])
        except ValueError:
            raise ValueError(f"tree: expected budget=<nodes>, got {text_or_seq!r}") from None
        if not 1 <= budget <= 4096:
            raise ValueError(f"tree: the node budget must be 1..4096, got {budget}")
        return {"budget": budget}
    if isinstance(text_or_seq, str):
        try:
            widths = tuple(int(x) for x in text_or_seq.split(","))
        except ValueError:
            raise ValueError(f"tree: expected comma-separated widths per depth, got {text_or_seq!r}") from None
    else:
        widths = tuple(text_or_seq)
    if not widths or any((not isinstance(w, (int, np.integer))) or w < 1 for w in widths):
        raise ValueError(f"tree: every width must be an integer >= 1, got {widths!r}")
    if int(np.sum(np.cumprod(widths))) > 4096:
        raise ValueError(f"tree: {widths!r} has too many nodes (at most 4096)")
    return widths


@dataclass
class _Tree:
    tokens: list = field(default_factory=list)
    parent: list = field(default_factory=list)
    children: list = field(default_factory=list)
    q: list = field(default_factory=list)          # draft distribution at each node (sampling)

    def add(self, token, parent):
        self.tokens.append(int(token))
        self.parent.append(parent)
        self.children.append([])
        self.q.append(None)
        if parent >= 0:
            self.children[parent].append(len(self.tokens) - 1)
        return len(self.tokens) - 1


def check_parents(parent):
    """A tree as a parent index per node: node 0 is the root (parent -1) and every other node's
    parent comes before it. Raises ValueError naming the first node that breaks this."""
    parent = [int(p) for p in parent]
    if not parent:
        raise ValueError("parent: a tree needs at least one node")
    if parent[0] != -1:
        raise ValueError(f"parent: node 0 is the root and needs parent -1, got {parent[0]}")
    for i, p in enumerate(parent[1:], 1):
        if not 0 <= p < i:
            raise ValueError(f"parent: node {i} has parent {p}; a parent must be a node before it (0..{i - 1})")
    return parent


def live_states(parent):
    """The most per-layer states held at once when the nodes run in order, each from its
    parent's state: node i's new state takes a slot (its parent's slot when i is the parent's
    last child: a chain overwrites in place) and keeps it until its last child has run; a leaf
    frees it at once. The state buffer of the hardware engine needs this many slots (the slots
    `assign_slots` uses)."""
    return assign_slots(parent)[2]


def assign_slots(parent):
    """State-buffer slots for running the tree's nodes in order (the accounting of
    `live_states`): the starting state sits in slot 0; node i reads its parent's slot (slot 0
    for the root) and writes its parent's slot when it is the parent's last child (the root
    always: the starting state is in memory), else a free one; a leaf's slot is free again at
    once. Returns (src, dst, slots used), slots used == live_states(parent)."""
    parent = check_parents(parent)
    last_child = {p: i for i, p in enumerate(parent) if p >= 0}
    slot, free, used = {}, [], 1
    src, dst = [], []
    for i, p in enumerate(parent):
        src.append(0 if p < 0 else slot[p])
        if p < 0 or last_child[p] == i:
            slot[i] = src[-1]
        else:
            if not free:
                free.append(used)
                used += 1
            slot[i] = free.pop()
        dst.append(slot[i])
        if i not in last_child:
            free.append(slot[i])
    return src, dst, used


@dataclass
class SpecStats:
    rounds: int = 0
    target_passes: int = 0
    nodes_verified: int = 0
    draft_tokens: int = 0
    accepted_draft_tokens: int = 0
    emitted: int = 0
    peak_state_bytes: int = 0
    backtrack_bytes: int = 0
    backtrack_flops: int = 0
    verify_flops: int = 0
    verify_bytes_moved: int = 0
    strategy_used: dict = field(default_factory=dict)
    verifications: list = field(default_factory=list)   # one record per target pass
    tree_depth_sum: int = 0       # acceptance rate = accepted / sum of tree depths

    def summary(self):
        d = dict(self.__dict__)
        d["acceptance_rate"] = self.accepted_draft_tokens / max(1, self.tree_depth_sum)
        d["verifications"] = list(self.verifications)
        d["tokens_per_target_pass"] = self.emitted / max(1, self.target_passes)
        return d


def _softmax(x, temperature=1.0):
    z = (x - x.max()) / temperature
    e = np.exp(z.astype(np.float64))
    return e / e.sum()


def _build_budget_tree(draft: MambaLM, dstate: MambaState, last, budget, max_depth=16):
    """Best-first tree: repeatedly add the candidate child with the highest draft path
    probability until `budget` draft nodes exist (greedy acceptance only)."""
    tree = _Tree()
    root = tree.add(last, -1)
    logits, st = draft.step(last, dstate)
    frontier = []                                   # (path log-prob, parent, token, rank)

    def offer(node, logits, logp):
        lp = np.log(_softmax(logits))
        for tok in np.argsort(-logits, kind="stable")[:budget]:
            frontier.append((logp + lp[tok], node, int(tok)))

    depth = {root: 0}
    states = {root: st}
    offer(root, logits, 0.0)
    while len(tree.tokens) - 1 < budget and frontier:
        frontier.sort(key=lambda f: -f[0])
        logp, parent, tok = frontier.pop(0)
        child = tree.add(tok, parent)
        depth[child] = depth[parent] + 1
        if depth[child] < max_depth:
            logits, states[child] = draft.step(tok, states[parent])
            offer(child, logits, logp)
    return tree


def _build_tree(draft: MambaLM, dstate: MambaState, last, widths, rng, temperature):
    """Grow the draft tree rooted at `last` (depth-first, copying draft states)."""
    if isinstance(widths, dict):
        if rng is not None:
            raise ValueError("tree: a node budget needs greedy acceptance (sampling uses widths)")
        return _build_budget_tree(draft, dstate, last, widths["budget"])
    tree = _Tree()
    root = tree.add(last, -1)
    states = {root: dstate}

    def grow(node, depth):
        logits, st = draft.step(tree.tokens[node], states.pop(node))
        if depth == len(widths):
            return
        k = widths[depth]
        if rng is None:
            cand = np.argsort(-logits, kind="stable")[:k]
        else:
            q = _softmax(logits, temperature)
            tree.q[node] = q
            cand = rng.choice(q.size, size=k, p=q)
        for tok in cand:
            child = tree.add(tok, node)
            states[child] = st
            grow(child, depth + 1)

    grow(root, 0)
    return tree


def verify_tree(model: MambaLM, state: MambaState, tokens, parent, tile=8, cache=False, store=False):
    """Target pass over a token tree (parents listed before children): the numerics only.

    Every operation goes through `model.ops` (the arithmetic of the model: float by default,
    or a hardware numerics model), in the order the hardware runs them: per layer, linear
    layers batched over tiles of `tile` nodes, conv and SSM steps in series in FIFO order, each
    from its parent's state. Returns dict: logits [nodes, vocab]; `states` per node if store;
    `cache` per node (the small SSM inputs: conv input, activated input, dt, B, C) if cache;
    `peak_live_states`, the most states held at once (`live_states`: the hardware's state
    buffer slots). Costs: `verify_cost`.
    """
    ops = model.ops
    parent = check_parents(parent)
    n_nodes = len(tokens)
    if len(parent) != n_nodes:
        raise ValueError(f"parent: needs one entry per token ({n_nodes}), got {len(parent)}")
    x = model.embed(model.check_tokens(np.asarray(tokens))).copy()
    last_child = {}
    for i, p in enumerate(parent):
        if p >= 0:
            last_child[p] = i
    states = [MambaState() for _ in range(n_nodes)] if store else None
    caches = [[] for _ in range(n_nodes)] if cache else None
    tiles = [slice(t0, min(n_nodes, t0 + tile)) for t0 in range(0, n_nodes, tile)]
    peak_live = 0
    for li, L in enumerate(model.layers):
        parts = [model.mixer_in(L, x[idx]) for idx in tiles]            # batched linear layer
        pre = np.concatenate([p[0] for p in parts])
        extras = tuple(np.concatenate([p[1][k] for p in parts]) for k in range(len(parts[0][1])))
        live_conv, live_ssm = {}, {}                              # node -> its state at this layer
        y = None
        for idx in tiles:
            nodes = range(idx.start, idx.stop)
            act = np.empty((len(nodes), pre.shape[1]), np.float32)
            for j, i in enumerate(nodes):                         # conv steps, in series
                prev = state.conv[li] if parent[i] < 0 else live_conv[parent[i]]
                act[j], live_conv[i] = ops.conv_step(prev, pre[i], L["conv_w"], L["conv_b"])
                if store:
                    states[i].conv.append(live_conv[i].copy())
                if parent[i] >= 0 and last_child.get(parent[i]) == i:
                    live_conv.pop(parent[i])
                if i not in last_child:
                    live_conv.pop(i)
            inputs = model.ssm_inputs_rows(L, act, tuple(e[idx] for e in extras))   # batched
            for j, i in enumerate(nodes):                         # SSM steps, in series
                hprev = state.ssm[li] if parent[i] < 0 else live_ssm[parent[i]]
                row = tuple(v[j] for v in inputs)
                yi, live_ssm[i] = model.ssm_row(L, hprev, act[j], row)
                if y is None:
                    y = np.empty((n_nodes,) + yi.shape, np.float32)
                y[i] = yi
                if caches is not None:
                    caches[i].append((pre[i].copy(), act[j].copy(), tuple(v.copy() for v in row)))
                if store:
                    states[i].ssm.append(live_ssm[i].copy())
                if parent[i] >= 0 and last_child.get(parent[i]) == i:
                    live_ssm.pop(parent[i])                       # its last child is done
                peak_live = max(peak_live, len(live_ssm))
                if i not in last_child:
                    live_ssm.pop(i)                               # a leaf: nobody reads it
        for idx in tiles:
            x[idx] += model.mixer_out(L, y[idx], tuple(e[idx] for e in extras))
    return {"logits": model.logits(x), "states": states, "cache": caches, "peak_live_states": peak_live}


def verify_cost(model: MambaLM, n_nodes, tile, peak_live_states):
    """What a verification pass of `n_nodes` in tiles of `tile` costs: peak bytes of parent
    states held (`peak_state_bytes`), flops, and bytes moved (every layer weight once per tile,
    the embedding once, each node's state read and written once per layer)."""
    cfg = model.cfg
    layer_state_bytes = model.initial_state().nbytes // cfg.num_hidden_layers
    weight_bytes = sum(v.nbytes for key, v in model.w.items() if "layers" in key)
    tiles = -(-n_nodes // tile)
    return {"peak_state_bytes": peak_live_states * layer_state_bytes,
            "flops": n_nodes * (cfg.num_hidden_layers * model.layer_flops() + 2 * cfg.hidden_size * cfg.vocab_size),
            "bytes_moved": tiles * weight_bytes + model.w["backbone.embeddings.weight"].nbytes
            + 2 * n_nodes * layer_state_bytes * cfg.num_hidden_layers}


def _recompute(model: MambaLM, state: MambaState, path_caches):
    """Re-run only the conv-window shifts and SSM recurrences along an accepted path."""
    ops = model.ops
    new = state.copy()
    for node_cache in path_caches:
        for li, (pre, act, inputs) in enumerate(node_cache):
            L = model.layers[li]
            new.conv[li] = ops.conv_step(new.conv[li], pre, L["conv_w"], L["conv_b"])[1]
            new.ssm[li] = model.ssm_row(L, new.ssm[li], act, inputs)[1]
    return new


def make_draft(target: MambaLM, spec: str, seed=0):
    """Derive a draft from the target (no pretrained weights can be downloaded here):
    'self' (the target itself), 'noiseS' (weights x (1 + S * N(0,1))), 'layersL' (the first L
    layers with the target's embedding and final norm)."""
    cfg = target.cfg
    if spec == "self":
        return target
    if spec.startswith("noise"):
        try:
            sigma = float(spec[5:])
        except ValueError:
            raise ValueError(f"draft: expected noise<sigma>, got {spec!r}") from None
        rng = np.random.default_rng(seed)
        w = {k: (v * (1 + sigma * rng.standard_normal(v.shape))).astype(np.float32)
             if "layers" in k and not k.endswith("A_log") else v for k, v in target.w.items()}
        return type(target)(cfg, w)
    if spec.startswith("layers"):
        try:
            n = int(spec[6:])
        except ValueError:
            raise ValueError(f"draft: expected layers<N>, got {spec!r}") from None
        if not 1 <= n <= cfg.num_hidden_layers:
            raise ValueError(f"draft: layers must be 1..{cfg.num_hidden_layers}, got {n}")
        from dataclasses import replace
        small = replace(cfg, num_hidden_layers=n)
        w = {k: v for k, v in target.w.items() if "layers." not in k or int(k.split(".")[2]) < n}
        return type(target)(small, w)
    raise ValueError(f"draft: unknown {spec!r}; allowed: self, noise<sigma>, layers<N>, or a directory")


def speculative_generate(target: MambaLM, draft: MambaLM, prompt, n_tokens, tree=(3, 2, 1),
                         backtrack="hybrid", memory_budget=1 << 20, sample=False,
                         temperature=1.0, seed=0, tile=8, verify=None, recompute=None):
    """Generate n_tokens after `prompt` with draft + target. Returns (tokens, SpecStats).
    `verify` and `recompute` replace `verify_tree` and the recompute backtracking (same
    arguments and results): a testbench passes versions that run parts on the RTL."""
    verify = verify or verify_tree
    recompute = recompute or _recompute
    widths = TreeShape(tree)
    if backtrack not in BACKTRACK:
        raise ValueError(f"backtrack: unknown {backtrack!r}; allowed: {', '.join(BACKTRACK)}")
    prompt = target.check_tokens(np.asarray(prompt))
    if prompt.size == 0:
        raise ValueError("prompt: needs at least one token")
    rng = np.random.default_rng(seed) if sample else None
    stats = SpecStats()
    S = target.forward(prompt[:-1], target.initial_state(), return_state=True)[1] if prompt.size > 1 \
        else target.initial_state()
    D = draft.forward(prompt[:-1], draft.initial_state(), return_state=True)[1] if prompt.size > 1 \
        else draft.initial_state()
    last = int(prompt[-1])
    out = []
    while len(out) < n_tokens:
        t = _build_tree(draft, D, last, widths, rng, temperature)
        n_nodes = len(t.tokens)
        depth = [0] * n_nodes
        for i in range(1, n_nodes):
            depth[i] = depth[t.parent[i]] + 1
        stats.tree_depth_sum += max(depth)
        nbytes = S.nbytes
        strategy = backtrack if backtrack != "hybrid" else \
            ("store" if n_nodes * nbytes <= memory_budget else "recompute")
        stats.strategy_used[strategy] = stats.strategy_used.get(strategy, 0) + 1
        v = verify(target, S, t.tokens, t.parent, tile, cache=strategy == "recompute",
                   store=strategy == "store")
        v.update(verify_cost(target, n_nodes, tile, v["peak_live_states"]))
        stats.rounds += 1
        stats.target_passes += 1
        stats.nodes_verified += n_nodes
        stats.draft_tokens += n_nodes - 1
        stats.verify_flops += v["flops"]
        stats.verify_bytes_moved += v["bytes_moved"]
        # acceptance walk
        node, path, emitted = 0, [0], []
        while True:
            logits = v["logits"][node]
            kids = t.children[node]
            if not sample:
                pred = int(np.argmax(logits))
                nxt = next((c for c in kids if t.tokens[c] == pred), None)
                emitted.append(pred)
                if nxt is None:
                    break
                node = nxt
            else:
                p = _softmax(logits, temperature)
                q = t.q[node]
                chosen = None
                for c in kids:
                    tok = t.tokens[c]
                    if rng.random() < min(1.0, p[tok] / q[tok]):
                        chosen = c
                        break
                    p = np.maximum(p - q, 0.0)
                    p = p / p.sum()
                if chosen is None:
                    emitted.append(int(rng.choice(p.size, p=p)))
                    break
                emitted.append(t.tokens[chosen])
                node = chosen
            path.append(node)
        stats.accepted_draft_tokens += len(path) - 1
        # backtrack: target state after the last accepted node
        if strategy == "store":
            S = v["states"][node]
            stats.backtrack_bytes += n_nodes * nbytes
        else:
            S = recompute(target, S, [v["cache"][i] for i in path])
            per_node = sum(pre.nbytes + act.nbytes + sum(a.nbytes for a in inputs)
                           for pre, act, inputs in v["cache"][0])
            stats.backtrack_bytes += n_nodes * per_node
            stats.backtrack_flops += len(path) * target.cfg.num_hidden_layers * \
                6 * target.cfg.intermediate_size * target.cfg.state_size
        peak = v["peak_state_bytes"] + (n_nodes * nbytes if strategy == "store" else 0)
        stats.peak_state_bytes = max(stats.peak_state_bytes, peak)
        stats.verifications.append({"nodes": n_nodes, "target_passes": 1, "accepted": len(path) - 1,
                                    "emitted": len(emitted), "strategy": strategy,
                                    "peak_state_bytes": peak, "bytes_moved": v["bytes_moved"],
                                    "flops": v["flops"]})
        # draft: re-run along the accepted path (cheap, small model)
        for i in path:
            D = draft.step(t.tokens[i], D)[1]
        out.extend(emitted)
        stats.emitted += len(emitted)
        last = emitted[-1]
    return out[:n_tokens], stats
