"""Summaries and the three outputs: JSON is written by run.py; this writes the
Markdown tables and the SVG chart."""
import math


def pct(values, q):
    """The q-th percentile, interpolated between the nearest ranks (numpy's default)."""
    values = sorted(v for v in values if v is not None)
    if not values:
        return None
    k = (len(values) - 1) * q / 100
    lo, hi = math.floor(k), math.ceil(k)
    return round(values[lo] + (values[hi] - values[lo]) * (k - lo), 2)


def n(value, digits=0):
    if value is None:
        return "–"
    return f"{value:,.{digits}f}"


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def host_line(h):
    """The host record as one line (results written before it have none)."""
    if not h:
        return []
    k = {True: "on", False: "off"}.get(h["kleidiai"], "unknown")
    feats = ", ".join(h["cpu_features"]) or "none listed"
    return [f"- Host: `{h['id']}`: {h['arch']}, {h['cpu_model']}, {h['cores']} cores; "
            f"KleidiAI {k} ({h['kleidiai_source']}); CPU features: {feats}"]


def markdown(result):
    meta, s = result["meta"], result["summary"]
    out = [f"# agentkv benchmark ({meta['profile']})", "",
           f"- Machine: {meta['machine']}",
           *host_line(meta.get("host")),
           f"- Model: `{meta['model']}`; llama-server `{meta['llama_server_version']}`, "
           f"{meta['threads']} threads, build options {meta['llama_build']}",
           f"- Command: `{meta['command']}`",
           f"- Date: {meta['date']}; took {n(meta['duration_s'])} s", ""]
    if "sweep" in s:
        out += ["## 1. One returning agent, context sweep", "",
                "Time to first token on the client, in ms. *cold*: the first "
                "returning turn's messages from an agent with no memory (one turn). "
                "*agentkv*: the agent back after an eviction (restore included), the "
                "median of its returning turns (`agentkv_turns` in results.json has "
                "each). *floor*: slot restore + first token, straight against "
                "llama-server, the median of the same turns.", "",
                table(["context (tokens)", "cold", "agentkv", "floor", "restore alone",
                       "cold / agentkv", "agentkv / floor"],
                      [[n(r["context_tokens"]), n(r["cold_ms"]), n(r["agentkv_ms"]),
                        n(r["floor_ms"]), n(r["restore_ms"], 1),
                        f"{r['cold_over_agentkv']}x", f"{r['agentkv_over_floor']}x"]
                       for r in s["sweep"]]), "",
                "![TTFT against context](ttft_vs_context.svg)", ""]
    if "workload" in s:
        w = meta["workload"]
        out += [f"## 2. Multi-agent workload: {w['agents']} agents, {w['slots']} slots, "
                f"{w['rounds']} rounds, {w['answer_tokens']}-token answers", "",
                f"A shared {w['system_words']}-word system prompt, a new "
                f"{w['question_words']}-word question each round, "
                f"{w['think_s'][0]}–{w['think_s'][1]} s think time. Returning turns are "
                f"rounds 2–{w['rounds']}. --cache-ram is in MiB; the small budget is a "
                f"quarter of the agents' final KV ({n(w['final_kv_mib'], 1)} MiB).", "",
                table(["serving", "returning TTFT p50 ms", "p95 ms", "round 1 p50 ms",
                       "wall s", "tokens prefilled", "bytes on disk"],
                      [[r["label"], n(r["returning_p50_ms"]), n(r["returning_p95_ms"]),
                        n(r["first_round_p50_ms"]), n(r["wall_s"], 1),
                        n(r["tokens_prefilled"]), n(r["bytes_on_disk"])]
                       for r in s["workload"]]), "",
                f"## 3. llama-server restarted between rounds {w['rounds']} and "
                f"{w['rounds'] + 1}", "",
                table(["serving", f"round {w['rounds']} p50 ms",
                       f"round {w['rounds'] + 1} p50 ms", "p95 ms",
                       f"tokens prefilled in round {w['rounds'] + 1}"],
                      [[r["label"], n(r["last_round_p50_ms"]), n(r["after_restart_p50_ms"]),
                        n(r["after_restart_p95_ms"]), n(r["after_restart_tokens_prefilled"])]
                       for r in s["workload"] if r["restarted"]]), "",
                "The other two keep nothing between turns that a restart could lose.", ""]
    if "kv_types" in s:
        out += ["## 4. KV cache types (llama-server --flash-attn on)", "",
                table(["type", "bytes per 1K tokens", "restore ms (median)",
                       f"agents of {s['kv_types'][0]['agent_tokens']} tokens per GiB",
                       "greedy answer vs f16", "same answer after restore"],
                      [[r["type"], n(r["bytes_per_1k_tokens"]), n(r["restore_ms_median"], 1),
                        n(r["agents_per_gib"]),
                        f"{r['matches_f16_tokens']} of {r['answer_length']} tokens match",
                        "yes" if r["restored_answer_equal"] else "NO"]
                       for r in s["kv_types"]]), ""]
    if "overhead" in s:
        o = s["overhead"]
        out += ["## 5. Proxy overhead (no restore needed)", "",
                f"{o['samples']} requests each way, {o['gap_s']} s apart, prompt already "
                "cached in its slot. *Back to back*: no gap; the turn-end save of the "
                "turn before waits for this turn's first token.", "",
                "Streaming rate: tokens of a "
                f"{o['stream_tokens']}-token answer per second of the whole request.", "",
                table(["", "TTFT p50 ms", "TTFT p99 ms", "streaming tokens/s"],
                      [["llama-server direct", n(o["direct"]["p50_ms"], 1),
                        n(o["direct"]["p99_ms"], 1), n(o["direct"]["stream_tok_s"], 1)],
                       ["through agentkv", n(o["agentkv"]["p50_ms"], 1),
                        n(o["agentkv"]["p99_ms"], 1), n(o["agentkv"]["stream_tok_s"], 1)],
                       ["added by agentkv", n(o["added_p50_ms"], 1), n(o["added_p99_ms"], 1),
                        ""],
                       ["through agentkv, back to back",
                        n(o["agentkv_back_to_back"]["p50_ms"], 1),
                        n(o["agentkv_back_to_back"]["p99_ms"], 1),
                        n(o["agentkv_back_to_back"]["stream_tok_s"], 1)]]), ""]
    if "back_to_back" in s:
        out += ["## 6. Back to back: agents round-robin over 2 slots", "",
                "Every turn evicts one agent and brings another back; each resends its "
                "own prompt and asks for one streamed token. TTFT p50 (p95) in ms. "
                "*floor*: slot restore + the turn, straight to llama-server. *manager*: a "
                "minimal synchronous manager (save, erase, restore, turn; no fsync, no "
                "checksum). *steps*: agentkv's placement, p50 ms, from its debug log.", "",
                table(["context", "think s", "turns", "agentkv", "floor", "manager",
                       "agentkv / floor", "manager / floor", "steps: wait, save, commit, "
                       "check, restore"],
                      [[n(r["context_tokens"]), r["think_s"], r["turns"],
                        f"{n(r['agentkv_p50_ms'], 1)} ({n(r['agentkv_p95_ms'], 1)})",
                        f"{n(r['floor_p50_ms'], 1)} ({n(r['floor_p95_ms'], 1)})",
                        f"{n(r['manager_p50_ms'], 1)} ({n(r['manager_p95_ms'], 1)})",
                        f"{r['agentkv_over_floor']}x", f"{r['manager_over_floor']}x",
                        ", ".join(n(r["steps_p50_ms"][k], 1) for k in
                                  ("wait", "save", "commit", "check", "restore"))
                        if r["steps_p50_ms"] else "–"]
                       for r in s["back_to_back"]]), ""]
    for v in s.get("agentic", []):
        out += agentic(v)
    if "shared_prefix" in s:
        out += ["## 8. Shared prefix: new agents with the same system prompt", "",
                "New agents one after another on 2 slots, the same system text and each "
                "its own first question. TTFT in ms of the agents after the first two; "
                "*x* is that p50 over agentkv's. The first agent pays the prefix cold "
                "everywhere; the second (its TTFT on its own) reuses the first's slot in "
                "llama-server, and in agentkv builds the snapshot, on the first agent's "
                "memory when that one is idle (else by a prefill of the prefix).", "",
                table(["serving", "agents", "context", "TTFT p50", "TTFT p95", "x",
                       "agent 2", "tokens prefilled", "placements"],
                      [[r["label"], r["agents"], n(r["context_tokens"]),
                        n(r["later_p50_ms"], 1), n(r["later_p95_ms"], 1),
                        f"{r.get('over_agentkv', '–')}x", n(r.get("second_ms")),
                        n(r["tokens_prefilled"]),
                        ", ".join(r["placements"]) or "–"]
                       for r in s["shared_prefix"]]), ""]
    if "cluster" in s:
        out += several_nodes(s["cluster"])
    if "scale" in s:
        out += how_cost_grows(s["scale"])
    if "connections" in s:
        out += connections(s["connections"])
    if "slots" in s:
        out += slot_counts(s["slots"])
    if "slowdisk" in s:
        out += slow_disk(s["slowdisk"])
    return "\n".join(out)


