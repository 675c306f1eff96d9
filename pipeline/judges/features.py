"""What the embedded model "reads" in a reply: features for the learned judge (probe.py).

One forward pass of the embedded SmolLM2-135M over `user turn + reply` (its own chat
template, no persona prompt: the judge asks what the reply says, not how the persona would
continue), run through the first `LAYERS` of its 30 decoder layers only; the rest of the
network and the 49k-word output head are never computed, which is what keeps a verdict in
tens of milliseconds on a CPU. Per reply:

  reply_mean    mean hidden state of the reply's tokens at layer LAYERS (576 numbers):
                the reply's content as the model represents it, *conditioned on the request*
                (causal attention: reply tokens see the user's words).
  user_mean     the same over the user's tokens; cos(reply_mean, user_mean) is an on-task signal.
  surface       length, repetition, role-play markers, question ending, non-ASCII share: the
                cheap cues of a reply that loops, speaks as the user or writes both sides.

The model is loaded once per process (lru_cache) and run in float32 with torch's intra-op
threads left as they are.
"""

from __future__ import annotations

import math
import re
from functools import lru_cache

LAYERS = 4  # of 30: the cost of a verdict is linear in layers; 4 keeps the online path near 50 ms on 2 cores
MAX_USER_TOKENS = 64
MAX_REPLY_TOKENS = 128
HIDDEN = 576
_ROLE = re.compile(r"(?:^|\n)\s*(?:user|assistant|human|system|taskmaster|me|you)\s*:|<\|im_(?:start|end)\|>|\bSmolLM\b"
                   r"|\bAI assistant\b|\bas a (?:productivity )?coach,? i\b", re.I)


def _words(text: str) -> list[str]:
    return [w for w in (x.lower().strip(".,!?;:\"'()") for x in text.split()) if w]


def distinct_share(reply: str) -> float:
    """Distinct words / words (1.0 for an empty or one-word reply)."""
    w = _words(reply)
    return len(set(w)) / len(w) if w else 1.0


def degenerate(reply: str) -> str | None:
    """A reply that is mostly one or a few words repeated ("banana banana banana ..."): the
    evidence to quote, else None. On the benchmark, every reply below half distinct words is
    such a loop (labelled coherence 0), and every other reply has at least 0.66 (even 90-word
    model replies), so the rule is precise; the coherence head never saw such short loops."""
    w = _words(reply)
    if len(w) >= 4 and len(set(w)) / len(w) < 0.5:
        return reply.strip()[:80]
    return None


def surface(user: str, reply: str) -> list[float]:
    words = reply.split()
    n = len(words)
    tri = [tuple(words[i:i + 3]) for i in range(max(0, n - 2))]
    rep = 1 - len(set(tri)) / len(tri) if tri else 0.0
    sents = [s for s in re.split(r"(?<=[.!?])\s+|\n+", reply.strip()) if s.strip()]
    dup_sent = 1 - len(set(s.lower() for s in sents)) / len(sents) if sents else 0.0
    non_ascii = sum(1 for c in reply if ord(c) > 127) / max(1, len(reply))
    uw = {w.lower().strip(".,!?") for w in user.split() if len(w) > 3}
    rw = {w.lower().strip(".,!?") for w in words if len(w) > 3}
    overlap = len(uw & rw) / max(1, len(uw))
    return [math.log1p(n), float(n > 120), rep, dup_sent, float(bool(_ROLE.search(reply))), len(_ROLE.findall(reply)),
            float(reply.rstrip().endswith("?")), non_ascii, overlap, float(reply.count("\n") > 3),
            float(bool(re.search(r"[a-z]$", reply.rstrip()))),  # cut off mid-sentence
            distinct_share(reply)]


SURFACE_DIM = len(surface("", "x"))


class Encoder:
    """Embedded-model features for (user, reply) pairs."""

    def __init__(self, base: str | None = None, settings=None, layers: int = LAYERS):
        import torch

        from ..models import load_model_and_tokenizer
        from ..settings import Settings

        settings = settings or Settings.from_env()
        model, tok = load_model_and_tokenizer(base or settings.base_model, settings, dtype=torch.float32, device="cpu")
        self.model_name = base or settings.base_model
        body = model.model
        body.layers = body.layers[:layers]  # the layers past LAYERS are never needed
        model.config.num_hidden_layers = layers
        self.body = body
        self.tok = tok
        self.layers = layers
        # Chat-template pieces, tokenized once: <|im_start|>user\n ... <|im_end|>\n<|im_start|>assistant\n
        self._u0 = tok.encode("<|im_start|>user\n", add_special_tokens=False)
        self._u1 = tok.encode("<|im_end|>\n<|im_start|>assistant\n", add_special_tokens=False)

    def _ids(self, user: str, reply: str) -> tuple[list[int], int, int]:
        u = self.tok.encode(user, add_special_tokens=False)[:MAX_USER_TOKENS]
        r = self.tok.encode(reply, add_special_tokens=False)[:MAX_REPLY_TOKENS] or [self.tok.eos_token_id]
        ids = self._u0 + u + self._u1 + r
        return ids, len(self._u0), len(self._u0) + len(u) + len(self._u1)

    def encode(self, pairs: list[tuple[str, str]], batch_size: int = 16) -> list[list[float]]:
        """One feature vector per (user, reply): reply_mean + [cos] + surface."""
        import torch

        out: list[list[float]] = []
        for i in range(0, len(pairs), batch_size):
            chunk = pairs[i:i + batch_size]
            rows = [self._ids(u, r) for u, r in chunk]
            width = max(len(x[0]) for x in rows)
            pad = self.tok.pad_token_id or 0
            ids = torch.full((len(rows), width), pad, dtype=torch.long)
            mask = torch.zeros((len(rows), width), dtype=torch.long)
            for j, (x, _, _) in enumerate(rows):  # right padding: causal states of real tokens are unaffected
                ids[j, :len(x)] = torch.tensor(x)
                mask[j, :len(x)] = 1
            with torch.inference_mode():
                h = self.body(input_ids=ids, attention_mask=mask).last_hidden_state  # (B, T, 576); no final norm issue: probe is linear
            for j, ((x, u_start, r_start), (u, r)) in enumerate(zip(rows, chunk)):
                hr = h[j, r_start:len(x)].mean(0)
                hu = h[j, u_start:max(u_start + 1, r_start - len(self._u1))].mean(0)
                cos = torch.nn.functional.cosine_similarity(hr, hu, dim=0).item()
                out.append(hr.tolist() + [cos] + surface(u, r))
        return out


FEATURE_DIM = HIDDEN + 1 + SURFACE_DIM


@lru_cache(maxsize=2)
def shared_encoder(base: str | None = None) -> Encoder:
    return Encoder(base)
