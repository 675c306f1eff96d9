"""`python -m pipeline spec validate|render`"""

from __future__ import annotations

from pathlib import Path

from ..jsonl import atomic_write_text
from ..spec import load_persona, render_markdown


def register(sub) -> None:
    p = sub.add_parser("spec", help="validate a persona folder or render its PERSONA_SPEC.md")
    s = p.add_subparsers(dest="spec_cmd", metavar="<action>")
    s.required = True
    v = s.add_parser("validate", help="check persona.yaml and scenarios.yaml; list every problem")
    v.add_argument("folder", nargs="?", help="persona folder (default: the studio's persona)")
    v.set_defaults(handler=_validate)
    r = s.add_parser("render", help="write PERSONA_SPEC.md from persona.yaml")
    r.add_argument("folder", nargs="?", help="persona folder (default: the studio's persona)")
    r.add_argument("--out", help="output file (default: <folder>/PERSONA_SPEC.md)")
    r.set_defaults(handler=_render)


def _folder(args, settings) -> Path:
    return Path(args.folder) if args.folder else settings.persona_dir()


def _validate(args, settings) -> int:
    persona = load_persona(_folder(args, settings))
    s, m = persona.spec, persona.scenarios
    n_scen = sum(len(c.scenarios) for c in m.categories.values())
    print(f"{persona.folder}: OK: {s.display_name} v{s.version}, {len(s.traits)} traits, "
          f"{len(s.boundaries)} boundaries, {len(m.categories)} categories, {n_scen} scenarios, "
          f"target {m.total_target} examples")
    return 0


def _render(args, settings) -> int:
    persona = load_persona(_folder(args, settings))
    out = Path(args.out) if args.out else persona.folder / "PERSONA_SPEC.md"
    atomic_write_text(out, render_markdown(persona))
    print(f"wrote {out}")
    return 0
