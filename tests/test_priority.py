"""nodes/runner.py's raise_priority: every thread of the process gets the niceness, and with autogroup
scheduling on, so does the autogroup of a process that leads its own session; or it says why not."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

SCRIPT = """
import json, os, threading, time
from jepa_pilot.nodes.runner import raise_priority
stop = threading.Event()
before = threading.Thread(target=stop.wait, daemon=True); before.start()  # a thread that exists already
why_not = raise_priority(-3)
after = threading.Thread(target=stop.wait, daemon=True); after.start()    # one started after
time.sleep(0.1)
nices = {os.getpriority(os.PRIO_PROCESS, int(t)) for t in os.listdir("/proc/self/task")}
group = None  # "/autogroup-42 nice -3"; empty for a process in no autogroup (the root group, a cgroup)
if os.path.exists("/proc/self/autogroup"):
    group = (open("/proc/self/autogroup").read().split() or [None])[-1]
print(json.dumps([why_not, sorted(nices), raise_priority(5), os.getpriority(os.PRIO_PROCESS, 0), group]))
stop.set()
"""

AUTOGROUPS = Path("/proc/sys/kernel/sched_autogroup_enabled")
AUTOGROUPS_ON = AUTOGROUPS.exists() and AUTOGROUPS.read_text().strip() == "1"


def own_autogroup() -> str | None:
    """This process's autogroup niceness, or None where it is in no autogroup (autogroups off, or a
    session in the root group or a cgroup of its own, as in many containers: the file is empty)."""
    path = Path("/proc/self/autogroup")
    words = path.read_text().split() if path.exists() else []
    return words[-1] if words else None


def run_script(own_session: bool) -> tuple:
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60,
                          env=dict(os.environ), start_new_session=own_session)
    assert done.returncode == 0, done.stderr
    return tuple(json.loads(done.stdout))


def test_every_thread_and_its_own_sessions_autogroup_get_the_niceness_or_it_says_why_not():
    why_not, nices, again, final, group = run_script(own_session=True)
    if not why_not:  # allowed here (root or CAP_SYS_NICE): every thread, the one started later too
        assert nices == [-3] and final == -3
        if AUTOGROUPS_ON and group is not None:  # a session leader's autogroup competes with the other sessions at -3
            assert group == "-3"
    else:
        assert "cannot run at nice -3" in why_not and final >= 0
    assert again == ""  # asking for a lower priority changes nothing and is no error


def test_a_process_sharing_its_parents_session_keeps_the_sessions_autogroup_and_says_so():
    why_not, nices, again, final, group = run_script(own_session=False)
    if "cannot run at nice" in why_not:  # not allowed here: nothing changed
        assert final >= 0
        return
    assert nices == [-3] and final == -3  # the threads rank within the session either way
    assert group == own_autogroup()  # the session's autogroup (if any) is left as it was
    if AUTOGROUPS_ON and group is not None:
        assert f"shares session {os.getsid(0)}" in why_not
    else:  # no autogroup: the threads' niceness already counts machine-wide
        assert why_not == ""
