#!/usr/bin/env python3
"""A long soak of agentkv under a random multi-agent load (issue 14, part 9).
Not a test and not in CI: it prints figures and the outcome of its checks.

It starts `agentkv serve` (which starts its own llama-server) with 4 slots on
the small test model, and drives 64 agents at once for 10 minutes
(--minutes; --quick: 1 minute). Each agent, after a short think time, does
one of: a chat turn (streamed or not; its context grows turn by turn), a
streamed turn it aborts after a few tokens, a DELETE of itself, a warm of
itself, spawning a sub-agent from a parent (`X-Agentkv-Parent`) or forking
one (`POST /admin/agents/{id}/fork`) and going on as that child, or a
stateless turn. Alongside: DELETEs and warms of random agents racing their
turns, reads of the admin API, and once in the run a SIGKILL of the
llama-server child (agentkv restarts it).

At the end it checks and prints:
  - every request got an answer: every request has a client timeout, and a
    timeout, a dropped connection or a stream cut short counts as a failure;
    HTTP statuses are counted by kind;
  - no cross-agent reuse: each agent's first message begins with a marker of
    its own, so another agent's KV can only give it the few tokens all
    prompts share. From each answer's timings (cache_n, prompt_n) and
    X-Agentkv-Placement: no turn reuses more tokens than the agent (or the
    parent it was forked from) had sent and been answered before; a cold,
    stateless or new agent's turn, and a turn after a DELETE, reuse nothing
    but a prefix snapshot, whole; no turn reuses a prefix no longer than
    what it shares with another agent; /admin/agents shows no agent holding
    more tokens than that;
  - the memory directory matches GET /admin/agents: every agent listed with
    saved memory has its metadata and state file (of the listed size), no
    other metadata, no orphan generations and no temporaries once idle (the
    the save protocol (docs/design.md) leaves a .tmp and the previous generation only
    while a save runs), agents last DELETEd are gone; the same listing comes
    back after agentkv is restarted on the directory;
  - agentkv's RSS (VmRSS in /proc/<pid>/status, each second): first, peak,
    last, and the slope of a least-squares line over the second half (flat:
    under 0.1 MB/min), with its threads, open fds and RSS by kind of mapping.

Usage:
  python3 bench/soak.py [--minutes 10 | --quick] [--agentkv build/agentkv]
                        [--model PATH] [--out bench/results/.../soak/soak.txt]
"""
import argparse
import datetime
import http.client
import json
import os
import platform
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from types import SimpleNamespace

from harness import procs
from harness.client import WORDS
from harness.report import pct, table
from harness.soak_checks import (TURN_KINDS, check_listing, deleted_at_end, dir_problems,
                                 first_log_time, foreign_prefix, judge, log_warnings,
                                 slope_per_min, snapshot_sizes)

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CACHE = os.environ.get("AGENTKV_CACHE_DIR") or os.path.join(
    os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "agentkv")
DEFAULT_OUT = os.path.join(HERE, "results", "debian12-x86-64-2core", "soak", "soak.txt")

SLOTS = 4
CTX_PER_SLOT = 4096
CONTEXT_CAP = 3000      # an agent past this many tokens deletes itself and starts over
CLIENT_TIMEOUT = 180.0  # above agentkv's --queue-timeout-ms (120 s): agentkv answers first
RSS_FLAT_MB_PER_MIN = 0.1  # 6 MB an hour

# What a seat (one of the 64 agents being driven) does next, by weight.
OPS = (("turn", 34), ("stream", 34), ("abort", 8), ("stateless", 3), ("spawn", 4),
       ("fork", 3), ("warm", 4), ("delete", 4))


# ---------------------------------------------------------------- HTTP client

def call(port, method, path, body=None, headers=None, timeout=CLIENT_TIMEOUT):
    """One request on a fresh connection. Returns a dict: status (None if no
    answer), headers, body, ms, error ('timeout', 'conn: ...' or None)."""
    start = time.monotonic()
    out = {"status": None, "headers": {}, "body": b"", "error": None}
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        data = None if body is None else json.dumps(body).encode()
        hdrs = {"Host": "localhost", "Connection": "close"}
        if data is not None or method == "POST":
            hdrs["Content-Type"] = "application/json"
        hdrs.update(headers or {})
        conn.request(method, path, data, hdrs)
        res = conn.getresponse()
        out["status"], out["headers"] = res.status, dict(res.getheaders())
        out["body"] = res.read()
    except socket.timeout:
        out["error"] = "timeout"
    except (OSError, http.client.HTTPException) as e:
        out["error"] = "conn: " + type(e).__name__
    finally:
        conn.close()
    out["ms"] = (time.monotonic() - start) * 1000
    return out


