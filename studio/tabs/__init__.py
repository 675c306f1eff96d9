"""One module per tab; each exposes `create_tab(ctx: StudioContext) -> None`."""
