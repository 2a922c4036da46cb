"""nodes/runner.py's raise_priority: every thread of the process gets the niceness, or it says why not."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.unit

SCRIPT = """
import json, os, threading, time
from jepa_pilot.nodes.runner import raise_priority
stop = threading.Event()
before = threading.Thread(target=stop.wait); before.start()          # a thread that exists already
why_not = raise_priority(-3)
after = threading.Thread(target=stop.wait); after.start()            # one started after
time.sleep(0.1)
nices = {os.getpriority(os.PRIO_PROCESS, int(t)) for t in os.listdir("/proc/self/task")}
print(json.dumps([why_not, sorted(nices), raise_priority(5), os.getpriority(os.PRIO_PROCESS, 0)]))
stop.set()
"""


def test_every_thread_gets_the_niceness_or_it_says_why_not():
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60,
                          env=dict(os.environ))
    assert done.returncode == 0, done.stderr
    why_not, nices, again, final = json.loads(done.stdout)
    if not why_not:  # allowed here (root or CAP_SYS_NICE): every thread, the one started later too
        assert nices == [-3] and final == -3
    else:
        assert "cannot run at nice -3" in why_not and final >= 0
    assert again == ""  # asking for a lower priority changes nothing and is no error
