"""`python -m pipeline models list|prepare`"""

from __future__ import annotations

import json

from .. import models


def register(sub) -> None:
    p = sub.add_parser("models", help="list base models and prepare the embedded one")
    s = p.add_subparsers(dest="models_cmd", metavar="<action>")
    s.required = True
    ls = s.add_parser("list", help="show each registered base model and whether it is usable here")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(handler=_list)
    pr = s.add_parser("prepare", help="convert the embedded GGUF into a local safetensors folder (once)")
    pr.add_argument("name", nargs="?", default="smollm2-135m")
    pr.add_argument("--force", action="store_true", help="convert again even if prepared")
    pr.set_defaults(handler=_prepare)


def _list(args, settings) -> int:
    rows = models.list_models(settings)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    width = max(len(r["name"]) for r in rows)
    for r in rows:
        mark = "ready" if r["ready"] else "missing"
        print(f"{r['name']:<{width}}  {mark:<7}  {r['status']}")
        print(f"{'':<{width}}           train: {r['train_id']} ({'ready' if r['train_ready'] else r['train_status']})"
              f"  serve: {r['serve_id']}")
    print("\nAlso accepted: any local model folder or Hub id (owner/name) present in the local HF cache.")
    return 0


def _prepare(args, settings) -> int:
    model = models.resolve(args.name)
    if not model.embedded:
        ok, why = models.availability(model, settings)
        print(f"{model.name}: {why}")
        return 0 if ok else 1
    already = models.availability(model, settings)[0] and not args.force
    path = models.prepare_embedded(settings, force=args.force)
    print(f"{model.name}: {'already prepared' if already else 'prepared'} at {path}")
    return 0
