"""Near-duplicate detection (pipeline/data/similarity.py) on hand-made pairs."""

from __future__ import annotations

import pytest

from pipeline.data import similarity as sim
from pipeline.data.similarity import DEFAULT_THRESHOLD, find_near_duplicates, jaccard, normalize, similarity

BASE = "Create a task to review the marketing proposal"
REWORDED = [
    "can you create a task to review the marketing proposal pls",
    "Make a task for reviewing the marketing proposal",
]
SAME_TOPIC = "What are my overdue tasks?"
UNRELATED = [
    "Add a task: call the dentist tomorrow",
    "I keep putting off this one difficult task",
    "this app is garbage and so are you",
]


def test_normalize_strips_case_punctuation_and_spaces():
    assert normalize("  Hello,   WORLD!! It's  me ") == "hello world its me"
    assert normalize("Café déjà-vu") == "cafe deja vu"


def test_jaccard_edge_cases():
    assert jaccard(set(), set()) == 0.0
    assert jaccard({"a"}, {"a"}) == 1.0
    assert jaccard({"a", "b"}, {"b", "c"}) == pytest.approx(1 / 3)


def test_identical_and_case_only_changes_score_one():
    assert similarity(BASE, BASE) == 1.0
    assert similarity(BASE, BASE.upper() + "!!!") == 1.0


@pytest.mark.parametrize("text", REWORDED)
def test_reworded_near_duplicates_are_above_threshold(text):
    assert similarity(BASE, text) >= DEFAULT_THRESHOLD


def test_typo_variant_is_a_near_duplicate():
    assert similarity("I finished the quarterly report", "finished the quarterly reprot finally") >= DEFAULT_THRESHOLD


def test_same_topic_different_request_is_below_threshold():
    assert similarity("What are my high priority tasks?", SAME_TOPIC) < DEFAULT_THRESHOLD


@pytest.mark.parametrize("text", UNRELATED)
def test_unrelated_prompts_are_well_below_threshold(text):
    assert similarity(BASE, text) < 0.2


def test_word_shingles():
    assert sim.word_shingles("a b c", n=2) == {"a b", "b c"}
    assert sim.word_shingles("one", n=2) == {"one"}
    assert sim.word_shingles("", n=2) == set()


def test_find_near_duplicates_against_a_corpus():
    queries = [BASE, "totally different: water the plants"]
    corpus = UNRELATED + REWORDED
    hits = find_near_duplicates(queries, corpus)
    assert {(q, c) for q, c, _ in hits} == {(0, 3), (0, 4)}
    assert all(s >= DEFAULT_THRESHOLD for _, _, s in hits)
    assert hits == sorted(hits, key=lambda t: -t[2])  # best first


def test_find_near_duplicates_within_one_list():
    texts = [BASE, UNRELATED[0], REWORDED[0], BASE]
    pairs = {(i, j) for i, j, _ in find_near_duplicates(texts)}
    assert pairs == {(0, 2), (0, 3), (2, 3)}
    assert all(i < j for i, j in pairs)


def test_threshold_is_validated():
    with pytest.raises(ValueError):
        find_near_duplicates(["a"], ["b"], threshold=0)


def test_lsh_path_agrees_with_brute_force(monkeypatch):
    queries = [BASE, "I finished the quarterly report", "water the plants every tuesday"]
    corpus = UNRELATED + REWORDED + ["just finished my quarterly report", "water plants every Tuesday please"]
    exact = find_near_duplicates(queries, corpus)
    monkeypatch.setattr(sim, "BRUTE_FORCE_MAX_PAIRS", 0)  # force MinHash LSH candidates
    approx = find_near_duplicates(queries, corpus)
    assert set(approx) <= set(exact)  # scores are always verified exactly
    assert len(approx) >= len(exact) - 1  # LSH may miss a borderline pair, not more here
