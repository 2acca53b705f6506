"""HTTP calls the benchmark makes: streamed chat turns with client-side timing,
llama-server's slot API and tokenizer. Standard library only."""
import json
import random
import time
import urllib.request

WORDS = ("river stone planner window garden quickly seven blue market engine "
         "silent winter paper bridge orange forest signal castle memory yellow "
         "travel number simple museum across before circle doctor energy family "
         "guitar island").split()


def text(seed, n_words):
    """n_words of filler, the same for the same seed."""
    rng = random.Random(seed)
    return " ".join(rng.choice(WORDS) for _ in range(n_words))


def request(url, path, body=None, timeout=600):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url + path, data, {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as res:
        return json.load(res)


def chat(url, path, messages, max_tokens, ignore_eos=True, extra=None, timeout=3600,
         headers=None):
    """One streamed chat turn. Times are client wall clock from sending the
    request: ttft_ms to the first content chunk, total_ms to the end;
    stream_tok_s is content chunks (one a token) per second up to the last."""
    body = {"messages": messages, "max_tokens": max_tokens, "temperature": 0,
            "stream": True, "ignore_eos": ignore_eos}
    body.update(extra or {})
    req = urllib.request.Request(url + path, json.dumps(body).encode(),
                                 {"Content-Type": "application/json", **(headers or {})})
    start = time.perf_counter()
    ttft = last = None
    chunks, content, timings = 0, "", {}
    with urllib.request.urlopen(req, timeout=timeout) as res:
        placement = res.headers.get("X-Agentkv-Placement")
        upstream = res.headers.get("X-Agentkv-Upstream")  # behind a balancer: which node
        for raw in res:
            line = raw.decode(errors="replace").strip()
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            event = json.loads(line[6:])
            timings = event.get("timings") or timings
            for choice in event.get("choices", []):
                piece = choice.get("delta", {}).get("content")
                if piece:
                    now = time.perf_counter()
                    ttft = ttft if ttft is not None else now - start
                    last, chunks, content = now, chunks + 1, content + piece
    end = time.perf_counter()
    if ttft is None:
        raise RuntimeError(f"no content streamed from {path}")
    return {"ttft_ms": ms(ttft), "total_ms": ms(end - start),
            "stream_tok_s": round(chunks / (last - start), 1),
            "chunks": chunks, "placement": placement, "upstream": upstream, "content": content,
            "prompt_n": timings.get("prompt_n"), "cache_n": timings.get("cache_n"),
            "timings": timings}


def request_text(url, path, timeout=60):
    with urllib.request.urlopen(url + path, timeout=timeout) as res:
        return res.read().decode()


def figures(turn):
    """What the results keep of a turn (not its content)."""
    return {k: turn[k] for k in ("ttft_ms", "total_ms", "placement", "prompt_n", "cache_n")}


def ms(seconds):
    return round(seconds * 1000, 2)


def slot_action(url, slot, action, filename=None):
    body = {"filename": filename} if filename else {}
    start = time.perf_counter()
    res = request(url, f"/slots/{slot}?action={action}", body)
    res["wall_ms"] = ms(time.perf_counter() - start)
    return res


def count_tokens(url, content):
    return len(request(url, "/tokenize", {"content": content})["tokens"])


def words_per_token(url):
    """Filler words per token with this model's tokenizer."""
    return 400 / count_tokens(url, text(0, 400))