def stream(port, path, body, headers, abort_after=None, timeout=CLIENT_TIMEOUT):
    """One streamed chat turn. With abort_after, the socket is shut after that
    many content chunks. Returns call()'s fields plus content, timings (the
    latest seen; each chunk carries them with timings_per_token), chunks and
    outcome: 'complete' ([DONE] seen), 'aborted', 'error event' (agentkv
    ended the stream with an error), 'truncated' (the stream ended without
    [DONE]) or 'error' (a non-200 answer)."""
    start = time.monotonic()
    out = {"status": None, "headers": {}, "body": b"", "error": None, "content": "",
           "timings": None, "chunks": 0, "outcome": None}
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        hdrs = {"Host": "localhost", "Connection": "close", "Content-Type": "application/json"}
        hdrs.update(headers)
        conn.request("POST", path, json.dumps(body).encode(), hdrs)
        sock = conn.sock
        res = conn.getresponse()
        out["status"], out["headers"] = res.status, dict(res.getheaders())
        if res.status != 200:
            out["body"], out["outcome"] = res.read(), "error"
        else:
            out["outcome"] = "truncated"
            while True:
                if time.monotonic() - start > timeout:
                    raise socket.timeout()
                raw = res.readline()
                if not raw:
                    break
                line = raw.decode(errors="replace").strip()
                if line == "data: [DONE]":
                    out["outcome"] = "complete"
                    break
                if not line.startswith("data: "):
                    continue
                event = json.loads(line[6:])
                if "error" in event:  # agentkv's word that the exchange failed midway
                    out["outcome"] = "error event"
                    out["body"] = json.dumps(event).encode()
                    break
                out["timings"] = event.get("timings") or out["timings"]
                for choice in event.get("choices", []):
                    piece = (choice.get("delta") or {}).get("content")
                    if piece:
                        out["content"] += piece
                        out["chunks"] += 1
                if abort_after is not None and out["chunks"] >= abort_after and out["timings"]:
                    sock.shutdown(socket.SHUT_RDWR)
                    out["outcome"] = "aborted"
                    break
    except socket.timeout:
        out["error"] = "timeout"
    except (OSError, http.client.HTTPException, ValueError) as e:
        out["error"] = "conn: " + type(e).__name__
    finally:
        conn.close()
    out["ms"] = (time.monotonic() - start) * 1000
    return out


def list_agents(port):
    """Every agent GET /admin/agents lists, page by page."""
    agents = []
    while True:
        page = json_of(call(port, "GET", f"/admin/agents?offset={len(agents)}&limit=500"))
        agents += page["agents"]
        if not page["agents"] or len(agents) >= page["total"]:
            return agents


def json_of(res):
    try:
        return json.loads(res["body"] or b"null")
    except ValueError:
        return None


# ---------------------------------------------------------------- the load

class Agent:
    """One agent id: its conversation as the client knows it."""

    def __init__(self, agent_id, family, system=None, parent=None, history=None):
        self.id, self.family, self.parent = agent_id, family, parent
        self.system = system
        self.history = history or [{"role": "system", "content": system}]
        self.context = 0   # tokens of the last answered turn (prompt + answer)


