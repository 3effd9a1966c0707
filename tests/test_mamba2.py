"""Mamba-2 golden model against HuggingFace Mamba2ForCausalLM on CPU (odd sizes, several groups),
prefill = decode, greedy continuations, file round trip and bad input."""

import numpy as np
import pytest

from specmx.models.mamba2 import Mamba2Config, Mamba2LM, get_preset

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")


def _hf(model, tmp_path):
    model.save_pretrained(tmp_path)
    return transformers.Mamba2ForCausalLM.from_pretrained(str(tmp_path), dtype=torch.float32).eval()


@pytest.mark.parametrize("cfg", [get_preset("mamba2-micro"), get_preset("mamba2-tiny"),
                                 Mamba2Config(vocab_size=37, hidden_size=40, state_size=12, num_hidden_layers=3,
                                              head_dim=10, n_groups=2, tie_word_embeddings=False)],
                         ids=["micro-2groups", "tiny-3groups", "odd-untied"])
def test_logits_match_transformers(cfg, tmp_path):
    model = Mamba2LM.random(cfg, seed=3)
    hf = _hf(model, tmp_path)
    ids = np.random.default_rng(0).integers(0, cfg.vocab_size, 23)
    with torch.no_grad():
        ref = hf(torch.from_numpy(ids[None])).logits[0].numpy()
    got = model.forward(ids)
    assert np.max(np.abs(got - ref)) <= 1e-4 * np.max(np.abs(ref)), np.max(np.abs(got - ref))
    # negative control: one head's A off by 1% is caught by the same comparison
    w = dict(model.w)
    w["backbone.layers.0.mixer.A_log"] = w["backbone.layers.0.mixer.A_log"] + np.log(1.01)
    assert np.max(np.abs(Mamba2LM(cfg, w).forward(ids) - ref)) > 1e-4 * np.max(np.abs(ref))


def test_greedy_matches_transformers_generate(tmp_path):
    model = Mamba2LM.random(get_preset("mamba2-tiny"), seed=5)
    hf = _hf(model, tmp_path)
    prompt = [3, 1, 4, 1, 5]
    with torch.no_grad():
        ref = hf.generate(torch.tensor([prompt]), max_new_tokens=12, min_new_tokens=12, do_sample=False)
    assert model.greedy(prompt, 12) == ref[0, len(prompt):].tolist()


def test_prefill_equals_decode():
    """Same conv and scan steps; only batched vs single-row matrix products round differently."""
    model = Mamba2LM.random(get_preset("mamba2-micro"), seed=1)
    ids = [1, 5, 2, 7, 3]
    logits, state = model.forward(ids, return_state=True)
    s = model.initial_state()
    for i, t in enumerate(ids):
        step_logits, s = model.step(t, s)
        np.testing.assert_allclose(step_logits, logits[i], rtol=1e-5, atol=1e-6)
    for a, b in zip(s.ssm, state.ssm):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_round_trip_and_bad_config(tmp_path):
    model = Mamba2LM.random(get_preset("mamba2-micro"), seed=2)
    model.save_pretrained(tmp_path)
    again = Mamba2LM.from_pretrained(tmp_path)
    assert np.array_equal(again.forward([1, 2, 3]), model.forward([1, 2, 3]))
    with pytest.raises(ValueError, match="head_dim: must divide expand \\* hidden_size = 64, got 7"):
        Mamba2Config(hidden_size=32, head_dim=7)
    with pytest.raises(ValueError, match="n_groups: must divide the number of heads 8, got 3"):
        Mamba2Config(hidden_size=32, head_dim=8, n_groups=3)


def test_cli_picks_the_family_from_config_json(tmp_path):
    import json
    import subprocess
    import sys
    model = Mamba2LM.random(get_preset("mamba2-micro"), seed=4)
    model.save_pretrained(tmp_path)
    proc = subprocess.run([sys.executable, "-m", "specmx.cli", "mamba", "generate", "--model", str(tmp_path),
                           "--prompt", "1,2,3", "--tokens", "6", "--json"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["tokens"] == model.greedy([1, 2, 3], 6)