def slow_disk(sd):
    out = ["## 11. A slow disk", "",
           f"{sd['agents']} agents ({sd['tool_agents']} running tools, the rest waiting for a "
           f"person) on {sd['slots']} slots of {sd['model']}, a {sd['prefix_tokens']}-token "
           "shared system prompt; the memory directory on a loop device throttled to the "
           "given MiB/s each way, each agent's files dropped from the page cache before its "
           "returning turns. TTFT of returning turns on the client, ms; *tool resident*: "
           "returns after a tool call that found their agent in a slot (kept, or restored "
           "ahead); restores on the request path and ahead of it; disk figures from the "
           "loop device, per turn over every turn; *disk s*: what the bytes read and "
           "written take at the throttle's rate.", ""]
    for speed in sd["speeds"]:
        cal = speed["calibration"]
        out += [f"### {speed['mib_s']} MiB/s (measured: write {cal['write_mib_s']}, "
                f"read {cal['read_mib_s']} MiB/s)", "",
                table(["serving", "p50", "p95", "after tool p50", "p95", "after person p50",
                       "p95", "tool resident %", "restores on path", "ahead", "written MiB/turn",
                       "read MiB", "disk s"],
                      [[r["label"], n(r["returning_p50_ms"]), n(r["returning_p95_ms"]),
                        n(r["after_tool_p50_ms"]), n(r["after_tool_p95_ms"]),
                        n(r["after_person_p50_ms"]), n(r["after_person_p95_ms"]),
                        n(r["after_tool_resident_pct"], 1), n(r.get("restores_on_path")),
                        n(r.get("restores_ahead")), n(r.get("disk_written_mib_per_turn"), 1),
                        n(r.get("disk_read_mib")), n(r.get("disk_s_at_limit"), 1)]
                       for r in speed["servings"]]),
                "", f"LRU's returning p95 over agent-aware's: {speed['p95_lru_over_aware']}x; "
                f"bytes written a turn, LRU over agent-aware: {speed['written_lru_over_aware']}x.",
                ""]
    return out


