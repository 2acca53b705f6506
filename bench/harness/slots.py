"""Scenario 10, slots: agentkv's placement as the slot count grows.

The real llama-server on the test model with S slots of 512 tokens, agentkv
in front, S clients at once, each alternating between two agents of its own
(2S agents on S slots: most turns evict an agent and restore another), for
`duration_s` seconds. A turn's *placement* is what agentkv adds before the
first token: the client's time to first token less llama-server's own
prompt time and one token's decode (both from the timings it reports), so
it holds the wait for a slot, the eviction's save if one is needed, and the
restore. Fairness: Jain's index over the turns each agent completed
(1: all alike)."""
import os
import threading
import time

from . import client, procs

SLOT_CTX = 512


def jain(values):
    total = sum(values)
    return round(total * total / (len(values) * sum(v * v for v in values)), 3) if total else None


def one(tools, slots, work, duration_s, progress):
    d = os.path.join(work, f"slots-{slots}")
    memory = os.path.join(d, "memory")
    os.makedirs(memory, mode=0o700)
    llama = procs.llama_server(tools, ["--parallel", str(slots), "--ctx-size",
                                       str(slots * SLOT_CTX), "--slot-save-path", memory,
                                       "--cache-ram", "0", "--no-cache-idle-slots"],
                               os.path.join(d, "llama-server.log")).start()
    try:
        kv = procs.agentkv(tools, llama, memory, os.path.join(d, "agentkv.log")).start()
        try:
            turns, errors = {}, []
            lock = threading.Lock()
            deadline = time.monotonic() + duration_s

            def drive(c):
                agents = [f"slots{slots}-c{c}-a{j}" for j in range(2)]
                history = {a: [{"role": "system", "content": client.text(2 * c + j, 40)}]
                           for j, a in enumerate(agents)}
                k = 0
                while time.monotonic() < deadline:
                    a = agents[k % 2]
                    k += 1
                    msgs = history[a] + [{"role": "user", "content": client.text(k, 8)}]
                    try:
                        t = client.chat(kv.url, f"/agents/{a}/v1/chat/completions", msgs, 2)
                    except Exception as e:  # noqa: BLE001: counted, the run goes on
                        with lock:
                            errors.append(repr(e)[:200])
                        continue
                    history[a] = msgs + [{"role": "assistant", "content": t["content"]}]
                    if len(history[a]) > 9:  # stay well inside a slot's window
                        history[a] = history[a][:1] + history[a][-4:]
                    tm = t["timings"]
                    own = (tm.get("prompt_ms") or 0) + (tm.get("predicted_per_token_ms") or 0)
                    with lock:
                        turns.setdefault(a, []).append(
                            {"ttft_ms": t["ttft_ms"], "placement_ms": round(t["ttft_ms"] - own, 2),
                             "placement": t["placement"]})

            progress(f"{slots} slots: {slots} clients for {duration_s} s")
            threads = [threading.Thread(target=drive, args=(c,)) for c in range(slots)]
            for th in threads:
                th.start()
            for th in threads:
                th.join()
        finally:
            kv.stop()
    finally:
        llama.stop()
    return {"slots": slots, "turns": turns, "errors": errors, "duration_s": duration_s}


def run(tools, counts, work, duration_s, progress):
    return [one(tools, s, work, duration_s, progress) for s in counts]


def summary(raw, pct):
    rows = []
    for r in raw:
        every = [t for ts in r["turns"].values() for t in ts]
        placements = {}
        for t in every:
            placements[t["placement"]] = placements.get(t["placement"], 0) + 1
        per_agent = [len(ts) for ts in r["turns"].values()]
        rows.append({"slots": r["slots"], "turns": len(every), "errors": len(r["errors"]),
                     "placement_p50_ms": pct([t["placement_ms"] for t in every], 50),
                     "placement_p99_ms": pct([t["placement_ms"] for t in every], 99),
                     "ttft_p50_ms": pct([t["ttft_ms"] for t in every], 50),
                     "ttft_p99_ms": pct([t["ttft_ms"] for t in every], 99),
                     "fairness": jain(per_agent), "placements": placements})
    return rows
