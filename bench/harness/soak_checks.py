"""The checks of bench/soak.py, apart from the load so that they can be tested
(test_soak_checks.py): the isolation of agents judged from their turns'
timings, the memory directory against GET /admin/agents, agentkv's log, and a
slope. Standard library only."""
import datetime
import hashlib
import json
import os
import re
import time
from collections import Counter, defaultdict

TURN_KINDS = ("turn", "stream", "abort", "spawn", "stateless")


# ---------------------------------------------------------------- the memory directory

def scan_dir(memory_dir):
    """The memory directory by name: metadata (parsed), state files, temporaries."""
    metas, states, temps, foreign = {}, set(), [], []
    for name in os.listdir(memory_dir):
        path = os.path.join(memory_dir, name)
        if not os.path.isfile(path):
            continue
        if name.endswith(".tmp"):
            temps.append(name)
        elif name.endswith(".meta"):
            try:
                with open(path) as f:
                    metas[name[:64]] = json.load(f)
            except (OSError, ValueError):
                metas[name[:64]] = None  # replaced or removed while read
        elif name.endswith(".kv"):
            states.add(name)
        else:
            foreign.append(name)
    return metas, states, temps, foreign


def dir_problems(memory_dir, retries=3):
    """Metadata naming a missing state file (re-read: a save may have just
    replaced it), and the transient leftovers a running save may own."""
    for attempt in range(retries):
        metas, states, temps, foreign = scan_dir(memory_dir)
        missing = [h for h, m in metas.items()
                   if m is None or m.get("state_file") not in states]
        if not missing:
            break
        time.sleep(0.05)
    referenced = {m.get("state_file") for m in metas.values() if m}
    return {"metas": len(metas), "states": len(states), "temps": len(temps),
            "orphans": len(states - referenced), "missing": len(missing), "foreign": len(foreign)}


def check_listing(memory_dir, listing, prefixes):
    """GET /admin/agents against the directory, at rest. Returns (figures, problems)."""
    metas, states, temps, foreign = scan_dir(memory_dir)
    problems = []
    listed_saved = {}
    for a in listing:
        if a.get("saved"):
            listed_saved[hashlib.sha256(a["id"].encode()).hexdigest()] = a
    snapshot_hashes = {hashlib.sha256(("~" + p["id"]).encode()).hexdigest() for p in prefixes}
    for h, a in listed_saved.items():
        m = metas.get(h)
        if m is None:
            problems.append(f"{a['id']}: listed with saved memory, no metadata on disk")
            continue
        if m.get("agent") != a["id"]:
            problems.append(f"{a['id']}: its metadata names {m.get('agent')}")
        state = os.path.join(memory_dir, m.get("state_file", ""))
        if m.get("state_file") not in states:
            problems.append(f"{a['id']}: state file {m.get('state_file')} missing")
        elif os.path.getsize(state) != a["saved"]["bytes"]:
            problems.append(f"{a['id']}: state file has {os.path.getsize(state)} bytes, "
                            f"listed {a['saved']['bytes']}")
        if m.get("tokens") != a["saved"]["tokens"]:
            problems.append(f"{a['id']}: metadata has {m.get('tokens')} tokens, "
                            f"listed {a['saved']['tokens']}")
    for h, m in metas.items():
        if h not in listed_saved and h not in snapshot_hashes:
            problems.append(f"metadata {h[:12]} ({(m or {}).get('agent')}) not listed")
    referenced = {m.get("state_file") for m in metas.values() if m}
    for s in sorted(states - referenced):
        problems.append(f"orphan state file {s}")
    for t in temps:
        problems.append(f"temporary {t} left at rest")
    figures = {"listed": len(listing), "listed_with_memory": len(listed_saved),
               "resident": sum(1 for a in listing if a.get("resident")),
               "metas": len(metas), "states": len(states), "temps": len(temps),
               "snapshots": len(prefixes), "foreign": len(foreign), "hashes": set(metas),
               "bytes": sum(os.path.getsize(os.path.join(memory_dir, s)) for s in states)}
    return figures, problems


