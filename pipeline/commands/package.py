"""`python -m pipeline package --run runs/ID [--out DIR]` and `python -m pipeline package validate DIR`"""

from __future__ import annotations

import json

from ..errors import UserError


def register(sub) -> None:
    p = sub.add_parser("package", help="build the production package of a finished run, or validate one",
                       description="Build: python -m pipeline package --run runs/ID [--out DIR]. "
                                   "Validate: python -m pipeline package validate DIR")
    p.add_argument("--run", help="run folder or run id (under the studio's runs/)")
    p.add_argument("--out", help="package folder (default: <run>/package)")
    p.add_argument("--examples", type=int, default=5, help="sample interactions to include (default 5)")
    p.add_argument("--max-new-tokens", type=int, default=150,
                   help="reply length when the examples must be generated (default 150)")
    p.add_argument("--regenerate-examples", action="store_true",
                   help="generate replies with the adapter even when the evaluation's replies exist")
    p.set_defaults(handler=_build)
    s = p.add_subparsers(dest="package_cmd", metavar="<action>")
    v = s.add_parser("validate", help="check a package: files, manifest, size, gates, PEFT load, secrets")
    v.add_argument("folder", help="package folder")
    v.add_argument("--no-load-check", action="store_true", help="skip loading the adapter onto its base model")
    v.add_argument("--base-model", help="base model to load the adapter onto (default: the one it was trained on)")
    v.add_argument("--json", action="store_true", help="print the report as JSON")
    v.set_defaults(handler=_validate)


def _build(args, settings) -> int:
    from ..package import PackageConfig, build_package, validate_package

    if not args.run:
        raise UserError("say which run to package: `python -m pipeline package --run runs/<id>` "
                        "(or validate a package: `python -m pipeline package validate DIR`)")
    try:
        cfg = PackageConfig(run=args.run, out=args.out, n_examples=args.examples, max_new_tokens=args.max_new_tokens,
                            regenerate_examples=args.regenerate_examples)
    except ValueError as exc:
        raise UserError(f"invalid package options: {exc}") from None
    result = build_package(cfg, settings)
    print(result.summary())
    print(f"next: python -m pipeline package validate {result.path}")
    return 0


def _validate(args, settings) -> int:
    from ..package import validate_package

    rep = validate_package(args.folder, settings, load_check=not args.no_load_check, base_model=args.base_model)
    print(json.dumps(rep.to_dict(), indent=2) if args.json else rep.summary())
    return 0 if rep.ok else 1
