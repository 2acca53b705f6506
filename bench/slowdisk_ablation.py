#!/usr/bin/env python3
"""Which part of agent-aware residency moves the slow-disk scenario's
returning turns: scenario 11 (harness/slowdisk.py) at one disk speed, with
four agentkv servings that add one part at a time: LRU, predicted eviction,
then restores ahead (--prefetch on), then delayed saves of agents in tool
calls (--returning-save-delay-s 30). No llama-server-alone serving. Prints a
JSON line per serving (slowdisk.summarize) and writes them to --out.

Usage (root: a loop device and a blkio cgroup):
  sudo python3 bench/slowdisk_ablation.py [--mib-s 1000] [--only NAME,...] [--out FILE]
About 4 minutes a serving at 1,000 MiB/s on 2 cores."""
import argparse
import json
import os
import shutil
import sys
import tempfile
from types import SimpleNamespace

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import run  # noqa: E402  (bench/run.py: the scenario's profile and paths)
from harness import report, slowdisk  # noqa: E402

LLAMA_ARGS = ["--cache-ram", "0", "--no-cache-idle-slots"]
VARIANTS = [
    ("lru", ["--eviction", "lru", "--prefetch", "off", "--returning-save-delay-s", "0"]),
    ("predicted", ["--eviction", "predicted", "--prefetch", "off",
                   "--returning-save-delay-s", "0"]),
    ("predicted+prefetch", ["--eviction", "predicted", "--prefetch", "on",
                            "--returning-save-delay-s", "0"]),
    ("predicted+prefetch+delay", ["--eviction", "predicted", "--prefetch", "on",
                                  "--returning-save-delay-s", "30"]),
]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mib-s", type=int, default=1000)
    ap.add_argument("--only", default="",
                    help="comma-separated servings to run (default: all): "
                    + ", ".join(name for name, _ in VARIANTS))
    ap.add_argument("--out", default=os.path.join(HERE, "out", "slowdisk_ablation.jsonl"))
    ap.add_argument("--agentkv", default=os.path.join(run.ROOT, "build", "agentkv"))
    ap.add_argument("--llama-server", default=os.path.join(run.CACHE, "bin", "llama-server"))
    args = ap.parse_args()
    chosen = [v for v in VARIANTS if not args.only or v[0] in args.only.split(",")]
    unknown = set(filter(None, args.only.split(","))) - {name for name, _ in VARIANTS}
    if unknown:
        sys.exit("slowdisk_ablation: unknown serving " + ", ".join(sorted(unknown)))
    p = run.SLOWDISK["slowdisk"]
    tools = SimpleNamespace(model=os.path.join(run.CACHE, "models", p["model"]),
                            llama_server=args.llama_server, agentkv=args.agentkv,
                            threads=os.cpu_count() or 2, fake_llama=None)
    why = slowdisk.ThrottledDisk.check()
    if why:
        sys.exit("slowdisk_ablation: " + why)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    work = tempfile.mkdtemp(prefix="agentkv-ablation-")
    rows = []

    def progress(text):
        print(text, file=sys.stderr, flush=True)

    with slowdisk.ThrottledDisk(work, p["disk_gib"], args.mib_s) as disk:
        rows.append({"mib_s": args.mib_s, "calibration": disk.calibrate()})
        print(json.dumps(rows[-1]), flush=True)
        for name, flags in chosen:
            config = {"key": "agentkv-" + name.replace("+", "-"), "label": name,
                      "agentkv": True, "llama_args": LLAMA_ARGS, "args": flags}
            sd = os.path.join(work, config["key"])
            os.makedirs(sd)
            served = slowdisk.Serving(tools, p, config, sd, disk, progress).run()
            shutil.rmtree(os.path.join(disk.mount, "memory-" + config["key"]))
            rows.append(slowdisk.summarize(served, report.pct, args.mib_s))
            print(json.dumps(rows[-1]), flush=True)
    shutil.rmtree(work, ignore_errors=True)
    with open(args.out, "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)


if __name__ == "__main__":
    main()
