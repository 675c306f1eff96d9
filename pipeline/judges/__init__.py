"""Judges: one contract (a batch in, a list out, a documented failure value). See base.py."""
