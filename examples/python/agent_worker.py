#!/usr/bin/env python3
"""An agent worker in Python, over the platform's REST API, with the standard library only.

It works with the agent's own credential (an API key issued when the agent was registered):
claims tasks with a lease, reports progress (which renews the lease), completes them, or fails
them when the input asks for it. Errors come back as application/problem+json; calls are retried
with backoff while the gateway is away or busy (connection refused, 502, 503, 429).

    GATEWAY_URL=http://localhost:4000 AGENT_KEY=ap_... AGENT_ID=... SKILL_TAG=summarize \
        python3 examples/python/agent_worker.py [--max-tasks N]

A task's input may hold {"text": "...", "fail": "why"}; the result counts the words of the text.
"""
import argparse
import json
import os
import random
import sys
import time
import urllib.error
import urllib.request

GATEWAY_URL = os.environ.get("GATEWAY_URL", "http://127.0.0.1:4000").rstrip("/")
AGENT_KEY = os.environ.get("AGENT_KEY", "")
AGENT_ID = os.environ.get("AGENT_ID", "")
SKILL_TAG = os.environ.get("SKILL_TAG", "example")
LEASE_SECONDS = int(os.environ.get("LEASE_SECONDS", "30"))
TRANSIENT_STATUSES = {429, 502, 503, 504}


class Problem(Exception):
    """An RFC 9457 problem the platform answered with."""

    def __init__(self, status, body):
        self.status = status
        self.body = body
        super().__init__(f"{status} {body.get('title', '')}: {body.get('detail', '')} ({body.get('code', '')})")


def log(message, **fields):
    print(json.dumps({"at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "message": message, **fields}), flush=True)


def call(method, path, body=None):
    """One request; returns (status, parsed JSON or None). Raises Problem for 4xx/5xx answers."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(GATEWAY_URL + path, data=data, method=method)
    request.add_header("x-api-key", AGENT_KEY)
    request.add_header("accept", "application/json")
    if data is not None:
        request.add_header("content-type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            raw = response.read()
            return response.status, (json.loads(raw) if raw else None)
    except urllib.error.HTTPError as err:
        raw = err.read()
        try:
            problem = json.loads(raw)
        except ValueError:
            problem = {"title": raw.decode(errors="replace")[:200]}
        raise Problem(err.code, problem) from None


def retrying(what, method, path, body=None):
    """call(), retried with exponential backoff and jitter while the platform is unavailable."""
    attempt = 0
    while True:
        attempt += 1
        try:
            return call(method, path, body)
        except Problem as problem:
            if problem.status not in TRANSIENT_STATUSES:
                raise
            reason = str(problem)
        except (urllib.error.URLError, ConnectionError, TimeoutError) as err:
            reason = str(err)
        delay = min(5.0, 0.1 * 2**attempt) * (0.5 + random.random() / 2)
        log("platform unavailable, retrying", what=what, attempt=attempt, delay=round(delay, 2), reason=reason)
        time.sleep(delay)


def work(task):
    task_id = task["id"]
    data = task.get("input") or {}
    log("claimed", taskId=task_id, title=task.get("title"))
    retrying("progress", "POST", f"/v1/tasks/{task_id}/progress", {"percent": 50, "message": "reading", "leaseSeconds": LEASE_SECONDS})
    if data.get("fail"):
        retrying("fail", "POST", f"/v1/tasks/{task_id}/fail", {"error": {"message": data["fail"], "type": "PythonWorkerFailure"}, "retryable": False})
        log("failed", taskId=task_id, reason=data["fail"])
        return
    text = str(data.get("text", ""))
    result = {"worker": "python", "words": len(text.split())}
    retrying("complete", "POST", f"/v1/tasks/{task_id}/complete", {"result": result})
    log("completed", taskId=task_id, result=result)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-tasks", type=int, default=0, help="exit after this many tasks (0: run until interrupted)")
    args = parser.parse_args()
    if not AGENT_KEY or not AGENT_ID:
        sys.exit("set AGENT_KEY and AGENT_ID (the agent's credential and id, from its registration)")
    log("working", agentId=AGENT_ID, skillTag=SKILL_TAG, gateway=GATEWAY_URL)
    done = 0
    last_heartbeat = 0.0
    try:
        while args.max_tasks == 0 or done < args.max_tasks:
            if time.monotonic() - last_heartbeat > 5:
                retrying("heartbeat", "POST", f"/v1/agents/{AGENT_ID}/heartbeat")
                last_heartbeat = time.monotonic()
            status, task = retrying("claim", "POST", "/v1/tasks/claim", {"skillTags": [SKILL_TAG], "leaseSeconds": LEASE_SECONDS})
            if status == 204:
                time.sleep(0.5)
                continue
            try:
                work(task)
            except Problem as problem:
                # Not retried here: the lease runs out and the platform retries the task per its policy.
                log("task abandoned", taskId=task["id"], problem=problem.body)
            done += 1
    except KeyboardInterrupt:
        pass
    log("stopped", tasks=done)


if __name__ == "__main__":
    main()
