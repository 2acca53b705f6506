"""Scenario 10: how agentkv's own cost grows with the agents it knows.

agentkv runs in front of the fake llama-server of the component tests (the
program build/tests/agentkv-fake-llama: slots hold text, a restore reads the
file back), so what is measured is agentkv alone: no model, no KV bytes. Its
memory directory is synthesised in the real on-disk format (an H.meta and an
H.1.kv per agent, with the fingerprint, checksum and sizes agentkv checks)
for each size, once, under ~/.cache/agentkv/scale/, and hard-linked into the
run's working directory (agentkv replaces files by rename, never in place, so
the cache stays intact).

For each size: the time from starting agentkv to /readyz answering 200, its
RSS then, the latency of a returning agent's turn (a restore of its file into
a slot, an eviction first) and of a new agent's turn, measured on the client
and set against the same request sent straight to the fake; /admin/agents
(first page and a page in the middle), /admin/status, /metrics and
`agentkv status`: time and bytes; `traffic_s` seconds of returning agents and
RSS after them; then agentkv again with a disk budget the directory already
fills, so that every turn-end save deletes the least recently used memory."""
import contextlib
import ctypes
import hashlib
import http.client
import json
import os
import random
import re
import shutil
import signal
import subprocess
import time

from . import procs

FORMAT = 1  # of the synthesised directories: bump when the layout written here changes
RETURNING, NEW, PAGES = 300, 200, 5


def xxh64_function():
    lib = ctypes.CDLL("libxxhash.so.0")  # the library agentkv's own checksums come from
    lib.XXH64.restype = ctypes.c_uint64
    lib.XXH64.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint64]
    return lambda data: lib.XXH64(data, len(data), 0)


def agent_id(i):
    return f"scale-{i}"


def content(i):
    """What agent i's slot file holds: the fake keeps a slot's text as its KV."""
    return f"agent:{agent_id(i)}|the notes agent {i} keeps between its turns".encode()


def need_bytes(n):
    """Disk a directory of n agents takes: two files of one 4 KiB block each."""
    return n * 2 * 4096


def synthesise(root, n, fingerprint, progress):
    """The cached directory of n agents (written if missing or stale)."""
    path = os.path.join(root, str(n))
    marker = os.path.join(path, "synthesised.json")
    want = {"format": FORMAT, "agents": n, "fingerprint": fingerprint}
    try:
        with open(marker) as f:
            if json.load(f) == want:
                return path
    except (OSError, ValueError):
        pass
    free = shutil.disk_usage(root).free
    if free < need_bytes(n) * 1.2:
        raise RuntimeError(f"scale: {n:,} agents need about {need_bytes(n) / 2**30:.1f} GiB "
                           f"in {root}; {free / 2**30:.1f} GiB are free")
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path, mode=0o700)
    xxh64 = xxh64_function()
    now = int(time.time())
    for i in range(n):
        if i % 50000 == 0:
            progress(f"synthesising {n:,} agents: {i:,} written")
        aid, data = agent_id(i), content(i)
        h = hashlib.sha256(aid.encode()).hexdigest()
        state = f"{h}.1.kv"
        with open(os.path.join(path, state), "wb") as f:
            f.write(data)
        # Used in order: agent 0 least recently, agent n-1 last.
        t = now - (n - i)
        meta = {"agent": aid, "fingerprint": fingerprint, "state_file": state, "generation": 1,
                "tokens": len(data), "bytes": len(data), "checksum": xxh64(data),
                "created": t, "updated": t, "prompt_key": 0, "scope": ""}
        with open(os.path.join(path, h + ".meta"), "w") as f:
            f.write(json.dumps(meta) + "\n")
    with open(marker, "w") as f:
        json.dump(want, f)
    return path


