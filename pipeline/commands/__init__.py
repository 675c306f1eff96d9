"""One module per CLI stage; each defines `register(subparsers)`. See pipeline/cli.py."""
