#!/usr/bin/env python3
"""agentkv's benchmark: one command, every figure side by side. See bench/README.md.

  python3 bench/run.py            # the default run: 1.1B benchmark model, about 50 min on 2 cores
  python3 bench/run.py --quick    # the test model, about 1.5 min (CI's smoke check)
"""
import argparse
import datetime
import json
import os
import platform
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from types import SimpleNamespace

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (agentic, backtoback, client, clients, cluster, host,  # noqa: E402
                     kvtypes, overhead, prefixes, procs, report, scale, slots, slowdisk,
                     sweep, workload)
from harness.progress import Progress  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CACHE = os.environ.get("AGENTKV_CACHE_DIR") or os.path.join(
    os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "agentkv")

WORKLOAD = {"agents": 8, "slots": 2, "rounds": 4, "answer_tokens": 100,
            "system_words": 200, "question_words": 30, "think_s": [0.25, 1.0]}
# Scenario 7, coding agents: published traces scaled to 2 cores (bench/README.md).
AGENTIC = {"agents": 3, "prefix_tokens": 1500, "tool_tokens": [200, 800],
           "answer_tokens": [30, 60], "think_s": [2, 8], "context_tokens": 3584}
# Scenario 9, several nodes (bench/README.md): 3 nodes of 2 slots, one thread each.
CLUSTER = {"cluster_agents": 6, "cluster_context": 1000, "cluster_answer_tokens": 16,
           "cluster_slot_ctx": 2048, "cluster_threads": 1, "cluster_hot": 3,
           "cluster_cold": 3, "cluster_hot_turns": 5, "cluster_think_s": [1.0, 3.0],
           "cluster_skew_context": 200}
CLUSTER_QUICK = dict(CLUSTER, cluster_agents=4, cluster_context=200, cluster_answer_tokens=8,
                     cluster_slot_ctx=1024, cluster_cold=3, cluster_hot_turns=3,
                     cluster_think_s=[0.1, 0.3], cluster_skew_context=100)
# Scenario 11, a slow disk (bench/README.md): tool agents and agents waiting
# for a person on few slots, the memory directory throttled.
SLOWDISK = {"slowdisk": {
    "agents": 5, "tool_agents": 2, "slots": 2, "slot_ctx": 16384, "prefix_tokens": 7000,
    "task_tokens": 1000, "tool_output_tokens": [300, 600], "person_message_tokens": [100, 300],
    "answer_tokens": [20, 40], "tool_s": [2, 8], "person_s": [30, 300], "person_compress": 4,
    "tool_turns": 12, "person_turns": 4, "stagger_s": 20, "disk_mib_s": [125, 1000],
    "disk_gib": 8, "model": "agentkv-disk.gguf"}}
SLOWDISK_QUICK = {"slowdisk": dict(
    SLOWDISK["slowdisk"], agents=3, tool_agents=2, prefix_tokens=500, task_tokens=100,
    tool_turns=4, person_turns=2, tool_s=[0.5, 1], person_s=[30, 60], person_compress=20,
    stagger_s=0.5, disk_mib_s=[125], disk_gib=2)}
AGENTIC_QUICK = dict(AGENTIC, agents=4, prefix_tokens=300, tool_tokens=[50, 150],
                     answer_tokens=[4, 8], think_s=[0.05, 0.2], context_tokens=1024)


def wider(slot_ctx):
    """A slot window past the test models' 8,192 tokens, which llama-server caps
    slots at: their training context is only a number make_model.py writes."""
    return {"slot_ctx": slot_ctx,
            "llama_args": ["--override-kv", f"llama.context_length=int:{slot_ctx}"]}


