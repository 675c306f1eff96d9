"""`python -m pipeline space deploy --repo-id OWNER/NAME [--public] [--hardware a10g-small] [--cpu]`
and `python -m pipeline space readme` (print the Space README that deploy would write)."""

from __future__ import annotations

from ..errors import UserError


def register(sub) -> None:
    p = sub.add_parser("space", help="deploy the studio as a Hugging Face Space (described by space.yaml)")
    s = p.add_subparsers(dest="space_cmd", metavar="<action>")
    s.required = True
    d = s.add_parser("deploy", help="create or update the Space with the app files, README and requirements",
                     description="The token comes from HF_TOKEN (a write token of OWNER).")
    d.add_argument("--repo-id", required=True, help="OWNER/NAME of the Space")
    vis = d.add_mutually_exclusive_group()
    vis.add_argument("--private", dest="private", action="store_true", default=True, help="private Space (default)")
    vis.add_argument("--public", dest="private", action="store_false", help="public Space (only the Arena is open)")
    d.add_argument("--hardware", help="request this hardware, e.g. a10g-small (paid tiers need billing)")
    d.add_argument("--cpu", action="store_true", help="write CPU requirements (no unsloth/bitsandbytes)")
    d.set_defaults(handler=_deploy)
    r = s.add_parser("readme", help="print the Space README.md (front matter from space.yaml) without deploying")
    r.add_argument("--cpu", action="store_true")
    r.add_argument("--repo-id", default="OWNER/NAME")
    r.set_defaults(handler=_readme)
    q = s.add_parser("requirements", help="print the Space's generated requirements.txt")
    q.add_argument("--cpu", action="store_true")
    q.set_defaults(handler=_requirements)


def _deploy(args, settings) -> int:
    from ..space_deploy import DeployConfig, deploy_space

    try:
        cfg = DeployConfig(repo_id=args.repo_id, private=args.private, hardware=args.hardware,
                           target="cpu" if args.cpu else None, root=str(settings.root))
    except ValueError as exc:
        raise UserError(f"invalid deploy options: {exc}") from None
    print(deploy_space(cfg, settings).summary())
    return 0


def _readme(args, settings) -> int:
    from ..space_deploy import load_space_config, render_space_readme

    print(render_space_readme(load_space_config(settings.root), "cpu" if args.cpu else "gpu", args.repo_id))
    return 0


def _requirements(args, settings) -> int:
    from ..space_deploy import load_space_config, space_requirements

    print(space_requirements(load_space_config(settings.root), settings.root, "cpu" if args.cpu else "gpu"), end="")
    return 0
