"""Real components for tests and benchmarks, kept out of the production modules:

    openai_server.py   an OpenAI-compatible server (`python -m pipeline.testing.openai_server`)
    hub_server.py      a local Hugging Face Hub (`python -m pipeline.testing.hub_server`)
    tiny_model.py      a tiny random Llama + tokenizer built locally (nothing downloaded)
    finished_run.py    a finished run folder with a real (untrained, random) LoRA adapter
    bad_inputs.py      malformed files the readers must refuse clearly
    stop_after.py      a stop request after n checks: stop a real training run at an exact step

Shipped so that the servers work for manual runs and demos too."""
