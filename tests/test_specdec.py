"""Speculative decoding: exactness (greedy), distribution (sampling), backtracking costs."""

import json
import subprocess
import sys

import numpy as np
import pytest

from specmx.models.mamba import MambaLM, get_preset
from specmx.models.specdec import TreeShape, make_draft, speculative_generate


@pytest.fixture(scope="module")
def target():
    return MambaLM.random(get_preset("tiny"), seed=1)


@pytest.mark.parametrize("draft_spec", ["self", "noise0.05", "noise0.1", "noise0.2", "layers1"])
@pytest.mark.parametrize("backtrack", ["store", "recompute", "hybrid"])
def test_speculative_equals_greedy(target, draft_spec, backtrack):
    draft = make_draft(target, draft_spec, seed=3)
    prompt = [1, 2, 3, 4]
    toks, stats = speculative_generate(target, draft, prompt, 40, "3,2,1", backtrack)
    assert toks == target.greedy(prompt, 40)
    assert stats.target_passes == stats.rounds
    if draft_spec == "self":          # every draft token accepted: 4 tokens per target pass
        assert stats.rounds == 10


def test_acceptance_spans_a_useful_range(target):
    rates = {}
    for spec in ("noise0.02", "noise0.05", "noise0.1", "noise0.2"):
        _, st = speculative_generate(target, make_draft(target, spec, seed=3), [1, 2, 3], 64, (3, 2, 1))
        rates[spec] = st.summary()["acceptance_rate"]
    assert max(rates.values()) >= 0.8 and min(rates.values()) <= 0.4, rates
    assert rates["noise0.02"] > rates["noise0.05"] > rates["noise0.1"] > rates["noise0.2"], rates


def test_backtracking_costs_differ_but_tokens_do_not(target):
    draft = make_draft(target, "noise0.05", seed=3)
    runs = {bt: speculative_generate(target, draft, [7, 8], 30, (3, 2, 1), bt, memory_budget=0)
            for bt in ("store", "recompute", "hybrid")}
    assert runs["store"][0] == runs["recompute"][0] == runs["hybrid"][0]
    store, recompute = runs["store"][1], runs["recompute"][1]
    assert recompute.backtrack_bytes < store.backtrack_bytes / 2      # small activations only
    assert recompute.backtrack_flops > 0 == store.backtrack_flops
    assert runs["hybrid"][1].strategy_used == {"recompute": runs["hybrid"][1].rounds}   # budget 0


def _chi2_ok(counts, probs, critical):
    """Pearson chi-square with cells of expected count < 5 pooled; True if below `critical`."""
    expected = probs * counts.sum()
    small = expected < 5
    obs = np.append(counts[~small], counts[small].sum())
    exp = np.append(expected[~small], expected[small].sum())
    keep = exp > 0
    stat = np.sum((obs[keep] - exp[keep]) ** 2 / exp[keep])
    return stat < critical, stat


def test_rejection_sampling_preserves_target_distribution():
    """First-token and second-token marginals of speculative sampling equal the target's
    (chi-square, 15 dof, p=0.001 critical value 37.70), with a fixed seed."""
    model = MambaLM.random(get_preset("micro"), seed=5)
    draft = make_draft(model, "noise0.5", seed=1)
    T, prompt = 0.05, [3, 1]

    def dist(m, toks):
        z = m.forward(np.array(toks))[-1] / T
        e = np.exp(z - z.max())
        return e / e.sum()

    p1 = dist(model, prompt)
    p2 = sum(p1[a] * dist(model, prompt + [a]) for a in range(16))
    rng = np.random.default_rng(0)
    c1, c2 = np.zeros(16), np.zeros(16)
    for i in range(1500):
        toks, _ = speculative_generate(model, draft, prompt, 2, (2, 2), sample=True,
                                       temperature=T, seed=int(rng.integers(1 << 30)))
        c1[toks[0]] += 1
        c2[toks[1]] += 1
    ok1, s1 = _chi2_ok(c1, p1, 37.70)
    ok2, s2 = _chi2_ok(c2, p2, 37.70)
    assert ok1 and ok2, (s1, s2)
    # negative control: the draft's own distribution is detectably different
    q1 = dist(draft, prompt)
    assert not _chi2_ok(c1, q1, 37.70)[0]


