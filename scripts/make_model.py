#!/usr/bin/python3
"""Write a random-weight GGUF model of a given architecture for tests and
benchmarks.

No weights can be downloaded on our build machines, and agentkv measures
compute, KV size and timings, which depend on the shape only. The model must
still depend on its context (norm weights at one, other weights ~ N(0, 0.02)),
or equality tests after a restore would prove nothing.

Usage: make_model.py --llama-src DIR [--arch ARCH] --shape test|bench --out FILE.gguf
ARCH: llama (default), qwen3, qwen3moe (mixture of experts), gemma3 (sliding
window attention on every other layer), gpt-oss (sliding window, attention
sinks and mixture of experts), mamba2 (recurrent), granitehybrid (recurrent
layers, then attention layers). Tensor names come from gguf-py's own
tables, and only names that gguf-py lists for the architecture are written.
The tokenizer comes from DIR/models/ggml-vocab-llama-spm.gguf.
"""
import argparse
import os
import sys

SHAPES = {
    # name: (layers, width, ff, heads, kv_heads, context)
    "test": (2, 256, 512, 4, 2, 8192),
    "bench": (22, 2048, 5632, 32, 4, 8192),
    # Little compute, much KV (24 KiB of f16 a token: an 8K-token agent is a
    # 192 MiB file), for the slow-disk scenario.
    "disk": (12, 512, 512, 8, 8, 16384),
}

