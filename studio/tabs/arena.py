"""The Arena tab: a blind side-by-side chat of two models, human votes, and the results.

Layout and wiring only; each handler makes one call into `pipeline.arena.Arena`.
Blindness: the battle (with its sides) lives in a `gr.State`, which Gradio keeps on the server
and never sends to the browser or an API client; the chats are labelled "Model A"/"Model B";
names appear only in the reveal, after the vote. The results view is filled on demand (never
at page load), so no model id is part of the page a voter first sees.
"""

from __future__ import annotations

import time
from pathlib import Path

import gradio as gr
import pandas as pd

from pipeline.arena import ArenaSession, Limits
from pipeline.arena.battle import VOTE_LABELS
from pipeline.arena.service import finished_runs, stats
from pipeline.arena.stats import RULE as ARENA_RULE

from ..guard import refusal_note

# Up to `limits.batch_battles` Send handlers stream at once; each battle joins the engine's running
# decode batch at the next step (pipeline/batching.py, one base model in memory). More senders
# wait in Gradio's queue (max_size in app.py), first come first served, so one user cannot
# starve the others; the per-session rate limit caps what one session can ask.
WAITING = "…"
# A finished reply that is blank (the model stopped at once, or wrote only whitespace) is shown as
# such: an empty bubble reads as "still loading" or a broken page to a voter.
EMPTY_REPLY = "(empty reply)"


def cut_mark(tokens: int) -> str:
    """Appended to a reply the token limit cut off: a voter should not read it as the model's ending."""
    return f"\n\n✂ *cut at {tokens} tokens (the Arena's reply limit)*"


def _chat(conv: list[dict], pending: bool, cuts: dict[int, int] | None = None) -> list[dict]:
    msgs = []
    for i, m in enumerate(conv):
        if m["role"] == "system":
            continue
        content = m["content"] if m["content"].strip() or m["role"] != "assistant" else EMPTY_REPLY
        if cuts and i in cuts:
            content += cut_mark(cuts[i])
        msgs.append({"role": m["role"], "content": content})
    if pending:
        msgs.append({"role": "assistant", "content": WAITING})
    return msgs


def _chats(s: ArenaSession, left: str | None = None, right: str | None = None) -> tuple[list, list]:
    b = s.battle
    if b is None:
        return [], []
    generating = b.state == "generating"
    cuts = getattr(b, "cuts", None) or {}
    lc, rc = _chat(b.conv_left, False, cuts.get("left")), _chat(b.conv_right, False, cuts.get("right"))
    if generating:
        lc.append({"role": "assistant", "content": left or WAITING})
        rc.append({"role": "assistant", "content": right or WAITING})
    return lc, rc


def _who(request: gr.Request | None) -> tuple[str | None, str | None]:
    """(Hub username or None, session hash): the username comes from Gradio auth, or from the
    Hub OAuth session on a Space with "Sign in with Hugging Face" (gr.LoginButton)."""
    if request is None:
        return None, None
    user = getattr(request, "username", None)
    if not user:
        try:
            info = request.session.get("oauth_info") or {}
            user = (info.get("userinfo") or {}).get("preferred_username")
        except Exception:  # no session middleware (no OAuth on this server)
            user = None
    return user, getattr(request, "session_hash", None)


def _status(s: ArenaSession, limits: Limits) -> str:
    b = s.battle
    if b is None:
        return "Type a prompt (or draw one from the eval set) and press **Send**: two anonymous models answer."
    if b.state == "generating":
        return "Both models are answering…"
    if b.state == "ready":
        more = limits.max_turns - b.turns
        cont = f" or send a follow-up ({more} more turn{'s' if more != 1 else ''}, same models)" if more > 0 else ""
        return f"Both replies are in. **Vote**{cont}."
    return "Vote recorded. Press **New battle** (or just send a new prompt) to start another one."


def _left_out_lines(r: dict) -> list[str]:
    """Finished runs the Arena does not pair (trained on another base model), with the reason."""
    return [f"- Not in the Arena: `{run}`: {why}" for run, why in sorted((r.get("left_out") or {}).items())]


