"""A tiny mixture-of-experts GGUF (qwen3moe, ~130K parameters) made with the gguf package: it loads and
generates in a fraction of a second, so slow backends (Vulkan on lavapipe) can be exercised for real."""

from __future__ import annotations

from pathlib import Path

import numpy as np

N_EMBD, N_HEAD, N_HEAD_KV, HEAD_DIM, N_LAYER = 64, 4, 2, 16, 2
N_EXPERT, N_EXPERT_USED, N_FF_EXP, CONTEXT = 4, 2, 32, 512


def _vocab() -> tuple[list[str], list[float], list[int]]:
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]
    tokens += [f"\u2581{w}" for w in ("the", "a", "hello", "world", "sky", "is", "blue", "red", "cat", "dog")]
    scores = [0.0] * 3 + [0.0] * 256 + [-float(i) for i in range(len(tokens) - 259)]
    types = [2, 3, 3] + [6] * 256 + [1] * (len(tokens) - 259)
    return tokens, scores, types


def write_tiny_moe(path: Path, seed: int = 0) -> Path:
    import gguf

    rng = np.random.default_rng(seed)
    tokens, scores, types = _vocab()
    n_vocab = len(tokens)
    writer = gguf.GGUFWriter(str(path), "qwen3moe")
    arch = "qwen3moe"
    writer.add_name("tiny-moe")
    writer.add_uint32(f"{arch}.context_length", CONTEXT)
    writer.add_uint32(f"{arch}.embedding_length", N_EMBD)
    writer.add_uint32(f"{arch}.block_count", N_LAYER)
    writer.add_uint32(f"{arch}.feed_forward_length", N_FF_EXP * N_EXPERT_USED)
    writer.add_uint32(f"{arch}.attention.head_count", N_HEAD)
    writer.add_uint32(f"{arch}.attention.head_count_kv", N_HEAD_KV)
    writer.add_uint32(f"{arch}.attention.key_length", HEAD_DIM)
    writer.add_uint32(f"{arch}.attention.value_length", HEAD_DIM)
    writer.add_float32(f"{arch}.attention.layer_norm_rms_epsilon", 1e-6)
    writer.add_float32(f"{arch}.rope.freq_base", 10000.0)
    writer.add_uint32(f"{arch}.expert_count", N_EXPERT)
    writer.add_uint32(f"{arch}.expert_used_count", N_EXPERT_USED)
    writer.add_uint32(f"{arch}.expert_feed_forward_length", N_FF_EXP)
    writer.add_string("tokenizer.ggml.model", "llama")
    writer.add_array("tokenizer.ggml.tokens", tokens)
    writer.add_array("tokenizer.ggml.scores", scores)
    writer.add_array("tokenizer.ggml.token_type", types)
    writer.add_uint32("tokenizer.ggml.bos_token_id", 1)
    writer.add_uint32("tokenizer.ggml.eos_token_id", 2)
    writer.add_uint32("tokenizer.ggml.unknown_token_id", 0)

    def tensor(name: str, *ne: int) -> None:
        # numpy shapes are ggml's ne reversed.
        writer.add_tensor(name, (rng.standard_normal(tuple(reversed(ne))) * 0.05).astype(np.float32))

    tensor("token_embd.weight", N_EMBD, n_vocab)
    tensor("output_norm.weight", N_EMBD)
    tensor("output.weight", N_EMBD, n_vocab)
    for i in range(N_LAYER):
        tensor(f"blk.{i}.attn_norm.weight", N_EMBD)
        tensor(f"blk.{i}.attn_q.weight", N_EMBD, N_HEAD * HEAD_DIM)
        tensor(f"blk.{i}.attn_k.weight", N_EMBD, N_HEAD_KV * HEAD_DIM)
        tensor(f"blk.{i}.attn_v.weight", N_EMBD, N_HEAD_KV * HEAD_DIM)
        tensor(f"blk.{i}.attn_output.weight", N_HEAD * HEAD_DIM, N_EMBD)
        tensor(f"blk.{i}.attn_q_norm.weight", HEAD_DIM)
        tensor(f"blk.{i}.attn_k_norm.weight", HEAD_DIM)
        tensor(f"blk.{i}.ffn_norm.weight", N_EMBD)
        tensor(f"blk.{i}.ffn_gate_inp.weight", N_EMBD, N_EXPERT)
        tensor(f"blk.{i}.ffn_gate_exps.weight", N_EMBD, N_FF_EXP, N_EXPERT)
        tensor(f"blk.{i}.ffn_down_exps.weight", N_FF_EXP, N_EMBD, N_EXPERT)
        tensor(f"blk.{i}.ffn_up_exps.weight", N_EMBD, N_FF_EXP, N_EXPERT)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
