"""Real components for tests and benchmarks (an OpenAI-compatible server); shipped so that
`python -m pipeline.testing.openai_server` works for manual runs and demos too."""