def _results_markdown(r: dict) -> str:
    if not r["votes"]:
        return "\n".join(["No votes yet."] + _left_out_lines(r))
    o, v = r["outcomes"], r["voters"]
    lines = [f"**{stats.voters_line(v)}** "
             f"(votes per voter: mean {v['votes_per_voter_mean']:.1f}, median {v['votes_per_voter_median']}, "
             f"max {v['votes_per_voter_max']}). Outcomes: left {o['left']}, right {o['right']}, "
             f"tie {o['tie']}, both bad {o['both_bad']}."]
    for row in r["vs_base"]:
        if row["win_rate"] is None:
            lines.append(f"- `{row['model']}` vs base: no decisive vote yet ({row['ties']} ties, "
                         f"{row['both_bad']} both bad)")
        else:
            lines.append(f"- `{row['model']}` vs base: **win rate {row['win_rate']:.0%}** "
                         f"(Wilson 95% CI {row['ci_low']:.0%}–{row['ci_high']:.0%}; {row['wins']} wins, "
                         f"{row['losses']} losses, {row['ties']} ties, {row['both_bad']} both bad)")
    j = r.get("judge_agreement")
    if j and j.get("agreement") is not None:
        lines.append(f"- Human vs judge agreement: {j['agreement']:.0%} (Wilson 95% CI {j['ci_low']:.0%}–"
                     f"{j['ci_high']:.0%}) on {j['decisive_both']} battles where both preferred a side")
    lines.append("\nWin rate = (wins + ½ × (ties + both bad)) / votes, as in the Evaluate tab's judge A/B; "
                 "the seed's gate is ≥ 70% vs base. " + ARENA_RULE)
    return "\n".join(lines + _left_out_lines(r))


def _table(rows: list[dict], cols: list[str]) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=cols)
    for c in ("win_rate", "ci_low", "ci_high"):
        if c in df and c != "rating":
            df[c] = df[c].map(lambda x: None if x is None or pd.isna(x) else round(float(x), 3))
    for c in ("rating",):
        if c in df:
            df[c] = df[c].round(0)
    return df


