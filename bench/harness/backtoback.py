"""Scenario 6: agents that follow each other back to back.

N agents take turns round-robin over 2 slots, so every turn evicts an agent
and brings one back. Each turn resends the agent's own prompt (a system text
of about `size` tokens and a question) and asks for one streamed token; the
agents think `think_s` seconds between turns. Three servings of the same
turns, all on one llama-server (--cache-ram 0, so it keeps nothing itself):

  agentkv   the turns through agentkv (its debug log gives each placement's
            steps: wait for the slot, save and commit of the evicted agent,
            file check, restore, erase)
  floor     slot restore of the agent's file + the turn, straight to
            llama-server, one slot action and one request per turn
  manager   a minimal synchronous manager written here: save the evicted
            slot, erase it, restore the agent's file, send the turn. No
            fsync, no checksum, no crash safety.
TTFT is client wall clock from the first thing done for the turn."""
import glob
import hashlib
import os
import re
import shutil
import time

from . import client, procs

ROUNDS = 6  # returning turns per agent, after the first (cold) one
QUESTION_WORDS = 20
STEP = re.compile(r"placed agent (\S+) in slot \d+ \((\w+)\) in ([\d.]+) ms: wait ([\d.]+), "
                  r"save ([\d.]+), commit ([\d.]+), check ([\d.]+), restore ([\d.]+), "
                  r"erase ([\d.]+)")
STEPS = ("total", "wait", "save", "commit", "check", "restore", "erase")


def messages(size, words_per_token, i):
    system = client.text(7000 + 31 * size + i, max(1, round((size - 40) * words_per_token)))
    return [{"role": "system", "content": system},
            {"role": "user", "content": client.text(8000 + i, QUESTION_WORDS)}]


def order(agents, rounds):
    return [a for _ in range(rounds) for a in agents]


def through_agentkv(kv, agents, convs, think_s, warm_up):
    """Returning turns through agentkv; `warm_up` rounds first are not counted."""
    turns = []
    for k, a in enumerate(order(agents, warm_up + ROUNDS)):
        time.sleep(think_s)
        t = client.chat(kv.url, f"/agents/{a}/v1/chat/completions", convs[a], 1)
        if k >= warm_up * len(agents):
            turns.append(client.figures(t))
    return turns


def latest_file(memory_dir, agent):
    digest = hashlib.sha256(agent.encode()).hexdigest()
    files = sorted(glob.glob(os.path.join(memory_dir, digest + ".*.kv")),
                   key=lambda f: int(f.split(".")[-2]))
    return files[-1]


def floor(llama, agents, convs, think_s):
    turns = []
    for k, a in enumerate(order(agents, ROUNDS)):
        time.sleep(think_s)
        slot = k % 2
        restore = client.slot_action(llama.url, slot, "restore", f"b2b-{a}.bin")
        t = client.chat(llama.url, "/v1/chat/completions", convs[a], 1, extra={"id_slot": slot})
        turns.append(dict(client.figures(t), ttft_ms=round(restore["wall_ms"] + t["ttft_ms"], 2)))
    return turns


def manager(llama, agents, convs, think_s):
    """The minimal manager: an LRU of two slots, synchronous slot actions."""
    resident, used = {}, {}  # slot -> agent, slot -> last use
    for slot in (0, 1):
        client.slot_action(llama.url, slot, "erase")
    turns = []
    for k, a in enumerate(order(agents, ROUNDS)):
        time.sleep(think_s)
        start = time.perf_counter()
        slot = next((s for s, owner in resident.items() if owner == a), None)
        if slot is None:
            slot = min((0, 1), key=lambda s: used.get(s, -1))
            if slot in resident:
                client.slot_action(llama.url, slot, "save", f"b2b-{resident[slot]}.bin")
                client.slot_action(llama.url, slot, "erase")
            client.slot_action(llama.url, slot, "restore", f"b2b-{a}.bin")
            resident[slot] = a
        used[slot] = k
        t = client.chat(llama.url, "/v1/chat/completions", convs[a], 1, extra={"id_slot": slot})
        ms = client.ms(time.perf_counter() - start) - t["total_ms"] + t["ttft_ms"]
        turns.append(dict(client.figures(t), ttft_ms=round(ms, 2)))
    return turns


def steps_from_log(log_path, agents, skip):
    """The returning turns' placements, step by step, from agentkv's debug log,
    without the first `skip` of them."""
    rows = []
    with open(log_path, errors="replace") as f:
        for line in f:
            m = STEP.search(line)
            if m and m.group(1) in agents and m.group(2) != "cold":
                rows.append(dict(zip(STEPS, (float(v) for v in m.groups()[2:]))))
    return rows[skip:]