def slot_counts(rows):
    return ["## 10. Slots", "",
            "The real llama-server with *slots* slots of 512 tokens, agentkv in front, "
            "as many clients at once, each alternating between two agents of its own. "
            "*placement*: time to first token on the client less llama-server's prompt "
            "time and one token's decode (the wait for a slot, an eviction's save, the "
            "restore), ms. *fairness*: Jain's index over the turns each agent completed.",
            "",
            table(["slots", "turns", "errors", "placement p50", "p99", "TTFT p50", "p99",
                   "fairness", "placements"],
                  [[n(r["slots"]), n(r["turns"]), n(r["errors"]), n(r["placement_p50_ms"], 1),
                    n(r["placement_p99_ms"], 1), n(r["ttft_p50_ms"], 1), n(r["ttft_p99_ms"], 1),
                    r["fairness"], ", ".join(f"{k} {v}" for k, v in
                                             sorted(r["placements"].items()))]
                   for r in rows]), ""]


def connections(rows):
    return ["## 10. Client connections held open", "",
            "agentkv in front of the fake llama-server (4 slots), with *connections* "
            "kept alive beside one measured client, each asking `GET /healthz` every 2 s; "
            "the measured client runs turns of two resident agents (no restore) for 10 s. Turn "
            "times on the client, in ms; *added* against no connection held; RSS and "
            "threads of agentkv with the connections open; *pings* answered meanwhile.", "",
            table(["connections", "turn p50", "p99", "added p50", "RSS (MiB)", "threads",
                   "pings", "failed"],
                  [[n(r["connections"]), n(r["turn_p50_ms"], 2), n(r["turn_p99_ms"], 2),
                    n(r["added_p50_ms"], 2), n(r["rss_mib"], 1), n(r["threads"]),
                    n(r["pings"]), n(r["ping_failures"])] for r in rows]), ""]