def test_node_budget_tree_and_per_verification_records(target):
    draft = make_draft(target, "noise0.05", seed=3)
    toks, st = speculative_generate(target, draft, [1, 2, 3, 4], 40, "budget=12")
    assert toks == target.greedy([1, 2, 3, 4], 40)
    s = st.summary()
    assert all(v["nodes"] == 13 for v in s["verifications"])        # root + 12 draft nodes
    assert len(s["verifications"]) == s["target_passes"] == s["rounds"]
    assert sum(v["emitted"] for v in s["verifications"]) == s["emitted"]
    assert 0 < s["acceptance_rate"] <= 1
    with pytest.raises(ValueError, match="tree: a node budget needs greedy acceptance"):
        speculative_generate(target, draft, [1], 4, "budget=4", sample=True)


@pytest.mark.parametrize("bad", ["0,2", "3,-1", "", "a,b", "budget=0", "budget=x", "16,16,16,2"])
def test_tree_shape_errors(bad):
    with pytest.raises(ValueError, match="tree: "):
        TreeShape(bad)


def test_tree_size_limit_counts_nodes():
    """The limit is on nodes (the sum over depths of the widths' running product): 4,2,2,1 has
    4 + 8 + 16 + 16 = 44 nodes; 16,16,16 has 4368 > 4096; 16,16,15 has 4112; 16,16,14 3856."""
    assert TreeShape("4,2,2,1") == (4, 2, 2, 1)
    assert TreeShape("16,16,14") == (16, 16, 14)
    with pytest.raises(ValueError, match="too many nodes"):
        TreeShape("16,16,15")


def test_cli_json_matches_greedy():
    proc = subprocess.run([sys.executable, "-m", "specmx.cli", "mamba", "generate", "--model", "tiny",
                           "--draft", "noise0.05", "--tree", "3,2,1", "--backtrack", "hybrid",
                           "--tokens", "24", "--seed", "0", "--prompt", "1,2,3", "--json"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    model = MambaLM.random(get_preset("tiny"), seed=0)
    assert out["tokens"] == model.greedy([1, 2, 3], 24)
    assert out["stats"]["target_passes"] < 24


@pytest.fixture(scope="module")
def target2():
    from specmx.models.mamba2 import Mamba2LM, get_preset as get_preset2
    return Mamba2LM.random(get_preset2("mamba2-tiny"), seed=1)


@pytest.mark.parametrize("draft_spec", ["self", "noise0.1", "layers1"])
@pytest.mark.parametrize("backtrack", ["store", "recompute", "hybrid"])
def test_mamba2_speculative_equals_greedy(target2, draft_spec, backtrack):
    """Mamba-2 (3 groups) target/draft pairs: the same trees, acceptance and backtracking."""
    draft = make_draft(target2, draft_spec, seed=3)
    assert type(draft) is type(target2)
    prompt = [1, 2, 3, 4]
    toks, stats = speculative_generate(target2, draft, prompt, 24, "3,2,1", backtrack)
    assert toks == target2.greedy(prompt, 24)
    if draft_spec == "self":
        assert stats.rounds == 6


def test_mamba2_rejection_sampling_preserves_target_distribution():
    from specmx.models.mamba2 import Mamba2LM, get_preset as get_preset2
    model = Mamba2LM.random(get_preset2("mamba2-micro"), seed=5)
    model.w["backbone.embeddings.weight"] *= 20.0
    model = Mamba2LM(model.cfg, model.w)
    draft = make_draft(model, "noise0.5", seed=1)
    T, prompt = 1.0, [3, 1]
    z = model.forward(np.array(prompt))[-1] / T
    p1 = np.exp(z - z.max())
    p1 /= p1.sum()
    rng = np.random.default_rng(0)
    c1 = np.zeros(16)
    for _ in range(800):
        toks, _ = speculative_generate(model, draft, prompt, 1, (2, 2), sample=True,
                                       temperature=T, seed=int(rng.integers(1 << 30)))
        c1[toks[0]] += 1
    assert _chi2_ok(c1, p1, 37.70)[0]
