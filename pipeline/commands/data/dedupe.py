"""`python -m pipeline data dedupe`: drop near-duplicates within the set and eval-set leaks.

    python -m pipeline data dedupe --threshold 0.6 --eval-threshold 0.5
Similarity: Jaccard of character 4-gram shingles (pipeline/data/similarity.py); the
thresholds are explained in pipeline/data/dedupe.py. Writes deduped.jsonl and
rejected.dedupe.jsonl (each removed example names its twin or the eval prompt it leaks).
"""

from __future__ import annotations

from ...data import stages
from ...data.dedupe import EVAL_THRESHOLD, WITHIN_THRESHOLD, DedupeConfig


def register(sub) -> None:
    p = sub.add_parser("dedupe", help="remove near-duplicates and examples that leak eval prompts")
    p.add_argument("--persona")
    p.add_argument("--input", help="JSONL (default filtered.jsonl, else the shipped train.jsonl)")
    p.add_argument("--output", help="default state/data/<persona>/deduped.jsonl")
    p.add_argument("--eval-set", help="eval.yaml to protect (default the persona's)")
    p.add_argument("--threshold", type=float, default=WITHIN_THRESHOLD,
                   help=f"within-set similarity at or above which two examples are duplicates (default {WITHIN_THRESHOLD})")
    p.add_argument("--eval-threshold", type=float, default=EVAL_THRESHOLD,
                   help=f"user-turn vs eval-prompt similarity that counts as a leak (default {EVAL_THRESHOLD})")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_run)


def _run(args, settings) -> int:
    r = stages.run_dedupe(settings, DedupeConfig(args.threshold, args.eval_threshold), persona=args.persona,
                          input=args.input, output=args.output, eval_set=args.eval_set)
    stages.print_result(r, args.json)
    return 0
