"""Scenario 11: a slow disk (issue 28).

The memory directory is an ext4 file system on a loop device (direct I/O to
its backing file, so the host's page cache does not hide it) whose reads and
writes a blkio cgroup (cgroup v1) throttles, for llama-server and agentkv,
to the given MiB/s each way (EBS gp3: 125 MiB/s baseline, 1,000 provisioned;
gp3's figure is for reads and writes together, this emulation's for each).
Agents of two kinds share few slots: some run tools (their client says so
with `X-Agent-Next: tool`; a random-weights model never answers with a tool
call) and come back after 2 to 8 s, the others wait for a person (30 to
300 s, divided by `person_compress`). Every agent starts from one long
shared system prompt and a task of its own, so contexts pass 8K tokens on a
model with much KV a token (make_model.py's `disk` shape: 24 KiB of f16 KV
a token). Before each returning turn of an agentkv serving, the agent's files
are dropped from the page cache (POSIX_FADV_DONTNEED): a restore reads the
disk, as on a host whose RAM holds the model and the slots, not the files.

Served three ways, each on a fresh llama-server: llama-server alone (its RAM
prompt cache, the default --cache-ram; it needs no disk, so it runs once),
agentkv as it was (least recently used eviction, every turn saved at its
end) and agentkv with agent-aware residency (its defaults). Needs root (a
loop device, mount, a cgroup)."""
import hashlib
import os
import random
import re
import shutil
import subprocess
import threading
import time

from . import client, procs

SYSTEM_HEADER = "You are an agent. Your tools and instructions follow.\n"

SERVINGS = [
    {"key": "llama-server", "label": "llama-server alone (RAM prompt cache)", "agentkv": False,
     "llama_args": [], "args": []},
    {"key": "agentkv-lru", "label": "agentkv, LRU, every turn saved",
     "agentkv": True, "llama_args": ["--cache-ram", "0", "--no-cache-idle-slots"],
     "args": ["--eviction", "lru", "--prefetch", "off", "--returning-save-delay-s", "0"]},
    {"key": "agentkv-aware", "label": "agentkv, agent-aware (defaults)",
     "agentkv": True, "llama_args": ["--cache-ram", "0", "--no-cache-idle-slots"], "args": []},
]


class ThrottledDisk:
    """A file system on a loop device, throttled to `mib_s` each way for the
    processes added to its cgroup."""

    CGROUPS = "/sys/fs/cgroup/blkio"

    def __init__(self, work, size_gib, mib_s):
        self.image = os.path.join(work, "disk.img")
        self.mount = os.path.join(work, "mnt")
        self.size_gib, self.mib_s = size_gib, mib_s
        self.cgroup = os.path.join(self.CGROUPS, f"agentkv-bench-{os.getpid()}-{mib_s}")
        self.loop = None

    @staticmethod
    def check():
        """Why this machine cannot run the scenario, or None."""
        if os.geteuid() != 0:
            return "needs root (a loop device, mount, a blkio cgroup)"
        if not os.path.isdir(ThrottledDisk.CGROUPS):
            return ("needs cgroup v1's blkio controller at /sys/fs/cgroup/blkio "
                    "(cgroup v2's io.max is not implemented here)")
        for tool in ("losetup", "mkfs.ext4", "mount", "umount"):
            if not shutil.which(tool):
                return f"needs {tool}"
        return None

    def __enter__(self):
        with open(self.image, "wb") as f:
            f.truncate(self.size_gib << 30)
        self.loop = subprocess.run(["losetup", "--find", "--show", "--direct-io=on", self.image],
                                   check=True, capture_output=True, text=True).stdout.strip()
        try:
            subprocess.run(["mkfs.ext4", "-q", "-F", self.loop], check=True)
            os.makedirs(self.mount, exist_ok=True)
            subprocess.run(["mount", self.loop, self.mount], check=True)
            with open(f"/sys/block/{os.path.basename(self.loop)}/dev") as f:
                self.device = f.read().strip()
            os.makedirs(self.cgroup, exist_ok=True)
            limit = f"{self.device} {self.mib_s << 20}"
            for name in ("blkio.throttle.read_bps_device", "blkio.throttle.write_bps_device"):
                with open(os.path.join(self.cgroup, name), "w") as f:
                    f.write(limit)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc):
        if os.path.ismount(self.mount):
            subprocess.run(["umount", self.mount], check=False)
        if self.loop:
            subprocess.run(["losetup", "-d", self.loop], check=False)
        if os.path.isdir(self.cgroup):
            try:
                os.rmdir(self.cgroup)
            except OSError:
                pass  # a process still in it: the next run uses another name
        if os.path.exists(self.image):
            os.remove(self.image)

    def add(self, pid):
        with open(os.path.join(self.cgroup, "cgroup.procs"), "w") as f:
            f.write(str(pid))

    def stats(self):
        """Bytes read and written, and ms the device was busy, since it was made."""
        with open(f"/sys/block/{os.path.basename(self.loop)}/stat") as f:
            fields = [int(x) for x in f.read().split()]
        return {"read_bytes": fields[2] * 512, "written_bytes": fields[6] * 512,
                "busy_ms": fields[9]}

    def calibrate(self, mib=256):
        """MiB/s of a write (with fsync) and of a read from the disk, by a
        process of the cgroup."""
        path = os.path.join(self.mount, "calibrate.bin")

        def timed(command):
            start = time.monotonic()
            subprocess.run(["sh", "-c", f"echo $$ > {self.cgroup}/cgroup.procs; exec {command}"],
                           check=True)
            return time.monotonic() - start
        write_s = timed(f"dd if=/dev/zero of={path} bs=1M count={mib} conv=fsync status=none")
        drop_page_cache(path)
        read_s = timed(f"dd if={path} of=/dev/null bs=1M status=none")
        os.remove(path)
        return {"write_mib_s": round(mib / write_s, 1), "read_mib_s": round(mib / read_s, 1)}