class Soak:
    def __init__(self, args, port, rng):
        self.args, self.port, self.rng = args, port, rng
        self.lock = threading.Lock()
        self.events = []             # every request made, as a dict
        self.agents = {}             # id -> Agent
        self.seats = []              # the current Agent of each seat
        self.children = 0
        self.stop = threading.Event()
        self.t0 = time.monotonic()
        self.wall0 = time.time()
        self.kill = None             # what happened at the llama-server kill

    def now(self):
        return time.monotonic() - self.t0

    def record(self, kind, res, **fields):
        e = {"kind": kind, "status": res.get("status"), "error": res.get("error"),
             "ms": res["ms"], "end": self.now()}
        if res.get("status") != 200 or res.get("outcome") == "error event":
            e["body"] = res.get("body", b"")[:300]
        e["start"] = e["end"] - res["ms"] / 1000
        e.update(fields)
        with self.lock:
            self.events.append(e)
        return e

    # -- agents

    def new_root(self, seat):
        marker = "%012x" % self.rng.getrandbits(48)
        words = " ".join(self.rng.choice(WORDS) for _ in range(self.rng.randint(20, 300)))
        a = Agent(f"soak{seat:02d}", f"soak{seat:02d}",
                  system=f"{marker} You are soak agent {seat:02d}. {words}")
        self.agents[a.id] = a
        return a

    def new_child_id(self, seat):
        with self.lock:
            self.children += 1
            return f"soak{seat:02d}.c{self.children}"

    def user_message(self, rng):
        return " ".join(rng.choice(WORDS) for _ in range(rng.randint(10, 120)))

    def identity(self, rng, agent_id, body):
        """Where the agent id goes: path prefix, header, or a body field."""
        how = rng.choice(("path", "path", "header", "prompt_cache_key", "user"))
        if how == "path":
            return f"/agents/{agent_id}/v1/chat/completions", {}
        if how == "header":
            return "/v1/chat/completions", {"X-Agent-Id": agent_id}
        body[how] = agent_id
        return "/v1/chat/completions", {}

    # -- operations of a seat

    def turn(self, seat, rng, kind, parent=None):
        """A chat turn of the seat's agent (kind turn, stream, abort), or the
        first turn of a sub-agent spawned from `parent` (kind spawn)."""
        if kind == "spawn":
            child = Agent(self.new_child_id(seat), parent.family, parent=parent.id,
                          history=list(parent.history))
            agent = child
        else:
            agent = self.seats[seat]
        messages = agent.history + [{"role": "user", "content": self.user_message(rng)}]
        max_tokens = rng.randint(64, 160) if kind == "abort" else rng.randint(8, 48)
        body = {"messages": messages, "max_tokens": max_tokens}
        if kind == "spawn":
            path = f"/agents/{agent.id}/v1/chat/completions"
            headers = {"X-Agentkv-Parent": parent.id}
        else:
            path, headers = self.identity(rng, agent.id, body)
        streamed = kind in ("stream", "abort") or (kind == "spawn" and rng.random() < 0.5)
        chars = sum(len(m["content"]) for m in messages)
        if streamed:
            body.update({"stream": True, "timings_per_token": True})
            res = stream(self.port, path, body, headers,
                         abort_after=rng.randint(1, 4) if kind == "abort" else None)
            timings, content, outcome = res["timings"], res["content"], res["outcome"]
        else:
            res = call(self.port, "POST", path, body, headers)
            j = json_of(res) if res["status"] == 200 else None
            timings = (j or {}).get("timings")
            content = ((((j or {}).get("choices") or [{}])[0].get("message") or {})
                       .get("content") or "")
            outcome = "complete" if j else "error"
            if res["status"] == 200 and not j:
                outcome = "truncated"
        if res["error"]:
            outcome = res["error"].split(":")[0]
        e = self.record(kind, res, agent=agent.id, seat=seat, outcome=outcome,
                        placement=res["headers"].get("X-Agentkv-Placement"),
                        timings=timings, max_tokens=max_tokens, chars=chars,
                        parent=parent.id if parent else None)
        if kind == "spawn" and res["status"] == 200:  # the seat goes on as the child
            with self.lock:
                self.agents[child.id] = child
            self.seats[seat] = child
        if res["status"] == 200 and outcome == "complete" and timings:
            agent.history = messages + [{"role": "assistant", "content": content}]
            agent.context = timings["cache_n"] + timings["prompt_n"] + timings["predicted_n"]
        return e

    def stateless(self, seat, rng):
        marker = "%012x" % rng.getrandbits(48)
        body = {"messages": [{"role": "system", "content": f"{marker} stateless"},
                             {"role": "user", "content": self.user_message(rng)}],
                "max_tokens": rng.randint(4, 16)}
        res = call(self.port, "POST", "/v1/chat/completions", body)
        j = json_of(res) if res["status"] == 200 else None
        return self.record("stateless", res, agent=None, seat=seat,
                           outcome="complete" if j else (res["error"] or "error"),
                           placement=res["headers"].get("X-Agentkv-Placement"),
                           timings=(j or {}).get("timings"), max_tokens=body["max_tokens"],
                           chars=0, parent=None)

    def delete(self, agent_id, seat=None):
        res = call(self.port, "DELETE", f"/admin/agents/{agent_id}")
        return self.record("delete", res, agent=agent_id, seat=seat)

    def forget(self, agent, seat):
        """The seat DELETEs its agent and starts its conversation over; a 404
        (its memory was already gone: another DELETE, or the disk budget)
        starts it over too."""
        if self.delete(agent.id, seat)["status"] in (200, 404):
            agent.history, agent.context = agent.history[:1], 0

    def warm(self, agent_id, seat=None):
        res = call(self.port, "POST", f"/admin/agents/{agent_id}/warm")
        j = json_of(res) if res["status"] == 200 else None
        return self.record("warm", res, agent=agent_id, seat=seat,
                           placement=(j or {}).get("placement"))

    def fork(self, seat, rng, parent):
        child_id = self.new_child_id(seat)
        history = list(parent.history)
        res = call(self.port, "POST", f"/admin/agents/{parent.id}/fork", {"into": child_id})
        e = self.record("fork", res, agent=parent.id, into=child_id, seat=seat)
        if res["status"] == 200:
            child = Agent(child_id, parent.family, parent=parent.id, history=history)
            child.context = parent.context
            with self.lock:
                self.agents[child_id] = child
            self.seats[seat] = child
        return e

    def pick_parent(self, seat, rng):
        """The seat's own agent or another seat's, if it has answered a turn."""
        other = self.seats[rng.randrange(len(self.seats))] if rng.random() < 0.5 else None
        candidate = other or self.seats[seat]
        return candidate if len(candidate.history) > 1 else None

    def run_seat(self, seat):
        rng = random.Random(self.args.seed * 1000 + seat)
        names, weights = zip(*OPS)
        while not self.stop.is_set():
            if self.stop.wait(rng.uniform(0.2, 2.0)):
                break
            agent = self.seats[seat]
            if agent.context > CONTEXT_CAP:  # the context is full: start over
                self.forget(agent, seat)
                continue
            op = rng.choices(names, weights)[0]
            if op in ("turn", "stream", "abort"):
                self.turn(seat, rng, op)
            elif op == "stateless":
                self.stateless(seat, rng)
            elif op == "delete":
                self.forget(agent, seat)
            elif op == "warm":
                self.warm(agent.id, seat)
            elif op in ("spawn", "fork"):
                parent = self.pick_parent(seat, rng)
                if parent is None:
                    self.turn(seat, rng, "turn")
                elif op == "spawn":
                    self.turn(seat, rng, "spawn", parent=parent)
                else:
                    self.fork(seat, rng, parent)

    def run_chaos(self, what):
        """Operations on random agents, racing their own turns: DELETEs and
        admin reads (what='delete'), or warms (what='warm', which wait for a
        slot like a turn)."""
        rng = random.Random(self.args.seed * 1000 + (998 if what == "delete" else 999))
        while not self.stop.wait(rng.uniform(0.5, 2.5)):
            with self.lock:
                ids = sorted(self.agents)
            victim = rng.choice(ids)
            if what == "warm":
                self.warm(victim)
            elif rng.random() < 0.6:
                self.delete(victim)
            else:
                path = rng.choice(("/admin/agents", "/admin/stats", "/metrics"))
                self.record("admin read", call(self.port, "GET", path), agent=None)

    def run_kill(self, server, at_s):
        """SIGKILLs the llama-server child once, and times agentkv's recovery."""
        if self.stop.wait(at_s):
            return
        victim = children(server.proc.pid)
        if not victim:
            self.kill = {"error": "no llama-server child found"}
            return
        k = {"at_s": self.now(), "pid": victim[0]}
        os.kill(victim[0], signal.SIGKILL)
        while self.now() - k["at_s"] < 300 and not self.stop.is_set():
            now = children(server.proc.pid)
            if "down_s" not in k and procs.http_status(server.url + "/readyz", 1) == 503:
                k["down_s"] = self.now()
            if now and now[0] != victim[0] and \
                    procs.http_status(server.url + "/readyz", 1) == 200:
                k["new_pid"], k["ready_s"] = now[0], self.now()
                break
            time.sleep(0.1)
        self.kill = k