ARCHS = ("llama", "qwen3", "qwen3moe", "gemma3", "gpt-oss", "mamba2", "granitehybrid")
MOE = ("qwen3moe", "gpt-oss")
RECURRENT = ("mamba2", "granitehybrid")
SSM_CONV, SSM_STATE, SSM_HEAD_DIM = 4, 16, 64
N_EXPERT, N_EXPERT_USED = 4, 2  # qwen3moe
SLIDING_WINDOW, SWA_PATTERN = 64, 2  # gemma3: layer 0 windowed, layer 1 full, ...

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
    ap.add_argument("--arch", choices=ARCHS, default="llama")
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

    arch = args.arch
    arch_enum = next(a for a, name in gguf.MODEL_ARCH_NAMES.items() if name == arch)
    allowed = set(gguf.MODEL_TENSORS[arch_enum])
    T = gguf.MODEL_TENSOR

    tmp = args.out + ".tmp"
    w = gguf.GGUFWriter(tmp, arch)
    w.add_name(f"agentkv-random-{args.shape}" if arch == "llama" else
               f"agentkv-random-{arch}-{args.shape}")
    w.add_context_length(n_ctx)
    w.add_embedding_length(n_embd)
    w.add_block_count(n_layer)
    # Recurrent layers: in granitehybrid, the first half (no KV heads).
    recurrent_layer = [arch == "mamba2" or (arch == "granitehybrid" and i < n_layer // 2)
                       for i in range(n_layer)]
    d_inner = 2 * n_embd
    ssm_heads = d_inner // SSM_HEAD_DIM
    conv_dim = d_inner + 2 * SSM_STATE
    if arch == "mamba2":
        w.add_feed_forward_length(0)  # unused, but read
        w.add_head_count(0)
    else:
        w.add_feed_forward_length(n_ff)
        w.add_head_count(n_head)
        w.add_head_count_kv([0 if r else n_head_kv for r in recurrent_layer]
                            if arch == "granitehybrid" else n_head_kv)
        w.add_rope_dimension_count(head_dim)
    if arch in RECURRENT:
        w.add_ssm_conv_kernel(SSM_CONV)
        w.add_ssm_inner_size(d_inner)
        w.add_ssm_state_size(SSM_STATE)
        w.add_ssm_time_step_rank(ssm_heads)
        w.add_ssm_group_count(1)
    w.add_layer_norm_rms_eps(1e-5 if arch == "llama" else 1e-6)
    w.add_vocab_size(n_vocab)
    if arch in MOE:
        w.add_expert_count(N_EXPERT)
        w.add_expert_used_count(N_EXPERT_USED)
        w.add_expert_feed_forward_length(n_ff // N_EXPERT_USED)
    if arch in ("gemma3", "gpt-oss"):
        w.add_sliding_window(SLIDING_WINDOW)
        w.add_sliding_window_pattern(SWA_PATTERN)
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

    def ones(*shape):
        return np.ones(shape, dtype=np.float32)

    def zeros(*shape):
        return np.zeros(shape, dtype=np.float32)

    def put(tensor, data, bid=None, suffix=".weight"):
        if tensor not in allowed:
            raise SystemExit(f"gguf-py lists no {tensor.name} for {arch}")
        w.add_tensor(gguf.TENSOR_NAMES[tensor].format(bid=bid) + suffix, data)

    def ssm_layer(i):
        f32 = np.float32
        put(T.SSM_IN, rand(d_inner + conv_dim + ssm_heads, n_embd), i)
        put(T.SSM_CONV1D, rand(conv_dim, SSM_CONV).astype(f32), i)
        put(T.SSM_CONV1D, np.zeros(conv_dim, dtype=f32), i, ".bias")
        put(T.SSM_DT, np.zeros(ssm_heads, dtype=f32), i, ".bias")
        put(T.SSM_A, -ones(ssm_heads, 1), i, "")  # A = -exp(A_log): negative decays
        put(T.SSM_D, ones(ssm_heads, 1), i, "")
        put(T.SSM_NORM, ones(1, d_inner), i)
        put(T.SSM_OUT, rand(n_embd, d_inner), i)

    # numpy shapes are (rows, columns): llama.cpp's {columns, rows}.
    q_dim, kv_dim = head_dim * n_head, head_dim * n_head_kv
    put(T.TOKEN_EMBD, rand(n_vocab, n_embd))
    put(T.OUTPUT_NORM, ones(n_embd))
    put(T.OUTPUT, rand(n_vocab, n_embd))
    def attention_layer(i):
        put(T.ATTN_Q, rand(q_dim, n_embd), i)
        put(T.ATTN_K, rand(kv_dim, n_embd), i)
        put(T.ATTN_V, rand(kv_dim, n_embd), i)
        put(T.ATTN_OUT, rand(n_embd, q_dim), i)
        if arch in ("qwen3", "qwen3moe", "gemma3"):
            put(T.ATTN_Q_NORM, ones(head_dim), i)
            put(T.ATTN_K_NORM, ones(head_dim), i)
        if arch == "gemma3":
            put(T.ATTN_POST_NORM, ones(n_embd), i)
            put(T.FFN_POST_NORM, ones(n_embd), i)
        if arch == "gpt-oss":
            put(T.ATTN_OUT, zeros(n_embd), i, ".bias")
            put(T.ATTN_SINKS, zeros(n_head), i)
            put(T.ATTN_POST_NORM, ones(n_embd), i)  # its pre-FFN norm

    def moe_layer(i, biases):
        n_ff_exp = n_ff // N_EXPERT_USED
        put(T.FFN_GATE_INP, rand(N_EXPERT, n_embd).astype(np.float32), i)
        put(T.FFN_GATE_EXP, rand(N_EXPERT, n_ff_exp, n_embd), i)
        put(T.FFN_UP_EXP, rand(N_EXPERT, n_ff_exp, n_embd), i)
        put(T.FFN_DOWN_EXP, rand(N_EXPERT, n_embd, n_ff_exp), i)
        if biases:
            put(T.FFN_GATE_INP, zeros(N_EXPERT), i, ".bias")
            put(T.FFN_GATE_EXP, zeros(N_EXPERT, n_ff_exp), i, ".bias")
            put(T.FFN_UP_EXP, zeros(N_EXPERT, n_ff_exp), i, ".bias")
            put(T.FFN_DOWN_EXP, zeros(N_EXPERT, n_embd), i, ".bias")

    for i in range(n_layer):
        put(T.ATTN_NORM, ones(n_embd), i)
        if recurrent_layer[i]:
            ssm_layer(i)
            if arch == "mamba2":
                continue  # no feed-forward block
        else:
            attention_layer(i)
        if arch != "gpt-oss":
            # gemma3's pre-FFN norm has the same name under another enum
            put(T.FFN_PRE_NORM if arch == "gemma3" else T.FFN_NORM, ones(n_embd), i)
        if arch in MOE:
            moe_layer(i, biases=arch == "gpt-oss")
        else:
            put(T.FFN_GATE, rand(n_ff, n_embd), i)
            put(T.FFN_UP, rand(n_ff, n_embd), i)
            put(T.FFN_DOWN, rand(n_embd, n_ff), i)

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    os.replace(tmp, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