def drop_page_cache(path):
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
    return True


def plan(p, agent):
    """One agent's turns: tokens its message adds, answer tokens, and the
    seconds until its next turn; the same for every serving."""
    rng = random.Random(11000 + agent)
    tool = agent < p["tool_agents"]
    n = p["tool_turns"] if tool else p["person_turns"]
    turns = []
    for i in range(n):
        added = p["task_tokens"] if i == 0 else rng.randint(
            *(p["tool_output_tokens"] if tool else p["person_message_tokens"]))
        gap = (rng.uniform(*p["tool_s"]) if tool
               else rng.uniform(*p["person_s"]) / p["person_compress"])
        turns.append({"added_tokens": added, "answer_tokens": rng.randint(*p["answer_tokens"]),
                      "gap_s": round(gap, 2) if i < n - 1 else 0})
    return {"kind": "tool" if tool else "person", "turns": turns}


METRICS = ("restores_total", "prefetches_total", "prefetch_hits_total", "saves_total",
           "saved_bytes_total", "restored_bytes_total", "evictions_total", "fallbacks_total")


def metrics(url):
    text = client.request_text(url, "/metrics")
    out = {}
    for name in METRICS:
        m = re.search(rf"^agentkv_{name} (\S+)$", text, re.M)
        out[name] = float(m.group(1)) if m else None
    return out