PROFILES = {
    "default": dict(WORKLOAD, model="agentkv-bench-q4_0.gguf",
                    sizes=[512, 1024, 2048, 4096, 7168], slot_ctx=8192,
                    kv_ctx=2048, kv_prompt_tokens=1024, kv_answer_tokens=32,
                    overhead_samples=30, stream_tokens=128,
                    b2b_sizes=[1024, 4096], b2b_think_s=[0, 0.3], b2b_agents=3,
                    prefix_tokens=2000, prefix_agents=8,
                    agentic=[AGENTIC], **CLUSTER, **SLOWDISK,
                    agentic_long=dict(AGENTIC, agents=6, context_tokens=16384,
                                      model="agentkv-test.gguf", **wider(17408))),
    "quick": dict(WORKLOAD, model="agentkv-test.gguf", think_s=[0.1, 0.3],
                  sizes=[512, 1024, 2048, 4096, 7680], slot_ctx=8192,
                  kv_ctx=2048, kv_prompt_tokens=1024, kv_answer_tokens=32,
                  overhead_samples=30, stream_tokens=128,
                  b2b_sizes=[1024], b2b_think_s=[0.3], b2b_agents=3,
                  prefix_tokens=600, prefix_agents=4,
                  agentic=[AGENTIC_QUICK], **CLUSTER_QUICK, **SLOWDISK_QUICK,
                  agentic_long=dict(AGENTIC_QUICK, context_tokens=1536, **wider(9216))),
}
PHASES = ("overhead", "sweep", "kv", "workload", "backtoback", "agentic", "prefix", "cluster",
          "agentic-long", "scale", "connections", "slots", "slowdisk")
# The long agentic variant runs with --agentic-long or --only; so do scale (no
# model, an hour), connections (no model), slots (scenario 10's axes) and
# slowdisk (root: a loop device and a cgroup).
DEFAULT_PHASES = PHASES[:-5]
SCALE_SIZES = [100, 1000, 10000, 100000, 1000000]
GAP_S = 0.1  # between the overhead scenario's requests: each turn-end save is done


def arguments():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="the small test model, about 1.5 min")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "out"),
                    help="directory for results.json, results.md, ttft_vs_context.svg, logs")
    ap.add_argument("--model", help="GGUF model (default: the profile's model from setup)")
    ap.add_argument("--llama-server", default=os.path.join(CACHE, "bin", "llama-server"))
    ap.add_argument("--agentkv", default=os.path.join(ROOT, "build", "agentkv"))
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--only", nargs="+", choices=PHASES, default=list(DEFAULT_PHASES),
                    help="run only these scenarios")
    ap.add_argument("--agentic-agents", type=int,
                    help="agents in scenario 7 (both variants; the default is 3, the long one 6)")
    ap.add_argument("--agentic-tokens", type=int,
                    help="the context scenario 7's agents pass (not its long variant's)")
    ap.add_argument("--agentic-long", action="store_true",
                    help="add scenario 7's long-context variant (--quick always has it; "
                         "--only agentic-long runs it alone)")
    ap.add_argument("--agents", type=int, help="agents in the workload")
    ap.add_argument("--rounds", type=int, help="rounds before the restart")
    ap.add_argument("--sizes", type=int, nargs="+", help="context sizes of the sweep")
    ap.add_argument("--keep", action="store_true",
                    help="keep the working directory (server logs, memory files)")
    ap.add_argument("--scale-sizes", type=int, nargs="+", default=SCALE_SIZES,
                    help="agents on disk in the scale scenario")
    ap.add_argument("--scale-traffic-s", type=int, default=600,
                    help="seconds of returning agents at each size before RSS is read again")
    ap.add_argument("--scale-flood-requests", type=int, default=100000,
                    help="requests of the scale scenario's client that invents an id for each")
    ap.add_argument("--connections", type=int, nargs="+", default=[10, 100, 500, 2000],
                    help="client connections held open in the connections scenario")
    ap.add_argument("--slot-counts", type=int, nargs="+", default=[1, 4, 16, 64],
                    help="slots of the slots scenario")
    ap.add_argument("--slots-duration-s", type=int, default=30,
                    help="seconds of turns at each slot count")
    ap.add_argument("--fake-llama", default=os.path.join(ROOT, "build", "tests",
                                                         "agentkv-fake-llama"),
                    help="the fake llama-server the scale scenario runs agentkv on")
    ap.add_argument("--cache-ram-small", type=int,
                    help="llama-server --cache-ram (MiB) of the workload's small-budget run "
                         "(default: a quarter of the agents' final KV, measured by the sweep)")
    return ap.parse_args()


