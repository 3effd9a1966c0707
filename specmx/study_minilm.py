"""`specmx study minilm`: all-MiniLM-L6-v2 with every matmul on the matrix engine's arithmetic,
against the float32 reference, on specmx's evaluation set (`models.minilm_eval`).

Sentences are embedded in chunks of a few on `jobs` worker processes (each loads the model
once); exact configurations take the native route and finish in seconds, approximate ones run
the compiled datapath (`models.fma_kernel`) at tens of millions of multiply-adds per second.
"""

import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np

__all__ = ["run_minilm"]

_MODEL = None


def _init():
    global _MODEL
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    from specmx.models.bert import MiniLM
    _MODEL = MiniLM.from_pretrained()


def _embed(cfg, texts):
    from specmx.models.bert import engine_matmul, float_matmul
    if _MODEL is None:
        _init()
    return _MODEL.embed(texts, float_matmul if cfg is None else engine_matmul(cfg))


def _chunks(model, texts, size):
    """Index chunks of about `size` sentences, similar lengths together (less padding)."""
    lengths = [len(t) for t in model.tokenize(texts)]
    order = sorted(range(len(texts)), key=lambda i: lengths[i])
    return [order[s:s + size] for s in range(0, len(order), size)], sum(model.macs(n) for n in lengths)


def run_minilm(cfg, topics=5, jobs=2, chunk=6, quiet=False, domains=10):
    """Metrics of FMA config `cfg` against float32 (`minilm_eval.metrics`) plus the run's
    figures (seconds, multiply-adds, rate)."""
    from specmx.models.bert import MiniLM
    from specmx.models.minilm_eval import load_eval, metrics
    ev = load_eval(topics, domains)
    model = MiniLM.from_pretrained()
    ref = model.embed(ev.sentences)
    chunks, macs = _chunks(model, ev.sentences, chunk)
    emb = np.zeros_like(ref)
    t0 = time.perf_counter()
    done = 0
    if jobs <= 1:
        results = ((idx, _embed(cfg, [ev.sentences[i] for i in idx])) for idx in chunks)
        pool = None
    else:
        pool = ProcessPoolExecutor(jobs, initializer=_init)
        futures = [(idx, pool.submit(_embed, cfg, [ev.sentences[i] for i in idx])) for idx in chunks]
        results = ((idx, f.result()) for idx, f in futures)
    try:
        for idx, e in results:
            emb[idx] = e
            done += len(idx)
            if not quiet:
                print(f"  minilm {cfg.name}: {done}/{len(ev.sentences)} sentences, "
                      f"{time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    seconds = time.perf_counter() - t0
    out = metrics(ev, emb, ref)
    out.update({"config": cfg.name, "topics_per_domain": topics, "domains": domains, "seconds": seconds, "macs": macs,
                "macs_per_s": macs / seconds, "jobs": jobs})
    return out
