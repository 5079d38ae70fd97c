"""The Worker host as a test runtime: the whole Worker in Pyodide 314, over real HTTP.

Black-box API tests run twice: against the local runtime (the FastAPI app on the embedded
stores, in process) and against ``host/main.mjs`` (the Worker as deployed, with Miniflare's
KV and R2 and the host's doubles). One host process is started per distinct set of settings
and shared by the session; every test starts from empty stores (``POST /reset`` on the
host's control port), as the in-process fixtures do.

The control port is also how a test reaches the doubles: script an AI failure (or Llama
Guard's verdicts), count model calls, move the wall clock, wait for ``waitUntil`` work, make
KV or R2 fail as in an outage, read what KV holds, pause or feed the job queue.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
HOST = ROOT / "host" / "main.mjs"
sys.path.insert(0, str(ROOT / "scripts"))

from worker_wheels import download as download_worker_wheels  # noqa: E402


class HostUnavailable(RuntimeError):
    """The Worker host cannot run on this machine (no Node, no node_modules)."""


def node() -> str | None:
    """The Node that `npm run worker` uses (pinned in package.json), else the system's."""
    pinned = ROOT / "node_modules" / "node" / "bin" / "node"
    return str(pinned) if pinned.exists() else shutil.which("node")


def host_prerequisites() -> str | None:
    """Why the Worker host cannot start here, or ``None`` when it can."""
    if node() is None:
        return "node is not installed"
    if not (ROOT / "node_modules" / "pyodide").is_dir():
        return "node_modules is missing (run `npm ci`)"
    return None


def _var_name(setting: str) -> str:
    return setting.upper()


