"""specmx's sentence-embedding evaluation: similarity pairs and retrieval queries, and the
metrics that compare an arithmetic configuration's embeddings with the float32 reference's.

The set (`models/eval/minilm_eval.yaml`, written for specmx) has 10 domains of 5 topics; each
topic a statement a, a paraphrase p, a related statement r and queries q1 (answer a), q2
(answer r). Pairs, by one fixed rule: (a, p) label 5, (a, r) 3, (a, a of the next topic in the
domain) 1, (p, a of the same topic number in the next domain) 0. Retrieval: queries q1, q2
against the corpus of every a and r. A subset keeps the first `domains` domains and the first
`topics` topics of each (and only their corpus): `domains=10, topics=5` is the whole set (250
sentences, 200 pairs, 100 queries); the rule wraps within the subset.

Metrics (plain numpy):
- cosine_mean / cosine_min: cosine between each sentence's embedding and the reference's;
- spearman: rank correlation of the pairs' cosine similarities with the labels (average ranks
  for ties); spearman_ref is the reference's; relative_loss = 1 - spearman / spearman_ref;
- top1_agreement: share of queries whose best corpus match equals the reference's;
  top1_accuracy: share whose best match is the intended answer.
"""

from pathlib import Path

import numpy as np
import yaml

__all__ = ["EvalSet", "load_eval", "spearman", "metrics", "TOPICS", "DOMAINS"]

DATA = Path(__file__).parent / "eval" / "minilm_eval.yaml"
TOPICS = 5
DOMAINS = 10


class EvalSet:
    """Sentences (unique), pairs (i, j, label) and queries (i, answer j) over `corpus` indices."""

    def __init__(self, sentences, pairs, queries, corpus):
        self.sentences, self.pairs, self.queries, self.corpus = sentences, pairs, queries, corpus


def load_eval(topics=TOPICS, domains=DOMAINS, path=DATA):
    """The evaluation set, or its subset of the first `domains` (1..10) domains and the first
    `topics` (1..5) topics of each."""
    if not 1 <= topics <= TOPICS:
        raise ValueError(f"topics: must be 1..{TOPICS} per domain, got {topics}")
    if not 1 <= domains <= DOMAINS:
        raise ValueError(f"domains: must be 1..{DOMAINS}, got {domains}")
    n_domains = domains
    domains = yaml.safe_load(Path(path).read_text())
    names = list(domains)[:n_domains]
    index, sentences = {}, []

    def idx(text):
        if text not in index:
            index[text] = len(sentences)
            sentences.append(text)
        return index[text]

    pairs, queries, corpus = [], [], []
    for d, name in enumerate(names):
        entries = domains[name][:topics]
        nxt = domains[names[(d + 1) % len(names)]][:topics]
        for t, e in enumerate(entries):
            a, p, r = idx(e["a"]), idx(e["p"]), idx(e["r"])
            pairs += [(a, p, 5.0), (a, r, 3.0), (a, idx(entries[(t + 1) % len(entries)]["a"]), 1.0),
                      (p, idx(nxt[t]["a"]), 0.0)]
            corpus += [a, r]
            queries += [(idx(e["q1"]), a), (idx(e["q2"]), r)]
    pairs = [(i, j, lab) for i, j, lab in pairs if i != j]        # a one-topic domain has no next topic
    return EvalSet(sentences, pairs, queries, corpus)


def _ranks(x):
    """Ranks 1..n with ties given their average rank."""
    x = np.asarray(x, np.float64)
    order = np.argsort(x, kind="stable")
    ranks = np.empty(len(x))
    ranks[order] = np.arange(1, len(x) + 1)
    for v in np.unique(x):
        tie = x == v
        if tie.sum() > 1:
            ranks[tie] = ranks[tie].mean()
    return ranks


def spearman(x, y):
    """Spearman's rank correlation (Pearson on average ranks)."""
    rx, ry = _ranks(x), _ranks(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    return float((rx * ry).sum() / np.sqrt((rx * rx).sum() * (ry * ry).sum()))


def _scores(ev, emb):
    sims = np.array([float(emb[i] @ emb[j]) for i, j, _ in ev.pairs])
    corpus = emb[ev.corpus]
    best = [ev.corpus[int(np.argmax(corpus @ emb[q]))] for q, _ in ev.queries]
    return sims, best


def metrics(ev, emb, ref):
    """The metrics of embeddings `emb` against reference embeddings `ref` (both [n, d], unit)."""
    labels = [lab for _, _, lab in ev.pairs]
    sims, best = _scores(ev, emb)
    sims_ref, best_ref = _scores(ev, ref)
    cos = (emb * ref).sum(1) / (np.linalg.norm(emb, axis=1) * np.linalg.norm(ref, axis=1))
    rho, rho_ref = spearman(sims, labels), spearman(sims_ref, labels)
    return {"spearman": rho, "spearman_ref": rho_ref, "relative_loss": 1 - rho / rho_ref,
            "cosine_mean": float(cos.mean()), "cosine_min": float(cos.min()),
            "top1_agreement": float(np.mean([b == r for b, r in zip(best, best_ref)])),
            "top1_accuracy": float(np.mean([b == a for b, (_, a) in zip(best, ev.queries)])),
            "top1_accuracy_ref": float(np.mean([b == a for b, (_, a) in zip(best_ref, ev.queries)])),
            "sentences": len(ev.sentences), "pairs": len(ev.pairs), "queries": len(ev.queries)}
