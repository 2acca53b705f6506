"""Scenario 8: new agents that share a long prefix (system prompt + tools).

`prefix_agents` new agents on 2 slots send the same system text of about
`prefix_tokens` tokens and each a different first question, one after the
other, and get a short answer. Served three ways, each on a fresh
llama-server: llama-server alone with its default RAM cache (it reuses the
prefix from the slot another agent left), agentkv with prefix snapshots off
(--prefix-min-tokens 0: every new agent starts on an erased slot), and
agentkv as shipped (the second agent builds a snapshot, the others start
from it). Reported: p50/p95 TTFT of the agents after the first two, the
second agent's TTFT on its own (llama-server's reuses the first agent's
slot; agentkv's builds the snapshot, on the first agent's memory when it is
idle), and tokens prefilled by all."""
import os

from . import client, procs

QUESTION_WORDS = 30
ANSWER_TOKENS = 16

SERVINGS = [
    {"key": "llama-default", "label": "llama-server, default --cache-ram", "agentkv": None},
    {"key": "agentkv-no-prefix", "label": "agentkv, --prefix-min-tokens 0",
     "agentkv": ["--prefix-min-tokens", "0"]},
    {"key": "agentkv", "label": "agentkv (prefix snapshots)", "agentkv": []},
]


def one(tools, p, serving, work, progress):
    wd = os.path.join(work, "prefix-" + serving["key"])
    memory = os.path.join(wd, "memory")
    os.makedirs(memory)
    args = ["--parallel", "2", "--ctx-size", str(2 * p["slot_ctx"]), "--slot-save-path", memory]
    if serving["agentkv"] is not None:
        args += ["--cache-ram", "0", "--no-cache-idle-slots"]
    llama = procs.llama_server(tools, args, os.path.join(wd, "llama-server.log"))
    kv = None
    if serving["agentkv"] is not None:
        kv = procs.agentkv(tools, llama, memory, os.path.join(wd, "agentkv.log"),
                           serving["agentkv"])
    turns = []
    try:
        llama.start()
        wpt = client.words_per_token(llama.url)
        system = client.text(4242, round((p["prefix_tokens"] - 20) * wpt))
        if kv:
            kv.start()
        for i in range(p["prefix_agents"]):
            progress(f"{serving['label']}: agent {i + 1} of {p['prefix_agents']}")
            messages = [{"role": "system", "content": system},
                        {"role": "user", "content": client.text(900 + i, QUESTION_WORDS)}]
            if kv:
                t = client.chat(kv.url, f"/agents/new-{i}/v1/chat/completions", messages,
                                ANSWER_TOKENS)
            else:
                t = client.chat(llama.url, "/v1/chat/completions", messages, ANSWER_TOKENS)
            turns.append(dict(client.figures(t), agent=i))
    finally:
        if kv:
            kv.stop()
        llama.stop()
    return {"serving": serving["key"], "label": serving["label"], "turns": turns}


def run(tools, p, work, progress):
    return [one(tools, p, s, work, progress) for s in SERVINGS]


def summary(rows, pct):
    out = []
    for r in rows:
        later = [t["ttft_ms"] for t in r["turns"][2:]]
        out.append({"serving": r["serving"], "label": r["label"], "agents": len(r["turns"]),
                    "context_tokens": pct([(t["prompt_n"] or 0) + (t["cache_n"] or 0)
                                           for t in r["turns"]], 50),
                    "later_p50_ms": pct(later, 50), "later_p95_ms": pct(later, 95),
                    "all_p50_ms": pct([t["ttft_ms"] for t in r["turns"]], 50),
                    "second_ms": (r["turns"][1]["ttft_ms"] if len(r["turns"]) > 1 else None),
                    "tokens_prefilled": sum(t["prompt_n"] or 0 for t in r["turns"]),
                    "placements": sorted({t["placement"] for t in r["turns"]
                                          if t["placement"]})})
    by = {s["serving"]: s for s in out}
    if "agentkv" in by:
        for s in out:
            s["over_agentkv"] = round(s["later_p50_ms"] / by["agentkv"]["later_p50_ms"], 2)
    return out
