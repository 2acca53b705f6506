"""Unit tests of scenario 11's plans, figures and table (no servers, no disk):
cd bench && python3 -m unittest discover -s harness -t . (ctest: bench_harness)"""
import unittest

from harness import report, slowdisk

PROFILE = {"agents": 4, "tool_agents": 2, "slots": 2, "slot_ctx": 16384, "prefix_tokens": 100,
           "task_tokens": 50, "tool_output_tokens": [300, 600],
           "person_message_tokens": [100, 300], "answer_tokens": [20, 40], "tool_s": [2, 8],
           "person_s": [30, 300], "person_compress": 4, "tool_turns": 5, "person_turns": 3}


def turn(agent, kind, n, ttft, placement):
    return {"agent": agent, "kind": kind, "turn": n, "ttft_ms": ttft, "placement": placement,
            "prompt_n": 10, "cache_n": 0, "total_ms": ttft, "start_s": 0}


class Plans(unittest.TestCase):
    def test_tool_agents_come_first_and_every_serving_gets_the_same_turns(self):
        plans = [slowdisk.plan(PROFILE, i) for i in range(4)]
        self.assertEqual([p["kind"] for p in plans], ["tool", "tool", "person", "person"])
        self.assertEqual(plans, [slowdisk.plan(PROFILE, i) for i in range(4)])
        self.assertEqual(len(plans[0]["turns"]), 5)
        self.assertEqual(len(plans[2]["turns"]), 3)

    def test_gaps_follow_the_kind_and_the_last_turn_has_none(self):
        tool, person = slowdisk.plan(PROFILE, 0)["turns"], slowdisk.plan(PROFILE, 3)["turns"]
        self.assertTrue(all(2 <= t["gap_s"] <= 8 for t in tool[:-1]))
        self.assertTrue(all(30 / 4 <= t["gap_s"] <= 300 / 4 for t in person[:-1]))
        self.assertEqual(tool[-1]["gap_s"], 0)
        self.assertEqual(tool[0]["added_tokens"], 50)  # the task
        self.assertTrue(all(300 <= t["added_tokens"] <= 600 for t in tool[1:]))


class Figures(unittest.TestCase):
    SERVING = {"config": {"key": "agentkv-aware", "label": "aware"}, "wall_s": 9.0,
               "figures": {"restores_total": 2.0, "prefetches_total": 3.0,
                           "saved_bytes_total": 8 * 2**20, "read_bytes": 3 * 2**20,
                           "written_bytes": 12 * 2**20, "busy_ms": 5},
               "turns": [turn(0, "tool", 1, 900, "cold"), turn(0, "tool", 2, 100, "resident"),
                         turn(0, "tool", 3, 120, "resident"), turn(0, "tool", 4, 800, "restored"),
                         turn(1, "person", 1, 950, "prefix"),
                         turn(1, "person", 2, 700, "restored")]}

    def test_first_turns_are_not_returns_and_tool_returns_are_split_out(self):
        row = slowdisk.summarize(self.SERVING, report.pct, mib_s=4)
        self.assertEqual(row["after_tool_p50_ms"], 120)
        self.assertEqual(row["after_person_p50_ms"], 700)
        self.assertEqual(row["after_tool_resident_pct"], 66.7)
        self.assertEqual(row["placements"], {"resident": 2, "restored": 2})

    def test_bytes_are_per_turn_over_every_turn_and_disk_time_is_at_the_limit(self):
        row = slowdisk.summarize(self.SERVING, report.pct, mib_s=4)
        self.assertEqual(row["disk_written_mib_per_turn"], 2.0)  # 12 MiB over 6 turns
        self.assertEqual(row["saved_mib"], 8.0)
        self.assertEqual(row["disk_s_at_limit"], 3.8)  # 15 MiB at 4 MiB/s
        self.assertEqual(row["restores_on_path"], 2.0)
        self.assertEqual(row["restores_ahead"], 3.0)

    def test_the_table_compares_lru_with_agent_aware_at_each_speed(self):
        lru = dict(self.SERVING, config={"key": "agentkv-lru", "label": "lru"},
                   figures=dict(self.SERVING["figures"], written_bytes=36 * 2**20),
                   turns=[dict(t, ttft_ms=2 * t["ttft_ms"]) for t in self.SERVING["turns"]])
        alone = dict(self.SERVING, config={"key": "llama-server", "label": "alone"},
                     figures={})
        result = {"profile": PROFILE, "model": "m.gguf", "llama_server": alone,
                  "speeds": [{"mib_s": 4, "calibration": {"write_mib_s": 3.9, "read_mib_s": 4.1},
                              "servings": [lru, self.SERVING]}]}
        s = slowdisk.summary(result, report.pct)
        self.assertEqual(s["speeds"][0]["p95_lru_over_aware"], 2.0)
        self.assertEqual(s["speeds"][0]["written_lru_over_aware"], 3.0)
        text = "\n".join(report.slow_disk(s))
        self.assertIn("### 4 MiB/s (measured: write 3.9, read 4.1 MiB/s)", text)
        self.assertEqual(text.count("| alone |"), 1)


if __name__ == "__main__":
    unittest.main()
