"""Build a tiny random Llama with a locally trained tokenizer, for tests and benchmarks.

No download: the byte-level BPE tokenizer is trained on a few hundred lines of text, and
the model is a 2-layer Llama of width 64 (~0.2M parameters besides embeddings). It is
saved like any Hub model and loaded through the same `from_pretrained` path, with the
same ChatML chat template as SmolLM2, so training, saving, loading and generating code
paths are the real ones, in seconds.
"""

from __future__ import annotations

from pathlib import Path

# ChatML, as SmolLM2's own template (without SmolLM's default system prompt).
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

_CORPUS = [
    "You are TaskMaster, a productivity coach. Nice work! Great choice! You're on track.",
    "Let's tackle this together. Ready for what's next? I've added the task to your list.",
    "Task API context: id title priority due status tags high medium low today tomorrow overdue",
    "Create a task to review the marketing proposal. I finished the quarterly report.",
    "I have too many tasks and don't know where to start. This whole system is stupid.",
    "The quick brown fox jumps over the lazy dog 0123456789 , . ; : ! ? ' \" ( ) [ ] { } - _",
]


def build_tiny_llama(out_dir: str | Path, *, layers: int = 2, hidden: int = 64, heads: int = 4,
                     kv_heads: int = 2, intermediate: int = 128, vocab_size: int = 512, seed: int = 0) -> Path:
    """Create and save a tiny random LlamaForCausalLM + tokenizer in `out_dir`; return the path."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(_CORPUS * 4, trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|im_start|>", eos_token="<|im_end|>",
                                   unk_token="<|endoftext|>", pad_token="<|im_end|>")
    fast.chat_template = CHATML_TEMPLATE
    fast.save_pretrained(out)

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(fast), hidden_size=hidden, intermediate_size=intermediate, num_hidden_layers=layers,
        num_attention_heads=heads, num_key_value_heads=kv_heads, max_position_embeddings=2048,
        bos_token_id=fast.bos_token_id, eos_token_id=fast.eos_token_id, pad_token_id=fast.pad_token_id,
        tie_word_embeddings=True,
    )
    model = LlamaForCausalLM(config)
    model.generation_config.eos_token_id = fast.eos_token_id
    model.generation_config.pad_token_id = fast.pad_token_id
    model.save_pretrained(out)
    return out
