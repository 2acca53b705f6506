"""Scenario 1: one agent's returning turn at growing context sizes.

For each size: the agent's first turn through agentkv (a cold prefill); then
RETURNS times: two other agents take both slots (eviction) and the agent
returns with a new question after its first turn (agentkv restores it). A
stateless request then sends the first returning turn's messages (cold,
once: it is the slow one; a new agent would start from a prefix snapshot
of this one's memory). The floor is measured later straight against llama-server:
for each returning turn, the slot file agentkv saved after the first turn is
restored with the slot API and that turn is sent to the slot. A row's
agentkv and floor figures are those of its median turn (by TTFT); every turn
is kept."""
import glob
import hashlib
import os
import shutil
import time

from . import client

ANSWER_TOKENS = 8  # the sweep times the first token; the answer only has to exist
QUESTION_WORDS = 30
RETURNS = 3  # returning turns a size: a row is their median, not one sample


def conversation(size, words_per_token, tag):
    system = client.text(1000 + size, max(1, round((size - 60) * words_per_token)))
    first = [{"role": "system", "content": system},
             {"role": "user", "content": client.text(2000 + size, QUESTION_WORDS)}]
    return f"sweep-{size}-{tag}", first


def saved_file(kv, memory_dir, agent, timeout=120):
    """Waits until agentkv has saved `agent` at turn end; returns its state file."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = client.request(kv.url, f"/admin/agents/{agent}")
        if info.get("saved") and not info.get("dirty"):
            digest = hashlib.sha256(agent.encode()).hexdigest()
            files = glob.glob(os.path.join(memory_dir, digest + ".*.kv"))
            if len(files) == 1:
                return files[0]
        time.sleep(0.02)
    raise RuntimeError(f"agentkv did not save {agent} within {timeout} s")


def median_turn(turns):
    """The turn whose TTFT is the median (the lower one of an even count)."""
    return sorted(turns, key=lambda t: t["ttft_ms"])[(len(turns) - 1) // 2]


def through_agentkv(kv, memory_dir, sizes, words_per_token, keep_dir, progress,
                    returns=RETURNS):
    """The cold and agentkv columns; keeps each first-turn slot file for the floor."""
    tag = str(int(time.time()))
    rows = []
    for size in sizes:
        agent, messages = conversation(size, words_per_token, tag)
        path = f"/agents/{agent}/v1/chat/completions"
        progress(f"{size} tokens: first turn (cold prefill)")
        first = client.chat(kv.url, path, messages, ANSWER_TOKENS)
        kept = os.path.join(keep_dir, f"floor-{size}.bin")
        shutil.copyfile(saved_file(kv, memory_dir, agent), kept)
        turns, sent = [], []
        for k in range(returns):
            for other in ("a", "b"):  # two other agents take both slots
                client.chat(kv.url,
                            f"/agents/filler-{other}-{size}-{k}-{tag}/v1/chat/completions",
                            [{"role": "user", "content": client.text(3 + k, 20)}], 2)
            back_messages = messages + [
                {"role": "assistant", "content": first["content"]},
                {"role": "user", "content": client.text(4000 + size + 7919 * k, QUESTION_WORDS)}]
            progress(f"{size} tokens: returning turn {k + 1} of {returns} through agentkv")
            turns.append(client.figures(client.chat(kv.url, path, back_messages, ANSWER_TOKENS)))
            sent.append(back_messages)
        progress(f"{size} tokens: the first returning turn, cold")
        # Stateless: a new agent would start from a prefix snapshot built on
        # this agent's memory, which is not cold.
        cold = client.chat(kv.url, "/v1/chat/completions", sent[0], ANSWER_TOKENS)
        rows.append({"size": size, "messages": sent, "floor_file": kept,
                     "first": client.figures(first), "agentkv": median_turn(turns),
                     "agentkv_turns": turns, "cold": client.figures(cold)})
    return rows


def floor(llama, memory_dir, rows, progress):
    """Restore call + first token, straight against llama-server (agentkv stopped)."""
    for row in rows:
        name = os.path.basename(row["floor_file"])
        shutil.copyfile(row["floor_file"], os.path.join(memory_dir, name))
        turns = []
        for k, messages in enumerate(row["messages"]):
            progress(f"{row['size']} tokens: floor {k + 1} of {len(row['messages'])} "
                     "(slot restore + first token)")
            client.slot_action(llama.url, 0, "erase")
            restore = client.slot_action(llama.url, 0, "restore", name)
            turn = client.chat(llama.url, "/v1/chat/completions", messages, ANSWER_TOKENS,
                               extra={"id_slot": 0})
            turns.append(dict(client.figures(turn), restore_ms=restore["timings"]["restore_ms"],
                              restore_wall_ms=restore["wall_ms"],
                              n_restored=restore["n_restored"],
                              file_bytes=os.path.getsize(row["floor_file"]),
                              ttft_ms=round(restore["wall_ms"] + turn["ttft_ms"], 2),
                              first_token_ms=turn["ttft_ms"]))
        row["floor"] = median_turn(turns)
        row["floor_turns"] = turns
        del row["messages"], row["floor_file"]
    return rows


def summary(rows):
    out = []
    for r in rows:
        context = (r["agentkv"]["prompt_n"] or 0) + (r["agentkv"]["cache_n"] or 0)
        out.append({"size": r["size"], "context_tokens": context,
                    "cold_ms": r["cold"]["ttft_ms"], "agentkv_ms": r["agentkv"]["ttft_ms"],
                    "floor_ms": r["floor"]["ttft_ms"],
                    "restore_ms": r["floor"]["restore_ms"],
                    "agentkv_placement": r["agentkv"]["placement"],
                    "cold_over_agentkv": round(r["cold"]["ttft_ms"] / r["agentkv"]["ttft_ms"], 1),
                    "agentkv_over_floor": round(r["agentkv"]["ttft_ms"] / r["floor"]["ttft_ms"],
                                                2)})
    return out
