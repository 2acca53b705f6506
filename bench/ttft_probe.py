#!/usr/bin/env python3
"""Measures one returning agent's time to first token through agentkv:
cold prefill vs restore after an eviction. Standard library only.

Usage: bench/ttft_probe.py --url http://127.0.0.1:8090 [--words 900]
agentkv must run with 2 slots (the probe evicts with two other agents).
The full benchmark harness is tracked separately; this is the quick probe
behind the README's figures.
"""
import argparse
import json
import random
import time
import urllib.request

WORDS = ("river stone planner window garden quickly seven blue market engine "
         "silent winter paper bridge orange forest signal castle memory yellow "
         "travel number simple museum across before circle doctor energy family "
         "guitar island").split()


def text(seed, n):
    rng = random.Random(seed)
    return " ".join(rng.choice(WORDS) for _ in range(n))


def stream(url, agent, messages, max_tokens=8):
    body = json.dumps({"messages": messages, "max_tokens": max_tokens,
                       "temperature": 0, "stream": True}).encode()
    req = urllib.request.Request(f"{url}/agents/{agent}/v1/chat/completions", body,
                                 {"Content-Type": "application/json"})
    start = time.perf_counter()
    ttft, timings, content = None, None, ""
    with urllib.request.urlopen(req, timeout=3600) as res:
        placement = res.headers.get("X-Agentkv-Placement")
        for raw in res:
            line = raw.decode().strip()
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            event = json.loads(line[6:])
            if event.get("timings"):
                timings = event["timings"]
            for choice in event.get("choices", []):
                piece = choice.get("delta", {}).get("content")
                if piece:
                    content += piece
                    if ttft is None:
                        ttft = time.perf_counter() - start
    return {"ttft_ms": round(ttft * 1000, 1), "placement": placement,
            "cache_n": timings["cache_n"], "prompt_n": timings["prompt_n"],
            "content": content}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", default="http://127.0.0.1:8090")
    ap.add_argument("--words", type=int, default=900)
    args = ap.parse_args()
    tag = str(int(time.time()))
    convo = [{"role": "system", "content": text(1, args.words)},
             {"role": "user", "content": text(2, 40)}]
    first = stream(args.url, "probe-a-" + tag, convo)
    for other in ("probe-b-", "probe-c-"):  # two agents push probe-a out of both slots
        stream(args.url, other + tag, [{"role": "user", "content": text(3, 20)}], 2)
    convo += [{"role": "assistant", "content": first["content"]},
              {"role": "user", "content": text(4, 40)}]
    back = stream(args.url, "probe-a-" + tag, convo)
    cold = stream(args.url, "probe-d-" + tag, convo)  # the same request, no memory
    for name, r in (("first turn (cold)", first), ("returning, restored", back),
                    ("same request, cold", cold)):
        print(f"{name:22s} ttft={r['ttft_ms']:8.1f} ms  placement={r['placement']:9s} "
              f"cache_n={r['cache_n']:5d} prompt_n={r['prompt_n']:5d}")
    print(f"speed-up of the returning turn: {cold['ttft_ms'] / back['ttft_ms']:.1f}x")


if __name__ == "__main__":
    main()
