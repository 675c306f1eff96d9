"""The Arena: blind side-by-side battles between the base model and adapters, human votes in
SQLite, and the statistics that make a win rate trustworthy.

    battle.py     a battle's state machine: sides drawn per battle, reveal only after the vote, limits
    streaming.py  both sides streaming at once from one base model (a mixed-adapter batch)
    votes.py      the SQLite (WAL) vote store, CSV/JSONL export
    stats.py      Wilson intervals, per-category rates, Bradley-Terry + bootstrap, judge agreement
    sync.py       optional CommitScheduler copy of the votes to a Hub dataset repo
    service.py    `Arena`: the one object the studio tab and the benchmark drive
"""

from .battle import ArenaSession, Battle, Limits, new_battle
from .service import Arena, finished_runs, load_eval_prompts
from .votes import VoteStore, votes_path

__all__ = ["Arena", "ArenaSession", "Battle", "Limits", "VoteStore", "finished_runs", "load_eval_prompts",
           "new_battle", "votes_path"]
