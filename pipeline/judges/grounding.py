"""Grounding: task data a reply states that is in neither the request nor the Task API context.

The persona's system prompt says "use only the task data given in a Task API context message;
never invent tasks, dates or counts". A reader checks a reply's facts against what the user
wrote and what the context lists; this module does the same with rules, so each finding
quotes the claim it could not ground:

  dates    weekday names, day-of-month ("the 15th", "March 3"), ISO dates, clock times. Known:
           today, every date in the context, the dates the user's words resolve to ("next
           Wednesday", "the 20th", "thursday") and the day before each of those (a reply
           proposing "due the day before" derives it). Dates inside a question ("Would
           Thursday work?") are proposals, not claims, and are skipped.
  counts   "you have N tasks", "N are overdue", "your fourth task": N must be a count the
           context supports (all, open, done, per priority, due today, overdue, due within
           7 days) or a number the user wrote.
  titles   quoted task titles must share most of their words with the user's turn or a
           context title.
  records  "your meeting with Priya", "the call with ...": an event the request and the context
           never mention.
  lists    with no Task API context at all, a reply that presents "your tasks" / "your list" /
           "next on your list" as a list of named items invents them.

Deliberately precise rather than complete: an invented meeting or person in free prose is
left to the learned component (pipeline/judges/probe.py).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass

from ..prompting import CONTEXT_HEADER

WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
MONTHS = ["january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
          "november", "december"]
NUMBER_WORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
                "ten": 10, "eleven": 11, "twelve": 12, "a single": 1, "both": 2}
ORDINAL_WORDS = {"first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7,
                 "eighth": 8, "ninth": 9, "tenth": 10}
_MON = r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)"
_DAY_OF_MONTH = re.compile(
    rf"\b(?:the\s+)?(\d{{1,2}})(?:st|nd|rd|th)\b(?:\s+of\s+({_MON}))?|\b({_MON})\.?\s+(\d{{1,2}})(?:st|nd|rd|th)?\b"
    rf"|\b(\d{{1,2}})\s+({_MON})\b", re.I)
_ISO = re.compile(r"\b(20\d\d)-(\d\d)-(\d\d)\b")
_WEEKDAY = re.compile(r"\b(" + "|".join(WEEKDAYS) + r")\b", re.I)
_TIME = re.compile(r"\b(\d{1,2})(?::(\d\d))?\s*(am|pm)\b|\b(\d{1,2}):(\d\d)\b", re.I)
_NUM = r"(\d+|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|a single|both)"
_COUNT = re.compile(
    rf"\b(?:you (?:have|still have|'ve got|now have)|there (?:are|is)|that(?:'s| is| leaves)|leaves(?: you with)?|"
    rf"only|just|with)\s+{_NUM}\s+(?:\w+\s+){{0,2}}(?:tasks?|items?|things?|to-dos?|todos?)\b"
    rf"|\b{_NUM}\s+(?:tasks?|items?|things?)\s+(?:are\s+|is\s+)?(?:left|open|remaining|overdue|due|done|completed|"
    rf"finished|pending|mention)\b"
    rf"|(?:^|[.:!]\s+){_NUM}\s+(?:are|is)\s+(?:overdue|due|open|left|done|high)\b", re.I | re.M)
_ORD = r"(first|second|third|fourth|fifth|sixth|seventh|eighth|ninth|tenth|\d+(?:st|nd|rd|th))"
_ORDINAL_TASK = re.compile(rf"\byour {_ORD} (?:task|item|one|early finish)\b(?! ever)"
                           rf"|\bthe {_ORD} (?:task|item|one) (?=(?:you've|you have|you|this|today|in a row)\b)", re.I)
# "alongside the six other q3 tasks": a count of tasks beside the one in hand
_OTHER_COUNT = re.compile(rf"\b{_NUM} other (?:[\w-]+ ){{0,2}}(?:tasks?|items?|to-dos?)\b", re.I)
_QUOTE = re.compile(r"[\"\u201c]([^\"\u201d]{3,80})[\"\u201d]")
_LIST_CLAIM = re.compile(
    r"\b(?:here(?:'s| is| are) (?:your|the) (?:list|tasks?|to-?do)|(?<!on )your (?:tasks|to-?dos?|list)(?: (?:for today|today|are))?\s*:"
    r"|you have (?:the following|these) tasks|next (?:up )?on your list is|your next (?:\w+[- ])?(?:task|item) is\s+\"?[A-Z\"]"
    r"|your (?:high[- ]priority|overdue|open) tasks? (?:are|is)\b"
    r"|(?:today's|your) (?:high[- ]priority |overdue |open |urgent )?tasks? (?:for today )?include\b)", re.I)
# "your meeting with Priya", "the call with the landlord": an event of the user's presented as a
# fact; invented unless the request or the context names that kind of event
_RECORD = re.compile(r"\b(?:your|the) (meeting|call|appointment|1:1|one-on-one|interview|standup|stand-up|session)"
                     r" (?:with|at|on)\b", re.I)
_STOP = set("the a an to of for and or on in with my your me is it at by from up this that be as".split())


@dataclass(frozen=True)
class Claim:
    kind: str  # date | time | count | title | list | record
    quote: str  # the words in the reply
    reason: str


@dataclass
class Facts:
    """What the request and the Task API context make known."""

    has_context: bool
    today: dt.date | None
    dates: set  # datetime.date
    days: set  # day-of-month numbers
    weekdays: set  # weekday names
    counts: set  # ints
    typed_counts: dict  # "overdue" | "today" | "high" | "left" -> the one count the context supports
    titles_by: dict  # "overdue" | "high" -> set of lower-case titles with that property
    numbers: set  # numbers written by the user
    times: set  # "2pm", "14:00" as normalised strings
    text: str  # user turn + titles, lower-case


def _context_block(messages: list[dict]) -> str:
    for m in messages:
        c = m.get("content") or ""
        if m.get("role") == "system" and CONTEXT_HEADER in c:
            return c.split(CONTEXT_HEADER, 1)[1]
    return ""


def _parse_tasks(block: str) -> list[dict]:
    m = re.search(r"tasks:\s*(\[.*\])", block, re.S)
    if not m:
        return []
    try:
        tasks = json.loads(m.group(1))
    except json.JSONDecodeError:
        return []
    return [t for t in tasks if isinstance(t, dict)]


def _iso(s) -> dt.date | None:
    try:
        return dt.date.fromisoformat(str(s)[:10])
    except (TypeError, ValueError):
        return None


def _resolve_user_dates(user: str, today: dt.date | None) -> set:
    """Dates the user's words name: "the 20th", "next wednesday", "thursday", "tomorrow", "march 3"."""
    out = set()
    low = user.lower()
    if today is None:
        return out
    for m in _WEEKDAY.finditer(low):
        wd = WEEKDAYS.index(m.group(1).lower())
        ahead = (wd - today.weekday()) % 7 or 7
        prefix = low[max(0, m.start() - 5):m.start()]
        for extra in (0, 7):  # "thursday" (this week's) or "next thursday" (either reading)
            out.add(today + dt.timedelta(days=ahead + extra))
        last = today - dt.timedelta(days=(today.weekday() - wd) % 7 or 7)
        out.add(last)  # "last friday"
        del prefix
    if "tomorrow" in low:
        out.add(today + dt.timedelta(days=1))
    if "next week" in low:
        out.update(today + dt.timedelta(days=k) for k in range(5, 12))
    for m in _DAY_OF_MONTH.finditer(low):
        day = m.group(1) or m.group(4) or m.group(5)
        if day:
            d = int(day)
            for mon_off in (0, 1):
                y, mo = today.year + (today.month + mon_off - 1) // 12, (today.month + mon_off - 1) % 12 + 1
                try:
                    out.add(dt.date(y, mo, d))
                except ValueError:
                    pass
    return out


