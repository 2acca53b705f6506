"""Unit tests of the soak's checks (no servers): each passes a run that keeps
agents apart and catches one that does not.
cd bench && python3 -m unittest discover -s harness -t . (ctest: bench_harness)"""
import hashlib
import json
import os
import tempfile
import unittest
from types import SimpleNamespace

from harness import soak_checks

FOREIGN = {"a": 9, "b": 9}


def turn(agent, start, cache_n, prompt_n, predicted_n=10, placement="restored", kind="turn"):
    return {"kind": kind, "agent": agent, "start": start, "end": start + 1, "status": 200,
            "error": None, "outcome": "complete", "placement": placement,
            "timings": {"cache_n": cache_n, "prompt_n": prompt_n, "predicted_n": predicted_n},
            "max_tokens": predicted_n, "chars": 0}


def delete(agent, start):
    return {"kind": "delete", "agent": agent, "start": start, "end": start + 0.1, "status": 200,
            "error": None}


AGENTS = {"a": SimpleNamespace(family="a", parent=None),
          "b": SimpleNamespace(family="b", parent=None),
          "a.c1": SimpleNamespace(family="a", parent="a")}


def violations(events, snapshots=()):
    counts, bad, _, _ = soak_checks.judge(events, AGENTS, FOREIGN, set(snapshots))
    return {k[:-4]: v for k, v in counts.items() if k.endswith(" bad")}, bad


class Isolation(unittest.TestCase):
    def test_an_agent_reusing_its_own_turns_passes(self):
        events = [turn("a", 0, 0, 100, placement="cold"), turn("a", 2, 105, 30),
                  turn("b", 1, 0, 80, placement="cold"), turn("b", 3, 85, 20)]
        self.assertEqual(violations(events), ({}, []))

    def test_a_cold_turn_that_reuses_tokens_is_caught(self):
        bad, text = violations([turn("a", 0, 0, 100, placement="cold"),
                                turn("a", 2, 50, 60, placement="cold")])
        # Placed cold yet reusing: only a snapshot's builder may, with its exact size.
        self.assertEqual(bad, {"snapshot": 1})
        self.assertIn("size of no prefix snapshot", text[0])

    def test_a_new_agent_reusing_anything_is_caught(self):
        bad, _ = violations([turn("b", 0, 40, 60, placement="restored")])
        self.assertEqual(bad, {"bound": 1, "nothing": 1})

    def test_more_than_the_agent_ever_had_is_caught(self):
        bad, _ = violations([turn("a", 0, 0, 100, placement="cold"), turn("a", 2, 111, 5)])
        self.assertEqual(bad, {"bound": 1})

    def test_reuse_no_longer_than_another_agents_prefix_is_caught(self):
        bad, _ = violations([turn("a", 0, 0, 100, placement="cold"), turn("a", 2, 7, 100)])
        self.assertEqual(bad, {"foreign": 1})

    def test_reuse_after_a_delete_is_caught_unless_nothing_ran_since(self):
        events = [turn("a", 0, 0, 100, placement="cold"), delete("a", 1.5),
                  turn("a", 2, 60, 60, placement="restored")]
        bad, _ = violations(events)
        self.assertEqual(bad, {"deleted": 1})
        # A turn that overlapped the DELETE may have given the agent memory again.
        events = [turn("a", 0, 0, 100, placement="cold"), delete("a", 0.5),
                  turn("a", 2, 60, 60, placement="restored")]
        self.assertEqual(violations(events), ({}, []))

    def test_a_child_may_reuse_what_its_parent_had_and_no_more(self):
        parent = [turn("a", 0, 0, 100, placement="cold")]
        self.assertEqual(violations(parent + [turn("a.c1", 2, 105, 10, kind="spawn")]), ({}, []))
        bad, _ = violations(parent + [turn("a.c1", 2, 200, 10, kind="spawn")])
        self.assertEqual(bad, {"bound": 1})

    def test_a_prefix_snapshot_must_be_reused_whole(self):
        events = [turn("a", 0, 0, 300, placement="cold"), delete("a", 1.5),
                  turn("a", 2, 150, 50, placement="prefix")]
        self.assertEqual(violations(events, snapshots={150}), ({}, []))
        bad, _ = violations(events, snapshots={140})
        self.assertEqual(bad, {"snapshot": 1})

    def test_a_stateless_turn_must_reuse_nothing(self):
        s = turn(None, 0, 3, 50, placement="stateless", kind="stateless")
        self.assertEqual(violations([s])[0], {"nothing": 1})


class MemoryDirectory(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="soak-checks-")

    def save(self, agent, generation, size):
        h = hashlib.sha256(agent.encode()).hexdigest()
        state = f"{h}.{generation}.kv"
        with open(os.path.join(self.dir, state), "wb") as f:
            f.write(b"x" * size)
        with open(os.path.join(self.dir, h + ".meta"), "w") as f:
            json.dump({"agent": agent, "state_file": state, "tokens": 7, "bytes": size}, f)
        return {"id": agent, "saved": {"tokens": 7, "bytes": size}}

    def test_a_directory_that_matches_the_listing_passes(self):
        listing = [self.save("a", 1, 10), self.save("b", 3, 20)]
        figures, problems = soak_checks.check_listing(self.dir, listing, [])
        self.assertEqual(problems, [])
        self.assertEqual((figures["metas"], figures["states"], figures["bytes"]), (2, 2, 30))

    def test_orphans_temporaries_unlisted_and_missing_files_are_caught(self):
        listing = [self.save("a", 1, 10)]
        self.save("gone", 1, 5)  # on disk, not listed
        listing.append({"id": "lost", "saved": {"tokens": 1, "bytes": 1}})  # listed, not on disk
        h = hashlib.sha256(b"a").hexdigest()
        open(os.path.join(self.dir, f"{h}.0.kv"), "w").close()  # an older generation
        open(os.path.join(self.dir, f"{h}.2.kv.tmp"), "w").close()
        _, problems = soak_checks.check_listing(self.dir, listing, [])
        self.assertEqual(len(problems), 4, problems)
        self.assertEqual(soak_checks.dir_problems(self.dir)["orphans"], 1)

    def test_an_agent_deleted_last_must_be_gone(self):
        listing = [self.save("a", 1, 10)]
        hashes = set(soak_checks.scan_dir(self.dir)[0])
        events = [turn("a", 0, 0, 10, placement="cold"), delete("a", 2),
                  turn("b", 0, 0, 10, placement="cold"), delete("b", 0.5),
                  turn("b", 1, 0, 10, placement="cold")]
        d = soak_checks.deleted_at_end(events, listing, hashes)
        self.assertEqual(d["judged"], 1)  # b has a turn after its DELETE
        self.assertEqual(len(d["bad"]), 2)  # a: still listed, and its metadata on disk


class Slope(unittest.TestCase):
    def test_per_minute(self):
        self.assertAlmostEqual(soak_checks.slope_per_min([(0, 10), (30, 11), (60, 12)]), 2.0)
        self.assertEqual(soak_checks.slope_per_min([(0, 10)]), 0.0)


if __name__ == "__main__":
    unittest.main()
