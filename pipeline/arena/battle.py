"""One blind battle: two models, sides drawn at random, identities revealed only after the vote.

The state machine (FastChat's anonymous arena, plus multi-turn and limits):

    open ──send──► generating ──both replies done──► ready ──vote──► voted
                        ▲                              │
                        └──────send (same sides)───────┘   (up to `max_turns` turns)

Everything here is plain data kept on the server (the studio holds an `ArenaSession` in a
`gr.State`, whose value Gradio never sends to the browser). `public()` is the only view that
leaves the server before the vote, and it carries no model id; `reveal()` refuses until a vote
is recorded.
"""

from __future__ import annotations

import hashlib
import itertools
import random
import secrets
import time
from collections import deque
from dataclasses import dataclass, field

from ..errors import UserError
from .votes import VOTES

VOTE_LABELS = {"left": "Left is better", "right": "Right is better", "tie": "Tie", "both_bad": "Both bad"}


@dataclass(frozen=True)
class Limits:
    """Abuse limits for a public Space (all per browser session)."""

    max_prompt_chars: int = 1000   # ~250 tokens: room for a real question, not for a prompt-stuffing attack
    max_turns: int = 3             # user turns per battle; the vote is about the whole conversation
    turns_per_minute: int = 6      # per session: 6 turns x 2 replies is ~all one CPU can serve per minute
    max_new_tokens: int = 150      # per reply (the seed's usage example)
    # battles streaming at once: each is 2 rows of the engine's continuous batch (48 rows); more
    # senders wait in Gradio's queue
    batch_battles: int = 24
    # Vote caps across sessions (a fresh session is free to make): in the spirit of Chatbot
    # Arena's per-user limits. A client is one browser (address + user agent); an address may be
    # an office behind one NAT, hence the larger cap.
    votes_per_client_hour: int = 30
    votes_per_address_hour: int = 120

    ENV = {"max_prompt_chars": "TASKMASTER_ARENA_MAX_PROMPT_CHARS", "max_turns": "TASKMASTER_ARENA_MAX_TURNS",
           "turns_per_minute": "TASKMASTER_ARENA_TURNS_PER_MINUTE",
           "max_new_tokens": "TASKMASTER_ARENA_MAX_NEW_TOKENS", "batch_battles": "TASKMASTER_ARENA_BATCH_BATTLES",
           "votes_per_client_hour": "TASKMASTER_ARENA_VOTES_PER_CLIENT_HOUR",
           "votes_per_address_hour": "TASKMASTER_ARENA_VOTES_PER_ADDRESS_HOUR"}

    @classmethod
    def from_env(cls, env: dict | None = None) -> "Limits":
        """Defaults, overridden by TASKMASTER_ARENA_* variables (a Space operator's knobs;
        the load benchmark caps replies at 16 tokens with TASKMASTER_ARENA_MAX_NEW_TOKENS)."""
        import os

        env = os.environ if env is None else env
        values = {}
        for name, var in cls.ENV.items():
            if env.get(var):
                try:
                    values[name] = max(1, int(env[var]))
                except ValueError:
                    raise UserError(f"{var} must be a whole number, not {env[var]!r}") from None
        return cls(**values)


