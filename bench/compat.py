#!/usr/bin/env python3
"""The compatibility matrix: each test model family, KV cache type and
speculative decoding mode, served through agentkv, and what a returning
agent gets back.

For every combination agentkv starts llama-server itself (2 slots, the
user's arguments only: no --swa-full) and runs, with token-id prompts:
  1. a control agent and agent `a` send the same 300-token prompt;
  2. the control sends its prompt plus its answer plus 3 more tokens
     (it stays resident: never evicted);
  3. a third agent evicts `a`;
  4. `a` sends the same extension as the control: it is restored.
Reported: the reuse of the restored turn (cache_n of the tokens the slot
held), whether both of a's answers equal the control's token for token
(bit-exact), the bytes of a's file per 1K tokens, agentkv's restore time,
the wall time of the returning turn against the control's resident one, and
what agentkv did for the family.

Usage: python3 bench/compat.py [--families ...] [--types ...] [--modes ...] [--out DIR]
Needs scripts/setup.sh to have run (llama-server, agentkv, the test models).
"""
import argparse
import json
import os
import re
import shutil
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import client, procs  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CACHE = os.environ.get("AGENTKV_CACHE_DIR", os.path.expanduser("~/.cache/agentkv"))
FAMILIES = ("llama", "qwen3", "qwen3moe", "gemma3", "gpt-oss", "mamba2", "granitehybrid")
TYPES = ("f16", "q8_0")
MODES = ("plain", "ngram-mod", "draft")
PROMPT = [300 + (7 * i) % 5000 for i in range(300)]
ANSWER = 8


def model_of(family):
    name = "agentkv-test.gguf" if family == "llama" else f"agentkv-test-{family}.gguf"
    return os.path.join(CACHE, "models", name)


def llama_args(kv_type, mode):
    args = ["--ctx-size", "8192", "--threads", "2", "--seed", "1"]
    if kv_type != "f16":  # a quantized V cache needs flash attention
        args += ["--flash-attn", "on", "--cache-type-k", kv_type, "--cache-type-v", kv_type]
    if mode == "ngram-mod":
        args += ["--spec-type", "ngram-mod"]
    elif mode == "draft":  # a llama model of the same vocabulary drafts for any family
        args += ["--model-draft", os.path.join(CACHE, "models", "agentkv-test-b.gguf")]
    return args


def completion(url, agent, prompt):
    body = {"prompt": prompt, "n_predict": ANSWER, "temperature": 0, "ignore_eos": True,
            "return_tokens": True}
    req = urllib.request.Request(f"{url}/agents/{agent}/completion", json.dumps(body).encode(),
                                 {"Content-Type": "application/json"})
    start = time.perf_counter()
    with urllib.request.urlopen(req, timeout=600) as res:
        out = json.load(res)
        out["placement"] = res.headers.get("X-Agentkv-Placement")
    out["wall_ms"] = client.ms(time.perf_counter() - start)
    return out


def get(url, path):
    with urllib.request.urlopen(url + path, timeout=30) as res:
        return res.read().decode()


def restore_ms(metrics_text):
    total = re.search(r"^agentkv_restore_duration_seconds_sum (\S+)", metrics_text, re.M)
    count = re.search(r"^agentkv_restore_duration_seconds_count (\S+)", metrics_text, re.M)
    if not total or not count or float(count.group(1)) == 0:
        return None
    return round(float(total.group(1)) / float(count.group(1)) * 1000, 2)


def one(family, kv_type, mode, work):
    memory = os.path.join(work, "memory")
    shutil.rmtree(memory, ignore_errors=True)
    port = procs.free_port()
    argv = [os.path.join(ROOT, "build", "agentkv"), "serve", "--port", str(port),
            "--model", model_of(family), "--slots", "2", "--memory-dir", memory,
            "--llama-log", os.path.join(work, "llama.log"), "--"] + llama_args(kv_type, mode)
    server = procs.Server("agentkv", argv, port, os.path.join(work, "agentkv.log"), "/readyz")
    row = {"family": family, "type": kv_type, "mode": mode}
    try:
        server.start(timeout=120)
    except RuntimeError as e:
        row["error"] = f"did not start: {e}"
        return row
    try:
        url = server.url
        ctl1 = completion(url, "control", PROMPT)
        a1 = completion(url, "a", PROMPT)
        extension = [400, 401, 402]
        ctl2 = completion(url, "control", PROMPT + ctl1["tokens"] + extension)
        completion(url, "evictor", [500 + i for i in range(50)])
        a2 = completion(url, "a", PROMPT + a1["tokens"] + extension)
        held = a1["timings"]["prompt_n"] + a1["timings"]["cache_n"] + ANSWER - 1
        saved = json.loads(get(url, "/admin/agents/a"))["saved"]
        stats = json.loads(get(url, "/admin/stats"))
        row.update({
            "placement": a2["placement"],
            "cache_n": a2["timings"]["cache_n"], "held": held,
            "bit_exact": a1["tokens"] == ctl1["tokens"] and a2["tokens"] == ctl2["tokens"],
            "bytes_per_1k": round(saved["bytes"] / saved["tokens"] * 1000) if saved else None,
            "restore_ms": restore_ms(get(url, "/metrics")),
            "restored_turn_ms": a2["wall_ms"], "resident_turn_ms": ctl2["wall_ms"],
            "swa_full_added": stats["model"]["swa_full_added_by_agentkv"],
            "recurrent": stats["model"]["recurrent"],
            "quarantined": stats["quarantined"], "fallbacks": stats["fallbacks"],
        })
    except Exception as e:  # a combination llama-server refuses is a row, not a crash
        row["error"] = str(e)
    finally:
        server.stop()
    return row


def what_agentkv_does(row):
    if row.get("swa_full_added"):
        return "adds --swa-full; no reuse judgement after a restore"
    if row.get("recurrent"):
        return "restores exact extensions; no reuse judgement"
    return "restores; quarantines a restore that reuses nothing of its own prompt"


def markdown(rows):
    out = ["| family | KV type | speculative | reuse after restore | bit-exact | bytes / 1K tokens "
           "| restore ms | returning turn ms (restored / resident) | what agentkv does |",
           "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            out.append(f"| {r['family']} | {r['type']} | {r['mode']} | {r['error'][:80]} "
                       "| | | | | |")
            continue
        out.append(
            f"| {r['family']} | {r['type']} | {r['mode']} | {r['cache_n']} / {r['held']} "
            f"| {'yes' if r['bit_exact'] else 'no'} | {r['bytes_per_1k']:,} | {r['restore_ms']} "
            f"| {r['restored_turn_ms']:.0f} / {r['resident_turn_ms']:.0f} "
            f"| {what_agentkv_does(r)} |")
    return "\n".join(out) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--families", default=",".join(FAMILIES))
    ap.add_argument("--types", default=",".join(TYPES))
    ap.add_argument("--modes", default=",".join(MODES))
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "out", "compat"))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="agentkv-compat-") as work:
        for family in args.families.split(","):
            for kv_type in args.types.split(","):
                for mode in args.modes.split(","):
                    print(f"{family} {kv_type} {mode} ...", flush=True)
                    rows.append(one(family, kv_type, mode, work))
                    print("   ", json.dumps(rows[-1]), flush=True)
    with open(os.path.join(args.out, "compat.json"), "w") as f:
        json.dump(rows, f, indent=1)
    table = markdown(rows)
    with open(os.path.join(args.out, "compat.md"), "w") as f:
        f.write(table)
    print(table)
    return 0 if all("error" not in r and r["placement"] == "restored" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