def facts(messages: list[dict]) -> Facts:
    block = _context_block(messages)
    user = " ".join(m.get("content", "") for m in messages if m.get("role") == "user")
    tasks = _parse_tasks(block)
    tm = re.search(r"today:\s*(\d{4}-\d\d-\d\d)", block)
    today = _iso(tm.group(1)) if tm else None
    dates = set()
    if today:
        dates.add(today)
    for t in tasks:
        d = _iso(t.get("due"))
        if d:
            dates.add(d)
    user_dates = _resolve_user_dates(user, today)
    derived = {d + dt.timedelta(days=k) for d in user_dates for k in (-1, 0)}
    if today:
        derived |= {today + dt.timedelta(days=1)}  # "tomorrow" is always known relative to today
    dates |= derived
    counts = {len(tasks)}
    open_ = [t for t in tasks if t.get("status", "open") != "done"]
    counts |= {len(open_), len(tasks) - len(open_)}
    for p in ("high", "medium", "low"):
        counts.add(sum(1 for t in open_ if t.get("priority") == p))
        counts.add(sum(1 for t in tasks if t.get("priority") == p))
    if today:
        due = [_iso(t.get("due")) for t in open_]
        counts.add(sum(1 for d in due if d == today))
        counts.add(sum(1 for d in due if d and d < today))
        counts.add(sum(1 for d in due if d and today <= d <= today + dt.timedelta(days=7)))
        counts.add(sum(1 for d in due if d and today <= d <= today + dt.timedelta(days=6 - today.weekday())))
    counts |= {len(open_) - k for k in (1, 2) if len(open_) - k >= 0}  # "that leaves N" after completing some
    typed: dict = {}
    titles_by: dict = {"overdue": set(), "high": set()}
    if tasks:
        low_user = user.lower()
        mentioned = sum(1 for t in open_ if _words(str(t.get("title", ""))) & _words(low_user))
        completing = re.search(r"\b(?:done|finished|completed?|mark|ticked|paid|fixed|sent|wrapped)\b", low_user)
        typed["left"] = {len(open_) - mentioned} if completing else {len(open_)}
        typed["high"] = {sum(1 for t in open_ if t.get("priority") == "high")}
        titles_by["high"] = {str(t.get("title", "")).lower() for t in open_ if t.get("priority") == "high"}
        if today:
            due = [(t, _iso(t.get("due"))) for t in open_]
            typed["overdue"] = {sum(1 for _, d in due if d and d < today)}
            typed["today"] = {sum(1 for _, d in due if d == today)}
            titles_by["overdue"] = {str(t.get("title", "")).lower() for t, d in due if d and d < today}
            week = sum(1 for _, d in due if d and today <= d <= today + dt.timedelta(days=6 - today.weekday()))
            typed["left"] = typed["left"] | ({week} if "week" in low_user else set())
    numbers = {int(n) for n in re.findall(r"\b\d+\b", user)}
    numbers |= {v for w, v in NUMBER_WORDS.items() if re.search(rf"\b{w}\b", user, re.I)}
    # a user who lists items separated by commas/"and" gives their count
    items = [x for x in re.split(r",|\band\b", user) if x.strip()]
    numbers.add(len(items))
    times = {_norm_time(m) for m in _TIME.finditer(user + " " + block)}
    text = (user + " " + " ".join(str(t.get("title", "")) for t in tasks) + " " +
            " ".join(" ".join(t.get("tags", []) or []) for t in tasks)).lower()
    return Facts(has_context=bool(block.strip()), today=today, dates=dates,
                 days={d.day for d in dates}, weekdays={WEEKDAYS[d.weekday()] for d in dates},
                 counts=counts, typed_counts=typed, titles_by=titles_by, numbers=numbers, times=times, text=text)


