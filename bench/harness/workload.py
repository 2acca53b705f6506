"""Scenarios 2 and 3: many agents in rounds, after LMCache's multi-round QA.

Every agent shares one system prompt; each round it asks a new question,
gets an answer of `answer_tokens` tokens, thinks for a moment and asks again,
so its history grows every round. Agents start a little apart and then run
freely. After the last round every agent waits (and agentkv finishes its
turn-end saves); for the two configurations
that keep agents' KV between turns (llama-server's default RAM cache, and
agentkv), llama-server is restarted and every agent comes back for one more
round (scenario 3), arriving apart as in round 1. The other two keep nothing
a restart could lose."""
import os
import random
import threading
import time

from . import client, procs


def configs(small_mib):
    """The four ways of serving the same agents that are compared."""
    return [
        {"key": "cache-ram-0", "label": "llama-server, --cache-ram 0",
         "agentkv": False, "restart": False, "args": ["--cache-ram", "0"]},
        {"key": "cache-ram-small", "label": f"llama-server, --cache-ram {small_mib}",
         "agentkv": False, "restart": False, "args": ["--cache-ram", str(small_mib)]},
        {"key": "cache-ram-default", "label": "llama-server, default --cache-ram (8192)",
         "agentkv": False, "restart": True, "args": []},
        {"key": "agentkv", "label": "agentkv (llama-server --cache-ram 0)",
         "agentkv": True, "restart": True, "args": ["--cache-ram", "0", "--no-cache-idle-slots"]},
    ]


def final_tokens(p, words_per_token):
    """About how many tokens one agent's conversation holds after the last round."""
    return round((p["system_words"] + p["rounds"] * p["question_words"]) / words_per_token
                 + p["rounds"] * p["answer_tokens"])


class Run:
    """One configuration through all rounds and the restart."""

    def __init__(self, tools, p, config, work_dir, progress):
        self.p, self.config, self.progress = p, config, progress
        self.memory = os.path.join(work_dir, "memory")
        os.makedirs(self.memory, exist_ok=True)
        args = ["--parallel", str(p["slots"]), "--ctx-size", str(p["slots"] * p["slot_ctx"]),
                "--slot-save-path", self.memory] + config["args"]
        self.llama = procs.llama_server(tools, args, os.path.join(work_dir, "llama-server.log"))
        self.kv = (procs.agentkv(tools, self.llama, self.memory,
                                 os.path.join(work_dir, "agentkv.log"))
                   if config["agentkv"] else None)
        self.turns, self.errors = [], []
        self.lock = threading.Lock()
        self.before_restart = threading.Barrier(p["agents"] + 1)
        self.restarted = threading.Event()
        self.aborted = False  # set when the restart failed: agents stop at the barrier
        self.system = client.text(42, p["system_words"])

    def front(self, agent):
        if self.kv:
            return self.kv.url, f"/agents/qa-{agent}/v1/chat/completions"
        return self.llama.url, "/v1/chat/completions"

    def agent(self, i):
        p, rng = self.p, random.Random(i)
        url, path = self.front(i)
        messages = [{"role": "system", "content": self.system}]
        try:
            time.sleep(rng.uniform(0, p["think_s"][1]))
            for rnd in range(1, p["rounds"] + 2):
                if self.errors:
                    return  # another agent failed: run() reports it
                if rnd == p["rounds"] + 1:
                    self.before_restart.wait()
                    self.restarted.wait()
                    if not self.config["restart"] or self.aborted:
                        break
                    time.sleep(rng.uniform(0, p["think_s"][1]))  # arrive apart, as in round 1
                messages.append({"role": "user",
                                 "content": client.text(i * 1000 + rnd, p["question_words"])})
                start = time.monotonic() - self.t0
                turn = client.chat(url, path, messages, p["answer_tokens"])
                messages.append({"role": "assistant", "content": turn["content"]})
                self.record(dict(agent=i, round=rnd, start_s=round(start, 3),
                                 **client.figures(turn)))
                if rnd < p["rounds"]:
                    time.sleep(rng.uniform(*p["think_s"]))
        except threading.BrokenBarrierError:
            pass  # another agent failed first
        except Exception as e:  # reported by run(); the others must not wait forever
            with self.lock:
                self.errors.append(f"agent {i}: {e!r}")
            self.before_restart.abort()
            self.restarted.set()

    def record(self, turn):
        with self.lock:
            self.turns.append(turn)
            done = len(self.turns)
        total = self.p["agents"] * (self.p["rounds"] + int(self.config["restart"]))
        self.progress(f"{self.config['label']}: turn {done} of {total}")

    def run(self):
        try:
            self.llama.start()
            if self.kv:
                self.kv.start()
            self.t0 = time.monotonic()
            threads = [threading.Thread(target=self.agent, args=(i,), daemon=True)
                       for i in range(self.p["agents"])]
            for t in threads:
                t.start()
            try:
                self.before_restart.wait()
            except threading.BrokenBarrierError:
                pass
            wall_s = time.monotonic() - self.t0
            try:
                if self.kv and not self.errors:
                    self.wait_saved()
                disk = disk_bytes(self.memory)
                restart_s = (None if self.errors or not self.config["restart"]
                             else self.restart())
            except BaseException:
                self.aborted = True
                raise
            finally:
                self.restarted.set()
                for t in threads:
                    t.join()
            if self.errors:
                raise RuntimeError("; ".join(self.errors))
        finally:
            if self.kv:
                self.kv.stop()
            self.llama.stop()
        return {"config": self.config, "rounds": self.p["rounds"], "wall_s": round(wall_s, 2),
                "bytes_on_disk": disk,
                "restart_s": restart_s, "turns": sorted(self.turns,
                                                        key=lambda t: (t["round"], t["agent"]))}

    def wait_saved(self, timeout=120):
        """Waits until agentkv has finished every turn-end save: no agent dirty
        in two looks 0.2 s apart (a turn is marked dirty just after its
        stream ends, so one look could come too early)."""
        deadline, clean = time.monotonic() + timeout, 0
        while clean < 2:
            agents = client.request(self.kv.url, "/admin/agents?limit=500")["agents"]
            clean = 0 if any(a.get("dirty") for a in agents) else clean + 1
            if time.monotonic() > deadline:
                raise RuntimeError(f"agentkv's turn-end saves did not finish in {timeout} s")
            time.sleep(0.2)

    def restart(self):
        """Restarts llama-server; with agentkv, waits until agentkv has seen it go."""
        self.progress(f"{self.config['label']}: restarting llama-server")
        start = time.monotonic()
        resets = client.request(self.kv.url, "/admin/stats")["resets"] if self.kv else 0
        self.llama.stop()
        if self.kv:
            self.kv.wait_status(503, timeout=60)
        self.llama.start()
        if self.kv:
            self.kv.wait_status(200, timeout=60)
            deadline = time.monotonic() + 60
            while client.request(self.kv.url, "/admin/stats")["resets"] == resets:
                if time.monotonic() > deadline:
                    raise RuntimeError("agentkv did not notice the llama-server restart")
                time.sleep(0.05)
        return round(time.monotonic() - start, 2)