def deleted_at_end(events, listing, hashes):
    """Agents whose last operation was a DELETE answered 200 (nothing after
    it could have given them memory): they must be gone."""
    last = {}
    for e in sorted(events, key=lambda e: e["start"]):
        if e["kind"] in TURN_KINDS and e.get("agent"):
            last[e["agent"]] = ("turn", e)
        elif e["kind"] == "fork" and e["status"] == 200:
            last[e["into"]] = ("turn", e)
        elif e["kind"] == "delete" and e["status"] == 200:
            prev = last.get(e["agent"])
            if prev is None or prev[1]["end"] <= e["start"]:
                last[e["agent"]] = ("delete", e)
    gone = {a for a, (what, _) in last.items() if what == "delete"}
    listed = {a["id"]: a for a in listing}
    bad = [f"{a}: DELETEd last but listed as {listed[a]}" for a in sorted(gone & set(listed))]
    bad += [f"{a}: DELETEd last but its metadata is on disk" for a in sorted(gone)
            if hashlib.sha256(a.encode()).hexdigest() in hashes]
    return {"judged": len(gone), "bad": bad}


# ---------------------------------------------------------------- isolation

def lcp(a, b):
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def foreign_prefix(tokens):
    """For each family, the longest prefix it shares with another family."""
    return {f: max(lcp(t, u) for g, u in tokens.items() if g != f) for f, t in tokens.items()}


def snapshot_sizes(log_path, prefixes):
    """Token counts of every prefix snapshot agentkv saved in the run."""
    sizes = {p["tokens"] for p in prefixes}
    with open(log_path, errors="replace") as f:
        for line in f:
            if "saved prefix snapshot" in line:
                sizes.add(int(line.split(" of ")[1].split()[0]))
    return sizes


def contribution(e):
    """At most how many tokens a turn can have left in its agent's KV."""
    t = e.get("timings")
    if t and e["outcome"] == "complete":
        return t["cache_n"] + t["prompt_n"] + t["predicted_n"]
    if t:  # aborted or cut short: it may have generated up to max_tokens
        return t["cache_n"] + t["prompt_n"] + e["max_tokens"]
    if e["status"] is not None and 400 <= e["status"] < 500:
        return 0  # refused before it ran
    # No timings (timeout, dropped, 5xx): a token is at least a character.
    return e["chars"] + e["max_tokens"] + 64