def create_tab(ctx) -> None:
    settings = ctx.settings
    arena = ctx.arena()
    limits = arena.limits

    state = gr.State(None)
    gr.Markdown("Two anonymous models answer the same prompt side by side. Read both, then vote; the names "
                "are revealed after your vote. Follow-up turns go to the same two models.")
    with gr.Row():
        chat_left = gr.Chatbot(label="Model A", elem_id="arena-left", height=380, buttons=[])
        chat_right = gr.Chatbot(label="Model B", elem_id="arena-right", height=380, buttons=[])
    with gr.Row():
        b_left = gr.Button(VOTE_LABELS["left"], interactive=False, elem_id="arena-vote-left")
        b_right = gr.Button(VOTE_LABELS["right"], interactive=False, elem_id="arena-vote-right")
        b_tie = gr.Button(VOTE_LABELS["tie"], interactive=False, elem_id="arena-vote-tie")
        b_bad = gr.Button(VOTE_LABELS["both_bad"], interactive=False, elem_id="arena-vote-both-bad")
    vote_buttons = [b_left, b_right, b_tie, b_bad]
    reveal = gr.Markdown("", elem_id="arena-reveal")
    with gr.Row():
        prompt = gr.Textbox(label="Your prompt", placeholder="Ask what a TaskMaster user would ask…", scale=5,
                            max_lines=6, max_length=limits.max_prompt_chars, elem_id="arena-prompt")
        send = gr.Button("Send", variant="primary", scale=1, elem_id="arena-send")
    with gr.Row():
        draw = gr.Button("Draw a prompt from the eval set", size="sm", elem_id="arena-draw")
        new = gr.Button("New battle", size="sm", elem_id="arena-new")
    status = gr.Markdown(_status(ArenaSession(), limits), elem_id="arena-status")
    default = arena.sampling
    with gr.Accordion("Decoding (both models always use the same)", open=False, elem_id="arena-decoding"):
        with gr.Row():
            temp = gr.Slider(0, 1.5, value=default.temperature, step=0.05, label="Temperature (0 = greedy)",
                             elem_id="arena-temperature")
            top_p = gr.Slider(0.05, 1, value=default.top_p, step=0.05, label="Top-p", elem_id="arena-top-p")
        decoding = gr.Markdown(f"Next battle: {default.describe()} (the base model's default).",
                               elem_id="arena-decoding-now")

    with gr.Group(visible=False) as trait_box:
        gr.Markdown("Optional, after your vote: two quick questions (compared with the LLM judge's scores).")
        q_enc = gr.Radio(["Left", "Right", "Same"], label="Which reply was more encouraging?",
                         elem_id="arena-q-encouraging")
        q_bound = gr.Radio(["Neither", "Left", "Right", "Both"],
                           label="Did either reply cross a boundary (rude, invented tasks, off-role)?",
                           elem_id="arena-q-boundary")
        traits_send = gr.Button("Save answers", size="sm", elem_id="arena-traits-send")

    with gr.Accordion("Results", open=False, elem_id="arena-results"):
        refresh = gr.Button("Show results", size="sm", elem_id="arena-results-refresh")
        summary = gr.Markdown("", elem_id="arena-results-summary")
        vs_base = gr.Dataframe(label="Adapter vs base", interactive=False, visible=False)
        per_cat = gr.Dataframe(label="Per eval-set category", interactive=False, visible=False)
        bt = gr.Dataframe(label="Bradley-Terry ratings (base = 1000; 95% bootstrap CI; ties and both bad = half a win "
                                "each)", interactive=False,
                          visible=False)
        with gr.Row():
            exp_csv = gr.Button("Export CSV", size="sm")
            exp_jsonl = gr.Button("Export JSONL", size="sm")
            exp_dpo = gr.Button("Export DPO pairs", size="sm")
            exp_kto = gr.Button("Export KTO labels", size="sm")
        exp_file = gr.File(label="Export", interactive=False, visible=False)
    with gr.Accordion("Contenders (admin)", open=False, elem_id="arena-contenders"):
        gr.Markdown("Which finished runs battle the base model. Smoke and test runs left out here never dilute a "
                    "stakeholder session. Nothing chosen: every finished run battles.")
        load_contenders = gr.Button("Load runs", size="sm", elem_id="arena-contenders-load")
        contender_box = gr.CheckboxGroup(choices=[], label="Runs in battle", elem_id="arena-contenders-runs")
        with gr.Row():
            save_contenders = gr.Button("Save contenders", size="sm", variant="primary",
                                        elem_id="arena-contenders-save")
            all_contenders = gr.Button("All finished runs", size="sm", elem_id="arena-contenders-all")
        # The choice saved, or why it was refused (no run ticked, a run gone, not logged in as admin).
        contenders_md = refusal_note(gr.Markdown(elem_id="arena-contenders-status"), "Refused")

    def voter(s, request):
        """The session, with the address the access control trusts (for the vote caps)."""
        headers = getattr(request, "headers", None) or {}
        agent = headers.get("user-agent", "") if hasattr(headers, "get") else ""
        return arena.session(s, *_who(request), address=ctx.access.client_key(request) if request else None,
                             client=agent)

    # ---- handlers (one pipeline call each) -------------------------------------------------------
    def on_send(text, s, request: gr.Request):
        s = voter(s, request)
        off = [gr.Button(interactive=False)] * 4
        for up in arena.send(s, text):
            lc, rc = _chats(s, up.left, up.right)
            yield lc, rc, "", s, *off, _status(s, limits), "", gr.Group(visible=False)
        lc, rc = _chats(s)
        on = [gr.Button(interactive=True)] * 4
        yield lc, rc, "", s, *on, _status(s, limits), "", gr.update()

    def make_vote(choice: str):
        def on_vote(s, request: gr.Request):
            s = voter(s, request)
            r = arena.vote(s, choice)
            text = (f"**You voted: {VOTE_LABELS[choice]}.** Model A (left) was **{r['left_name']}** "
                    f"(`{r['left']}`); Model B (right) was **{r['right_name']}** (`{r['right']}`).")
            off = [gr.Button(interactive=False)] * 4
            return (text, s, *off, gr.Group(visible=True), gr.Radio(value=None), gr.Radio(value=None),
                    _status(s, limits))
        on_vote.__name__ = f"arena_vote_{choice}"
        return on_vote

    def on_traits(enc, bound, s):
        n = arena.traits(s, {"trait:encouraging": (enc or "").lower() or None,
                             "boundary_crossed": (bound or "").lower() or None})
        gr.Info(f"Saved {n} answer{'s' if n != 1 else ''}. Thank you!")
        return gr.Group(visible=False)

    def on_new(s, request: gr.Request):
        s = arena.new_battle(voter(s, request))
        off = [gr.Button(interactive=False)] * 4
        return [], [], s, *off, "", _status(s, limits), gr.Group(visible=False)

    def on_clear(s):
        # A chat's trash icon empties only that side in the browser; a blind battle is one
        # conversation on both sides, so both are put back as the battle has them.
        return _chats(s) if isinstance(s, ArenaSession) else ([], [])

    def on_draw(s, request: gr.Request):
        s = voter(s, request)
        return arena.draw_prompt(s), s

    def on_decoding(t, p, s, request: gr.Request):
        s = arena.session(s, *_who(request))
        return f"Next battle: {arena.set_sampling(s, t, p)}.", s

    def on_results():
        r = arena.results()
        return (_results_markdown(r),
                gr.Dataframe(value=_table(r["vs_base"], ["model", "votes", "wins", "losses", "ties", "both_bad",
                                                         "win_rate", "ci_low", "ci_high"]),
                             visible=bool(r["vs_base"])),
                gr.Dataframe(value=_table(r["per_category"], ["category", "model", "votes", "wins", "losses",
                                                              "ties", "both_bad", "win_rate", "ci_low",
                                                              "ci_high"]),
                             visible=bool(r["per_category"])),
                gr.Dataframe(value=_table(r["bradley_terry"], ["model", "rating", "ci_low", "ci_high", "games"]),
                             visible=bool(r["bradley_terry"])))

    # Run names are not shown to anonymous visitors: these handlers are admin-only when restricted.
    def on_load_contenders():
        runs = sorted(finished_runs(settings.runs_dir, settings.base_model))
        chosen = arena.chosen_contenders()
        value = [r for r in runs if chosen is None or r in chosen]
        return (gr.CheckboxGroup(choices=runs, value=value),
                f"{len(value)} of {len(runs)} finished runs battle the base" + ("" if chosen else " (no choice saved)"))

    def on_save_contenders(runs):
        chosen = arena.set_contenders(list(runs or []))
        return f"Saved: {', '.join(chosen)} battle the base model in new battles."

    def on_all_contenders():
        runs = arena.set_contenders(None)
        return gr.CheckboxGroup(value=runs), "Every finished run battles the base model again."

    def make_export(fmt: str):
        def on_export():
            ext = "jsonl" if fmt in ("dpo", "kto") else fmt
            name = f"arena-votes-{time.strftime('%Y%m%d-%H%M%S')}{'-' + fmt if ext != fmt else ''}.{ext}"
            out = Path(settings.state_dir) / "arena" / "exports" / name
            n = arena.export(out, fmt)
            gr.Info(f"Exported {n} {'rows' if fmt in ('dpo', 'kto') else 'votes'}."
                    + (f" Train on them: python -m pipeline train --method {fmt} --from-run runs/<id> --pairs FILE"
                       if fmt in ("dpo", "kto") else ""))
            return gr.File(value=str(out), visible=True)
        on_export.__name__ = f"arena_export_{fmt}"
        # Exports hold every voter's conversations: admin only when the studio is restricted.
        return ctx.access.protect_fn(on_export)

    # Send stays clickable while the models answer: a second send is refused with a warning by
    # the battle itself, and a failed generation can never leave the button disabled.
    send_outputs = [chat_left, chat_right, prompt, state, *vote_buttons, status, reveal, trait_box]
    for trigger in (send.click, prompt.submit):
        trigger(on_send, [prompt, state], send_outputs, api_name="arena_send" if trigger == send.click else False,
                concurrency_limit=limits.batch_battles, concurrency_id="arena_generate", show_progress="hidden")
    for choice, btn in zip(VOTE_LABELS, vote_buttons):
        btn.click(make_vote(choice), [state], [reveal, state, *vote_buttons, trait_box, q_enc, q_bound, status],
                  api_name=f"arena_vote_{choice}", concurrency_limit=8)
    traits_send.click(on_traits, [q_enc, q_bound, state], [trait_box], api_name="arena_traits")
    new.click(on_new, [state], [chat_left, chat_right, state, *vote_buttons, reveal, status, trait_box],
              api_name="arena_new")
    draw.click(on_draw, [state], [prompt, state], api_name="arena_draw")
    temp.release(on_decoding, [temp, top_p, state], [decoding, state], api_name="arena_decoding")
    top_p.release(on_decoding, [temp, top_p, state], [decoding, state], api_name=False)
    for chat in (chat_left, chat_right):
        chat.clear(on_clear, [state], [chat_left, chat_right], api_name=False, queue=False, show_progress="hidden")
    refresh.click(on_results, None, [summary, vs_base, per_cat, bt], api_name="arena_results",
                  concurrency_limit=2)
    exp_csv.click(make_export("csv"), None, [exp_file], api_name="arena_export_csv")
    exp_jsonl.click(make_export("jsonl"), None, [exp_file], api_name="arena_export_jsonl")
    load_contenders.click(ctx.access.protect_fn(on_load_contenders), None, [contender_box, contenders_md],
                          api_name="arena_contenders")
    save_contenders.click(ctx.access.protect_fn(on_save_contenders), [contender_box], [contenders_md],
                          api_name="arena_contenders_save")
    all_contenders.click(ctx.access.protect_fn(on_all_contenders), None, [contender_box, contenders_md],
                         api_name="arena_contenders_all")
    exp_dpo.click(make_export("dpo"), None, [exp_file], api_name="arena_export_dpo")
    exp_kto.click(make_export("kto"), None, [exp_file], api_name="arena_export_kto")