def children(pid):
    out = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                out += [int(c) for c in f.read().split()]
    except OSError:
        pass
    return out


def proc_status(pid):
    """VmRSS and VmHWM in kB, threads and open fds of a process (None if gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            fields = dict(line.split(":", 1) for line in f if ":" in line)
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None
    if "VmRSS" not in fields:  # a zombie: the killed llama-server before agentkv reaps it
        return None
    return {"rss_kb": int(fields["VmRSS"].split()[0]), "hwm_kb": int(fields["VmHWM"].split()[0]),
            "threads": int(fields["Threads"]), "fds": fds}


def rss_by_mapping(pid):
    """agentkv's RSS in kB by kind of mapping, from /proc/<pid>/smaps: the
    main heap, thread stacks (anonymous mappings of exactly 8 MiB, the
    default stack size), other anonymous memory (malloc's per-thread arenas,
    large allocations) and files (the binary, libraries)."""
    kinds = Counter()
    kind = None
    try:
        with open(f"/proc/{pid}/smaps") as f:
            for line in f:
                fields = line.split()
                if "-" in fields[0] and not fields[0].endswith(":"):
                    start, end = (int(x, 16) for x in fields[0].split("-"))
                    name = fields[5] if len(fields) > 5 else ""
                    kind = ("heap" if name == "[heap]" else
                            "files" if name.startswith("/") else
                            "stacks" if not name and end - start == 8 << 20 else "other anon")
                elif fields[0] == "Rss:":
                    kinds[kind] += int(fields[1])
    except OSError:
        return None
    return dict(kinds)


def sample_rss(soak, pid, samples):
    while not soak.stop.is_set():
        s = proc_status(pid)
        if s:
            kids = children(pid)
            child = proc_status(kids[0]) if kids else None
            s["t"] = soak.now()
            s["llama_rss_kb"] = child["rss_kb"] if child else None
            if len(samples) % 10 == 0:
                s["mappings"] = rss_by_mapping(pid)
            samples.append(s)
        soak.stop.wait(1.0)


def sample_dir(soak, memory_dir, samples, every_s):
    while not soak.stop.wait(every_s):
        d = dir_problems(memory_dir)
        d["t"] = soak.now()
        samples.append(d)


def family_tokens(port, families):
    """The tokens of each family's first message, as llama-server renders and
    tokenizes it: what another agent's KV could share with it."""
    out = {}
    for fam, system in families.items():
        r = call(port, "POST", "/apply-template",
                 {"messages": [{"role": "system", "content": system}]}, timeout=30)
        prompt = json_of(r)["prompt"]
        r = call(port, "POST", "/tokenize", {"content": prompt, "add_special": True}, timeout=30)
        out[fam] = json_of(r)["tokens"]
    return out


# ---------------------------------------------------------------- report

def status_table(events):
    kinds = ["turn", "stream", "abort", "spawn", "stateless", "fork", "warm", "delete",
             "admin read"]
    names = {"turn": "turn, not streamed", "stream": "turn, streamed",
             "abort": "turn, aborted mid-stream", "spawn": "spawn (X-Agentkv-Parent)",
             "stateless": "turn, no agent id", "fork": "fork (POST .../fork)",
             "warm": "warm (POST .../warm)", "delete": "DELETE /admin/agents/{id}",
             "admin read": "GET /admin/agents, /admin/stats, /metrics"}
    statuses = sorted({e["status"] for e in events if e["status"] is not None})
    rows = []
    for k in kinds:
        evs = [e for e in events if e["kind"] == k]
        c = Counter(e["status"] for e in evs)
        errs = Counter(e["error"] for e in evs if e["error"])
        mss = [e["ms"] for e in evs]
        rows.append([names[k], len(evs)] + [c.get(s, 0) for s in statuses] +
                    [errs.get("timeout", 0),
                     sum(v for er, v in errs.items() if er != "timeout"),
                     fmt(pct(mss, 50)), fmt(pct(mss, 99)), fmt(max(mss) if mss else None)])
    header = ["kind", "sent"] + [str(s) for s in statuses] + \
        ["timeout", "conn error", "p50 ms", "p99 ms", "max ms"]
    return table(header, rows)