def judge(events, agents, foreign, snapshots):
    """Isolation checks over every answered turn. `events`: every request of
    the run (dicts as bench/soak.py records them); `agents`: id -> an object
    with .family and .parent (an id or None); `foreign`: family -> tokens its
    first message shares with another family's; `snapshots`: token counts of
    the prefix snapshots saved. Returns counts (judged, and '<check> bad'),
    up to 40 violations as text, each agent's own most tokens, and a function
    giving the tokens an agent inherited from its parents."""
    by_agent, deletes = defaultdict(list), defaultdict(list)
    for e in events:
        if e["kind"] in TURN_KINDS and e.get("agent"):
            by_agent[e["agent"]].append(e)
        elif e["kind"] == "fork" and e["status"] == 200:
            by_agent[e["into"]].append(e)
        elif e["kind"] == "delete" and e["status"] == 200:
            deletes[e["agent"]].append(e)

    own_max = {}
    for a, evs in by_agent.items():
        own_max[a] = max([contribution(e) for e in evs if e["kind"] != "fork"] + [0])

    def inherited(agent_id, depth=0):
        a = agents.get(agent_id)
        if not a or not a.parent or depth > 1000:
            return 0
        return max(own_max.get(a.parent, 0), inherited(a.parent, depth + 1))

    counts = Counter()
    bad = []

    def violation(check, e, why):
        counts[check + " bad"] += 1
        if len(bad) < 40:
            bad.append(f"t={e['start']:.1f}s {e['kind']} {e.get('agent')}: {why}")

    for e in events:  # stateless turns
        if e["kind"] == "stateless" and e.get("timings"):
            counts["nothing"] += 1
            if e["timings"]["cache_n"] != 0 or e["placement"] != "stateless":
                violation("nothing", e, f"stateless turn placed {e['placement']} reused "
                          f"{e['timings']['cache_n']}")

    for a, evs in by_agent.items():
        evs.sort(key=lambda e: e["start"])
        fam = agents[a].family if a in agents else a.split(".")[0]
        own, prev_end = 0, None
        for e in evs:
            if e["kind"] == "fork":
                prev_end = e["end"]
                continue
            t = e.get("timings")
            if t:
                c = t["cache_n"]
                # A new agent (or one whose memory is gone) may start from a
                # prefix snapshot, or build one (placed cold, then its slot
                # filled with the shared prefix): it then reuses exactly the
                # snapshot's tokens, which it sent itself.
                from_snapshot = c > 0 and e["placement"] in ("cold", "prefix")
                if from_snapshot:
                    counts["snapshot"] += 1
                    if c not in snapshots and c + 1 not in snapshots:
                        violation("snapshot", e, f"placed {e['placement']} reused {c}, the size "
                                  f"of no prefix snapshot ({sorted(snapshots)})")
                else:
                    allowed = max(own, inherited(a))
                    counts["bound"] += 1
                    if c > allowed:
                        violation("bound", e, f"cache_n {c} > {allowed} tokens it or its "
                                  f"parent had")
                    if e["placement"] == "cold" or allowed == 0:
                        counts["nothing"] += 1
                        if c != 0:
                            violation("nothing", e, f"placed {e['placement']} (nothing of its "
                                      f"own) but reused {c}")
                after_delete = [d for d in deletes[a] if d["end"] < e["start"] and
                                (prev_end is None or d["start"] >= prev_end)]
                if after_delete:
                    counts["deleted"] += 1
                    if c != 0 and not from_snapshot:
                        violation("deleted", e, f"reused {c} after DELETE at "
                                  f"t={after_delete[-1]['start']:.1f}s, placed {e['placement']}")
                if c > 0:
                    counts["foreign"] += 1
                    if c <= foreign[fam]:
                        violation("foreign", e, f"reused only {c} tokens, no more than the "
                                  f"{foreign[fam]} it shares with another agent's prompt")
            own = max(own, contribution(e))
            prev_end = e["end"]
    return counts, bad, own_max, inherited


# ---------------------------------------------------------------- the log, a slope

def log_time(stamp):
    """Epoch seconds of a timestamp of agentkv's text log (local time)."""
    return datetime.datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S.%f").timestamp()


def log_warnings(log_path, wall0, window):
    """agentkv's warnings and errors, by message with ids and numbers blanked,
    and how many of each fell in the kill window (run seconds)."""
    seen = Counter()
    in_window = Counter()
    with open(log_path, errors="replace") as f:
        for line in f:
            if "] [warning] " not in line and "] [error] " not in line:
                continue
            stamp, _, rest = line.partition("] [")
            try:
                t = log_time(stamp[1:]) - wall0
            except ValueError:
                t = -1
            msg = re.sub(r"http://[^ ]+", "<url>", rest.strip())
            msg = re.sub(r"soak\d+(\.c\d+)?|[0-9a-f]{12,}|\d+", "#", msg)
            seen[msg] += 1
            if window[0] <= t <= window[1]:
                in_window[msg] += 1
    return seen, in_window


def first_log_time(log_path, needle, wall0):
    """Run seconds of the first line of agentkv's log holding needle, or None."""
    with open(log_path, errors="replace") as f:
        for line in f:
            if needle in line:
                return log_time(line[1:line.index("]")]) - wall0
    return None


def slope_per_min(points):
    """Least-squares slope of (t seconds, value) points, per minute."""
    if len(points) < 2:
        return 0.0
    n = len(points)
    mt = sum(t for t, _ in points) / n
    mv = sum(v for _, v in points) / n
    den = sum((t - mt) ** 2 for t, _ in points)
    return 60 * sum((t - mt) * (v - mv) for t, v in points) / den if den else 0.0
