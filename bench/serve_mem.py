"""Peak memory of a process that only serves an index (open + searches + answers), measured in a
child process so the ingest that built the index does not count."""
from __future__ import annotations

import json
import os
import subprocess
import sys

from kb.config import REPO_ROOT

_CHILD = r"""
import json, sys
from bench.util import child_peak_rss_mib
from kb.api import open_kb
base = open_kb(sys.argv[1])
claims = json.loads(sys.argv[2])
for c in claims:
    base.search(c, k=10)
for c in claims[:20]:
    base.ask(c)
print(json.dumps({"peak_mib": child_peak_rss_mib()}))
"""


def run(index_dir: str, claims: list[str]) -> float:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    out = subprocess.run([sys.executable, "-c", _CHILD, index_dir, json.dumps(claims)], cwd=REPO_ROOT, env=env,
                         capture_output=True, text=True, check=True)
    return float(json.loads(out.stdout.strip().splitlines()[-1])["peak_mib"])