def fmt(v, digits=0):
    return "–" if v is None else f"{v:,.{digits}f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--quick", action="store_true", help="a 1-minute run")
    ap.add_argument("--agents", type=int, default=64)
    ap.add_argument("--agentkv", default=os.path.join(ROOT, "build", "agentkv"))
    ap.add_argument("--model", default=os.environ.get("AGENTKV_TEST_MODEL") or
                    os.path.join(CACHE, "models", "agentkv-test.gguf"))
    ap.add_argument("--threads", type=int, default=1,
                    help="llama-server --threads (1: with 2 shared cores, 2 threads spin on "
                         "each other and a turn's latency varies 50x)")
    ap.add_argument("--disk-budget-mb", type=int, default=256,
                    help="agentkv --disk-budget-bytes, so that the budget evicts files under "
                         "the load (0: none)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", default=None,
                    help=f"also write the summary here (e.g. {os.path.relpath(DEFAULT_OUT)})")
    args = ap.parse_args()
    minutes = 1.0 if args.quick else args.minutes
    rng = random.Random(args.seed)
    commit = git_head()  # the one this run starts from

    work = tempfile.mkdtemp(prefix="agentkv-soak-")
    memory_dir = os.path.join(work, "memory")
    os.makedirs(memory_dir)
    port = procs.free_port()
    serve = [args.agentkv, "serve", "--port", str(port), "--slots", str(SLOTS),
             "--memory-dir", memory_dir, "--model", args.model,
             "--disk-budget-bytes", str(args.disk_budget_mb << 20),
             "--llama-log", os.path.join(work, "llama-server.log"), "--",
             "--ctx-size", str(SLOTS * CTX_PER_SLOT), "--threads", str(args.threads)]
    server = procs.Server("agentkv", serve, port, os.path.join(work, "agentkv.log"),
                          "/readyz").start(timeout=120)
    print(f"agentkv pid {server.proc.pid} on port {server.port}; logs and memory in {work}",
          flush=True)
    soak = Soak(args, server.port, rng)
    soak.seats = [soak.new_root(i) for i in range(args.agents)]
    foreign = foreign_prefix(family_tokens(server.port,
                                           {a.family: a.system for a in soak.seats}))
    rss, dirs = [], []
    duration = minutes * 60
    kill_at = rng.uniform(0.35, 0.55) * duration
    threads = [threading.Thread(target=soak.run_seat, args=(i,), daemon=True)
               for i in range(args.agents)]
    threads += [threading.Thread(target=soak.run_chaos, args=(w,), daemon=True)
                for w in ("delete", "warm")]
    threads.append(threading.Thread(target=soak.run_kill, args=(server, kill_at), daemon=True))
    samplers = [threading.Thread(target=sample_rss, args=(soak, server.proc.pid, rss),
                                 daemon=True),
                threading.Thread(target=sample_dir, args=(soak, memory_dir, dirs, 10.0),
                                 daemon=True)]
    soak.t0, soak.wall0 = time.monotonic(), time.time()
    for t in threads + samplers:
        t.start()
    try:
        while soak.now() < duration:
            time.sleep(min(30.0, max(0.1, duration - soak.now())))
            with soak.lock:
                n = len(soak.events)
            last = rss[-1]["rss_kb"] / 1024 if rss else 0
            print(f"  {soak.now():6.0f} s: {n} requests, agentkv RSS {last:.1f} MB", flush=True)
        soak.stop.set()
        for t in threads:
            t.join(CLIENT_TIMEOUT + 10)
        hung = [t.name for t in threads if t.is_alive()]
        end_s = soak.now()

        # At rest: the turn-end saves finish, then the listing and the directory.
        rest_start = time.monotonic()
        listing = []
        while time.monotonic() - rest_start < 60:
            listing = list_agents(server.port)
            if not any(a.get("dirty") for a in listing):
                break
            time.sleep(0.5)
        time.sleep(1.0)
        listing = list_agents(server.port)
        prefixes = json_of(call(server.port, "GET", "/admin/prefixes"))["prefixes"]
        stats = json_of(call(server.port, "GET", "/admin/stats"))
        metrics = call(server.port, "GET", "/metrics")["body"].decode()
        figures, problems = check_listing(memory_dir, listing, prefixes)
        last_rss = proc_status(server.proc.pid)

        stop_start = time.monotonic()
        server.stop(timeout=90)
        stop = {"s": time.monotonic() - stop_start, "code": server.proc.returncode}

        # The same directory after a restart: the index rebuilt from disk.
        log2 = os.path.join(work, "agentkv-restart.log")
        again = procs.Server("agentkv", serve, port, log2, "/readyz").start(timeout=120)
        relisted = list_agents(again.port)
        again.stop(timeout=90)
    finally:
        soak.stop.set()
        server.stop(timeout=30)
    with open(log2) as f:
        restart_log = [line.strip() for line in f
                       if any(w in line for w in ("quarantin", "orphan", "leftover"))]

    with open(os.path.join(work, "events.json"), "w") as f:  # for a closer look
        json.dump({"rss": rss, "dirs": dirs, "kill": soak.kill, "events": [
            {k: (v.decode(errors="replace") if isinstance(v, bytes) else v)
             for k, v in e.items()} for e in soak.events]}, f)
    snapshots = snapshot_sizes(os.path.join(work, "agentkv.log"), prefixes)
    counts, bad, own_max, inherited = judge(soak.events, soak.agents, foreign, snapshots)
    text = report(args, SimpleNamespace(
        commit=commit, serve=serve, minutes=minutes, soak=soak, work=work, rss=rss, dirs=dirs,
        hung=hung, end_s=end_s, listing=listing, figures=figures, problems=problems, stats=stats,
        metrics=metrics, stop=stop, relisted=relisted, restart_log=restart_log, counts=counts,
        bad=bad, own_max=own_max, inherited=inherited, foreign=foreign, last_rss=last_rss))
    print(text)
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as f:
            f.write(text + "\n")
        print(f"written to {args.out}")
    return 0


