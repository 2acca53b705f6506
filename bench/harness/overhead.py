"""Scenario 5: what agentkv adds to a request that needs no restore.

The same short conversation is sent again and again, so its prompt is always
cached in its slot: first straight to llama-server, then through agentkv as
one resident agent. Requests are `gap_s` apart: with a gap, each turn-end
save has finished before the next turn; back to back (gap 0), each turn of
the agent waits for the save of the one before. Time to first token and
streaming rate are measured on the client."""
import time

from . import client


def messages():
    return [{"role": "system", "content": client.text(7, 80)},
            {"role": "user", "content": client.text(8, 20)}]


def measure(url, path, samples, stream_tokens, progress, label, gap_s):
    client.chat(url, path, messages(), 4)  # warm: the prompt is now in the slot
    ttft = []
    for i in range(samples):
        if i % 10 == 0:
            progress(f"{label}: request {i + 1} of {samples}")
        time.sleep(gap_s)
        ttft.append(client.chat(url, path, messages(), 4)["ttft_ms"])
    progress(f"{label}: streaming {stream_tokens} tokens")
    rates = [client.chat(url, path, messages(), stream_tokens)["stream_tok_s"]]
    return {"ttft_ms": ttft, "stream_tok_s": rates, "stream_tokens": stream_tokens,
            "gap_s": gap_s}


def summary(direct, proxied, back_to_back, pct):
    def side(d):
        return {"p50_ms": pct(d["ttft_ms"], 50), "p99_ms": pct(d["ttft_ms"], 99),
                "stream_tok_s": pct(d["stream_tok_s"], 50)}
    a, b = side(direct), side(proxied)
    return {"direct": a, "agentkv": b, "agentkv_back_to_back": side(back_to_back),
            "gap_s": direct["gap_s"],
            "added_p50_ms": round(b["p50_ms"] - a["p50_ms"], 2),
            "added_p99_ms": round(b["p99_ms"] - a["p99_ms"], 2),
            "samples": len(direct["ttft_ms"]), "stream_tokens": direct["stream_tokens"]}