def machine():
    cpu = platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            names = [ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")]
        cpu = f"{names[0] if names else platform.machine()} ({platform.machine()})"
    except OSError:
        pass
    mem = ""
    try:
        with open("/proc/meminfo") as f:
            kib = int(f.readline().split()[1])
        mem = f", {kib / 2**20:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    osname = platform.platform()
    try:
        with open("/etc/os-release") as f:
            for ln in f:
                if ln.startswith("PRETTY_NAME="):
                    osname = ln.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores{mem}, {osname}"


def refuse_other_host(out, here):
    """Stops before a run whose results would land beside another host's: a
    results.json of another host in --out (a partial run keeps the other files)."""
    try:
        with open(os.path.join(out, "results.json")) as f:
            there = json.load(f)["meta"].get("host")
    except (OSError, ValueError, KeyError, TypeError):
        return
    if not there:
        return
    same = all(there.get(k) == here[k] for k in ("arch", "cpu_model", "cores"))
    if here["kleidiai"] is not None and there.get("kleidiai") is not None:
        same = same and here["kleidiai"] == there["kleidiai"]
    if not same:
        sys.exit(f"bench: {out} holds results of another host ({there.get('id')}; this is "
                 f"{here['id']}): choose another --out")


def llama_version(binary):
    res = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=60)
    lines = (res.stdout + res.stderr).strip().splitlines()
    return next((ln for ln in lines if ln.startswith("version")), lines[-1] if lines else "?")


def pair_phase(tools, p, work, args, progress, raw, summary):
    """Proxy overhead and the context sweep share one llama-server + agentkv."""
    memory = os.path.join(work, "pair", "memory")
    keep = os.path.join(work, "pair", "floor")
    os.makedirs(memory)
    os.makedirs(keep)
    llama = procs.llama_server(
        tools, ["--parallel", "2", "--ctx-size", str(2 * p["slot_ctx"]), "--slot-save-path",
                memory, "--cache-ram", "0", "--no-cache-idle-slots"],
        os.path.join(work, "pair", "llama-server.log"))
    kv = procs.agentkv(tools, llama, memory, os.path.join(work, "pair", "agentkv.log"))
    try:
        llama.start()
        if "overhead" in args.only:
            progress.begin("5. proxy overhead")
            direct = overhead.measure(llama.url, "/v1/chat/completions", p["overhead_samples"],
                                      p["stream_tokens"], progress, "direct", GAP_S)
        kv.start()
        try:
            if "overhead" in args.only:
                path = "/agents/overhead/v1/chat/completions"
                proxied = overhead.measure(kv.url, path, p["overhead_samples"],
                                           p["stream_tokens"], progress, "agentkv", GAP_S)
                b2b = overhead.measure(kv.url, path, p["overhead_samples"], p["stream_tokens"],
                                       progress, "agentkv, back to back", 0)
                raw["overhead"] = {"direct": direct, "agentkv": proxied,
                                   "agentkv_back_to_back": b2b}
                summary["overhead"] = overhead.summary(direct, proxied, b2b, report.pct)
                progress.end()
            if "sweep" in args.only:
                progress.begin("1. context sweep")
                raw["words_per_token"] = client.words_per_token(llama.url)
                rows = sweep.through_agentkv(kv, memory, p["sizes"], raw["words_per_token"],
                                             keep, progress)
        finally:
            kv.stop()
        if "sweep" in args.only:
            raw["sweep"] = sweep.floor(llama, memory, rows, progress)
            summary["sweep"] = sweep.summary(raw["sweep"])
            last = raw["sweep"][-1]
            raw["kv_bytes_per_token"] = last["floor"]["file_bytes"] / last["floor"]["n_restored"]
            progress.end()
    finally:
        llama.stop()


