"""Process-level promises: a light import, fork safety, and a bounded exit when the backend is down."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from agenttracer import AgentTracer
from tests.sdk.faults import FaultServer, refused_url, silent_listener
from tests.sdk.helpers import of_type

Make = Callable[..., AgentTracer]
ROOT = Path(__file__).resolve().parents[2]


def run_python(code: str, timeout: float = 60, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AGENTTRACER_")}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env={**clean, "PYTHONPATH": ".", **env})


def test_importing_the_sdk_loads_no_server_framework() -> None:
    result = run_python("""
        import json, sys
        import agenttracer
        from sdk.agenttrace import AgentTracer
        tracer = AgentTracer("a", "v1", "test", "http://127.0.0.1:9")
        with tracer.start_run() as run, run.step("tool", "x"):
            pass
        tracer.shutdown(0.2)
        heavy = sorted({m.split(".")[0] for m in sys.modules} & {"fastapi", "sqlalchemy", "pydantic", "starlette",
                                                                 "uvicorn", "alembic", "orjson"})
        print(json.dumps(heavy))
    """)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []


def test_the_spec_import_path_exposes_the_same_class() -> None:
    result = run_python("""
        import agenttracer, sdk.agenttrace
        assert sdk.agenttrace.AgentTracer is agenttracer.AgentTracer
        assert set(sdk.agenttrace.__all__) == set(agenttracer.__all__)
    """)
    assert result.returncode == 0, result.stderr


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_gets_an_empty_queue_and_its_own_worker(make_tracer: Make, server: FaultServer) -> None:
    tracer = make_tracer(server.url)
    tracer.enabled = True
    # The parent has undelivered work queued at fork time (the worker has not run yet).
    with tracer.start_run() as parent_run:
        for _ in range(50):
            with parent_run.step("tool", "parent_step"):
                pass
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report, then leave without running the parent's atexit/pytest machinery
        status = 1
        try:
            os.close(read_fd)
            fresh = tracer.stats()
            with tracer.start_run() as child_run, child_run.step("tool", "child_step"):
                pass
            delivered = tracer.flush(5.0)
            report = {"fresh": [fresh.produced, fresh.queued], "delivered": delivered,
                      "stats": [tracer.stats().produced, tracer.stats().delivered], "run": child_run.run_id}
            os.write(write_fd, json.dumps(report).encode())
            status = 0
        finally:
            os._exit(status)
    os.close(write_fd)
    _, status = os.waitpid(pid, 0)
    with os.fdopen(read_fd) as pipe:
        report = json.loads(pipe.read() or "{}")
    assert status == 0
    assert report["fresh"] == [0, 0]  # nothing inherited: the parent's events are not sent twice
    assert report["delivered"] is True and report["stats"] == [3, 3]
    assert tracer.flush(5.0)
    stored = server.stored()
    child_steps = [e for e in of_type(stored, "step") if e["run_id"] == report["run"]]
    parent_steps = [e for e in of_type(stored, "step") if e["run_id"] == parent_run.run_id]
    assert len(child_steps) == 1 and len(parent_steps) == 50
    assert tracer.stats().delivered == 52


@pytest.mark.parametrize("backend", ["refused", "silent"])
def test_exit_with_the_backend_down_is_bounded(backend: str) -> None:
    code = """
        import time
        from agenttracer import AgentTracer
        tracer = AgentTracer("exit-test", "v1", "test", "{url}", timeout=30.0, exit_timeout=1.0)
        for _ in range(20):
            with tracer.start_run() as run:
                for _ in range(100):
                    with run.step("tool", "x"):
                        pass
        time.sleep(0.3)  # the worker is now inside a request or a backoff
        print(time.monotonic(), flush=True)
    """
    if backend == "refused":
        result = run_python(code.replace("{url}", refused_url()))
        ended = time.monotonic()
    else:
        with silent_listener() as url:  # accepts, never answers; the HTTP timeout is 30 s
            result = run_python(code.replace("{url}", url))
            ended = time.monotonic()
    assert result.returncode == 0, result.stderr
    exiting_at = float(result.stdout.strip())
    # From the script's last line to the process being gone: the 1 s exit bound plus interpreter teardown.
    assert ended - exiting_at < 1.0 + 1.0, ended - exiting_at


def test_atexit_delivers_what_is_queued_when_the_backend_is_up(server: FaultServer) -> None:
    result = run_python(f"""
        from agenttracer import AgentTracer
        tracer = AgentTracer("exit-test", "v1", "test", "{server.url}", flush_interval=30.0)
        with tracer.start_run() as run, run.step("tool", "x"):
            pass
    """)
    assert result.returncode == 0, result.stderr
    assert [e["type"] for e in server.stored()] == ["run_start", "step", "run_end"]
