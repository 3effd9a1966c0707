"""numpy Mamba vs HuggingFace transformers (an implementation nobody here wrote)."""

import numpy as np
import pytest
import torch
from transformers import MambaForCausalLM

from specmx.models.mamba import MambaLM, get_preset


@pytest.fixture(scope="module", params=["tiny", "130m-2l"])
def pair(request, tmp_path_factory):
    model = MambaLM.random(get_preset(request.param), seed=1)
    d = tmp_path_factory.mktemp(request.param)
    model.save_pretrained(d)
    return model, MambaForCausalLM.from_pretrained(d).eval(), d


def test_logits_match_transformers(pair):
    model, hf, _ = pair
    toks = np.random.default_rng(0).integers(0, model.cfg.vocab_size, 24)
    ours = model.forward(toks)
    with torch.no_grad():
        ref = hf(torch.tensor(toks)[None]).logits[0].numpy()
    assert ours.dtype == np.float32 and ours.shape == (24, model.cfg.vocab_size)
    rel = np.max(np.abs(ours - ref)) / np.max(np.abs(ref))
    assert rel < 1e-4
    assert not np.allclose(ours, ref * 1.01, rtol=1e-4, atol=0)   # negative control


def test_greedy_32_tokens_match_transformers(pair):
    model, hf, _ = pair
    prompt = np.random.default_rng(1).integers(0, model.cfg.vocab_size, 8)
    with torch.no_grad():
        ref = hf.generate(torch.tensor(prompt)[None], max_new_tokens=32, min_new_tokens=32,
                          do_sample=False)[0, 8:].tolist()
    assert model.greedy(prompt, 32) == ref


def test_from_pretrained_roundtrip(pair):
    model, _, d = pair
    again = MambaLM.from_pretrained(d)
    toks = np.arange(10) % model.cfg.vocab_size
    assert np.array_equal(again.forward(toks), model.forward(toks))


def test_step_equals_forward():
    model = MambaLM.random(get_preset("tiny"), seed=2)
    toks = np.random.default_rng(3).integers(0, 512, 20)
    full = model.forward(toks)
    state = model.initial_state()
    for t, tok in enumerate(toks):
        logits, state = model.step(tok, state)
        np.testing.assert_allclose(logits, full[t], rtol=1e-5, atol=1e-6)
    # the state can be copied and restored
    saved = state.copy()
    a, _ = model.step(5, state)
    b, _ = model.step(5, saved)
    assert np.array_equal(a, b)


def test_bad_weights_and_tokens(tmp_path):
    model = MambaLM.random(get_preset("tiny"), seed=0)
    w = dict(model.w)
    del w["backbone.layers.1.mixer.D"]
    with pytest.raises(ValueError, match=r"missing tensor 'backbone.layers.1.mixer.D' \(expected shape \(128,\)\)"):
        MambaLM(model.cfg, w)
    w = dict(model.w)
    w["backbone.layers.0.mixer.A_log"] = np.zeros((128, 9), np.float32)
    with pytest.raises(ValueError, match=r"'backbone.layers.0.mixer.A_log' has shape \(128, 9\), expected \(128, 8\)"):
        MambaLM(model.cfg, w)
    with pytest.raises(ValueError, match=r"tokens: ids must be in 0..511"):
        model.forward(np.array([1, 512]))
    with pytest.raises(ValueError, match="model: unknown preset 'big'"):
        get_preset("big")