def main():
    # SIGTERM unwinds like Ctrl-C, so the servers this started are stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    args = arguments()
    p = dict(PROFILES["quick" if args.quick else "default"])
    if args.agents:
        p["agents"] = args.agents
    if args.rounds:
        p["rounds"] = args.rounds
    if args.sizes:
        p["sizes"] = args.sizes
    for key, value in (("agents", args.agentic_agents), ("context_tokens", args.agentic_tokens)):
        if value:
            p["agentic"] = [dict(v, **{key: value}) for v in p["agentic"]]
    if args.agentic_agents:
        p["agentic_long"] = dict(p["agentic_long"], agents=args.agentic_agents)
    model = args.model or os.path.join(CACHE, "models", p["model"])
    needed = [(args.agentkv, "scripts/setup.sh")]
    if set(args.only) - {"scale", "connections", "slowdisk"}:
        needed += [(model, "scripts/setup.sh" + ("" if args.quick else " --bench-model")),
                   (args.llama_server, "scripts/setup.sh")]
    if {"scale", "connections"} & set(args.only):
        needed.append((args.fake_llama, "scripts/setup.sh"))
    if "slowdisk" in args.only:
        needed += [(args.model or os.path.join(CACHE, "models", p["slowdisk"]["model"]),
                    "scripts/setup.sh --bench-model"), (args.llama_server, "scripts/setup.sh")]
    for path, hint in needed:
        if not os.path.exists(path):
            sys.exit(f"bench: {path} is missing; run {hint} first")
    tools = SimpleNamespace(model=model, llama_server=args.llama_server, agentkv=args.agentkv,
                            threads=args.threads, fake_llama=args.fake_llama)
    llama_build = procs.llama_build(args.llama_server)
    refuse_other_host(args.out, host.describe(llama_build, binary=args.llama_server))
    os.makedirs(args.out, exist_ok=True)
    work = tempfile.mkdtemp(prefix="agentkv-bench-")
    progress, started = Progress(), time.monotonic()
    raw, summary = {}, {}
    try:
        if {"overhead", "sweep"} & set(args.only):
            pair_phase(tools, p, work, args, progress, raw, summary)
        if "kv" in args.only:
            progress.begin("4. KV cache types")
            raw["kv_types"] = kvtypes.run(tools, p, os.path.join(work, "kv"), progress)
            summary["kv_types"] = [dict({k: v for k, v in r.items() if k not in
                                         ("answer_tokens",)},
                                        agent_tokens=kvtypes.AGENT_TOKENS)
                                   for r in raw["kv_types"]]
            progress.end()
        if "workload" in args.only:
            progress.begin("2+3. multi-agent workload")
            run_workload(tools, p, args, work, progress, raw, summary)
            progress.end()
        if "backtoback" in args.only:
            progress.begin("6. back to back")
            raw["back_to_back"] = backtoback.run(tools, p, work, progress)
            summary["back_to_back"] = backtoback.summary(raw["back_to_back"], report.pct)
            progress.end()
        variants = ((p["agentic"] if "agentic" in args.only else [])
                    + ([p["agentic_long"]] if "agentic-long" in args.only or args.agentic_long
                       or (args.quick and "agentic" in args.only) else []))
        if variants:
            progress.begin("7. agentic")
            raw["agentic"] = agentic.run(tools, p, variants, work, progress,
                                         lambda name: os.path.join(CACHE, "models", name))
            summary["agentic"] = [agentic.summary(r, report.pct) for r in raw["agentic"]]
            progress.end()
        if "prefix" in args.only:
            progress.begin("8. shared prefix")
            raw["shared_prefix"] = prefixes.run(tools, p, work, progress)
            summary["shared_prefix"] = prefixes.summary(raw["shared_prefix"], report.pct)
            progress.end()
        if "cluster" in args.only:
            progress.begin("9. several nodes")
            raw["cluster"] = cluster.run(tools, p, work, progress)
            summary["cluster"] = cluster.summary(raw["cluster"], report.pct)
            summary["cluster"]["profile"] = {k: v for k, v in p.items()
                                             if k.startswith("cluster_")}
            progress.end()
        if "scale" in args.only:
            progress.begin("10. how cost grows")
            raw["scale"] = scale.run(tools, args.scale_sizes, work, args.scale_traffic_s,
                                     os.path.join(CACHE, "scale"), progress,
                                     args.scale_flood_requests)
            summary["scale"] = scale.summary(raw["scale"], report.pct)
            progress.end()
        if "connections" in args.only:
            progress.begin("10. connections held open")
            raw["connections"] = clients.run(tools, args.connections, work, progress)
            summary["connections"] = clients.summary(raw["connections"], report.pct)
            progress.end()
        if "slowdisk" in args.only:
            progress.begin("11. slow disk")
            sd_tools = SimpleNamespace(**vars(tools))
            sd_tools.model = args.model or os.path.join(CACHE, "models", p["slowdisk"]["model"])
            raw["slowdisk"] = slowdisk.run(sd_tools, p["slowdisk"], work, progress)
            raw["slowdisk"]["model"] = os.path.basename(sd_tools.model)
            summary["slowdisk"] = slowdisk.summary(raw["slowdisk"], report.pct)
            progress.end()
        if "slots" in args.only:
            progress.begin("10. slots")
            raw["slots"] = slots.run(tools, args.slot_counts, work, args.slots_duration_s,
                                     progress)
            summary["slots"] = slots.summary(raw["slots"], report.pct)
            progress.end()
    except BaseException:
        sys.stderr.write(f"\nbench: failed; logs are in {work}\n")
        raise
    p["final_kv_mib"] = raw.get("final_kv_mib")
    meta = {"profile": "quick" if args.quick else "default", "machine": machine(),
            "host": host.describe(llama_build, host.kleidiai_from_logs(work), args.llama_server),
            "model": os.path.basename(model), "threads": args.threads,
            "llama_server_version": llama_version(args.llama_server),
            "llama_build": llama_build,
            "command": " ".join(shlex.quote(a) for a in ["python3", "bench/run.py"] + sys.argv[1:]),
            "date": datetime.datetime.now().isoformat(timespec="seconds"),
            "duration_s": round(time.monotonic() - started),
            "workload": {k: p[k] for k in list(WORKLOAD) + ["final_kv_mib"]}}
    result = {"meta": meta, "summary": summary, "raw": raw}
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(result, f, indent=1)
    with open(os.path.join(args.out, "results.md"), "w") as f:
        f.write(report.markdown(result) + "\n")
    if "sweep" in summary:
        with open(os.path.join(args.out, "ttft_vs_context.svg"), "w") as f:
            f.write(report.svg(summary["sweep"], f"Returning agent, {meta['model']}"))
    if "scale" in summary:
        with open(os.path.join(args.out, "cost_vs_agents.svg"), "w") as f:
            f.write(report.scale_svg(summary["scale"]))
    if args.keep:
        print(f"working directory kept: {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    print(report.markdown(result))
    print(f"\nwritten to {args.out}/: results.json, results.md"
          + (", ttft_vs_context.svg" if "sweep" in summary else "")
          + (", cost_vs_agents.svg" if "scale" in summary else ""))


def run_workload(tools, p, args, work, progress, raw, summary):
    per_token = raw.get("kv_bytes_per_token")
    if per_token is None and raw.get("kv_types"):
        per_token = raw["kv_types"][0]["bytes_per_1k_tokens"] / 1000
    words_per_token = raw.get("words_per_token", 1 / 1.1)  # filler: about 1.1 tokens a word
    final_kv = (per_token or 0) * workload.final_tokens(p, words_per_token) * p["agents"]
    raw["final_kv_mib"] = round(final_kv / 2**20, 1) if per_token else None
    small = args.cache_ram_small or max(1, int(final_kv / 4 / 2**20))
    if not per_token and not args.cache_ram_small:
        sys.exit("bench: the workload alone needs --cache-ram-small (the sweep measures it)")
    results = []
    for config in workload.configs(small):
        wd = os.path.join(work, "workload-" + config["key"])
        os.makedirs(wd)
        results.append(workload.Run(tools, p, config, wd, progress).run())
    raw["workload"] = results
    summary["workload"] = [workload.summary(r, report.pct) for r in results]


if __name__ == "__main__":
    main()
