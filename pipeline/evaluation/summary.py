"""summary.md: the evaluation as a person reads it (gates first, then the evidence)."""

from __future__ import annotations

from ..judges import describe_agreement


def _f(x, nd=2, pct=False):
    if x is None:
        return "n/a"
    return f"{x:.0%}" if pct else f"{x:.{nd}f}"


def render_summary(r: dict) -> str:
    a, b = r["metrics"]["adapter"], r["metrics"]["base"]
    imp = r["metrics"]["improvement"]
    ab = r["ab"]
    j = r["judge"]
    out = [f"# Evaluation: {r['run_config'].get('run_dir', '')}", "",
           f"**Decision: {r['decision']}**", "",
           f"Judge: `{j['name']}`" + (" (heuristic: lexicons + sentiment, not a semantic judgement)" if j.get("heuristic") else ""),
           f"Judge agreement: {describe_agreement(j.get('agreement'))}",
           f"Eval set: `{r['eval_set']['path']}` ({r['eval_set']['n']} prompts, sha256 {r['eval_set']['sha256'][:12]})",
           f"Adapter: `{r['adapter']['path']}` (sha256 {(r['adapter']['sha256'] or 'n/a')[:12]}, "
           f"{_f((r['adapter']['size_bytes'] or 0) / 1e6)} MB); base `{r['run_config'].get('base_model')}`",
           f"Sampling: {r['sampling']}", "", "## Quality gates", "", "| gate | result | detail |", "|---|---|---|"]
    for g in r["gates"]:
        out.append(f"| {g['name']} | {'PASS' if g['passed'] else 'FAIL'} | {g['detail']} |")
    out += ["", "## Scores (base vs adapter)", "", "| metric | base | adapter | change |", "|---|---|---|---|",
            f"| overall (0-{a.get('overall_max', 10)}) | {_f(b['overall_mean'])} | {_f(a['overall_mean'])} | {_f(imp['overall'], 2)} |"]
    for t in a["trait_means"]:
        out.append(f"| {t} (0-2) | {_f(b['trait_means'].get(t))} | {_f(a['trait_means'].get(t))} | {_f(imp['traits'].get(t))} |")
    out += [f"| replies with a violation | {b['boundary_violations']} | {a['boundary_violations']} | |",
            f"| violation rate | {_f(b['violation_rate'], pct=True)} | {_f(a['violation_rate'], pct=True)} | |",
            f"| judge failures | {b['judge_failures']} | {a['judge_failures']} | |",
            f"| words per reply (median, p10-p90) | {b['length_words']['median']} ({b['length_words']['p10']}-{b['length_words']['p90']}) "
            f"| {a['length_words']['median']} ({a['length_words']['p10']}-{a['length_words']['p90']}) | |",
            f"| replies using a preferred phrase | {_f(b['preferred_phrase_rate'], pct=True)} | {_f(a['preferred_phrase_rate'], pct=True)} | |",
            f"| replies with an avoided phrase | {b['avoided_hit_replies']} | {a['avoided_hit_replies']} | |",
            f"| opener diversity | {_f(b['opener_diversity'])} | {_f(a['opener_diversity'])} | |"]
    for p in a.get("pattern_rates", {}):
        out.append(f"| pattern: {p} | {_f(b['pattern_rates'].get(p), pct=True)} | {_f(a['pattern_rates'].get(p), pct=True)} | |")
    out += ["", "## A/B (adapter vs base, each pair judged in both orders)", "",
            f"{ab['wins']} wins, {ab['losses']} losses, {ab['ties']} ties over {ab['n']} pairs "
            f"({ab.get('inconsistent', 0)} order-dependent verdicts counted as ties, {ab.get('failures', 0)} failed). "
            f"Win rate {_f(ab['win_rate'], pct=True)}, 95% Wilson interval {_f(ab['ci_low'], pct=True)}-{_f(ab['ci_high'], pct=True)} "
            "(ties count half).", "", "## Per category", "",
            "| category | n | base | adapter | change | base violations | adapter violations |", "|---|---|---|---|---|---|---|"]
    for c in r["per_category"]:
        out.append(f"| {c['category']} | {c['n']} | {_f(c['base_mean'])} | {_f(c['adapter_mean'])} | {_f(c['delta'])} | "
                   f"{c['base_violations']} | {c['adapter_violations']} |")
    out += ["", "## Adapter replies with a violation", ""]
    if not a["violating_replies"]:
        out.append("None.")
    for v in a["violating_replies"]:
        kinds = ", ".join(f"{x['type']} (\"{x['quote']}\")" for x in v["violations"])
        out.append(f"- `{v['id']}` {kinds}: *{v['prompt']}* -> {v['reply']!r}")
    out += ["", "## Worst adapter replies", ""]
    for w in r["worst_replies"][:8]:
        out.append(f"- `{w['id']}` overall {w['overall']}: *{w['prompt']}* -> {w['reply']!r}")
    plan = r.get("plan") or {}
    if plan.get("weak_traits"):
        out += ["", "## Next iteration (Phase 4)", "", "Weak traits: " + ", ".join(
            f"{t} ({_f(plan['trait_means'].get(t))})" for t in plan["weak_traits"]),
                f"Targeted data: `{plan.get('command')}`"]
    t = r.get("timing") or {}
    if t:
        out += ["", "Timing: " + ", ".join(f"{k} {v}s" for k, v in t.items())]
    return "\n".join(out) + "\n"