class Fake:
    """agentkv-fake-llama on `directory` with `slots` slots."""

    def __init__(self, binary, directory, slots, log_path):
        self.log = open(log_path, "ab")
        self.proc = subprocess.Popen([binary, "--slots", str(slots), "--dir", directory],
                                     stdout=subprocess.PIPE, stderr=self.log,
                                     start_new_session=True)
        line = self.proc.stdout.readline().decode()
        m = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
        if not m:
            self.stop()
            raise RuntimeError(f"the fake llama-server did not start: {line!r}")
        self.url = f"http://127.0.0.1:{m.group(1)}"
        self.port = int(m.group(1))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait()
        self.log.close()


class Agentkv:
    """agentkv serve on the fake, timed from its start to /readyz."""

    def __init__(self, binary, fake, directory, log_path, args=()):
        self.port = procs.free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(log_path, "ab")
        started = time.monotonic()
        self.proc = subprocess.Popen(
            [binary, "serve", "--port", str(self.port), "--upstream", fake.url, "--memory-dir",
             directory, "--log-level", "warn"] + list(args),
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        while procs.http_status(self.url + "/readyz", timeout=60) != 200:
            if self.proc.poll() is not None:
                raise RuntimeError(f"agentkv exited with {self.proc.returncode}; see {log_path}")
            time.sleep(0.005)
        self.ready_s = time.monotonic() - started

    def rss_kib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(120)
        self.log.close()


class Client:
    """One kept-alive connection; each call returns (ms, status, headers, body bytes)."""

    def __init__(self, port):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)

    def call(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if data else {}
        start = time.perf_counter()
        self.conn.request(method, path, data, headers)
        res = self.conn.getresponse()
        payload = res.read()
        return (time.perf_counter() - start) * 1000, res.status, res.headers, payload

    def close(self):
        self.conn.close()


def turn(client, path, i):
    return client.call("POST", path, {"prompt": content(i).decode() + " next", "n_predict": 1})


def timed_gets(client, path, times=PAGES):
    runs = [client.call("GET", path) for _ in range(times)]
    bad = [r[1] for r in runs if r[1] != 200]
    if bad:
        raise RuntimeError(f"GET {path} answered {bad[0]}")
    return {"ms": sorted(r[0] for r in runs)[len(runs) // 2], "bytes": len(runs[-1][3])}


@contextlib.contextmanager
def served(tools, work, name, slots=2, args=()):
    """A new directory `work`/`name`, the fake on it and agentkv in front
    (logs `name`-fake.log and `name`-agentkv.log); yields (directory,
    agentkv) and stops both, agentkv first, however the block ends."""
    d = os.path.join(work, name)
    os.makedirs(d, mode=0o700)
    fake = Fake(tools.fake_llama, d, slots, os.path.join(work, f"{name}-fake.log"))
    try:
        a = Agentkv(tools.agentkv, fake, d, os.path.join(work, f"{name}-agentkv.log"), args)
        try:
            yield d, a
        finally:
            a.stop()
    finally:
        fake.stop()


def fingerprint_of(tools, work, progress):
    """The fingerprint agentkv gives memory saved through the fake: one agent's turn."""
    with served(tools, work, "seed") as (d, a):
        c = Client(a.port)
        _, status, _, body = turn(c, "/agents/seed/completion", 0)
        c.close()
    if status != 200:
        raise RuntimeError(f"the seed turn answered {status}: {body[:200]!r}")
    metas = [f for f in os.listdir(d) if f.endswith(".meta")]
    with open(os.path.join(d, metas[0])) as f:
        return json.load(f)["fingerprint"]


def measure(tools, n, cached, work, traffic_s, progress):
    d = os.path.join(work, f"agents-{n}")
    started = time.monotonic()
    subprocess.run(["cp", "-al", cached, d], check=True)
    os.remove(os.path.join(d, "synthesised.json"))
    out = {"agents": n, "link_copy_s": round(time.monotonic() - started, 1)}
    rng = random.Random(n)
    fake = Fake(tools.fake_llama, d, 2, os.path.join(work, f"fake-{n}.log"))
    try:
        progress(f"{n:,} agents: starting agentkv")
        a = Agentkv(tools.agentkv, fake, d, os.path.join(work, f"agentkv-{n}.log"))
        out["ready_s"] = round(a.ready_s, 3)
        out["rss_start_kib"] = a.rss_kib()
        direct, c = Client(fake.port), Client(a.port)
        out["direct_ms"] = [turn(direct, "/completion", i)[0] for i in range(RETURNING)]
        direct.close()
        progress(f"{n:,} agents: returning and new agents")
        returning, placements = [], {}
        for i in rng.sample(range(n), min(RETURNING, n)):
            ms, status, headers, body = turn(c, f"/agents/{agent_id(i)}/completion", i)
            if status != 200:
                raise RuntimeError(f"agent {i} answered {status}: {body[:200]!r}")
            returning.append(ms)
            p = headers.get("X-Agentkv-Placement")
            placements[p] = placements.get(p, 0) + 1
        out["returning_ms"], out["returning_placements"] = returning, placements
        out["new_ms"] = []
        for j in range(NEW):
            ms, status, _, body = turn(c, f"/agents/fresh-{j}/completion", n + j)
            if status != 200:
                raise RuntimeError(f"new agent {j} answered {status}: {body[:200]!r}")
            out["new_ms"].append(ms)
        progress(f"{n:,} agents: admin, status and metrics")
        out["admin_first_page"] = timed_gets(c, "/admin/agents?limit=50")
        out["admin_middle_page"] = timed_gets(c, f"/admin/agents?offset={n // 2}&limit=50")
        out["admin_status"] = timed_gets(c, "/admin/status")
        out["metrics"] = timed_gets(c, "/metrics")
        runs = []
        for _ in range(3):
            t = time.perf_counter()
            subprocess.run([tools.agentkv, "status", "--url", a.url], check=True,
                           stdout=subprocess.DEVNULL)
            runs.append((time.perf_counter() - t) * 1000)
        out["status_command_ms"] = sorted(runs)[1]
        progress(f"{n:,} agents: {traffic_s} s of returning agents")
        deadline, served, traffic = time.monotonic() + traffic_s, 0, []
        while time.monotonic() < deadline:
            i = rng.randrange(n)
            ms, status, _, _ = turn(c, f"/agents/{agent_id(i)}/completion", i)
            served += status == 200
            traffic.append(ms)
        out["traffic"] = {"seconds": traffic_s, "turns": len(traffic), "ok": served,
                          "p50_ms": sorted(traffic)[len(traffic) // 2] if traffic else None}
        out["rss_after_traffic_kib"] = a.rss_kib()
        c.close()
        a.stop()
        progress(f"{n:,} agents: a disk budget the directory fills")
        total = sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d)
                    if f.endswith(".kv"))
        b = Agentkv(tools.agentkv, fake, d, os.path.join(work, f"agentkv-budget-{n}.log"),
                    ["--disk-budget-bytes", str(total)])
        out["budget_ready_s"] = round(b.ready_s, 3)
        c = Client(b.port)
        budget = []
        for i in rng.sample(range(n // 2, n), min(RETURNING, n // 2)):
            budget.append(turn(c, f"/agents/{agent_id(i)}/completion", i)[0])
        out["budget_returning_ms"] = budget
        c.close()
        b.stop()
    finally:
        fake.stop()
        shutil.rmtree(d, ignore_errors=True)
    return out


def flood(tools, work, requests, progress):
    """A client inventing a new agent id on every request, as fast as one
    connection goes: what agentkv admits (--max-new-agents-per-minute, 600
    by default), refuses, and holds in RSS and on disk."""
    try:
        with served(tools, work, "flood") as (d, a):
            c = Client(a.port)
            for i in range(50):  # a few real agents first, and the server warm
                turn(c, f"/agents/{agent_id(i)}/completion", i)
            out = {"requests": requests, "rss_before_kib": a.rss_kib(), "statuses": {},
                   "retry_after": None}
            started = time.monotonic()
            for k in range(requests):
                if k % 20000 == 0:
                    progress(f"invented ids: {k:,} of {requests:,}")
                _, status, headers, _ = turn(c, f"/agents/invented-{k}/completion", k)
                out["statuses"][str(status)] = out["statuses"].get(str(status), 0) + 1
                if status == 429 and out["retry_after"] is None:
                    out["retry_after"] = headers.get("Retry-After")
            out["seconds"] = round(time.monotonic() - started, 1)
            out["rss_after_kib"] = a.rss_kib()
            _, _, _, body = c.call("GET", "/metrics")
            m = re.search(rb"\nagentkv_new_agents_refused_total (\d+)", body)
            out["refused_metric"] = int(m.group(1)) if m else None
            c.close()
        out["memories_on_disk"] = sum(f.endswith(".meta") for f in os.listdir(d))
    finally:
        shutil.rmtree(os.path.join(work, "flood"), ignore_errors=True)
    return out


def run(tools, sizes, work, traffic_s, cache_root, progress, flood_requests=100000):
    os.makedirs(cache_root, exist_ok=True)
    fingerprint = fingerprint_of(tools, work, progress)
    results = []
    for n in sizes:
        cached = synthesise(cache_root, n, fingerprint, progress)
        results.append(measure(tools, n, cached, work, traffic_s, progress))
    return {"sizes": results, "flood": flood(tools, work, flood_requests, progress)}


def summary(raw, pct):
    rows = []
    for r in raw["sizes"]:
        direct = pct(r["direct_ms"], 50)
        rows.append({
            "agents": r["agents"], "ready_s": r["ready_s"], "ready_again_s": r["budget_ready_s"],
            "rss_start_mib": round(r["rss_start_kib"] / 1024, 1),
            "rss_after_traffic_mib": round(r["rss_after_traffic_kib"] / 1024, 1),
            "direct_p50_ms": direct,
            "returning_p50_ms": pct(r["returning_ms"], 50),
            "returning_p99_ms": pct(r["returning_ms"], 99),
            "returning_added_p50_ms": round(pct(r["returning_ms"], 50) - direct, 2),
            "returning_placements": r["returning_placements"],
            "new_p50_ms": pct(r["new_ms"], 50), "new_p99_ms": pct(r["new_ms"], 99),
            "budget_returning_p50_ms": pct(r["budget_returning_ms"], 50),
            "budget_returning_p99_ms": pct(r["budget_returning_ms"], 99),
            "admin_first_page_ms": round(r["admin_first_page"]["ms"], 2),
            "admin_middle_page_ms": round(r["admin_middle_page"]["ms"], 2),
            "admin_page_bytes": r["admin_first_page"]["bytes"],
            "admin_status_ms": round(r["admin_status"]["ms"], 2),
            "admin_status_bytes": r["admin_status"]["bytes"],
            "metrics_ms": round(r["metrics"]["ms"], 2), "metrics_bytes": r["metrics"]["bytes"],
            "status_command_ms": round(r["status_command_ms"], 1),
            "traffic_s": r["traffic"]["seconds"], "traffic_turns": r["traffic"]["turns"]})
    if len(rows) >= 2:
        a, b = rows[0], rows[-1]
        for row in rows:
            row["rss_per_agent_bytes"] = None
        b["rss_per_agent_bytes"] = round((b["rss_start_mib"] - a["rss_start_mib"]) * 2**20
                                         / (b["agents"] - a["agents"]))
    f = raw["flood"]
    flood_row = dict(f, rss_before_mib=round(f["rss_before_kib"] / 1024, 1),
                     rss_after_mib=round(f["rss_after_kib"] / 1024, 1))
    return {"sizes": rows, "flood": flood_row}
