"""Evaluation (the seed's Phase 3 and 4): base vs adapter on the held-out eval set.

    evalset.py   load an eval set (eval.yaml or JSONL prompts) and hash it
    respond.py   batch generation for a prompt file (`python -m pipeline respond`)
    metrics.py   compute_metrics: scores, violations, lengths, vocabulary, openers, categories
    stats.py     Wilson interval, mean interval, distributions
    gates.py     check_quality_gates: the seed's three gates + A/B, loss, adapter size, coverage
    results.py   the versioned results file's schema (RESULTS_FILE, SCHEMA_VERSION, EvaluationResults)
    evaluate.py  run_eval: generate, judge, A/B both orders, metrics, gates, write runs/<id>/eval/
    summary.py   the readable summary.md
    plan.py      build_plan: Phase 4's targeted generation plan from a failing evaluation
"""