def _norm_time(m: re.Match) -> str:
    if m.group(3):
        return f"{int(m.group(1))}{(m.group(2) or '00')}{m.group(3).lower()}"
    return f"{int(m.group(4))}:{m.group(5)}"


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in re.split(r"(?<=[.!?])\s+|\n+", text) if s.strip()]


def _num(tok: str) -> int | None:
    tok = tok.lower()
    if tok.isdigit():
        return int(tok)
    return NUMBER_WORDS.get(tok)


def _words(s: str) -> set:
    return {w for w in re.findall(r"[a-z0-9']+", s.lower()) if w not in _STOP and len(w) > 1}


def ungrounded_claims(messages: list[dict], reply: str) -> list[Claim]:
    """Every claim in `reply` that the request and the Task API context do not support."""
    f = facts(messages)
    out: list[Claim] = []
    seen = set()

    def add(kind, quote, reason):
        key = (kind, quote.lower())
        if key not in seen:
            seen.add(key)
            out.append(Claim(kind, quote, reason))

    user_low = " ".join(m.get("content", "") for m in messages if m.get("role") == "user").lower()
    for sent in _sentences(reply):
        question = sent.rstrip().endswith("?")
        if not question:
            for m in _ISO.finditer(sent):
                d = _iso(m.group(0))
                if d not in f.dates:
                    add("date", m.group(0), "date in neither the request nor the Task API context")
            for m in _DAY_OF_MONTH.finditer(sent):
                day = m.group(1) or m.group(4) or m.group(5)
                if day and int(day) not in f.days and day not in user_low:
                    add("date", m.group(0).strip(), "day of month in neither the request nor the Task API context")
            for m in _WEEKDAY.finditer(sent):
                wd = m.group(1).lower()
                if wd not in f.weekdays and wd not in user_low:
                    add("date", m.group(0), "weekday in neither the request nor the Task API context")
            for m in _TIME.finditer(sent):
                if _norm_time(m) not in f.times:
                    add("time", m.group(0), "clock time in neither the request nor the Task API context")
            for m in _COUNT.finditer(sent):
                n = _num(next(g for g in m.groups() if g))
                if n is None:
                    continue
                phrase = m.group(0).lower()
                kind = next((k for k, pat in (("overdue", "overdue"), ("today", "today"), ("high", "high"),
                                              ("left", r"left|remaining|open|still")) if re.search(pat, phrase + " " + sent.lower()[m.end():m.end() + 25])), None)
                if f.has_context and kind in f.typed_counts:
                    if n not in f.typed_counts[kind] and n not in f.numbers:
                        add("count", m.group(0).strip(), f"{kind} count {n} does not match the Task API context")
                elif f.has_context:
                    if n not in f.counts and n not in f.numbers:
                        add("count", m.group(0).strip(), f"count {n} does not match the Task API context")
                elif n not in f.numbers:
                    add("count", m.group(0).strip(), "a count of the user's tasks with no Task API context")
            for m in _OTHER_COUNT.finditer(sent):
                n = _num(m.group(1))
                if n is not None and n + 1 not in f.counts and n not in f.counts and n not in f.numbers:
                    add("count", m.group(0), "a count of other tasks the request and the Task API context do not support")
            for m in _ORDINAL_TASK.finditer(sent):
                w = (m.group(1) or m.group(2)).lower()
                n = ORDINAL_WORDS.get(w) or int(re.match(r"\d+", w).group(0)) if (ORDINAL_WORDS.get(w) or w[0].isdigit()) else None
                if n and n > 1 and n not in f.counts and n not in f.numbers:
                    add("count", m.group(0), "an ordinal count of the user's tasks the context does not support")
        prop = "overdue" if "overdue" in sent.lower() else "high" if re.search(r"high[- ]priority", sent, re.I) else None
        for m in _QUOTE.finditer(sent):
            q = m.group(1)
            if prop and f.titles_by.get(prop) is not None and f.has_context and not question and \
                    q.lower() in {t.lower() for t in re.findall(r"[^,;]+", f.text)} | _all_titles(messages) \
                    and q.lower() not in f.titles_by[prop] and len(_QUOTE.findall(sent)) > 1:
                add("title", f'"{q}"', f"listed as {prop} but it is not {prop} in the Task API context")
            words = _words(q)
            if len(words) < 2 or q.lower() in user_low:
                continue
            known = _words(f.text)
            if len(words & known) / len(words) < 0.5:
                add("title", f'"{q}"', "a task title in neither the request nor the Task API context")
    for sent in _sentences(reply):
        if sent.rstrip().endswith("?"):
            continue
        for m in _RECORD.finditer(sent):
            if m.group(1).lower() not in f.text:
                add("record", m.group(0), f"a {m.group(1).lower()} in neither the request nor the Task API context")
    if not f.has_context:
        m = _LIST_CLAIM.search(reply)
        if m:
            add("list", m.group(0), "presents the user's tasks with no Task API context")
    return out


def _all_titles(messages: list[dict]) -> set:
    return {str(t.get("title", "")).lower() for t in _parse_tasks(_context_block(messages))}


def invented(messages: list[dict], reply: str) -> bool:
    return bool(ungrounded_claims(messages, reply))
