"""Scenario 7: coding agents, after published Claude Code and Codex traces.

Those traces show a shared system + tool prefix of 12K to 25K tokens, 300 to
3,000 tokens of tool output a turn, 50 to 500 output tokens, 0.2 to 30 s of
tool time, and 93 to 97% of each prompt a prefix of the previous one. Scaled
to this machine: every agent starts from the same system + tool prefix and a
task of its own; each later turn appends the output of a tool (as a user
message) and asks for a short answer, and the tool runs between turns (think
time). An agent stops once its context has passed the variant's size. The
same agents are served the four ways of scenario 2 (workload.configs), each on
a freshly started llama-server. The RAM-constrained budget is a quarter of
the agents' final KV, at the bytes a token of a slot saved at the end of the
first serving (--cache-ram 0), the measure the sweep uses."""
import os
import random
import threading
import time
from types import SimpleNamespace

from . import client, procs, workload

TASK_TOKENS = 40
MESSAGE_TOKENS = 6  # what the chat template adds around a message, about
SYSTEM_HEADER = "You are a coding agent. Tools and their schemas follow.\n"


def plan(v, agent):
    """One agent's turns: tool output tokens (none for turn 1, the task
    alone), answer tokens and the think time after, in nominal tokens so that
    every serving sends the very same turns. The last turn ends past
    v["context_tokens"]."""
    rng = random.Random(7000 + agent)
    context, tool, turns = v["prefix_tokens"] + TASK_TOKENS + 2 * MESSAGE_TOKENS, 0, []
    while True:
        answer = rng.randint(*v["answer_tokens"])
        context += tool + answer + 2 * MESSAGE_TOKENS
        turns.append({"tool_tokens": tool, "answer_tokens": answer,
                      "think_s": round(rng.uniform(*v["think_s"]), 2), "context": context})
        if context >= v["context_tokens"]:
            return turns
        tool = rng.randint(*v["tool_tokens"])


class Serving:
    """The agents of one variant, served one way on its own llama-server."""

    def __init__(self, tools, v, config, work_dir, progress):
        self.v, self.config, self.progress = v, config, progress
        memory = os.path.join(work_dir, "memory")
        os.makedirs(memory)
        args = ["--parallel", str(v["slots"]), "--ctx-size", str(v["slots"] * v["slot_ctx"]),
                "--slot-save-path", memory] + v["llama_args"] + config["args"]
        self.llama = procs.llama_server(tools, args, os.path.join(work_dir, "llama-server.log"))
        self.kv = (procs.agentkv(tools, self.llama, memory, os.path.join(work_dir, "agentkv.log"))
                   if config["agentkv"] else None)
        self.plans = [plan(v, i) for i in range(v["agents"])]
        self.turns, self.errors = [], []
        self.lock = threading.Lock()

    def words(self, tokens):
        return max(1, round(tokens * self.words_per_token))

    def agent(self, i):
        url, path = ((self.kv.url, f"/agents/coder-{i}/v1/chat/completions") if self.kv
                     else (self.llama.url, "/v1/chat/completions"))
        messages = [{"role": "system", "content": self.system},
                    {"role": "user",
                     "content": "Task: " + client.text(9000 + i, self.words(TASK_TOKENS))}]
        steps = self.plans[i]
        try:
            time.sleep(random.Random(i).uniform(0, self.v["think_s"][1]))  # arrive apart
            for n, step in enumerate(steps, 1):
                if self.errors:
                    return  # another agent failed: run() reports it
                if step["tool_tokens"]:
                    output = client.text(100000 + 1000 * i + n, self.words(step["tool_tokens"]))
                    messages.append({"role": "user", "content": "Tool output:\n" + output})
                start = time.monotonic() - self.t0
                turn = client.chat(url, path, messages, step["answer_tokens"])
                messages.append({"role": "assistant", "content": turn["content"]})
                self.record(dict(agent=i, turn=n, start_s=round(start, 3),
                                 answer_n=turn["chunks"], **client.figures(turn)))
                if n < len(steps):
                    time.sleep(step["think_s"])  # the tool runs
        except Exception as e:  # reported by run()
            with self.lock:
                self.errors.append(f"agent {i}: {e!r}")

    def record(self, turn):
        with self.lock:
            self.turns.append(turn)
            done = len(self.turns)
        total = sum(len(p) for p in self.plans)
        self.progress(f"{self.v['context_tokens']} tokens, {self.config['label']}: "
                      f"turn {done} of {total}")

    def run(self, words_per_token=None, measure_kv=False):
        """Runs every agent to its last turn; with measure_kv, also saves the
        fuller slot afterwards for the bytes a token of this model's KV."""
        try:
            self.llama.start()
            if self.kv:
                self.kv.start()
            self.words_per_token = words_per_token or client.words_per_token(self.llama.url)
            self.system = SYSTEM_HEADER + client.text(4242, self.words(self.v["prefix_tokens"]))
            self.t0 = time.monotonic()
            threads = [threading.Thread(target=self.agent, args=(i,), daemon=True)
                       for i in range(self.v["agents"])]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            wall_s = time.monotonic() - self.t0
            if self.errors:
                raise RuntimeError("; ".join(self.errors))
            per_token = self.kv_bytes_per_token() if measure_kv else None
        finally:
            if self.kv:
                self.kv.stop()
            self.llama.stop()
        return {"config": self.config, "wall_s": round(wall_s, 2),
                "words_per_token": self.words_per_token, "kv_bytes_per_token": per_token,
                "turns": sorted(self.turns, key=lambda t: (t["agent"], t["turn"]))}

    def kv_bytes_per_token(self):
        saves = [client.slot_action(self.llama.url, s, "save", f"agentic-kv-{s}.bin")
                 for s in range(self.v["slots"])]
        fullest = max(saves, key=lambda r: r["n_saved"])
        if not fullest["n_saved"]:
            raise RuntimeError("agentic: both slots were empty after the run")
        return round(fullest["n_written"] / fullest["n_saved"], 1)


