"""all-MiniLM-L6-v2 in numpy against transformers, the evaluation set and its metrics, and a
reduced `specmx study minilm` (a few sentences on the engine's arithmetic, bounds asserted)."""

import json

import numpy as np
import pytest
from cli_run import run_cli

from specmx.models.bert import MiniLM, engine_matmul, model_dir
from specmx.models.config import FMAConfig
from specmx.models.minilm_eval import load_eval, metrics, spearman

TEXTS = ["Boil the pasta in salted water for ten minutes.", "The cat sleeps.",
         "A strong wind is blowing from the west, said the forecast for the north."]


@pytest.fixture(scope="module")
def model():
    return MiniLM.from_pretrained()


def test_float_forward_matches_transformers(model):
    """BertModel + mean pooling + normalization (sentence-transformers' modules for this model)."""
    torch = pytest.importorskip("torch")
    from transformers import BertModel
    hf = BertModel.from_pretrained(str(model_dir())).eval()
    ours = model.embed(TEXTS)
    with torch.no_grad():
        for text, e in zip(TEXTS, ours):
            ids = torch.tensor([model.tokenizer.encode(text).ids])
            v = hf(input_ids=ids).last_hidden_state[0].mean(0)
            ref = (v / v.norm()).numpy()
            assert np.abs(ref - e).max() < 1e-5
    assert np.allclose(np.linalg.norm(ours, axis=1), 1, atol=1e-6)


def test_eval_set_shape_and_rule():
    full = load_eval()
    assert (len(full.sentences), len(full.pairs), len(full.queries), len(full.corpus)) == (250, 200, 100, 100)
    assert sorted({lab for *_, lab in full.pairs}) == [0.0, 1.0, 3.0, 5.0]
    sub = load_eval(1)
    assert (len(sub.sentences), len(sub.queries), len(sub.corpus)) == (50, 20, 20)
    with pytest.raises(ValueError, match="topics: must be 1..5"):
        load_eval(6)
    with pytest.raises(ValueError, match="domains: must be 1..10"):
        load_eval(2, 11)


def test_spearman_with_ties():
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    # x ranks (1.5, 1.5, 3, 4) against y ranks (1, 2, 3, 4): Pearson of the ranks
    assert spearman([5, 5, 7, 9], [1, 2, 3, 4]) == pytest.approx(0.9486832980505138)


def test_engine_arithmetic_on_a_few_sentences_and_negative_control(model):
    """bf16 operands with exact and approximate normalization stay within a cosine of 1e-4
    of float32; embeddings corrupted by noise fail the same bound and lose retrieval agreement."""
    ref = model.embed(TEXTS[:2])
    for cfg in (FMAConfig(), FMAConfig(window=8, step=2, policy="round")):
        emb = model.embed(TEXTS[:2], engine_matmul(cfg))
        cos = (emb * ref).sum(1)
        assert cos.min() > 0.9999 and cos.min() < 1.0, (cfg.name, cos)
    ev = load_eval(1)
    full_ref = model.embed(ev.sentences)
    rng = np.random.default_rng(0)
    noisy = full_ref + rng.standard_normal(full_ref.shape).astype(np.float32) * 0.05
    noisy /= np.linalg.norm(noisy, axis=1, keepdims=True)
    same, bad = metrics(ev, full_ref, full_ref), metrics(ev, noisy, full_ref)
    assert same["cosine_min"] == pytest.approx(1.0) and same["top1_agreement"] == 1.0 and same["relative_loss"] == 0
    assert bad["cosine_min"] < 0.9999 and bad["top1_agreement"] < 1.0


def test_study_cli_json(tmp_path):
    proc = run_cli("study", "minilm", "--domains", "2", "--topics", "2", "--jobs", "1", "--json", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    r = json.loads(proc.stdout)
    for key in ("spearman", "spearman_ref", "cosine_mean", "top1_agreement", "relative_loss"):
        assert key in r
    assert abs(r["relative_loss"]) < 0.01 and r["cosine_mean"] > 0.9999 and r["top1_agreement"] == 1.0
    assert (r["sentences"], r["pairs"], r["queries"]) == (20, 16, 8)
    assert r["spearman_ref"] > 0.7 and r["top1_accuracy_ref"] >= 0.8     # the set is a sensible task
    assert list(tmp_path.glob("study_minilm_*.json"))


@pytest.mark.parametrize("args, message", [
    (["--norm", "window=3,step=2"], "window: must be a multiple of step=2"),
    (["--norm", "wide"], "norm: cannot parse 'wide'"),
    (["--topics", "9"], "topics: must be 1..5"),
    (["--domains", "0"], "domains: must be 1..10"),
    (["--acc", "fp16"], "invalid choice"),
])
def test_study_bad_input(tmp_path, args, message):
    proc = run_cli("study", "minilm", *args, "--out", str(tmp_path))
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr
    assert not list(tmp_path.iterdir())