def metric(text, name):
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


def git_head():
    try:
        return subprocess.run(["git", "-C", ROOT, "log", "-1", "--format=%h %s"],
                              capture_output=True, text=True, timeout=10).stdout.strip()[:72]
    except OSError:
        return "?"


def header(args, r):
    return [f"# python3 bench/soak.py {' '.join(sys.argv[1:])}",
            f"# {datetime.datetime.now().isoformat(timespec='seconds')}, commit {r.commit}",
            f"# {platform.node()}: {os.cpu_count()} cores, {platform.platform()}",
            f"agentkv {args.agentkv}; model {args.model} "
            f"({os.path.getsize(args.model) / 1e6:.0f} MB); {SLOTS} slots x {CTX_PER_SLOT} "
            f"tokens, llama-server --threads {args.threads}; {args.agents} agents for "
            f"{r.minutes:g} min (load stopped at {r.end_s:.0f} s); logs in {r.work}",
            f"agentkv serve arguments: {' '.join(r.serve[2:])}".replace(r.work, "$WORK"), ""]


def kill_window(r):
    """Run seconds from the kill to 5 s after /readyz answered 200 again."""
    kill = r.soak.kill or {}
    k0 = kill.get("at_s", -1)
    return k0, kill.get("ready_s", k0) + 5


def answers_section(r):
    ev = r.soak.events
    k0, k1 = kill_window(r)
    in_kill = {id(e) for e in ev if e["start"] <= k1 and e["end"] >= k0}
    failures = [e for e in ev if e["error"] or e.get("outcome") == "truncated"]
    by_outcome = Counter(e.get("outcome") for e in ev if e["kind"] in ("stream", "abort", "spawn"))
    answered_5xx = [e for e in ev if e["status"] and e["status"] >= 500]
    out = ["## Requests (each with a client timeout of %.0f s)" % CLIENT_TIMEOUT, "",
           status_table(ev), "",
           f"{len(ev)} requests, {len(ev) / max(r.end_s, 1):.1f}/s, {len(r.soak.agents)} agent "
           f"ids in all ({len(r.soak.seats)} driven at a time). Streams: "
           f"{by_outcome.get('complete', 0)} complete, {by_outcome.get('aborted', 0)} aborted "
           f"by the client as planned, {by_outcome.get('error event', 0)} ended by an error "
           f"event from agentkv, {by_outcome.get('truncated', 0)} cut short. "
           f"Answered 5xx: {len(answered_5xx)} {dict(Counter(e['status'] for e in answered_5xx))}"
           f", of which {sum(1 for e in answered_5xx if id(e) in in_kill)} overlapped the "
           f"llama-server kill window.", ""]
    last_turn = {}
    for e in ev:
        if e["kind"] in TURN_KINDS and e.get("seat") is not None:
            last_turn[e["seat"]] = max(last_turn.get(e["seat"], 0), e["end"])
    idle = sorted(s for s in range(len(r.soak.seats)) if last_turn.get(s, 0) < r.end_s - 60)
    out += [f"Seats with no turn in the last minute of the load: {len(idle)} {idle or ''}", ""]
    if failures:
        out += ["Failures (no answer, a dropped connection or a stream cut short):"]
        out += [f"  t={e['start']:.1f}s {e['kind']} {e.get('agent')}: {e['error'] or ''} "
                f"{e.get('outcome')} status {e['status']} after {e['ms']:.0f} ms"
                f"{' (kill window)' if id(e) in in_kill else ''}" for e in failures[:30]] + [""]
    other_5xx = [e for e in answered_5xx if id(e) not in in_kill]
    if other_5xx:
        out += ["5xx outside the kill window:"]
        out += [f"  t={e['start']:.1f}s {e['kind']} {e.get('agent')}: {e['status']} "
                f"{e.get('body', b'')[:160]!r}" for e in other_5xx[:20]] + [""]
    seen, in_window = log_warnings(os.path.join(r.work, "agentkv.log"), r.soak.wall0, (k0, k1))
    if seen:
        out += ["agentkv's log, warnings and errors (ids and numbers as #):", "",
                table(["count", "in the kill window", "message"],
                      [[n, in_window.get(m, 0), m[:150]] for m, n in seen.most_common(15)]), ""]
    return out, not failures and not r.hung