class Serving:
    """Every agent's turns, served one way."""

    def __init__(self, tools, p, config, work_dir, disk, progress):
        self.p, self.config, self.disk, self.progress = p, config, disk, progress
        self.memory = os.path.join(disk.mount if disk else work_dir, "memory-" + config["key"])
        os.makedirs(self.memory)
        args = ["--parallel", str(p["slots"]), "--ctx-size", str(p["slots"] * p["slot_ctx"]),
                "--slot-save-path", self.memory] + config["llama_args"]
        self.llama = procs.llama_server(tools, args, os.path.join(work_dir, "llama-server.log"))
        self.kv = (procs.agentkv(tools, self.llama, self.memory,
                                 os.path.join(work_dir, "agentkv.log"), config["args"])
                   if config["agentkv"] else None)
        self.plans = [plan(p, i) for i in range(p["agents"])]
        self.turns, self.errors = [], []
        self.dropped = 0
        self.lock = threading.Lock()

    def words(self, tokens):
        return max(1, round(tokens * self.words_per_token))

    def drop_files_of(self, agent_id):
        """Drops the agent's state files from the page cache; how many."""
        prefix = hashlib.sha256(agent_id.encode()).hexdigest()
        n = sum(drop_page_cache(os.path.join(self.memory, name))
                for name in os.listdir(self.memory)
                if name.startswith(prefix) and name.endswith(".kv"))
        with self.lock:
            self.dropped += n
        return n

    def agent(self, i):
        agent_id = f"agent-{i}"
        url, path = ((self.kv.url, f"/agents/{agent_id}/v1/chat/completions") if self.kv
                     else (self.llama.url, "/v1/chat/completions"))
        kind, steps = self.plans[i]["kind"], self.plans[i]["turns"]
        messages = [{"role": "system", "content": self.system}]
        try:
            time.sleep(i * self.p["stagger_s"])  # the first, long prefills arrive apart
            for n, step in enumerate(steps, 1):
                if self.errors:
                    return  # another agent failed: run() reports it
                label = "Task" if n == 1 else ("Tool output" if kind == "tool" else "User")
                messages.append({"role": "user", "content": label + ":\n" + client.text(
                    20000 + 1000 * i + n, self.words(step["added_tokens"]))})
                last = n == len(steps)
                headers = {"X-Agent-Next": "done" if last else "tool"} if (
                    kind == "tool" or last) else {}
                if self.kv and n > 1:
                    self.drop_files_of(agent_id)
                start = time.monotonic() - self.t0
                turn = client.chat(url, path, messages, step["answer_tokens"], headers=headers)
                messages.append({"role": "assistant", "content": turn["content"]})
                self.record(dict(agent=i, kind=kind, turn=n, start_s=round(start, 3),
                                 **client.figures(turn)))
                time.sleep(step["gap_s"])  # the tool runs, or the person reads and types
        except Exception as e:  # reported by run()
            with self.lock:
                self.errors.append(f"agent {i}: {e!r}")

    def record(self, turn):
        with self.lock:
            self.turns.append(turn)
            done = len(self.turns)
        total = sum(len(pl["turns"]) for pl in self.plans)
        self.progress(f"{self.disk.mib_s if self.disk else '-'} MiB/s, {self.config['label']}: "
                      f"turn {done} of {total}")

    def run(self):
        figures = {}
        try:
            self.llama.start()
            if self.disk:
                self.disk.add(self.llama.proc.pid)
            if self.kv:
                self.kv.start()
                self.disk.add(self.kv.proc.pid)
            self.words_per_token = client.words_per_token(self.llama.url)
            self.system = SYSTEM_HEADER + client.text(4343, self.words(self.p["prefix_tokens"]))
            before = self.disk.stats() if self.disk else None
            self.t0 = time.monotonic()
            threads = [threading.Thread(target=self.agent, args=(i,), daemon=True)
                       for i in range(self.p["agents"])]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            wall_s = time.monotonic() - self.t0
            if self.errors:
                raise RuntimeError("; ".join(self.errors))
            if self.kv:
                figures = metrics(self.kv.url)
        finally:
            if self.kv:
                self.kv.stop()
            self.llama.stop()
        if self.disk:  # after the stop: its saves count too
            after = self.disk.stats()
            figures.update({k: after[k] - before[k] for k in after})
        return {"config": self.config, "wall_s": round(wall_s, 2), "figures": figures,
                "dropped_files": self.dropped,
                "turns": sorted(self.turns, key=lambda t: (t["agent"], t["turn"]))}


def run(tools, p, work, progress):
    """The servings at each disk speed; llama-server alone once (no disk)."""
    why = ThrottledDisk.check()
    if why:
        raise RuntimeError("slow-disk scenario: " + why)
    longest = max(p["prefix_tokens"] + sum(t["added_tokens"] + t["answer_tokens"] + 16
                                           for t in plan(p, i)["turns"])
                  for i in range(p["agents"]))
    if longest + 256 > p["slot_ctx"]:
        raise RuntimeError(f"slow disk: a {longest}-token context does not fit a "
                           f"{p['slot_ctx']}-token slot")
    out = {"profile": p, "plans": [plan(p, i) for i in range(p["agents"])], "speeds": []}
    base = os.path.join(work, "slowdisk-llama-server")
    os.makedirs(base)
    out["llama_server"] = Serving(tools, p, SERVINGS[0], base, None, progress).run()
    for mib_s in p["disk_mib_s"]:
        wd = os.path.join(work, f"slowdisk-{mib_s}")
        os.makedirs(wd)
        with ThrottledDisk(wd, p["disk_gib"], mib_s) as disk:
            speed = {"mib_s": mib_s, "calibration": disk.calibrate(), "servings": []}
            for config in SERVINGS[1:]:
                sd = os.path.join(wd, config["key"])
                os.makedirs(sd)
                speed["servings"].append(Serving(tools, p, config, sd, disk, progress).run())
                shutil.rmtree(os.path.join(disk.mount, "memory-" + config["key"]))
            out["speeds"].append(speed)
    return out


