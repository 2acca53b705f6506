"""Unit tests of the harness's arithmetic and outputs (no servers):
cd bench && python3 -m unittest discover -s harness -t . (ctest: bench_harness)"""
import unittest
import xml.etree.ElementTree as ET

import os
import tempfile

from harness import agentic, backtoback, report, sweep, workload


class Percentiles(unittest.TestCase):
    def test_interpolates_between_ranks_like_numpy(self):
        self.assertEqual(report.pct([1, 2, 3, 4], 50), 2.5)
        self.assertEqual(report.pct([10, 20, 30, 40, 50], 95), 48.0)
        self.assertEqual(report.pct([5, 1, 3], 0), 1)
        self.assertEqual(report.pct([5, 1, 3], 100), 5)

    def test_ignores_missing_samples_and_empty_is_none(self):
        self.assertEqual(report.pct([None, 7], 50), 7)
        self.assertIsNone(report.pct([], 50))


def turn(agent, rnd, ttft, prompt_n, placement=None):
    return {"agent": agent, "round": rnd, "ttft_ms": ttft, "prompt_n": prompt_n,
            "cache_n": 0, "placement": placement, "total_ms": ttft, "start_s": 0}


class WorkloadSummary(unittest.TestCase):
    def test_splits_first_returning_and_after_restart_rounds(self):
        turns = [turn(a, r, 100 * r + a, 10 * r) for a in range(2) for r in range(1, 5)]
        s = workload.summary({"config": {"key": "k", "label": "l", "restart": True},
                              "rounds": 3, "wall_s": 1.0,
                              "bytes_on_disk": 5, "restart_s": 0.5, "turns": turns},
                             report.pct)
        self.assertEqual(s["first_round_p50_ms"], 100.5)   # round 1
        self.assertEqual(s["returning_p50_ms"], 250.5)     # rounds 2 and 3
        self.assertEqual(s["after_restart_p50_ms"], 400.5)  # round 4, after the restart
        self.assertEqual(s["tokens_prefilled"], 2 * (10 + 20 + 30))
        self.assertEqual(s["after_restart_tokens_prefilled"], 2 * 40)

    def test_without_a_restart_round_the_after_figures_are_empty(self):
        turns = [turn(a, r, 100 * r, 10) for a in range(2) for r in range(1, 4)]
        s = workload.summary({"config": {"key": "k", "label": "l", "restart": False},
                              "rounds": 3, "wall_s": 1.0, "bytes_on_disk": 0,
                              "restart_s": None, "turns": turns}, report.pct)
        self.assertEqual(s["returning_p50_ms"], 250.0)
        self.assertIsNone(s["after_restart_p50_ms"])


class SweepOutputs(unittest.TestCase):
    rows = [{"size": s, "agentkv": {"prompt_n": 40, "cache_n": s, "ttft_ms": s / 10,
                                    "placement": "restored"},
             "cold": {"ttft_ms": s}, "floor": {"ttft_ms": s / 20, "restore_ms": 1.0}}
            for s in (512, 1024, 4096)]

    def test_ratios(self):
        s = sweep.summary(self.rows)
        self.assertEqual([r["context_tokens"] for r in s], [552, 1064, 4136])
        self.assertEqual(s[0]["cold_over_agentkv"], 10.0)
        self.assertEqual(s[0]["agentkv_over_floor"], 2.0)

    def test_a_row_is_its_median_turn_not_one_sample(self):
        turns = [{"ttft_ms": t} for t in (300.0, 100.0, 200.0)]
        self.assertEqual(sweep.median_turn(turns), {"ttft_ms": 200.0})
        self.assertEqual(sweep.median_turn(turns[:2]), {"ttft_ms": 100.0})

    def test_chart_is_svg_with_one_line_a_series(self):
        root = ET.fromstring(report.svg(sweep.summary(self.rows), "t"))
        lines = root.findall("{http://www.w3.org/2000/svg}polyline")
        self.assertEqual(len(lines), 3)
        for line in lines:
            self.assertEqual(len(line.get("points").split()), 3)