def placements_section(r):
    ev = r.soak.events
    kinds = TURN_KINDS + ("warm",)
    pl = Counter((e["kind"], e.get("placement")) for e in ev
                 if e["kind"] in kinds and e["status"] == 200)
    places = ["resident", "restored", "cold", "prefix", "stateless"]
    nothing_back = [e for e in ev if e.get("placement") in ("resident", "restored") and
                    e.get("timings") and e["timings"]["cache_n"] == 0]
    when = ", ".join("%.0f" % e["start"] for e in nothing_back[:12])
    return ["## Placements (X-Agentkv-Placement of answered turns; warm: its JSON)", "",
            table(["kind"] + places, [[k] + [pl.get((k, p), 0) for p in places] for k in kinds]),
            "", f"Resident or restored turns that reused nothing: {len(nothing_back)}"
            + (f" (at t = {when} s)" if nothing_back else ""), ""]


def kill_section(r):
    ev, kill = r.soak.events, r.soak.kill or {}
    k0, k1 = kill_window(r)
    out = ["## llama-server SIGKILL", ""]
    if "ready_s" not in kill:
        return out + [f"Not completed: {kill}", ""]
    window = [e for e in ev if e["start"] <= k1 and e["end"] >= k0]
    out += [f"At t={k0:.1f} s, pid {kill['pid']} killed; agentkv started pid "
            f"{kill['new_pid']} and /readyz answered 200 again after "
            f"{kill['ready_s'] - k0:.1f} s. {len(window)} requests overlapped "
            f"the window (kill to ready + 5 s): "
            f"{dict(Counter(e['status'] or e['error'] for e in window))}. "
            f"agentkv_upstream_restarts_total "
            f"{metric(r.metrics, 'agentkv_upstream_restarts_total'):.0f}, "
            f"resets in /admin/stats {r.stats.get('resets')}."]
    noticed = first_log_time(os.path.join(r.work, "agentkv.log"), "exited unexpectedly",
                             r.soak.wall0)
    if noticed is not None:
        before = [e for e in ev if e["status"] and e["status"] >= 500 and
                  k0 <= e["end"] <= noticed + 0.05]
        out += [f"agentkv's health watch noticed the exit {noticed - k0:.2f} s after the kill; "
                f"{len(before)} requests were answered 5xx in between "
                f"({dict(Counter(e['kind'] for e in before))})."]
    return out + [""]


def isolation_section(r):
    c = r.counts
    rows = [["a cold, stateless or new agent's turn reuses nothing (but a prefix snapshot)",
             c["nothing"], c["nothing bad"]],
            ["a reuse from a prefix snapshot (placed prefix, or cold building one) is exactly "
             "a snapshot's size", c["snapshot"], c["snapshot bad"]],
            ["a turn after a DELETE of its agent (and nothing of it since) reuses nothing",
             c["deleted"], c["deleted bad"]],
            ["cache_n <= tokens the agent, or the parent it was forked from, had before",
             c["bound"], c["bound bad"]],
            ["a reuse goes past the prefix shared with any other agent's first message "
             f"(at most {max(r.foreign.values())} tokens)", c["foreign"], c["foreign bad"]]]
    over = []
    for a in r.listing:
        limit = max(r.own_max.get(a["id"], 0), r.inherited(a["id"]))
        held = max((a.get("saved") or {}).get("tokens") or 0, a.get("resident_tokens") or 0)
        if held > limit:
            over.append(f"{a['id']}: /admin/agents shows {held} tokens, it had at most {limit}")
    rows.append(["/admin/agents at the end: no agent holds more than that", len(r.listing),
                 len(over)])
    out = ["## No cross-agent reuse", "", table(["check", "judged", "violations"], rows), ""]
    if r.bad or over:
        out += [f"  {b}" for b in r.bad + over] + [""]
    return out, not r.bad and not over


def saved(listing):
    return sorted((a["id"], a["saved"]["tokens"], a["saved"]["bytes"])
                  for a in listing if a.get("saved"))


