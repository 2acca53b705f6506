"""configs/grafana-dashboard.json: a dashboard Grafana imports, whose every
query parses (promtool, as recording rules) and names only metrics agentkv
exports (src/core/metrics.cpp). Grafana itself is not packaged for Debian 12,
so its own provisioning check cannot run here.
Usage: dashboard_test.py ROOT (ctest: grafana_dashboard)"""
import json
import os
import re
import subprocess
import sys
import tempfile
import unittest

ROOT = sys.argv.pop(1) if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "..")


def load():
    with open(os.path.join(ROOT, "configs", "grafana-dashboard.json")) as f:
        return json.load(f)


def exported():
    with open(os.path.join(ROOT, "src", "core", "metrics.cpp")) as f:
        return set(re.findall(r'"(agentkv_[a-z_]+)"', f.read()))


class Dashboard(unittest.TestCase):
    def test_has_what_grafana_needs_to_import_it(self):
        d = load()
        for key in ("title", "uid", "schemaVersion", "panels", "templating"):
            self.assertIn(key, d)
        ids = [p["id"] for p in d["panels"]]
        self.assertEqual(len(ids), len(set(ids)), "panel ids are unique")
        cells = set()
        for p in d["panels"]:
            g = p["gridPos"]
            self.assertLessEqual(g["x"] + g["w"], 24, p["title"])
            mine = {(x, y) for x in range(g["x"], g["x"] + g["w"])
                    for y in range(g["y"], g["y"] + g["h"])}
            self.assertFalse(cells & mine, f"{p['title']} overlaps another panel")
            cells |= mine
            self.assertTrue(p["targets"], p["title"])
        names = [v["name"] for v in d["templating"]["list"]]
        self.assertEqual(names, ["datasource", "instance"])

    def test_every_query_parses_and_names_only_metrics_agentkv_exports(self):
        d, known = load(), exported()
        exprs = [t["expr"] for p in d["panels"] for t in p["targets"]]
        for e in exprs:
            for name in re.findall(r"agentkv_[a-z_]+", e):
                base = re.sub(r"_(bucket|sum|count)$", "", name)
                self.assertIn(base, known, f"{name} in {e}")
        # Grafana's variables are not PromQL: as a rule, $instance is a regex.
        rules = {"groups": [{"name": "dashboard", "rules": [
            {"record": f"dashboard:query{i}", "expr": e.replace("$instance", ".*")}
            for i, e in enumerate(exprs)]}]}
        with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as f:
            json.dump(rules, f)  # JSON is YAML
        try:
            r = subprocess.run(["promtool", "check", "rules", f.name], capture_output=True,
                               text=True)
        finally:
            os.remove(f.name)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn(f"SUCCESS: {len(exprs)} rules found", r.stdout)

    def test_every_metric_the_alert_rules_use_is_exported(self):
        with open(os.path.join(ROOT, "configs", "prometheus-rules.yml")) as f:
            text = f.read()
        for name in set(re.findall(r"agentkv_[a-z_]+", text)):
            self.assertIn(name, exported())


if __name__ == "__main__":
    unittest.main()
