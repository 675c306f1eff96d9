"""`python -m pipeline publish DIR --repo-id OWNER/NAME [--private|--public] [--dataset-repo OWNER/NAME]`"""

from __future__ import annotations

from ..errors import UserError


def register(sub) -> None:
    # `publish` is the stage's name (the Publish tab, docs/publishing.md); `push` stays for scripts.
    p = sub.add_parser("publish", aliases=["push"],
                       help="validate a package and publish it to the Hugging Face Hub in one commit (alias: push)",
                       description="The token comes from HF_TOKEN (never from a flag: flags end up in shell "
                                   "history and process lists).")
    p.add_argument("package", help="package folder (python -m pipeline package --run ...)")
    p.add_argument("--repo-id", required=True, help="OWNER/NAME of the model repo (created if needed)")
    vis = p.add_mutually_exclusive_group()
    vis.add_argument("--private", dest="private", action="store_true", default=True,
                     help="create the repo private (default)")
    vis.add_argument("--public", dest="private", action="store_false", help="create the repo public")
    p.add_argument("--dataset-repo", help="also push the training data as this dataset repo (linked from the card)")
    p.add_argument("--override-validation", action="store_true",
                   help="push even if validation fails (recorded in the model card; never covers secrets)")
    p.add_argument("--no-load-check", action="store_true", help="validation skips loading the adapter onto its base")
    p.set_defaults(handler=_push)


def _push(args, settings) -> int:
    from ..hub import PushConfig, push_package

    try:
        cfg = PushConfig(package=args.package, repo_id=args.repo_id, private=args.private,
                         override_validation=args.override_validation, dataset_repo=args.dataset_repo,
                         load_check=not args.no_load_check)
    except ValueError as exc:
        raise UserError(f"invalid push options: {exc}") from None
    result = push_package(cfg, settings)
    print(result.summary())
    return 0