class WorkerHost:
    """A running ``node host/main.mjs`` on free loopback ports.

    ``secrets`` are the Worker's secrets; one whose value is ``None`` is not set at all."""

    def __init__(
        self, tmp: Path, secrets: Mapping[str, str | None], settings: Mapping[str, Any]
    ) -> None:
        self.log_path = tmp / "host.log"
        self._log: IO[str] = self.log_path.open("w+")
        self._mark = 0
        wheels = download_worker_wheels()
        args = [
            node() or "node",
            str(HOST),
            "--port",
            "0",
            "--control-port",
            "0",
            "--wheels",
            str(wheels),
        ]
        for name, value in settings.items():
            args += ["--var", f"{_var_name(name)}={_var_value(value)}"]
        env = dict(os.environ)
        env.pop("CLOUDFLARE_API_TOKEN", None)
        for name, value in secrets.items():
            if value is None:  # unset: not inherited, and blank over any .dev.vars value
                env.pop(name, None)
                args += ["--var", f"{name}="]
            else:
                env[name] = value
        self._proc = subprocess.Popen(
            args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=self._log, text=True
        )
        ready = self._wait_ready()
        self.base: str = ready["url"]
        self.control: str = ready["control"]
        self._http = httpx.Client(base_url=self.control, timeout=60)
        self._drain = threading.Thread(target=self._copy_stdout, daemon=True)
        self._drain.start()

    def _wait_ready(self) -> dict[str, Any]:
        assert self._proc.stdout is not None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = self._proc.stdout.readline()
            if not line:
                break
            try:
                event = json.loads(line)
            except ValueError:
                self._log.write(line)
                continue
            if isinstance(event, dict) and event.get("event") == "ready":
                return event
        self._proc.kill()
        raise HostUnavailable(f"the Worker host did not start:\n{self.output()}")

    def _copy_stdout(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            self._log.write(line)

    def output(self) -> str:
        self._log.flush()
        return self.log_path.read_text()

    def call(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> Any:
        response = self._http.request(method, path, json=body)
        assert response.status_code == 200, response.text
        return response.json()

    def reset(self) -> None:
        self.call("POST", "/reset")
        self._log.flush()
        self._mark = self.log_path.stat().st_size

    def log_since_reset(self) -> str:
        """What the Worker wrote to stdout/stderr since the last reset (its console)."""
        self._log.flush()
        with self.log_path.open() as log:
            log.seek(self._mark)
            return log.read()

    def bind_rate_limit(self, name: str, limit: int, period: int) -> None:
        """A ``[[ratelimits]]`` binding, as a deployer declares one per policy rule."""
        self.call("POST", "/ratelimits", {"name": name, "limit": limit, "period": period})

    def settle(self) -> None:
        """Wait until every ``waitUntil`` task the Worker handed over has finished."""
        self.call("POST", "/settle")

    def kv_stats(self) -> dict[str, dict[str, Any]]:
        """Per KV binding: reads (and the keys read) and writes since the last reset."""
        result: dict[str, dict[str, Any]] = self.call("GET", "/kv")
        return result

    def reset_kv_stats(self) -> None:
        self.call("POST", "/kv/reset-stats")

    def queues(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.call("GET", "/queues")
        return result

    def close(self) -> None:
        self._http.close()
        self._proc.terminate()
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
        self._log.close()


def _var_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return json.dumps(list(value))
    return str(value)


class HostPool:
    """One Worker host per distinct settings and secrets, started on first use, stopped at
    the end. ``get``'s secrets override the pool's; a ``None`` value leaves one unset."""

    def __init__(self, tmp: Path, secrets: Mapping[str, str], base: Mapping[str, Any]) -> None:
        self._tmp = tmp
        self._secrets: dict[str, str | None] = dict(secrets)
        self._base = dict(base)
        self._hosts: dict[str, WorkerHost] = {}

    def get(
        self, settings: Mapping[str, Any], secrets: Mapping[str, str | None] | None = None
    ) -> WorkerHost:
        merged = {**self._base, **settings}
        keys = {**self._secrets, **(secrets or {})}
        key = json.dumps([merged, keys], sort_keys=True, default=str)
        host = self._hosts.get(key)
        if host is None:
            folder = self._tmp / f"host-{len(self._hosts)}"
            folder.mkdir()
            host = self._hosts[key] = WorkerHost(folder, keys, merged)
        return host

    def close(self) -> None:
        for host in self._hosts.values():
            host.close()


class HostAI:
    """The host's AI binding double, seen like the in-process ``ScriptedAI``."""

    def __init__(self, host: WorkerHost) -> None:
        self._host = host

    @property
    def calls(self) -> int:
        return int(self._host.call("GET", "/ai")["calls"])

    @property
    def inputs(self) -> list[dict[str, Any]]:
        """Each call's inputs as the binding received them: ``{"multipart": {body,
        contentType}}`` with the raw body bytes."""
        return [
            {"multipart": {"body": base64.b64decode(i["body"]), "contentType": i["contentType"]}}
            for i in self._host.call("GET", "/ai")["inputs"]
        ]

    def fail_next(self, message: str) -> None:
        self._host.call("POST", "/ai/fail", {"message": message})

    @property
    def latency(self) -> float:
        return float(self._host.call("GET", "/ai")["latency_seconds"])

    @latency.setter
    def latency(self, seconds: float) -> None:
        self._host.call("POST", "/ai/latency", {"seconds": seconds})


class HostGuard:
    """Llama Guard behind the host's AI binding, seen like the in-process ``FakeGuardAI``:
    ``unsafe`` words (and their categories), queued ``failures``, the ``answer_text`` form,
    and the number of ``calls``."""

    def __init__(self, host: WorkerHost) -> None:
        self._host = host

    def _get(self, field: str) -> Any:
        return self._host.call("GET", "/guard")[field]

    @property
    def calls(self) -> int:
        return int(self._get("calls"))

    @property
    def unsafe(self) -> dict[str, str]:
        return dict(self._get("unsafe"))

    @unsafe.setter
    def unsafe(self, words: Mapping[str, str]) -> None:
        self._host.call("POST", "/guard", {"unsafe": dict(words)})

    @property
    def failures(self) -> list[str]:
        return list(self._get("failures"))

    @failures.setter
    def failures(self, messages: list[str]) -> None:
        self._host.call("POST", "/guard", {"failures": list(messages)})

    @property
    def answer_text(self) -> bool:
        return bool(self._get("answer_text"))

    @answer_text.setter
    def answer_text(self, value: bool) -> None:
        self._host.call("POST", "/guard", {"answer_text": value})


class HostStorage:
    """The host's KV namespace and R2 bucket, seen from outside (``conftest.LocalStorage``
    is the same on the local stores)."""

    def __init__(self, host: WorkerHost) -> None:
        self._host = host

    def fail(
        self,
        *,
        kv_reads: tuple[str, ...] = (),
        kv_writes: tuple[str, ...] = (),
        object_writes: bool = False,
    ) -> None:
        self._host.call("POST", "/kv/fail", {"get": list(kv_reads), "put": list(kv_writes)})
        self._host.call("POST", "/r2/fail", {"put": [""] if object_writes else []})

    def kv_dump(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._host.call("POST", "/kv/dump")
        return result

    def object_exists(self, key: str) -> bool:
        return self._host.call("POST", "/r2/head", {"key": key}) is not None

    def delete_object(self, key: str) -> None:
        self._host.call("POST", "/r2/delete", {"key": key})


class HostJobs:
    """The host's job queue and job records (``conftest.LocalJobs`` on the local runtime)."""

    def __init__(self, host: WorkerHost) -> None:
        self._host = host

    def send(self, message: Mapping[str, Any]) -> None:
        self._host.call("POST", "/queues/send", {"body": dict(message)})

    def pause(self) -> None:
        self._host.call("POST", "/queues/pause")

    def resume(self) -> None:
        self._host.call("POST", "/queues/resume")

    def drain(self) -> None:
        self._host.call("POST", "/queues/drain")

    def record(self, job_id: str) -> dict[str, Any] | None:
        result: dict[str, Any] | None = self._host.call("POST", "/jobs/get", {"job_id": job_id})
        return result


class HostClock:
    """The host's wall clock (Python's ``time.time()`` in the isolate), moved by tests."""

    def __init__(self, host: WorkerHost) -> None:
        self._host = host
        self._offset = 0.0

    def __call__(self) -> float:
        return time.time() + self._offset

    def advance(self, seconds: float) -> None:
        self._offset = float(
            self._host.call("POST", "/clock/advance", {"seconds": seconds})["offset_seconds"]
        )


def host_client(host: WorkerHost) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=host.base, timeout=60) as client:
        yield client
