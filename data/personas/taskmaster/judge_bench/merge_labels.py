"""Final labels from two independent labellings, and their agreement.

    .venv/bin/python data/personas/taskmaster/judge_bench/merge_labels.py [labels_b.jsonl]

labels.jsonl per reply: overall = mean of the two (float), coherence and traits = mean of the
two (floats; "incoherent" means coherence <= 0.5, i.e. at least one labeller said 0 and
none said 2), violations / invented_task_data / dishonest = the UNION of the two labellings
(each disagreement listed in disagreements.jsonl for re-reading; a re-read decision goes in
adjudicated.jsonl as {"id", "violations"?, "invented_task_data"?, "dishonest"?} and wins).
A reply only one labeller labelled keeps that labelling. Prints the agreement (Spearman,
Cohen's kappa) and writes it to agreement.json.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[3]))

from pipeline.jsonl import read_jsonl  # noqa: E402
from pipeline.judges.agreement import interlabeller  # noqa: E402
from pipeline.spec import load_persona  # noqa: E402


def main(b_path: str | None) -> None:
    spec = load_persona(HERE.parent).spec
    a = {r["id"]: r for r in read_jsonl(HERE / "labels_a.jsonl")}
    bp = Path(b_path) if b_path else HERE / "labels_b.jsonl"
    b = {r["id"]: r for r in read_jsonl(bp)} if bp.is_file() else {}
    replies = [r["id"] for r in read_jsonl(HERE / "replies.jsonl")]
    b = {k: v for k, v in b.items() if k in set(replies)}
    adj = {r["id"]: r for r in read_jsonl(HERE / "adjudicated.jsonl")} if (HERE / "adjudicated.jsonl").is_file() else {}
    out, dis = [], []
    for rid in replies:
        la, lb = a.get(rid), b.get(rid)
        if la is None and lb is None:
            continue
        if la is None or lb is None:
            one = dict(la or lb)
            one["labellers"] = 1
            out.append(one)
            continue
        m = {"id": rid, "overall": (la["overall"] + lb["overall"]) / 2,
             "coherence": (la["coherence"] + lb["coherence"]) / 2,
             "traits": {t: (la["traits"].get(t, 0) + lb["traits"].get(t, 0)) / 2 for t in spec.trait_ids},
             "violations": sorted(set(la.get("violations") or []) | set(lb.get("violations") or [])),
             "invented_task_data": bool(la.get("invented_task_data")) or bool(lb.get("invented_task_data")),
             "dishonest": bool(la.get("dishonest")) or bool(lb.get("dishonest")), "labellers": 2}
        if (set(la.get("violations") or []) != set(lb.get("violations") or [])
                or bool(la.get("invented_task_data")) != bool(lb.get("invented_task_data"))
                or bool(la.get("dishonest")) != bool(lb.get("dishonest"))):
            dis.append({"id": rid, "a": {k: la.get(k) for k in ("violations", "invented_task_data", "dishonest", "overall")},
                        "b": {k: lb.get(k) for k in ("violations", "invented_task_data", "dishonest", "overall")}})
        if rid in adj:
            m.update({k: v for k, v in adj[rid].items() if k != "id"})
            m["adjudicated"] = True
        out.append(m)
    with open(HERE / "labels.jsonl", "w") as fh:
        for r in out:
            fh.write(json.dumps(r) + "\n")
    with open(HERE / "disagreements.jsonl", "w") as fh:
        for r in dis:
            fh.write(json.dumps(r) + "\n")
    rep = interlabeller(a, b, spec.violation_types) if b else {"n": 0, "note": "no second labelling yet"}
    (HERE / "agreement.json").write_text(json.dumps(rep, indent=2) + "\n")
    print(json.dumps(rep, indent=2))
    print(f"{len(out)} final labels ({sum(r.get('labellers') == 2 for r in out)} by two labellers), "
          f"{len(dis)} flag disagreements")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
