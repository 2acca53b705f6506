#!/usr/bin/env python3
"""Compares agentkv's write policies on what they change: the time to first
token of an agent whose arrival evicts another. Under --save-policy eviction
the evicted agent's KV is written first, on the arriving request's path;
under turn-end it was written after its turn, so the eviction only restores.

Usage: bench/save_policy_probe.py --url http://127.0.0.1:8090 [--words 2400]
against agentkv with 2 slots. Run once per policy.
"""
import argparse
import time

from harness.client import chat, text


def stream(url, agent, messages, max_tokens):
    return chat(url, f"/agents/{agent}/v1/chat/completions", messages, max_tokens,
                ignore_eos=False)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", default="http://127.0.0.1:8090")
    ap.add_argument("--words", type=int, default=2400)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    tag = str(int(time.time()))
    convos = {}
    for name in ("a", "b"):  # two long agents fill both slots
        convos[name] = [{"role": "user", "content": text(hash(name) % 1000, args.words)}]
        stream(args.url, f"{name}-{tag}", convos[name], 4)
    time.sleep(1)  # let turn-end saves finish: the policies differ in this
    samples = []
    for r in range(args.rounds):
        # A short agent arrives and evicts the least recently used long one.
        res = stream(args.url, f"short{r}-{tag}", [{"role": "user", "content": text(r, 20)}], 4)
        samples.append(res["ttft_ms"])
        print(f"round {r}: arriving short agent ttft={res['ttft_ms']:.1f} ms "
              f"(placement {res['placement']})")
        for name in ("a", "b"):  # the long agents come back, and get dirty again
            convos[name] += [{"role": "assistant", "content": "ok"},
                             {"role": "user", "content": text(100 + r, 10)}]
            back = stream(args.url, f"{name}-{tag}", convos[name], 4)
            print(f"         returning {name}: ttft={back['ttft_ms']:.1f} ms "
                  f"placement={back['placement']} cache_n={back['cache_n']}")
        time.sleep(1)
    print(f"arriving agent ttft, median of {len(samples)}: "
          f"{sorted(samples)[len(samples) // 2]:.1f} ms")


if __name__ == "__main__":
    main()