def how_cost_grows(scale):
    rows, f = scale["sizes"], scale["flood"]
    out = ["## 10. How cost grows with the agents on disk", "",
           "agentkv in front of the fake llama-server (no model: agentkv's own cost), "
           "on a memory directory of *agents* synthesised in the on-disk format; "
           "2 slots, one client on a kept-alive connection. *ready*: from start to "
           "`/readyz` answering 200, first on the directory just linked, then again "
           "(the second start, with the budget). Turn times are on the "
           "client, in ms; *added* is the returning turn's p50 less the same request "
           "sent straight to the fake. *budget*: agentkv again with a disk budget the "
           "directory fills, so that each turn-end save deletes the least recently "
           "used memory.", "",
           table(["agents", "ready (s)", "again", "RSS start (MiB)", "RSS after traffic (MiB)",
                  "returning p50", "p99", "added p50", "new p50", "p99",
                  "budget p50", "p99"],
                 [[n(r["agents"]), n(r["ready_s"], 2), n(r.get("ready_again_s"), 2),
                   n(r["rss_start_mib"], 1),
                   n(r["rss_after_traffic_mib"], 1), n(r["returning_p50_ms"], 2),
                   n(r["returning_p99_ms"], 2), n(r["returning_added_p50_ms"], 2),
                   n(r["new_p50_ms"], 2), n(r["new_p99_ms"], 2),
                   n(r["budget_returning_p50_ms"], 2), n(r["budget_returning_p99_ms"], 2)]
                  for r in rows]), "",
           table(["agents", "/admin/agents first page (ms)", "a middle page (ms)",
                  "page bytes", "/admin/status (ms)", "bytes", "/metrics (ms)", "bytes",
                  "`agentkv status` (ms)", "traffic turns"],
                 [[n(r["agents"]), n(r["admin_first_page_ms"], 2),
                   n(r["admin_middle_page_ms"], 2), n(r["admin_page_bytes"]),
                   n(r["admin_status_ms"], 2), n(r["admin_status_bytes"]),
                   n(r["metrics_ms"], 2), n(r["metrics_bytes"]), n(r["status_command_ms"], 1),
                   f"{n(r['traffic_turns'])} in {r['traffic_s']} s"]
                  for r in rows]), ""]
    per_agent = rows[-1].get("rss_per_agent_bytes")
    if per_agent is not None:
        out += [f"RSS per agent known (start, from {n(rows[0]['agents'])} to "
                f"{n(rows[-1]['agents'])} agents): {n(per_agent)} bytes.", ""]
    statuses = ", ".join(f"{count:,} answered {status}" for status, count
                         in sorted(f["statuses"].items()))
    out += [f"A client inventing a new agent id on every request ({n(f['requests'])} "
            f"requests in {f['seconds']} s on one connection, after 50 real agents): "
            f"{statuses}; `Retry-After: {f['retry_after']}`; "
            f"`agentkv_new_agents_refused_total` {n(f['refused_metric'])}; RSS "
            f"{f['rss_before_mib']} MiB before, {f['rss_after_mib']} MiB after; "
            f"{n(f['memories_on_disk'])} memories on disk at the end.", ""]
    return out


