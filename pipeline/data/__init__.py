"""Training-example records and the data stages (stats, generate, filter, dedupe, balance, review, export)."""