def disk_bytes(directory):
    """Bytes of the memory files (not temporaries of a save in flight)."""
    total = 0
    for root, _, files in os.walk(directory):
        for f in files:
            if f.endswith(".tmp"):
                continue
            try:
                total += os.path.getsize(os.path.join(root, f))
            except FileNotFoundError:
                pass  # replaced by a newer generation meanwhile
    return total


def summary(result, pct):
    p_rounds = result["rounds"]
    returning = [t for t in result["turns"] if 2 <= t["round"] <= p_rounds]
    first = [t for t in result["turns"] if t["round"] == 1]
    after = [t for t in result["turns"] if t["round"] == p_rounds + 1]
    last = [t for t in result["turns"] if t["round"] == p_rounds]

    def ttfts(ts):
        return [t["ttft_ms"] for t in ts]
    placements = {}
    for t in returning + after:
        if t["placement"]:
            placements[t["placement"]] = placements.get(t["placement"], 0) + 1
    return {"key": result["config"]["key"], "label": result["config"]["label"],
            "first_round_p50_ms": pct(ttfts(first), 50),
            "returning_p50_ms": pct(ttfts(returning), 50),
            "returning_p95_ms": pct(ttfts(returning), 95),
            "last_round_p50_ms": pct(ttfts(last), 50),
            "wall_s": result["wall_s"],
            "tokens_prefilled": sum(t["prompt_n"] or 0 for t in result["turns"]
                                    if t["round"] <= p_rounds),
            "bytes_on_disk": result["bytes_on_disk"],
            "after_restart_p50_ms": pct(ttfts(after), 50),
            "after_restart_p95_ms": pct(ttfts(after), 95),
            "after_restart_tokens_prefilled": sum(t["prompt_n"] or 0 for t in after),
            "restarted": result["config"]["restart"], "restart_s": result["restart_s"],
            "placements": placements}
