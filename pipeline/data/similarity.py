"""Near-duplicate detection for prompts: normalised shingles + Jaccard similarity.

Used to keep the held-out eval set apart from the training set and by the data pipeline's
dedupe stage. The API is deliberately small:

    normalize(text) -> str                       lower-case, punctuation out, spaces collapsed
    shingles(text, k=CHAR_K) -> set[str]          character k-grams of the normalised text
    word_shingles(text, n=2) -> set[str]          word n-grams (for callers that want them)
    jaccard(a, b) -> float                        |a & b| / |a | b| of two sets (0.0 if both empty)
    similarity(a, b) -> float                     Jaccard of the two texts' character shingles
    find_near_duplicates(queries, corpus=None, threshold=DEFAULT_THRESHOLD)
        -> [(query_index, corpus_index, score), ...]  every pair with score >= threshold

Why character shingles of 4 on normalised text: user prompts are short (5 to 40 words), so
word n-grams are too sparse to survive a single reworded word or typo ("the quarterly
report" vs "my quarterly reprot"), while 4-character grams still overlap. Measured on
hand-made pairs (tests/test_similarity.py):
  identical text                                        1.00
  same request with two or three words changed         ~0.55 - 0.85
  same topic, different request                         ~0.20 - 0.35
  unrelated prompts                                     < 0.15
DEFAULT_THRESHOLD = 0.5 sits between the last two bands with a margin on each side: it
flags rewordings of the same request and leaves alone prompts that merely share a topic.
Raise it (0.7 to 0.8) to remove only near-verbatim copies.

Scale: brute force compares every pair exactly (fine up to about 10^6 pairs, i.e. 1,000 x
1,000 prompts, in a second or two). Above that, `datasketch.MinHashLSH` proposes
candidates and each candidate is verified with the exact Jaccard, so reported scores are
always exact; LSH can miss a few pairs close to the threshold (its recall is high but not 1).
"""

from __future__ import annotations

import re
import unicodedata
from typing import Iterable, Sequence

CHAR_K = 4
DEFAULT_THRESHOLD = 0.5
# Above this many query x corpus pairs, use MinHash LSH for candidates instead of brute force.
BRUTE_FORCE_MAX_PAIRS = 1_000_000
NUM_PERM = 128  # MinHash permutations: estimate error ~ 1/sqrt(128) ~ 0.09

_NON_WORD = re.compile(r"[^\w\s]+")
_SPACES = re.compile(r"\s+")


def normalize(text: str) -> str:
    """Lower-case, strip accents and punctuation, collapse whitespace."""
    text = unicodedata.normalize("NFKD", text)
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    text = _NON_WORD.sub(" ", text.lower().replace("'", "").replace("\u2019", ""))
    return _SPACES.sub(" ", text).strip()


def shingles(text: str, k: int = CHAR_K) -> set[str]:
    """Character k-grams of the normalised text (the whole text if it is shorter than k)."""
    norm = normalize(text)
    if not norm:
        return set()
    if len(norm) <= k:
        return {norm}
    return {norm[i:i + k] for i in range(len(norm) - k + 1)}


def word_shingles(text: str, n: int = 2) -> set[str]:
    """Word n-grams of the normalised text (the whole text if it has fewer than n words)."""
    words = normalize(text).split()
    if not words:
        return set()
    if len(words) <= n:
        return {" ".join(words)}
    return {" ".join(words[i:i + n]) for i in range(len(words) - n + 1)}


def jaccard(a: set, b: set) -> float:
    if not a and not b:
        return 0.0
    return len(a & b) / len(a | b)


def similarity(a: str, b: str) -> float:
    """Jaccard similarity of the character shingles of two texts, in [0, 1]."""
    return jaccard(shingles(a), shingles(b))


def find_near_duplicates(
    queries: Sequence[str],
    corpus: Sequence[str] | None = None,
    threshold: float = DEFAULT_THRESHOLD,
) -> list[tuple[int, int, float]]:
    """Every (query index, corpus index, score) with similarity >= threshold, best first.

    With `corpus=None` the queries are compared with each other (pairs i < j), which is what
    a dedupe stage wants; otherwise each query is compared with each corpus text.
    """
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")
    q_sh = [shingles(t) for t in queries]
    self_mode = corpus is None
    c_sh = q_sh if self_mode else [shingles(t) for t in corpus]
    n_pairs = len(q_sh) * len(c_sh)
    if n_pairs <= BRUTE_FORCE_MAX_PAIRS:
        candidates: Iterable[tuple[int, int]] = (
            (i, j) for i in range(len(q_sh)) for j in range(i + 1 if self_mode else 0, len(c_sh))
        )
    else:
        candidates = _lsh_candidates(q_sh, c_sh, threshold, self_mode)
    out = []
    for i, j in candidates:
        score = jaccard(q_sh[i], c_sh[j])
        if score >= threshold:
            out.append((i, j, round(score, 4)))
    out.sort(key=lambda t: (-t[2], t[0], t[1]))
    return out


def _lsh_candidates(q_sh, c_sh, threshold, self_mode):
    from datasketch import MinHash, MinHashLSH

    def mh(sh: set[str]) -> MinHash:
        m = MinHash(num_perm=NUM_PERM)
        for s in sh:
            m.update(s.encode("utf-8"))
        return m

    # A slightly lower LSH threshold trades a few extra exact checks for fewer misses.
    lsh = MinHashLSH(threshold=max(0.05, threshold - 0.1), num_perm=NUM_PERM)
    c_mh = [mh(s) for s in c_sh]
    for j, m in enumerate(c_mh):
        lsh.insert(j, m)
    pairs = set()
    for i, sh in enumerate(q_sh):
        m = c_mh[i] if self_mode else mh(sh)
        for j in lsh.query(m):
            if self_mode:
                if i != j:
                    pairs.add((min(i, j), max(i, j)))
            else:
                pairs.add((i, j))
    return sorted(pairs)