def files_section(r):
    f = r.figures
    deleted_last = deleted_at_end(r.soak.events, r.listing, f["hashes"])
    worst = {k: max((d[k] for d in r.dirs), default=0) for k in ("temps", "orphans", "missing")}
    same = saved(r.listing) == saved(r.relisted)
    out = ["## Memory directory against GET /admin/agents", "",
           f"At rest after the load: {f['listed']} agents listed "
           f"({f['listed_with_memory']} with saved memory, {f['resident']} "
           f"resident), {f['metas']} metadata files, {f['states']} state files "
           f"({f['bytes'] / 1e6:.1f} MB), {f['temps']} temporaries, "
           f"{f['snapshots']} prefix snapshots; {len(r.problems)} inconsistencies.",
           f"During the load ({len(r.dirs)} scans, every 10 s): metadata naming a missing state "
           f"file at most {worst['missing']}; transient (a save in flight) temporaries at "
           f"most {worst['temps']}, unreferenced generations at most {worst['orphans']}.",
           f"Agents whose last operation was a DELETE: {deleted_last['judged']}; still listed "
           f"or with files: {len(deleted_last['bad'])}.",
           f"After agentkv stopped (exit code {r.stop['code']}, {r.stop['s']:.1f} s) and started "
           f"again on the directory: {len(saved(r.relisted))} agents with memory listed, "
           f"{'the same ids, tokens and bytes' if same else 'DIFFERENT from before'}"
           f"; its log: {len(r.restart_log)} lines about quarantine, orphans or leftovers.", ""]
    noted = r.problems + deleted_last["bad"] + r.restart_log
    if noted:
        out += [f"  {p}" for p in noted[:30]] + [""]
    return out, not r.problems and not deleted_last["bad"] and worst["missing"] == 0 and same


def process_section(r):
    rss, end_s = r.rss, r.end_s
    half = [s for s in rss if s["t"] >= end_s / 2]
    peak = max(rss, key=lambda s: s["rss_kb"])
    slope = slope_per_min([(s["t"], s["rss_kb"] / 1024) for s in half])
    span = (half[-1]["t"] - half[0]["t"]) / 60 if len(half) > 1 else 0

    def row(name, key):
        return [name, rss[0][key], max(s[key] for s in rss), rss[-1][key],
                f"{slope_per_min([(s['t'], s[key]) for s in half]):+.2f}/min"]

    out = ["## agentkv process (/proc/<pid>/status each second)", "",
           table(["", "first", "peak", "last", "slope over the second half"],
                 [["RSS MB", fmt(rss[0]["rss_kb"] / 1024, 1), fmt(peak["rss_kb"] / 1024, 1),
                   fmt(rss[-1]["rss_kb"] / 1024, 1),
                   f"{slope:+.3f} MB/min ({slope * span:+.2f} MB over {span:.1f} min)"],
                  row("threads", "threads"), row("open fds", "fds")]), ""]
    third = slope_per_min([(s["t"], s["rss_kb"] / 1024) for s in half if s["t"] < end_s * 3 / 4])
    fourth = slope_per_min([(s["t"], s["rss_kb"] / 1024) for s in half if s["t"] >= end_s * 3 / 4])
    out += [f"RSS slope over the third quarter of the load {third:+.3f} MB/min, over the last "
            f"quarter {fourth:+.3f} MB/min.", ""]
    mapped = [s for s in half if s.get("mappings")]
    if len(mapped) > 1:
        kinds = sorted(set(mapped[0]["mappings"]) | set(mapped[-1]["mappings"]))
        def mb(s, k):
            return s["mappings"].get(k, 0) / 1024

        rows = [[k, fmt(mb(mapped[0], k), 1), fmt(mb(mapped[-1], k), 1),
                 f"{slope_per_min([(s['t'], mb(s, k)) for s in mapped]):+.3f}"] for k in kinds]
        out += ["RSS by kind of mapping (/proc/<pid>/smaps every 10 s) over the second half:", "",
                table(["mapping", "MB at its start", "MB at its end", "slope MB/min"], rows), ""]
    llama = [s["llama_rss_kb"] for s in rss if s["llama_rss_kb"]]
    if r.last_rss and llama:
        out += [f"At rest after the load: RSS {r.last_rss['rss_kb'] / 1024:.1f} MB, peak "
                f"(VmHWM) {r.last_rss['hwm_kb'] / 1024:.1f} MB. llama-server child RSS: first "
                f"{llama[0] / 1024:.0f} MB, last {llama[-1] / 1024:.0f} MB.", ""]
    return out, abs(slope) < RSS_FLAT_MB_PER_MIN


def report(args, r):
    answers, answered = answers_section(r)
    isolation, isolated = isolation_section(r)
    files, consistent = files_section(r)
    process, flat = process_section(r)
    keys = ("restores", "saves", "save_failures", "evictions", "fallbacks", "resets",
            "quarantined", "quarantine_files", "prefix_hits", "prefix_snapshots_written",
            "agents_on_disk", "bytes_on_disk")
    verdict = [
        ("every request answered (no timeout, dropped connection or cut stream outside "
         "planned aborts)", answered),
        ("no cross-agent reuse", isolated),
        ("memory directory consistent with /admin/agents, also after a restart", consistent),
        (f"agentkv RSS flat over the second half (|slope| < {RSS_FLAT_MB_PER_MIN} MB/min)",
         flat)]
    out = (header(args, r) + answers + placements_section(r) + kill_section(r) + isolation +
           files + process +
           ["## /admin/stats at the end", "", ", ".join(f"{k} {r.stats.get(k)}" for k in keys),
            "", "## Verdict", ""] +
           [f"- {'PASS' if ok else 'FAIL'}: {what}" for what, ok in verdict])
    if r.hung:
        out += [f"- seat threads still running after the load: {r.hung}"]
    return "\n".join(out)


if __name__ == "__main__":
    sys.exit(main())
