"""How a conversation is framed for the model: the persona's system prompt plus task context.

Training examples store only what is specific to them: the user/assistant turns and, where
the answer depends on the user's tasks, a leading system message with the "Task API
context". The persona's own system prompt is added here, at training, evaluation and
serving time alike, so the base model and the adapter always see the same framing.

Why always a system message: SmolLM2's chat template injects "You are a helpful AI
assistant named SmolLM" whenever the first message is not a system message, which would
leak the base model's identity into the persona.
"""

from __future__ import annotations

CONTEXT_HEADER = "Task API context:"


def with_persona_system(messages: list[dict], system_prompt: str | None) -> list[dict]:
    """Return messages with exactly one leading system message that starts with the persona prompt.

    A leading system message already in `messages` (task context) is appended below the
    persona prompt. `system_prompt=None` keeps messages as they are (used to study the
    template's own default on purpose)."""
    msgs = [dict(m) for m in messages]
    if system_prompt is None:
        return msgs
    prompt = system_prompt.strip()
    if msgs and msgs[0].get("role") == "system":
        ctx = msgs[0]["content"].strip()
        if ctx.startswith(prompt):  # already framed (idempotent)
            return msgs
        msgs[0]["content"] = f"{prompt}\n\n{ctx}"
        return msgs
    return [{"role": "system", "content": prompt}] + msgs


def prompt_messages(messages: list[dict]) -> list[dict]:
    """Everything up to (not including) the last assistant turn: what a model is asked to continue."""
    if messages and messages[-1].get("role") == "assistant":
        return messages[:-1]
    return list(messages)


def last_user_text(messages: list[dict]) -> str:
    for m in reversed(messages):
        if m.get("role") == "user":
            return m.get("content", "")
    return ""