def summarize(serving, pct, mib_s=None):
    turns = serving["turns"]
    back = [t for t in turns if t["turn"] >= 2]
    after_tool = [t for t in back if t["kind"] == "tool"]
    after_person = [t for t in back if t["kind"] == "person"]
    placements = {}
    for t in back:
        placements[t["placement"] or "-"] = placements.get(t["placement"] or "-", 0) + 1
    f = serving["figures"]
    n_turns = len(turns)

    def share_resident(ts):
        known = [t for t in ts if t["placement"]]
        return round(100 * sum(t["placement"] == "resident" for t in known) / len(known), 1) \
            if known else None
    row = {"key": serving["config"]["key"], "label": serving["config"]["label"],
           "returning_p50_ms": pct([t["ttft_ms"] for t in back], 50),
           "returning_p95_ms": pct([t["ttft_ms"] for t in back], 95),
           "after_tool_p50_ms": pct([t["ttft_ms"] for t in after_tool], 50),
           "after_tool_p95_ms": pct([t["ttft_ms"] for t in after_tool], 95),
           "after_person_p50_ms": pct([t["ttft_ms"] for t in after_person], 50),
           "after_person_p95_ms": pct([t["ttft_ms"] for t in after_person], 95),
           "after_tool_resident_pct": share_resident(after_tool),
           "placements": placements, "wall_s": serving["wall_s"], "turns": n_turns,
           "tokens_prefilled": sum(t["prompt_n"] or 0 for t in turns)}
    if f:
        row.update({
            "restores_on_path": f.get("restores_total"),
            "restores_ahead": f.get("prefetches_total"),
            "found_restored_ahead": f.get("prefetch_hits_total"),
            "saves": f.get("saves_total"),
            "saved_mib": mib(f.get("saved_bytes_total")),
            "saved_mib_per_turn": mib(f.get("saved_bytes_total"), n_turns),
            "disk_read_mib": mib(f.get("read_bytes")),
            "disk_written_mib": mib(f.get("written_bytes")),
            "disk_written_mib_per_turn": mib(f.get("written_bytes"), n_turns),
            # What those bytes take at the throttle's rate, reads and writes
            # each at their own (the device's busy time hides the queue the
            # throttle holds bios in).
            "disk_s_at_limit": round((f["read_bytes"] + f["written_bytes"]) / (mib_s << 20), 1)
            if mib_s and "read_bytes" in f else None})
    return row


def mib(n, per=1):
    return None if n is None else round(n / per / 2**20, 1)


def summary(result, pct):
    p = result["profile"]
    alone = summarize(result["llama_server"], pct)
    speeds = []
    for s in result["speeds"]:
        rows = [summarize(sv, pct, s["mib_s"]) for sv in s["servings"]]
        by = {r["key"]: r for r in rows}
        lru, aware = by["agentkv-lru"], by["agentkv-aware"]

        def ratio(a, b):
            return round(a / b, 2) if a and b else None
        speeds.append({"mib_s": s["mib_s"], "calibration": s["calibration"],
                       "servings": [alone] + rows,
                       "p95_lru_over_aware": ratio(lru["returning_p95_ms"],
                                                   aware["returning_p95_ms"]),
                       "written_lru_over_aware": ratio(lru["disk_written_mib_per_turn"],
                                                       aware["disk_written_mib_per_turn"])})
    return {"agents": p["agents"], "tool_agents": p["tool_agents"], "slots": p["slots"],
            "prefix_tokens": p["prefix_tokens"], "model": result.get("model"),
            "speeds": speeds}
