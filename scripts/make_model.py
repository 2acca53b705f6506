#!/usr/bin/python3
"""Write a random-weight llama-shaped GGUF model for tests and benchmarks.

No weights can be downloaded on our build machines, and agentkv measures
compute, KV size and timings, which depend on the shape only. The model must
still depend on its context (norm weights at one, other weights ~ N(0, 0.02)),
or equality tests after a restore would prove nothing.

Usage: make_model.py --llama-src DIR --shape test|bench --out FILE.gguf
The tokenizer comes from DIR/models/ggml-vocab-llama-spm.gguf.
"""
import argparse
import os
import sys

SHAPES = {
    # name: (layers, width, ff, heads, kv_heads, context)
    "test": (2, 256, 512, 4, 2, 8192),
    "bench": (22, 2048, 5632, 32, 4, 8192),
}

# A small ChatML-style template so /v1/chat/completions works without guessing.
CHAT_TEMPLATE = (
    "{% for m in messages %}"
    "{{ '<|' + m['role'] + '|>\n' + m['content'] + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}"
)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--llama-src", required=True)
    ap.add_argument("--shape", choices=sorted(SHAPES), default="test")
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=1234)
    args = ap.parse_args()

    sys.path.insert(0, os.path.join(args.llama_src, "gguf-py"))
    import numpy as np
    import gguf

    n_layer, n_embd, n_ff, n_head, n_head_kv, n_ctx = SHAPES[args.shape]
    vocab = gguf.GGUFReader(
        os.path.join(args.llama_src, "models", "ggml-vocab-llama-spm.gguf"))

    def field(name):
        return vocab.fields[name].contents()

    tokens = field("tokenizer.ggml.tokens")
    n_vocab = len(tokens)
    head_dim = n_embd // n_head

    tmp = args.out + ".tmp"
    w = gguf.GGUFWriter(tmp, "llama")
    w.add_name(f"agentkv-random-{args.shape}")
    w.add_context_length(n_ctx)
    w.add_embedding_length(n_embd)
    w.add_block_count(n_layer)
    w.add_feed_forward_length(n_ff)
    w.add_head_count(n_head)
    w.add_head_count_kv(n_head_kv)
    w.add_rope_dimension_count(head_dim)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_vocab_size(n_vocab)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    w.add_tokenizer_model(field("tokenizer.ggml.model"))
    w.add_tokenizer_pre(field("tokenizer.ggml.pre"))
    w.add_token_list(tokens)
    w.add_token_scores(field("tokenizer.ggml.scores"))
    w.add_token_types(field("tokenizer.ggml.token_type"))
    w.add_bos_token_id(field("tokenizer.ggml.bos_token_id"))
    w.add_eos_token_id(field("tokenizer.ggml.eos_token_id"))
    w.add_unk_token_id(field("tokenizer.ggml.unknown_token_id"))
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)
    w.add_chat_template(CHAT_TEMPLATE)

    rng = np.random.default_rng(args.seed)
    # Matrices are f16 (the bench model is quantized to Q4_0 afterwards).
    mat_type = np.float16

    def rand(*shape):
        return (rng.standard_normal(shape, dtype=np.float32) * 0.02).astype(mat_type)

    def ones(n):
        return np.ones((n,), dtype=np.float32)

    w.add_tensor("token_embd.weight", rand(n_vocab, n_embd))
    w.add_tensor("output_norm.weight", ones(n_embd))
    w.add_tensor("output.weight", rand(n_vocab, n_embd))
    kv_dim = head_dim * n_head_kv
    for i in range(n_layer):
        p = f"blk.{i}."
        w.add_tensor(p + "attn_norm.weight", ones(n_embd))
        w.add_tensor(p + "attn_q.weight", rand(n_embd, n_embd))
        w.add_tensor(p + "attn_k.weight", rand(kv_dim, n_embd))
        w.add_tensor(p + "attn_v.weight", rand(kv_dim, n_embd))
        w.add_tensor(p + "attn_output.weight", rand(n_embd, n_embd))
        w.add_tensor(p + "ffn_norm.weight", ones(n_embd))
        w.add_tensor(p + "ffn_gate.weight", rand(n_ff, n_embd))
        w.add_tensor(p + "ffn_up.weight", rand(n_ff, n_embd))
        w.add_tensor(p + "ffn_down.weight", rand(n_embd, n_ff))

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    os.replace(tmp, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
