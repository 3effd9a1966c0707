"""The shipped byte-level models (models/pretrained): they load with specmx's from_pretrained,
agree with transformers on CPU, decode text, and speculative decoding with the trained draft
gives exactly the plain greedy output on held-out source code."""

import json
import subprocess
import sys

import numpy as np
import pytest

from specmx.models.corpus import build_corpus, ids_to_text, is_heldout, stdlib_files, text_to_ids
from specmx.models.mamba import PRETRAINED, MambaLM, load_pretrained, pretrained_dir
from specmx.models.specdec import speculative_generate


def _heldout_prompts(count=3, length=48):
    """The opening bytes of the first held-out modules with at least `length` bytes."""
    prompts = []
    for name, path in stdlib_files():
        data = path.read_bytes()
        if is_heldout(name) and len(data) >= length:
            prompts.append(list(data[:length]))
        if len(prompts) == count:
            return prompts
    return prompts


@pytest.mark.parametrize("name", PRETRAINED)
def test_shipped_model_agrees_with_transformers(name):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    ours = load_pretrained(name)
    hf_class = transformers.Mamba2ForCausalLM if "mamba2" in name else transformers.MambaForCausalLM
    theirs = hf_class.from_pretrained(str(pretrained_dir(name)), dtype=torch.float32).eval()
    ids = _heldout_prompts(1, 96)[0]
    with torch.no_grad():
        ref = theirs(torch.tensor([ids])).logits[0].numpy()
    got = ours.forward(ids)
    assert np.max(np.abs(got - ref)) <= 1e-4 * np.max(np.abs(ref)), np.max(np.abs(got - ref))
    # negative control: a model one weight off is caught by the same comparison
    w = dict(ours.w)
    w["backbone.layers.0.mixer.D"] = w["backbone.layers.0.mixer.D"] * 1.01
    off = type(ours)(ours.cfg, w).forward(ids)
    assert np.max(np.abs(off - ref)) > 1e-4 * np.max(np.abs(ref))


def test_model_card_and_size():
    total = 0
    for name in PRETRAINED:
        d = pretrained_dir(name)
        card = (d / "README.md").read_text()
        log = json.loads((d / "train_log.json").read_text())
        assert f"{log['heldout_bits_per_byte']}" in card and "held-out rule" in card
        total += sum(p.stat().st_size for p in d.iterdir())
    assert total <= 15 * 2 ** 20


def test_heldout_rule_is_stable_and_disjoint():
    c = build_corpus()
    assert set(c["train_modules"]).isdisjoint(c["heldout_modules"])
    assert 0.05 < len(c["heldout_modules"]) / (len(c["train_modules"]) + len(c["heldout_modules"])) < 0.15
    assert all(is_heldout(m) for m in c["heldout_modules"]) and not any(is_heldout(m) for m in c["train_modules"][:50])
    assert ids_to_text(text_to_ids("def parse(")) == "def parse("


@pytest.mark.parametrize("family", ["mamba1", "mamba2"])
def test_speculative_equals_greedy_on_heldout_code(family):
    target, draft = load_pretrained(f"py-{family}"), load_pretrained(f"py-{family}-draft")
    accepted = 0
    for prompt in _heldout_prompts():
        plain = target.greedy(prompt, 32)
        spec, stats = speculative_generate(target, draft, prompt, 32, (3, 2, 1))
        assert spec == plain
        accepted += stats.accepted_draft_tokens
    assert accepted > 0          # the trained draft predicts some of the target's bytes


@pytest.mark.parametrize("family", ["mamba1", "mamba2"])
def test_cli_generates_text(family):
    proc = subprocess.run([sys.executable, "-m", "specmx.cli", "mamba", "generate", "--model", f"py-{family}",
                           "--draft", f"py-{family}-draft", "--prompt-text", "def parse(", "--tokens", "24", "--json"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    target = load_pretrained(f"py-{family}")
    assert out["tokens"] == target.greedy(text_to_ids("def parse("), 24)
    assert out["text"] == ids_to_text(out["tokens"])