class Size:
    """Every serving of one context size on one llama-server (--cache-ram 0, so
    it keeps nothing itself). The agents' first turns (cold prefills, the
    slow part) go through agentkv once; then, for each think time, the
    servings run in the order agentkv, floor, manager, floor, agentkv, so
    that a machine getting slower or faster during the run favours none.
    agentkv is restarted for its second block (the floor and the manager
    moved the slots behind its back): one warm-up round there is not
    counted, as it re-reads each file agentkv finds at start."""

    def __init__(self, tools, p, size, work, progress):
        self.tools, self.p, self.size, self.progress = tools, p, size, progress
        self.wd = os.path.join(work, f"b2b-{size}")
        self.memory = os.path.join(self.wd, "memory")
        os.makedirs(self.memory)
        self.llama = procs.llama_server(
            tools, ["--parallel", "2", "--ctx-size", str(2 * p["slot_ctx"]), "--slot-save-path",
                    self.memory, "--cache-ram", "0", "--no-cache-idle-slots"],
            os.path.join(self.wd, "llama-server.log"))
        self.agents = [f"b2b-{size}-{i}" for i in range(p["b2b_agents"])]
        self.blocks = 0

    def agentkv_block(self, think_s, first):
        self.blocks += 1
        log = os.path.join(self.wd, f"agentkv-{self.blocks}.log")
        kv = procs.agentkv(self.tools, self.llama, self.memory, log, ["--log-level", "debug"])
        kv.start()
        try:
            if first:
                self.progress(f"{self.size} tokens: first turns (cold prefills)")
                for a in self.agents:
                    client.chat(kv.url, f"/agents/{a}/v1/chat/completions", self.convs[a], 1)
            self.progress(f"{self.size} tokens, think {think_s} s: agentkv")
            warm_up = 0 if first else 1
            turns = through_agentkv(kv, self.agents, self.convs, think_s, warm_up)
        finally:
            kv.stop()
        return turns, steps_from_log(log, self.agents, warm_up * len(self.agents))

    def run(self, thinks):
        rows = []
        try:
            self.llama.start()
            wpt = client.words_per_token(self.llama.url)
            self.convs = {a: messages(self.size, wpt, i) for i, a in enumerate(self.agents)}
            for think_s in thinks:
                through, steps = self.agentkv_block(think_s, first=not rows)
                if not rows:
                    for a in self.agents:
                        shutil.copyfile(latest_file(self.memory, a),
                                        os.path.join(self.memory, f"b2b-{a}.bin"))
                self.progress(f"{self.size} tokens, think {think_s} s: floor, manager")
                flo = floor(self.llama, self.agents, self.convs, think_s)
                man = manager(self.llama, self.agents, self.convs, think_s)
                flo += floor(self.llama, self.agents, self.convs, think_s)
                more, more_steps = self.agentkv_block(think_s, first=False)
                rows.append({"size": self.size, "think_s": think_s, "agents": len(self.agents),
                             "agentkv": through + more, "floor": flo, "manager": man,
                             "steps": steps + more_steps})
        finally:
            self.llama.stop()
        return rows


def run(tools, p, work, progress):
    return [row for size in p["b2b_sizes"]
            for row in Size(tools, p, size, work, progress).run(p["b2b_think_s"])]


def summary(rows, pct):
    out = []
    for r in rows:
        ttft = {k: [t["ttft_ms"] for t in r[k]] for k in ("agentkv", "floor", "manager")}
        context = [(t["prompt_n"] or 0) + (t["cache_n"] or 0) for t in r["agentkv"]]
        s = {"size": r["size"], "think_s": r["think_s"], "agents": r["agents"],
             "turns": len(ttft["agentkv"]), "context_tokens": pct(context, 50),
             "placements": sorted({t["placement"] for t in r["agentkv"]})}
        for k, v in ttft.items():
            s[f"{k}_p50_ms"] = pct(v, 50)
            s[f"{k}_p95_ms"] = pct(v, 95)
        s["agentkv_over_floor"] = round(s["agentkv_p50_ms"] / s["floor_p50_ms"], 2)
        s["manager_over_floor"] = round(s["manager_p50_ms"] / s["floor_p50_ms"], 2)
        s["steps_p50_ms"] = {k: pct([x[k] for x in r["steps"]], 50) for k in STEPS} \
            if r["steps"] else None
        out.append(s)
    return out
