"""The seed's Phase 4 loop, closed offline: from a run's evaluation, what to do next.

    propose(results, run_dir, votes=0) -> NextStep(step, why, weak_traits, commands, alternatives)

`step` is one of
    more_epochs      the loss was still falling at the end of training, or the spec's final-loss
                     target was missed: the adapter is under-trained (cheapest fix: train longer);
    targeted_data    some traits are below the spec's trait_min: generate / write curated
                     examples aimed at them (`data target` reads this evaluation's plan);
    preference_round the traits are fine on average but replies break boundaries, or the A/B
                     win rate misses the gate: a DPO round from the judge's pairs (self-play on
                     the curated data) and the Arena's votes, continuing this run's adapter;
    ship             every gate passed: package it.

All reasons are read from the results' own figures (gates, trait means, failing replies, the
run's loss curve), so the proposal is traceable and needs no API key.
"""

from __future__ import annotations

import shlex
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..runs import RunFolder
from .results import EvaluationResults

# The loss curve counts as still falling when its last quarter's mean is this much below the
# previous quarter's (relative): at ~3 nats on the 135M model, a 3% drop is ~0.1 nat per quarter.
STILL_FALLING = 0.03


@dataclass
class NextStep:
    step: str
    why: str
    weak_traits: list[str] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    alternatives: list[dict] = field(default_factory=list)  # the other candidate steps, with their reasons

    def to_dict(self) -> dict:
        return asdict(self)

    def markdown(self) -> str:
        lines = [f"**Next step: {self.step.replace('_', ' ')}.** {self.why}"]
        if self.weak_traits:
            lines.append("Weak traits (weakest first): " + ", ".join(f"`{t}`" for t in self.weak_traits))
        if self.commands:
            lines += ["", "```", *self.commands, "```"]
        for alt in self.alternatives:
            lines.append(f"- also: {alt['step'].replace('_', ' ')}: {alt['why']}")
        return "\n".join(lines)


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


def _loss_still_falling(losses: list[float]) -> tuple[bool, str]:
    if len(losses) < 8:
        return False, ""
    q = len(losses) // 4
    prev, last = sum(losses[-2 * q:-q]) / q, sum(losses[-q:]) / q
    drop = (prev - last) / prev if prev > 0 else 0.0
    return drop >= STILL_FALLING, f"loss fell {drop:.0%} over the last quarter of training ({prev:.2f} -> {last:.2f})"


def _loss_text(value) -> str:
    """A loss as a person reads it (3 decimals, as the Runs table shows it), not 2.88560128119751."""
    return f"{value:.3f}" if isinstance(value, (int, float)) else str(value)


def propose(results: EvaluationResults, run_dir: str | Path, *, losses: list[float] | None = None,
            votes: int = 0) -> NextStep:
    run = Path(run_dir)
    gates = {g.name: g for g in results.gates}
    if all(g.passed for g in results.gates):
        return NextStep("ship", "Every quality gate passed.", [],
                        [f"python -m pipeline package --run {shlex.quote(str(run))}"])
    plan = results.plan or {}
    weak = list(plan.get("weak_traits") or [])
    cfg = (results.run_config or {}).get("config") or {}
    train = cfg.get("train") or {}
    epochs = train.get("epochs")
    candidates: list[NextStep] = []

    falling, how = _loss_still_falling(losses or [])
    loss_gate = gates.get("final_train_loss")
    if falling or (loss_gate is not None and not loss_gate.passed and loss_gate.value is not None):
        more = (epochs or 3) + 2
        why = ("The adapter looks under-trained: " + (how if falling else
               f"final loss {_loss_text(loss_gate.value)} misses the spec's {loss_gate.threshold}") + ".")
        candidates.append(NextStep("more_epochs", why, weak, [
            f"python -m pipeline train --config {shlex.quote(str(run / 'config.yaml'))} --set epochs={more:g} "
            f"--out {shlex.quote(str(run))}-e{more:g}"]))
    if weak:
        n_fail = sum(1 for f in plan.get("failing") or [])
        results_path = RunFolder(run).results_path
        candidates.append(NextStep(
            "targeted_data",
            f"{len(weak)} trait(s) below the spec's minimum; {n_fail} failing replies show where. Add curated "
            f"examples aimed at them, review them, and retrain.", weak,
            [f"python -m pipeline data target {shlex.quote(str(results_path))}"]))
    violations = ((results.metrics or {}).get("adapter") or {}).get("boundary_violations") or 0
    ab_gate = gates.get("ab_win_rate")
    if violations or (ab_gate is not None and not ab_gate.passed) or votes:
        bits = []
        if violations:
            bits.append(f"{violations} replies break a boundary")
        if ab_gate is not None and not ab_gate.passed:
            bits.append(f"the A/B win rate {results.ab.win_rate} misses the gate ({ab_gate.threshold})")
        if votes:
            bits.append(f"{votes} Arena votes are waiting to be learned from")
        cmds = []
        pairs = ""
        if votes:
            cmds.append("python -m pipeline arena export --format dpo --out arena-dpo.jsonl")
            pairs = " --pairs arena-dpo.jsonl"
        cmds.append(f"python -m pipeline train --method dpo --from-run {shlex.quote(str(run))}{pairs} "
                    f"--out {shlex.quote(str(run))}-dpo")
        candidates.append(NextStep(
            "preference_round",
            _sentence("; ".join(bits)) + ". A DPO round teaches what not to say: chosen = curated replies, "
            "rejected = this adapter's own replies (self-play, ranked by the judge)" + (" and the votes." if votes else "."),
            weak, cmds))
    if not candidates:
        return NextStep("targeted_data", "Some gate failed without a trait or loss signal; read the failing replies "
                        "in the Evaluate tab and add curated examples for them.", weak,
                        [f"python -m pipeline data target {shlex.quote(str(RunFolder(run).results_path))}"])
    # Order: an under-trained adapter first (cheapest, and data/preferences on top of it would be wasted),
    # then missing behaviour (data), then polishing what is there (preferences).
    best, rest = candidates[0], candidates[1:]
    best.alternatives = [{"step": c.step, "why": c.why, "commands": c.commands} for c in rest]
    return best


def propose_for_run(run_dir: str | Path, settings=None) -> NextStep:
    """The proposal for runs/<id> from its evaluation results, loss curve and the Arena's votes."""
    from .results import load_results

    folder = RunFolder(run_dir)
    run = folder.path
    results = load_results(folder.results_path)
    losses = [m["loss"] for m in folder.metrics() if m.get("loss") is not None]
    votes = 0
    if settings is not None:
        from ..arena.votes import VoteStore, votes_path

        if votes_path(settings).is_file():
            votes = VoteStore(votes_path(settings)).count()
    return propose(results, run, losses=losses, votes=votes)
