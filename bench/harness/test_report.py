"""Unit tests of the harness's arithmetic and outputs (no servers):
cd bench && python3 -m unittest discover -s harness -t . (ctest: bench_harness)"""
import unittest
import xml.etree.ElementTree as ET

import os
import tempfile

from harness import backtoback, report, sweep, workload


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

    def test_chart_is_svg_with_one_line_a_series(self):
        root = ET.fromstring(report.svg(sweep.summary(self.rows), "t"))
        lines = root.findall("{http://www.w3.org/2000/svg}polyline")
        self.assertEqual(len(lines), 3)
        for line in lines:
            self.assertEqual(len(line.get("points").split()), 3)


if __name__ == "__main__":
    unittest.main()


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
        rows = [{"serving": "llama-default", "label": "llama", "turns": turns([900, 900, 30, 50],
                                                                              10)},
                {"serving": "agentkv", "label": "kv", "turns": turns([900, 900, 10, 30], 20)}]
        s = prefixes.summary(rows, report.pct)
        self.assertEqual(s[1]["later_p50_ms"], 20)
        self.assertEqual(s[0]["over_agentkv"], 2.0)
        self.assertEqual(s[1]["tokens_prefilled"], 80)
        self.assertIn("| llama | 4 | 10 | 40.0 |", report.markdown(
            {"meta": {"profile": "t", "machine": "m", "model": "x", "llama_server_version": "v",
                      "threads": 2, "llama_build": {}, "command": "c", "date": "d",
                      "duration_s": 1},
             "summary": {"shared_prefix": s}}))