def final_contexts(turns):
    """Each agent's context after its last answer, from llama-server's counts."""
    last = {}
    for t in turns:
        last[t["agent"]] = t
    return [(t["prompt_n"] or 0) + (t["cache_n"] or 0) + t["answer_n"]
            for _, t in sorted(last.items())]


def run_variant(tools, v, work, progress):
    """The four servings of one variant: cache-ram 0 first (it measures the
    KV a token), then the RAM-constrained budget, the default cache, agentkv."""
    wd = os.path.join(work, f"agentic-{v['context_tokens']}")
    longest = max(plan(v, i)[-1]["context"] for i in range(v["agents"]))
    if longest + 256 > v["slot_ctx"]:
        raise RuntimeError(f"agentic: a {longest}-token context does not fit "
                           f"a {v['slot_ctx']}-token slot")
    cold, *_ = workload.configs(0)
    os.makedirs(os.path.join(wd, cold["key"]))
    first = Serving(tools, v, cold, os.path.join(wd, cold["key"]), progress).run(
        measure_kv=True)
    final_kv = first["kv_bytes_per_token"] * sum(final_contexts(first["turns"]))
    small = max(1, int(final_kv / 4 / 2**20))
    servings = [first]
    for config in workload.configs(small)[1:]:
        os.makedirs(os.path.join(wd, config["key"]))
        servings.append(Serving(tools, v, config, os.path.join(wd, config["key"]),
                                progress).run(first["words_per_token"]))
    return {"variant": v, "model": os.path.basename(tools.model),
            "final_kv_mib": round(final_kv / 2**20, 1), "cache_ram_small_mib": small,
            "servings": servings}


def run(tools, p, variants, work, progress, model_path):
    """Each variant in turn; a variant may name its own model and llama-server
    arguments."""
    out = []
    for v in variants:
        v = dict(v, slots=p["slots"], slot_ctx=v.get("slot_ctx", p["slot_ctx"]),
                 llama_args=v.get("llama_args", []))
        vtools = SimpleNamespace(**vars(tools))
        if v.get("model"):
            vtools.model = model_path(v["model"])
        out.append(run_variant(vtools, v, work, progress))
    return out


def prefix_shares(turns):
    """For each returning turn, the share of its prompt that is the previous
    prompt and answer: what the published traces put at 93 to 97%."""
    shares, prev = [], {}
    for t in turns:
        prompt = (t["prompt_n"] or 0) + (t["cache_n"] or 0)
        if t["agent"] in prev and prompt:
            shares.append(100 * min(1, prev[t["agent"]] / prompt))
        prev[t["agent"]] = prompt + t["answer_n"]
    return shares


def summary(result, pct):
    v, rows = result["variant"], []
    for s in result["servings"]:
        first = [t["ttft_ms"] for t in s["turns"] if t["turn"] == 1]
        back = [t["ttft_ms"] for t in s["turns"] if t["turn"] >= 2]
        placements = {}
        for t in s["turns"]:
            if t["placement"]:
                placements[t["placement"]] = placements.get(t["placement"], 0) + 1
        rows.append({"key": s["config"]["key"], "label": s["config"]["label"],
                     "first_turn_p50_ms": pct(first, 50), "returning_p50_ms": pct(back, 50),
                     "returning_p95_ms": pct(back, 95), "wall_s": s["wall_s"],
                     "tokens_prefilled": sum(t["prompt_n"] or 0 for t in s["turns"]),
                     "placements": placements})
    by = {r["key"]: r for r in rows}
    cold = result["servings"][0]
    contexts = final_contexts(cold["turns"])

    def over_agentkv(key):
        a, b = by[key]["returning_p50_ms"], by["agentkv"]["returning_p50_ms"]
        return round(a / b, 1) if a and b else None
    return {"model": result["model"], "agents": v["agents"],
            "slots": v["slots"], "prefix_tokens": v["prefix_tokens"],
            "tool_tokens": v["tool_tokens"], "answer_tokens": v["answer_tokens"],
            "think_s": v["think_s"], "context_tokens": v["context_tokens"],
            "turns": len(cold["turns"]), "returning_turns": len(cold["turns"]) - v["agents"],
            "final_context_p50": pct(contexts, 50), "final_context_max": max(contexts),
            "prefix_share_p50": pct(prefix_shares(cold["turns"]), 50),
            "kv_bytes_per_token": cold["kv_bytes_per_token"],
            "final_kv_mib": result["final_kv_mib"],
            "cache_ram_small_mib": result["cache_ram_small_mib"], "servings": rows,
            "small_over_agentkv": over_agentkv("cache-ram-small"),
            "cold_over_agentkv": over_agentkv("cache-ram-0")}