def several_nodes(c):
    p = c["profile"]
    out = ["## 9. Several nodes behind a load balancer", "",
           "`scripts/cluster.sh up 3`: three agentkv nodes, each with its own llama-server "
           f"(2 slots, {p['cluster_threads']} thread each, all on this machine's cores).", "",
           f"**Failover** (nginx, configs/nginx.conf): {p['cluster_agents']} agents with "
           f"contexts of about {n(p['cluster_context'])} tokens of their own; after two rounds "
           "the node holding the most agents is killed with SIGKILL (agentkv and its "
           "llama-server) and every agent asks one more question, one after the other. "
           "TTFT in ms; *x* is the moved agents' p50 over the shared directory's.", "",
           table(["memory", "agents moved", "moved: context", "moved: TTFT before the kill "
                  "p50", "moved: TTFT after p50", "max", "x", "tokens prefilled / reused",
                  "placements", "agents that stayed: TTFT p50"],
                 [[r["label"], f"{r['moved']} of {r['agents']}", n(r["context_tokens"]),
                   n(r["moved_before_kill_p50_ms"], 1), n(r["moved_p50_ms"], 1),
                   n(r["moved_max_ms"], 1), f"{r.get('over_shared', 1.0)}x",
                   f"{n(r['moved_prefilled'])} / {n(r['moved_reused'])}",
                   ", ".join(r["moved_placements"]) or "–", n(r["stayed_p50_ms"], 1)]
                  for r in c["failover"]]), ""]
    if c["skew"]:
        out += [f"**Skew** (HAProxy, configs/haproxy.cfg): {c['hot_agents']} hot agents that "
                f"hash to one node take {p['cluster_hot_turns']} turns back to back while "
                f"{p['cluster_cold']} others think {p['cluster_think_s'][0]}–"
                f"{p['cluster_think_s'][1]} s between turns; contexts of about "
                f"{n(p['cluster_skew_context'])} tokens, a {p['cluster_answer_tokens']}-token "
                "answer a turn. TTFT of returning turns, ms.", "",
                table(["balancing", "turns", "p50", "p95", "hot p50", "hot p95", "cold p95",
                       "nodes that served hot agents", "restored", "wall s"],
                      [[r["label"], r["turns"], n(r["p50_ms"], 1), n(r["p95_ms"], 1),
                        n(r["hot_p50_ms"], 1), n(r["hot_p95_ms"], 1), n(r["cold_p95_ms"], 1),
                        r["hot_nodes"], r["restored"], n(r["wall_s"], 1)]
                       for r in c["skew"]]), ""]
    return out


def agentic(v):
    return [f"## 7. Agentic: {v['agents']} coding agents, {v['slots']} slots, "
            f"contexts past {n(v['context_tokens'])} tokens", "",
            f"`{v['model']}`. A shared {n(v['prefix_tokens'])}-token system + tool prefix; "
            f"each turn after the first appends a {v['tool_tokens'][0]}–"
            f"{v['tool_tokens'][1]}-token tool output and asks for a "
            f"{v['answer_tokens'][0]}–{v['answer_tokens'][1]}-token answer, with "
            f"{v['think_s'][0]}–{v['think_s'][1]} s of tool time between turns. "
            f"{v['turns']} turns, {v['returning_turns']} of them returning; final contexts "
            f"{n(v['final_context_p50'])} tokens (p50), {n(v['final_context_max'])} at most. "
            f"The previous prompt and answer make {n(v['prefix_share_p50'], 1)}% of a "
            "returning turn's prompt (p50; 93–97% in the traces). --cache-ram is in MiB; "
            "the small budget is a "
            f"quarter of the agents' final KV ({n(v['final_kv_mib'], 1)} MiB at "
            f"{n(v['kv_bytes_per_token'])} bytes a token, from a slot saved after the "
            "--cache-ram 0 serving).", "",
            table(["serving", "returning TTFT p50 ms", "p95 ms", "first turn p50 ms",
                   "wall s", "tokens prefilled"],
                  [[r["label"], n(r["returning_p50_ms"]), n(r["returning_p95_ms"]),
                    n(r["first_turn_p50_ms"]), n(r["wall_s"], 1), n(r["tokens_prefilled"])]
                   for r in v["servings"]]), "",
            f"Returning p50, RAM-constrained llama-server / agentkv: "
            f"{ratio(v['small_over_agentkv'])}; --cache-ram 0 / agentkv: "
            f"{ratio(v['cold_over_agentkv'])}.", ""]


def ratio(value):
    return "–" if value is None else f"{value}x"