@dataclass
class Battle:
    id: str
    seed: int
    left: str
    right: str
    started_at: float
    prompt_id: str | None = None
    category: str | None = None
    conv_left: list[dict] = field(default_factory=list)
    conv_right: list[dict] = field(default_factory=list)
    state: str = "open"  # open | generating | ready | voted
    # SamplingConfig fields (seed excluded) fixed when the battle starts: both sides and every turn
    # decode the same way, so a vote compares the models, not their decoding.
    sampling: dict | None = None
    vote: str | None = None
    voted_at: float | None = None
    # Replies the token limit cut off, per side: index of the reply in conv_left/conv_right ->
    # the tokens it was cut at (the tab marks them "cut at N tokens"; a voter should know).
    cuts: dict[str, dict[int, int]] = field(default_factory=lambda: {"left": {}, "right": {}})

    @property
    def turns(self) -> int:
        return sum(1 for m in self.conv_left if m["role"] == "user")

    @property
    def models(self) -> tuple[str, str]:
        return self.left, self.right

    def side_of(self, model: str) -> str:
        return "left" if model == self.left else "right"

    # ---- transitions ----------------------------------------------------------------------
    def add_user_turn(self, text: str, limits: Limits, context: list[dict] | None = None) -> None:
        if self.state == "generating":
            raise UserError("Both models are still answering: wait for the two replies, then send the next turn.")
        if self.state == "voted":
            raise UserError("This battle is over (you voted). Press 'New battle' to start another one.")
        if self.turns >= limits.max_turns:
            raise UserError(f"A battle has at most {limits.max_turns} turns: vote now, then start a new battle.")
        if context and not self.conv_left:
            self.conv_left = [dict(m) for m in context]
            self.conv_right = [dict(m) for m in context]
        self.conv_left.append({"role": "user", "content": text})
        self.conv_right.append({"role": "user", "content": text})
        self.state = "generating"

    def finish_turn(self, reply_left: str, reply_right: str, cut_left: int | None = None,
                    cut_right: int | None = None) -> None:
        """Both replies are in; `cut_*`: the tokens a reply was cut at by the token limit (None: it ended)."""
        self.conv_left.append({"role": "assistant", "content": reply_left.strip()})
        self.conv_right.append({"role": "assistant", "content": reply_right.strip()})
        for side, cut, conv in (("left", cut_left, self.conv_left), ("right", cut_right, self.conv_right)):
            if cut is not None:
                self.cuts[side][len(conv) - 1] = int(cut)
        self.state = "ready"

    def abort_turn(self) -> None:
        """Generation failed or the voter left mid-stream: drop the unanswered user turn."""
        if self.state != "generating":
            return
        for conv in (self.conv_left, self.conv_right):
            if conv and conv[-1]["role"] == "user":
                conv.pop()
        self.state = "ready" if self.turns else "open"

    def cast_vote(self, vote: str) -> None:
        if vote not in VOTES:
            raise UserError(f"Unknown vote {vote!r}: use one of {', '.join(VOTE_LABELS.values())}.")
        if self.state == "voted":
            raise UserError("You already voted on this battle. Press 'New battle' to start another one.")
        if self.state != "ready":
            raise UserError("Vote once both replies have finished.")
        self.vote = vote
        self.voted_at = time.time()
        self.state = "voted"

    @property
    def winner(self) -> str | None:
        return {"left": self.left, "right": self.right}.get(self.vote or "")

    # ---- views ------------------------------------------------------------------------------
    def public(self) -> dict:
        """What the page may see before the vote: no model ids, no seed."""
        return {"battle": self.id, "state": self.state, "turns": self.turns,
                "conversation_left": [m for m in self.conv_left if m["role"] != "system"],
                "conversation_right": [m for m in self.conv_right if m["role"] != "system"]}

    def reveal(self) -> dict:
        if self.state != "voted":
            raise UserError("The models are revealed after you vote.")
        return {"left": self.left, "right": self.right, "vote": self.vote, "winner": self.winner}

    def vote_row(self, voter_id: str, **extra) -> dict:
        if self.state != "voted":
            raise ValueError("no vote yet")
        return {"battle_id": self.id, "model_left": self.left, "model_right": self.right, "vote": self.vote,
                "winner": self.winner, "conversation_left": self.conv_left, "conversation_right": self.conv_right,
                "turns": self.turns, "prompt_id": self.prompt_id, "category": self.category,
                "voter_id": voter_id, "started_at": self.started_at, "voted_at": self.voted_at,
                "sampling": self.sampling, "cut_left": dict(self.cuts["left"]),
                "cut_right": dict(self.cuts["right"]), **extra}


def new_battle(pool: list[str], *, seed: int | None = None, prompt_id: str | None = None,
               category: str | None = None) -> Battle:
    """Draw a pair from `pool` and its sides with an RNG seeded per battle (the seed is kept,
    so a battle's draw can be replayed; it never leaves the server)."""
    pool = sorted(set(pool))
    if len(pool) < 2:
        raise UserError("The Arena needs two models: finish a training run (Train tab) so that an adapter "
                        "can meet the base model.")
    seed = secrets.randbits(63) if seed is None else seed
    rng = random.Random(seed)
    pair = list(rng.choice(list(itertools.combinations(pool, 2))))
    rng.shuffle(pair)
    return Battle(id=secrets.token_urlsafe(12), seed=seed, left=pair[0], right=pair[1], started_at=time.time(),
                  prompt_id=prompt_id, category=category)


@dataclass
class ArenaSession:
    """Per-browser-session arena data (the value of the tab's `gr.State`)."""

    voter_id: str | None = None
    address_id: str | None = None  # salted hashes (see Arena.session); None when unknown
    client_id: str | None = None
    battle: Battle | None = None
    pending_prompt: dict | None = None  # an eval-set prompt drawn into the textbox
    turn_times: deque = field(default_factory=lambda: deque(maxlen=64))
    battles_voted: int = 0
    # The visitor's decoding choice from the tab's "Decoding" controls (temperature, top_p); None:
    # the base model's default. Read when a battle starts.
    sampling: dict | None = None

    def check_rate(self, limits: Limits, now: float | None = None) -> None:
        now = time.time() if now is None else now
        recent = [t for t in self.turn_times if now - t < 60]
        if len(recent) >= limits.turns_per_minute:
            wait = 60 - (now - recent[0])
            raise UserError(f"Slow down: at most {limits.turns_per_minute} turns a minute per visitor. "
                            f"Try again in {wait:.0f} s.")
        self.turn_times.append(now)


def voter_id(username: str | None, session_hash: str | None, salt: bytes) -> str:
    """'hf:<username>' when logged in with the Hub, else a salted hash of the session (never an IP)."""
    if username:
        return f"hf:{username}"
    digest = hashlib.sha256(salt + (session_hash or secrets.token_hex(8)).encode()).hexdigest()[:16]
    return f"anon:{digest}"
