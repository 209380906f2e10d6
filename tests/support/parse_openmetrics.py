#!/usr/bin/env python3
"""Parses OpenMetrics text on stdin with prometheus_client's parser (the one Prometheus'
Python client ships) and prints what it found as one JSON document:
{"FAMILY": {"type": "counter", "samples": [["NAME", {"label": "value"}, VALUE], ...]}}.
Any parse error (a malformed line, a missing # EOF, a bad histogram) exits 1 with it."""
import json
import math
import sys

from prometheus_client.openmetrics.parser import text_string_to_metric_families

try:
    families = {}
    for f in text_string_to_metric_families(sys.stdin.read()):
        if f.name in families:
            raise ValueError("family %s twice" % f.name)
        families[f.name] = {
            "type": f.type,
            "help": f.documentation,
            "samples": [[s.name, s.labels, s.value if math.isfinite(s.value) else str(s.value)] for s in f.samples],
        }
except Exception as e:  # noqa: BLE001 - any failure of the parser is the test's failure
    print("parse error: %s" % e, file=sys.stderr)
    sys.exit(1)
json.dump(families, sys.stdout)