class Agentic(unittest.TestCase):
    VARIANT = {"agents": 2, "slots": 2, "prefix_tokens": 1500, "tool_tokens": [200, 800],
               "answer_tokens": [30, 60], "think_s": [2, 8], "context_tokens": 4096}

    def test_plans_the_same_turns_until_the_context_passes_its_size(self):
        steps = agentic.plan(self.VARIANT, 1)
        self.assertEqual(steps, agentic.plan(self.VARIANT, 1))
        self.assertNotEqual(steps, agentic.plan(self.VARIANT, 2))
        self.assertEqual(steps[0]["tool_tokens"], 0)  # turn 1: the task alone
        self.assertTrue(all(200 <= s["tool_tokens"] <= 800 for s in steps[1:]))
        self.assertTrue(all(30 <= s["answer_tokens"] <= 60 for s in steps))
        self.assertGreaterEqual(steps[-1]["context"], 4096)
        self.assertLess(steps[-2]["context"], 4096)

    def serving(self, key, ttfts, prompt_n):
        """Two agents of two turns: turn 1 of 1,600 tokens, turn 2 of 2,200."""
        turns = [{"agent": a, "turn": k, "ttft_ms": ttfts[k - 1] + a, "prompt_n": prompt_n[k - 1],
                  "cache_n": (1600, 2200)[k - 1] - prompt_n[k - 1], "answer_n": 40,
                  "placement": "restored" if key == "agentkv" and k == 2 else None,
                  "total_ms": 0, "start_s": 0}
                 for a in range(2) for k in (1, 2)]
        return {"config": {"key": key, "label": key}, "wall_s": 10.0,
                "kv_bytes_per_token": 22528.0 if key == "cache-ram-0" else None, "turns": turns}

    def result(self):
        return {"variant": self.VARIANT, "model": "m.gguf", "final_kv_mib": 96.7,
                "cache_ram_small_mib": 24,
                "servings": [self.serving("cache-ram-0", (1000, 8000), (1600, 700)),
                             self.serving("cache-ram-small", (1000, 6000), (1600, 700)),
                             self.serving("cache-ram-default", (1000, 1500), (1600, 560)),
                             self.serving("agentkv", (1200, 1000), (1600, 560))]}

    def test_summary_splits_first_and_returning_turns_and_compares_with_agentkv(self):
        s = agentic.summary(self.result(), report.pct)
        rows = {r["key"]: r for r in s["servings"]}
        self.assertEqual(rows["cache-ram-0"]["first_turn_p50_ms"], 1000.5)
        self.assertEqual(rows["cache-ram-small"]["returning_p50_ms"], 6000.5)
        self.assertEqual(rows["agentkv"]["returning_p50_ms"], 1000.5)
        self.assertEqual(rows["agentkv"]["tokens_prefilled"], 2 * (1600 + 560))
        self.assertEqual(rows["agentkv"]["placements"], {"restored": 2})
        self.assertEqual(s["small_over_agentkv"], 6.0)
        self.assertEqual(s["cold_over_agentkv"], 8.0)
        self.assertEqual((s["turns"], s["returning_turns"]), (4, 2))
        self.assertEqual(s["final_context_p50"], 2240)  # 2,200 prompt + 40 answer
        self.assertEqual(s["prefix_share_p50"], 74.55)  # (1,600 + 40) / 2,200

    def test_markdown_has_a_row_a_serving_and_the_ratios(self):
        s = agentic.summary(self.result(), report.pct)
        md = report.markdown({"meta": {"profile": "t", "machine": "m", "model": "x",
                                       "llama_server_version": "v", "threads": 2,
                                       "llama_build": {}, "command": "c", "date": "d",
                                       "duration_s": 1},
                              "summary": {"agentic": [s]}})
        self.assertIn("## 7. Agentic: 2 coding agents, 2 slots, contexts past 4,096 tokens", md)
        self.assertIn("| agentkv | 1,000 | 1,001 | 1,200 | 10.0 | 4,320 |", md)
        self.assertIn("RAM-constrained llama-server / agentkv: 6.0x", md)



