"""The Arena as one object the studio (and the load benchmark) drives: contenders, battles,
streaming, votes, results. The studio's Arena tab makes exactly one call into it per event.

Model ids: "base" is the studio's base model (prompted with the persona's system prompt, as
the adapter is); any other id is a finished training run with an adapter
(`pipeline.runs.finished_with_adapter`). One `ChatEngine` (one copy of the base weights)
serves both: adapters are attached by run id and chosen per row of the batch.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from pathlib import Path
from typing import Callable, Iterator

import yaml

from ..errors import UserError
from ..inference import SamplingConfig, default_sampling
from ..prompting import with_persona_system
from ..runs import finished_with_adapter, list_runs, other_base
from ..settings import Settings
from ..text_input import clean_user_text
from . import stats
from .battle import ArenaSession, Battle, Limits, new_battle, voter_id
from .streaming import PairUpdate, stream_pair
from .sync import VoteSync
from .votes import VoteStore, votes_path

log = logging.getLogger(__name__)
BASE_ID = stats.BASE_ID
STREAM_EVERY_S = 0.25  # the most often a battle's replies are re-sent to the voter's browser


def arena_runs(runs_dir: Path, base_model: str | None = None) -> tuple[dict[str, Path], dict[str, str]]:
    """(run id -> adapter folder, run id -> why it is left out). A run enters the Arena when it finished
    with an adapter and, given `base_model`, was trained on that base (`pipeline.runs.same_base`):
    an adapter of another base would load onto the wrong weights and its votes would mean nothing."""
    finished = sorted(list_runs(runs_dir, where=finished_with_adapter), key=lambda r: r.id)
    left_out = {r.id: why for r in finished if base_model is not None and (why := other_base(r, base_model))}
    return {r.id: r.adapter_dir for r in finished if r.id not in left_out}, left_out


def finished_runs(runs_dir: Path, base_model: str | None = None) -> dict[str, Path]:
    """run id -> adapter folder, for every finished run with an adapter (on `base_model`, if given)."""
    return arena_runs(runs_dir, base_model)[0]


def load_eval_prompts(persona_dir: Path) -> list[dict]:
    """Eval-set prompts as {id, category, text, context}: `text` is the `prompt` or the last user
    message of `messages`; `context` is what came before it (task context, earlier turns)."""
    path = persona_dir / "eval.yaml"
    if not path.is_file():
        return []
    data = yaml.safe_load(path.read_text()) or {}
    out = []
    for p in data.get("prompts") or []:
        if p.get("prompt"):
            out.append({"id": p["id"], "category": p.get("category"), "text": p["prompt"], "context": []})
        elif p.get("messages"):
            msgs = p["messages"]
            last = max(i for i, m in enumerate(msgs) if m.get("role") == "user")
            out.append({"id": p["id"], "category": p.get("category"), "text": msgs[last]["content"],
                        "context": [dict(m) for m in msgs[:last]]})
    return out


class Arena:
    def __init__(self, settings: Settings, engine: Callable[[], object], *, limits: Limits = Limits(),
                 store: VoteStore | None = None, sync: VoteSync | None = None, sampling: SamplingConfig | None = None):
        self.settings = settings
        self._engine = engine
        self.limits = limits
        # The Arena's default decoding: the base model's (greedy for the embedded 135M model).
        self.sampling = sampling or default_sampling(settings.base_model, max_new_tokens=limits.max_new_tokens)
        self.store = store or VoteStore(votes_path(settings))
        self.sync = sync
        self._salt = self._load_salt()

    def _load_salt(self) -> bytes:
        """A server-side secret so anonymous voter ids cannot be linked back to a session."""
        path = Path(self.settings.state_dir) / "arena" / "voter_salt"
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(secrets.token_bytes(32))
        return path.read_bytes()

    # ---- contenders -----------------------------------------------------------------------------
    def contenders(self) -> dict[str, Path | None]:
        """The base and the runs in battle: every finished run trained on the current base model, or
        the admin's choice among them (set_contenders)."""
        runs = finished_runs(self.settings.runs_dir, self.settings.base_model)
        chosen = self.chosen_contenders()
        if chosen is not None:
            runs = {k: v for k, v in runs.items() if k in chosen}
        return {BASE_ID: None, **runs}

    @property
    def _contenders_file(self) -> Path:
        return Path(self.settings.state_dir) / "arena" / "contenders.json"

    def chosen_contenders(self) -> list[str] | None:
        """The admin's list of run ids, or None (no choice made: every finished run battles)."""
        try:
            return list(json.loads(self._contenders_file.read_text())["runs"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def set_contenders(self, runs: list[str] | None) -> list[str]:
        """Choose which finished runs battle the base (None: all of them again). Admin only (the tab)."""
        from ..jsonl import write_json

        available = finished_runs(self.settings.runs_dir, self.settings.base_model)
        if runs is None:
            self._contenders_file.unlink(missing_ok=True)
            return sorted(available)
        unknown = sorted(set(runs) - set(available))
        if unknown:
            raise UserError(f"not finished runs with an adapter: {', '.join(unknown)}; refresh the list")
        if not runs:
            raise UserError("choose at least one run to battle the base model (or 'all finished runs')")
        self._contenders_file.parent.mkdir(parents=True, exist_ok=True)
        write_json(self._contenders_file, {"runs": sorted(runs)})
        return sorted(runs)

    def left_out(self) -> dict[str, str]:
        """Finished runs the Arena does not pair, and why (shown to the admin with the results)."""
        return arena_runs(self.settings.runs_dir, self.settings.base_model)[1]

    def display_name(self, model: str) -> str:
        if model == BASE_ID:
            return f"base model ({Path(self.settings.base_model).name}) with the persona prompt"
        return f"adapter from run {model}"

    def warm(self) -> list[str]:
        """Load the engine, attach every contender's adapter and prefill the persona prompt once
        per adapter (the prefix cache), so the first voters of a session do not pay for the model
        load and one prefix per side on top of their own prefill. Returns the models warmed."""
        engine = self._engine()
        system = self.system_prompt()
        conv = with_persona_system([{"role": "user", "content": "hi"}], system)
        one = SamplingConfig(max_new_tokens=1, temperature=0)
        warmed = []
        for model, folder in self.contenders().items():
            adapter = None if model == BASE_ID else model
            if adapter is not None:
                engine.attach_adapter(model, folder)
            for _ in stream_pair(engine, conv, conv, adapter, adapter, one, client="warm-up"):
                pass
            warmed.append(model)
        return warmed

    def system_prompt(self) -> str | None:
        from ..spec import load_persona

        try:
            return load_persona(self.settings.persona_dir()).spec.system_prompt
        except Exception as exc:  # a broken persona must not take the public arena down
            log.warning("arena: persona not loadable (%s); no system prompt", exc)
            return None

    def eval_prompts(self) -> list[dict]:
        return load_eval_prompts(self.settings.persona_dir())

    # ---- decoding ---------------------------------------------------------------------------------
    def set_sampling(self, s: ArenaSession, temperature=None, top_p=None) -> str:
        """The visitor's decoding for their next battles (None: the default); returns its description."""
        values = {}
        if temperature is not None:
            t = float(temperature)
            if not 0 <= t <= 2:
                raise UserError(f"Temperature {t:g}: choose 0 (greedy) to 2.")
            values["temperature"] = t
        if top_p is not None:
            p = float(top_p)
            if not 0 < p <= 1:
                raise UserError(f"Top-p {p:g}: choose a value above 0 and at most 1.")
            values["top_p"] = p
        s.sampling = values or None
        return self.battle_sampling(s).describe()

    def battle_sampling(self, s: ArenaSession) -> SamplingConfig:
        """The decoding a battle started now would use: the Arena's default, the visitor's choice on top."""
        from dataclasses import replace

        return replace(self.sampling, **(s.sampling or {}))

    # ---- sessions -------------------------------------------------------------------------------
    def session(self, state: ArenaSession | None, username: str | None, session_hash: str | None, *,
                address: str | None = None, client: str | None = None) -> ArenaSession:
        """The voter's session. `address` is the client address as the access control keys it
        (studio/access.py: a trusted proxy header, never a spoofable one), `client` what tells
        browsers behind it apart (the user agent); only salted hashes of them are kept."""
        s = state if isinstance(state, ArenaSession) else ArenaSession()
        if s.voter_id is None or (username and s.voter_id != f"hf:{username}"):
            s.voter_id = voter_id(username, session_hash, self._salt)
        if address:
            s.address_id = self._hash("addr", address)
            s.client_id = self._hash("client", f"{address}|{client or ''}")
        return s

    def _hash(self, kind: str, value: str) -> str:
        import hashlib

        return hashlib.sha256(self._salt + f"{kind}|{value}".encode("utf-8", "replace")).hexdigest()[:16]

    def _check_vote_caps(self, s: ArenaSession) -> None:
        """Refuse a vote beyond the hourly caps per client and per address (nothing is recorded)."""
        import time

        since = time.time() - 3600
        for column, value, cap, who in (("client_id", s.client_id, self.limits.votes_per_client_hour, "this browser"),
                                        ("address_id", s.address_id, self.limits.votes_per_address_hour,
                                         "your network")):
            if value and self.store.count_since(column, value, since) >= cap:
                raise UserError(f"Thank you: {who} has cast {cap} votes this hour, the most the Arena counts. "
                                "Come back in an hour to vote again.")

    def draw_prompt(self, s: ArenaSession, rng_seed: int | None = None) -> str:
        prompts = self.eval_prompts()
        if not prompts:
            raise UserError(f"No eval set found ({self.settings.persona_dir() / 'eval.yaml'}): type a prompt instead.")
        import random

        p = random.Random(rng_seed).choice(prompts) if rng_seed is not None else secrets.choice(prompts)
        s.pending_prompt = p
        return p["text"]

    def new_battle(self, s: ArenaSession) -> ArenaSession:
        s.battle = None
        s.pending_prompt = None
        return s

    # ---- a turn ---------------------------------------------------------------------------------
    def send(self, s: ArenaSession, text: str) -> Iterator[PairUpdate]:
        """Add the voter's turn to the battle (starting one if needed) and stream both replies."""
        text = clean_user_text(text).strip()
        if not text:
            raise UserError("Type a prompt (or press 'Draw a prompt from the eval set') first.")
        if len(text) > self.limits.max_prompt_chars:
            raise UserError(f"The prompt is {len(text)} characters; the Arena takes at most "
                            f"{self.limits.max_prompt_chars}. Shorten it.")
        b = s.battle
        if b is not None and b.state == "generating":
            raise UserError("Both models are still answering: wait for the two replies.")
        s.check_rate(self.limits)
        if b is None or b.state == "voted":
            pending = s.pending_prompt if (s.pending_prompt and s.pending_prompt["text"] == text) else None
            contenders = self.contenders()
            b = new_battle(list(contenders), prompt_id=pending and pending["id"],
                           category=pending and pending["category"])
            b.sampling = {k: v for k, v in self.battle_sampling(s).to_dict().items() if k != "seed"}
            s.battle = b
            context = pending["context"] if pending else None
        else:
            context = None
        s.pending_prompt = None
        b.add_user_turn(text, self.limits, context)
        try:
            yield from self._generate(b, s.voter_id or "anon")
        finally:
            b.abort_turn()  # no-op when the turn finished; drops the turn if the voter left mid-stream

    def _generate(self, b: Battle, client: str) -> Iterator[PairUpdate]:
        engine = self._engine()
        contenders = self.contenders()
        adapters = []
        for model in b.models:
            if model == BASE_ID:
                adapters.append(None)
                continue
            folder = contenders.get(model)
            if folder is None:
                raise UserError("The run behind one side of this battle is gone; press 'New battle'.")
            engine.attach_adapter(model, folder)  # a no-op, without waiting, when attached already
            adapters.append(model)
        system = self.system_prompt()
        # One SamplingConfig for both sides (one batched generate), fixed for the whole battle.
        fixed = b.sampling or {k: v for k, v in self.sampling.to_dict().items() if k != "seed"}
        sampling = SamplingConfig(**fixed, seed=(b.seed + b.turns) % (2 ** 31))
        # Show the voter's turn and two "waiting" bubbles at once, before the model (and the
        # queue for it) gets to this battle.
        yield PairUpdate("", "", False, False, None, 0.0)
        last = None
        shown_text, shown_at = False, 0.0
        # one group: both sides join the running batch in the same step (fair per voter)
        for last in stream_pair(engine, with_persona_system(b.conv_left, system),
                                with_persona_system(b.conv_right, system), adapters[0], adapters[1], sampling,
                                client=client):
            if last.done:
                break
            # The first text at once, then at most one update per STREAM_EVERY_S: every update is
            # Python work in the studio (Gradio's diff and events for 11 outputs), and with 20
            # voters streaming per token that work competed with the engine for the interpreter.
            now = time.monotonic()
            has_text = bool(last.left or last.right)
            if (has_text and not shown_text) or now - shown_at >= STREAM_EVERY_S:
                shown_text, shown_at = shown_text or has_text, now
                yield last
        assert last is not None
        b.finish_turn(last.left, last.right, *last.cut_at())
        yield last

    # ---- the vote -------------------------------------------------------------------------------
    def vote(self, s: ArenaSession, choice: str) -> dict:
        """Record the vote (once per battle) and return the reveal: both model ids and names."""
        b = s.battle if isinstance(s, ArenaSession) else None
        if b is None:
            raise UserError("Start a battle first: send a prompt, read both replies, then vote.")
        if b.state == "ready":
            self._check_vote_caps(s)
        b.cast_vote(choice)
        row = b.vote_row(s.voter_id or "anon:unknown", address_id=s.address_id, client_id=s.client_id,
                         meta={"persona": self.settings.persona, "base_model": self.settings.base_model})
        stored = self.store.record(row)
        if stored:
            s.battles_voted += 1
            if self.sync is not None:
                try:
                    self.sync.add(row)
                except OSError as exc:  # the local vote is safe; the copy will be retried next time
                    log.warning("arena sync: %s", exc)
        r = b.reveal()
        return {**r, "left_name": self.display_name(r["left"]), "right_name": self.display_name(r["right"])}

    def traits(self, s: ArenaSession | None, answers: dict[str, str]) -> int:
        b = s.battle if isinstance(s, ArenaSession) else None  # called before any battle: no state yet
        if b is None or b.state != "voted":
            raise UserError("Vote on the battle first; the trait questions come after the vote.")
        return self.store.record_traits(b.id, answers)

    # ---- results --------------------------------------------------------------------------------
    def results(self, judge: list[dict] | None = None) -> dict:
        if judge is None:
            judge = stats.judge_verdicts(self.settings.runs_dir)
        return {**stats.summarize(self.store.votes(), judge), "left_out": self.left_out()}

    def export(self, out: str | Path, fmt: str) -> int:
        """csv / jsonl: every vote; dpo / kto: preference rows for `train --method dpo|kto` (rows written)."""
        if fmt in ("dpo", "kto"):
            from .preference import export_preferences

            return export_preferences(self.store.votes(), out, fmt, self.settings.persona_dir())["rows"]
        return self.store.export(out, fmt)
