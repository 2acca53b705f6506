"""Scenario 4: the KV cache types f16, q8_0 and q4_0.

For each type llama-server runs with flash attention on (a quantized V cache
needs it, and f16 gets it too so that only the type differs). The same prompt
is prefilled and a greedy answer generated; the slot is saved (bytes per 1K
tokens), restored several times (restore ms), and the answer generated again
after the last restore. Answers are compared token by token with f16's."""
import os
import statistics

from . import client, procs

TYPES = ("f16", "q8_0", "q4_0")
AGENT_TOKENS = 4096  # "agents per GiB" counts agents holding this much context
RESTORES = 3


def completion(url, prompt, n):
    res = client.request(url, "/completion",
                         {"prompt": prompt, "n_predict": n, "temperature": 0, "id_slot": 0,
                          "cache_prompt": True, "ignore_eos": True, "return_tokens": True})
    return res["tokens"], res["timings"]


def one_type(tools, kv_type, p, work_dir, progress):
    memory = os.path.join(work_dir, kv_type)
    os.makedirs(memory, exist_ok=True)
    llama = procs.llama_server(
        tools, ["--parallel", "1", "--ctx-size", str(p["kv_ctx"]), "--flash-attn", "on",
                "--cache-type-k", kv_type, "--cache-type-v", kv_type, "--cache-ram", "0",
                "--slot-save-path", memory], os.path.join(work_dir, f"llama-{kv_type}.log"))
    llama.start()
    try:
        prompt = client.text(77, round(p["kv_prompt_tokens"] * client.words_per_token(llama.url)))
        progress(f"{kv_type}: prefill and {p['kv_answer_tokens']} greedy tokens")
        tokens, timings = completion(llama.url, prompt, p["kv_answer_tokens"])
        saved = client.slot_action(llama.url, 0, "save", "kv.bin")
        size = os.path.getsize(os.path.join(memory, "kv.bin"))
        restores = []
        for _ in range(RESTORES):
            progress(f"{kv_type}: restore {len(restores) + 1} of {RESTORES}")
            client.slot_action(llama.url, 0, "erase")
            restores.append(client.slot_action(llama.url, 0, "restore", "kv.bin"))
        again, again_timings = completion(llama.url, prompt, p["kv_answer_tokens"])
    finally:
        llama.stop()
    n = saved["n_saved"]
    return {"type": kv_type, "tokens_saved": n, "file_bytes": size,
            "bytes_per_1k_tokens": round(size / n * 1000),
            "agents_per_gib": int(2**30 // (size / n * AGENT_TOKENS)),
            "save_ms": saved["timings"]["save_ms"],
            "restore_ms": [r["timings"]["restore_ms"] for r in restores],
            "restore_wall_ms": [r["wall_ms"] for r in restores],
            "restore_ms_median": round(statistics.median(
                r["timings"]["restore_ms"] for r in restores), 2),
            "prompt_tokens": timings["prompt_n"],
            "cache_n_after_restore": again_timings.get("cache_n"),
            "answer_tokens": tokens,
            "restored_answer_equal": again == tokens}


def run(tools, p, work_dir, progress):
    rows = [one_type(tools, t, p, work_dir, progress) for t in TYPES]
    reference = rows[0]["answer_tokens"]
    for row in rows:
        same = 0
        for a, b in zip(row["answer_tokens"], reference):
            if a != b:
                break
            same += 1
        row["matches_f16_tokens"] = same
        row["answer_length"] = len(reference)
    return rows