class BackToBack(unittest.TestCase):
    # The line src/core/placer.cpp logs for each placement, at debug level.
    LINE = ("[2026-11-29 05:30:00.000] [debug] placed agent b2b-1 in slot 0 (restored) "
            "in 20.5 ms: wait 1.0, save 2.0, commit 3.0, check 0.0, restore 14.0, erase 0.0\n")

    def test_reads_the_steps_of_returning_placements_from_the_log(self):
        with tempfile.NamedTemporaryFile("w", delete=False) as f:
            f.write(self.LINE.replace("check 0.0", "check 9.0"))  # a warm-up turn, skipped
            f.write(self.LINE)
            f.write(self.LINE.replace("(restored)", "(cold)"))
            f.write(self.LINE.replace("b2b-1", "someone-else"))
        try:
            rows = backtoback.steps_from_log(f.name, ["b2b-1"], skip=1)
        finally:
            os.unlink(f.name)
        self.assertEqual(rows, [{"total": 20.5, "wait": 1.0, "save": 2.0, "commit": 3.0,
                                 "check": 0.0, "restore": 14.0, "erase": 0.0}])

    def test_compares_each_serving_with_the_floor(self):
        def turns(ms):
            return [{"ttft_ms": v, "prompt_n": 1, "cache_n": 999, "placement": "restored"}
                    for v in ms]
        row = {"size": 1024, "think_s": 0, "agents": 3, "agentkv": turns([110, 130]),
               "floor": turns([100, 100]), "manager": turns([150, 250]), "steps": []}
        s = backtoback.summary([row], report.pct)[0]
        self.assertEqual(s["agentkv_p50_ms"], 120)
        self.assertEqual(s["agentkv_over_floor"], 1.2)
        self.assertEqual(s["manager_over_floor"], 2.0)
        self.assertEqual(s["context_tokens"], 1000)
        self.assertIsNone(s["steps_p50_ms"])
        self.assertIn("| 1,000 | 0 | 2 | 120.0 (129.0)", report.markdown(
            {"meta": {"profile": "t", "machine": "m", "model": "x", "llama_server_version": "v",
                      "threads": 2, "llama_build": {}, "command": "c", "date": "d",
                      "duration_s": 1},
             "summary": {"back_to_back": [s]}}))


class SharedPrefix(unittest.TestCase):
    def test_compares_the_later_agents_of_each_serving_with_agentkv(self):
        from harness import prefixes

        def turns(ms, prefill):
            return [{"ttft_ms": v, "prompt_n": prefill, "cache_n": 0, "placement": "cold",
                     "agent": i} for i, v in enumerate(ms)]
        rows = [{"serving": "llama-default", "label": "llama", "turns": turns([900, 40, 30, 50],
                                                                              10)},
                {"serving": "agentkv", "label": "kv", "turns": turns([900, 800, 10, 30], 20)}]
        s = prefixes.summary(rows, report.pct)
        self.assertEqual(s[1]["later_p50_ms"], 20)
        self.assertEqual([r["second_ms"] for r in s], [40, 800])
        self.assertEqual(s[0]["over_agentkv"], 2.0)
        self.assertEqual(s[1]["tokens_prefilled"], 80)
        self.assertIn("| llama | 4 | 10 | 40.0 | 49.0 | 2.0x | 40 | 40 |", report.markdown(
            {"meta": {"profile": "t", "machine": "m", "model": "x", "llama_server_version": "v",
                      "threads": 2, "llama_build": {}, "command": "c", "date": "d",
                      "duration_s": 1},
             "summary": {"shared_prefix": s}}))


if __name__ == "__main__":
    unittest.main()