def log_chart(title, xs, series, size, x_log, y_tick, x_axis, y_axis, title_x=None):
    """A chart with both axes on log scales: each series (name, [(x, y)...],
    color) a line with dots and a legend entry; ticks at `xs` below, at each
    power of ten on the left (labelled by `y_tick`); the x axis scaled by
    `x_log` (math.log2 or math.log10)."""
    W, H, L, R = size
    T, B = 40, 50
    ys = [y for _, pts, _ in series for _, y in pts]
    x0, x1 = x_log(min(xs)) - 0.2, x_log(max(xs)) + 0.2
    y0, y1 = math.floor(math.log10(min(ys))), math.ceil(math.log10(max(ys)))
    y1 = max(y1, y0 + 1)

    def px(x):
        return L + (x_log(x) - x0) / (x1 - x0) * (W - L - R)

    def py(y):
        return T + (y1 - math.log10(y)) / (y1 - y0) * (H - T - B)

    e = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
         f'font-family="sans-serif" font-size="12">',
         f'<rect width="{W}" height="{H}" fill="white"/>',
         f'<text x="{W / 2 if title_x is None else title_x}" y="22" text-anchor="middle" '
         f'font-size="14">{title}</text>']
    for d in range(y0, y1 + 1):
        y = py(10 ** d)
        e += [f'<line x1="{L}" x2="{W - R}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>',
              f'<text x="{L - 6}" y="{y + 4:.1f}" text-anchor="end">{y_tick(d)}</text>']
    for x in xs:
        e.append(f'<text x="{px(x):.1f}" y="{H - B + 18}" text-anchor="middle">{x:,}</text>')
    e += [f'<text x="{(L + W - R) / 2}" y="{H - 12}" text-anchor="middle">{x_axis}</text>',
          f'<text x="16" y="{(T + H - B) / 2}" text-anchor="middle" '
          f'transform="rotate(-90 16 {(T + H - B) / 2})">{y_axis}</text>',
          f'<line x1="{L}" x2="{W - R}" y1="{H - B}" y2="{H - B}" stroke="#333"/>',
          f'<line x1="{L}" x2="{L}" y1="{T}" y2="{H - B}" stroke="#333"/>']
    for i, (name, pts, color) in enumerate(series):
        line = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in pts)
        e.append(f'<polyline points="{line}" fill="none" stroke="{color}" stroke-width="2"/>')
        for x, y in pts:
            e.append(f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="3" fill="{color}"/>')
        ly = T + 10 + i * 20
        e += [f'<line x1="{W - R + 15}" x2="{W - R + 35}" y1="{ly}" y2="{ly}" '
              f'stroke="{color}" stroke-width="2"/>',
              f'<text x="{W - R + 40}" y="{ly + 4}">{name}</text>']
    e.append("</svg>")
    return "\n".join(e) + "\n"


def svg(sweep, title):
    """TTFT (log scale) against context tokens (log scale): cold, agentkv, floor."""
    series = [(name, [(r["context_tokens"], r[key]) for r in sweep], color)
              for name, key, color in (("cold", "cold_ms", "#c0392b"),
                                        ("agentkv", "agentkv_ms", "#2471a3"),
                                        ("floor", "floor_ms", "#7f8c8d"))]
    def y_tick(d):
        return f"{10 ** d:,.0f} ms" if d < 3 else f"{10 ** (d - 3):,.0f} s"

    return log_chart(title, [r["context_tokens"] for r in sweep], series, (640, 400, 70, 150),
                     math.log2, y_tick, "context tokens of the returning turn",
                     "time to first token")


SCALE_SERIES = [("ready (ms)", "ready_s", 1000, "#2471a3"),
                ("ready again (ms)", "ready_again_s", 1000, "#5dade2"),
                ("RSS at start (MiB)", "rss_start_mib", 1, "#8e44ad"),
                ("returning turn p99 (ms)", "returning_p99_ms", 1, "#c0392b"),
                ("new turn p99 (ms)", "new_p99_ms", 1, "#e67e22"),
                ("budget turn p99 (ms)", "budget_returning_p99_ms", 1, "#d35400"),
                ("/admin/agents page (ms)", "admin_middle_page_ms", 1, "#16a085"),
                ("/admin/status (ms)", "admin_status_ms", 1, "#27ae60"),
                ("/metrics (ms)", "metrics_ms", 1, "#7f8c8d")]


def scale_svg(scale):
    """Each cost (log scale) against agents on disk (log scale)."""
    rows = scale["sizes"]
    series = [(name, [(r["agents"], r[key] * factor) for r in rows if r.get(key)], color)
              for name, key, factor, color in SCALE_SERIES]
    W, L, R = 720, 60, 220
    return log_chart("agentkv's own cost against agents on disk (fake llama-server)",
                     [r["agents"] for r in rows], [x for x in series if x[1]], (W, 420, L, R),
                     math.log10, lambda d: f"{10.0 ** d:g}", "agents on disk",
                     "ms, or MiB (log scale)", title_x=(L + W - R) / 2)
