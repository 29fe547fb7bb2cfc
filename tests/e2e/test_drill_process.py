"""Issue 13 §3 item 7: the offline drill, as a process, ends without asyncio noise on stderr.

On landed main ``litellm-canary drill`` ended with "Task was destroyed but it is pending!" (LiteLLM's
logging worker left running when ``asyncio.run`` closed the loop). The process is the point: the
message is printed while the interpreter tears the loop down.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def test_offline_drill_process_has_no_pending_task_warning(tmp_path: Path) -> None:
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "litellm_canary.cli",
            "drill",
            "--json",
            "--fault",
            "errors",
            "--dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout)["passed"] is True
    assert "Task was destroyed" not in done.stderr
    assert "never awaited" not in done.stderr
    assert "Traceback" not in done.stderr
