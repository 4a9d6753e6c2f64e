#!/usr/bin/env python3
"""Runs the shell commands of README.md and docs/*.md as a reader would: every ```sh block, in order.

Each file's blocks run in one bash (so a variable set in one block is there in the next), with
`set -eo pipefail` and `curl` failing on an HTTP error (with the body shown), from the repository's root.
An HTML comment on the line before a block says what else to do with it:

    <!-- check: serve URL -->      the block starts a server: run it in the background and wait until
                                   URL answers 2xx; it is stopped when the next serve block starts, or
                                   when the file ends
    <!-- check: skip: REASON -->   the block cannot run here; listed with the reason

A block that fails stops its file (what follows may depend on it). Exits 1 if any block failed.
Usage: python3 .ci/check-docs.py [FILE ...]   (default: README.md docs/*.md)
"""

import glob
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BLOCK_TIMEOUT = 300   # seconds: a block's commands (a first `dotnet build` included)
SERVE_TIMEOUT = 300   # seconds: until a server answers (`dotnet run` builds first)
MARK = "__check_docs_block_done__"
SHELL_SETUP = f"""
exec 2>&1
set -eo pipefail
curl() {{ command curl --fail-with-body --no-progress-meter "$@"; }}
"""


def blocks(path):
    """(line, kind, argument, text) for each sh block: kind is run, serve or skip."""
    lines = open(path, encoding="utf-8").read().split("\n")
    found = []
    i = 0
    while i < len(lines):
        if lines[i].strip() == "```sh":
            start = i + 1
            end = next((j for j in range(start, len(lines)) if lines[j].strip() == "```"), None)
            if end is None:
                raise SystemExit(f"{path}:{i + 1}: a ```sh block that is never closed")
            note = re.match(r"<!--\s*check:\s*(serve|skip)\s*:?\s*(.*?)\s*-->", lines[i - 1].strip()) if i > 0 else None
            kind, argument = (note.group(1), note.group(2)) if note else ("run", "")
            found.append((i + 1, kind, argument, "\n".join(lines[start:end])))
            i = end
        i += 1
    return found


class Shell:
    """One bash per file, fed a block at a time; a block ends with a marker line carrying its status."""

    def __init__(self, env):
        self.process = subprocess.Popen(["bash", "--noprofile", "--norc"], cwd=ROOT, env=env, text=True,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=1)
        self.lines = queue.Queue()
        self.scripts = []
        threading.Thread(target=self._read, daemon=True).start()
        self.process.stdin.write(SHELL_SETUP)

    def _read(self):
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)  # the shell ended

    def run(self, text):
        # From a file and with no stdin of its own, so a command that reads stdin cannot swallow the script.
        with tempfile.NamedTemporaryFile("w", suffix=".sh", delete=False, encoding="utf-8") as script:
            script.write(text + "\n")
        self.scripts.append(script.name)
        self.process.stdin.write(f"source {script.name} </dev/null\nprintf '\\n{MARK} %s\\n' \"$?\"\n")
        self.process.stdin.flush()
        output, deadline = [], time.monotonic() + BLOCK_TIMEOUT
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                return None, output  # set -e stopped the shell at a failing command
            if line.startswith(MARK):
                return int(line.split()[1]), output
            output.append(line)
        return "timeout", output

    def close(self):
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        for name in self.scripts:
            os.unlink(name)


class Server:
    """A serve block: its own process group, its output in a log, stopped with SIGTERM (then SIGKILL)."""

    def __init__(self, text, env, log_path):
        self.log_path = log_path
        self.log = open(log_path, "w", encoding="utf-8")
        self.process = subprocess.Popen(["bash", "-c", text], cwd=ROOT, env=env, stdout=self.log,
                                        stderr=subprocess.STDOUT, start_new_session=True)

    def wait_until_answers(self, url):
        deadline = time.monotonic() + SERVE_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return f"it exited with {self.process.returncode} before answering"
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if 200 <= response.status < 300:
                        return None
            except (urllib.error.URLError, ConnectionError, socket.timeout):
                pass
            time.sleep(0.5)
        return f"{url} did not answer within {SERVE_TIMEOUT} s"

    def tail(self, lines=30):
        self.log.flush()
        return open(self.log_path, encoding="utf-8", errors="replace").read().splitlines()[-lines:]

    def stop(self):
        """Stops every process of the block (dotnet run and the service it started), and waits until all are gone."""
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + 20
        while self._group_alive() and time.monotonic() < deadline:
            self.process.poll()
            time.sleep(0.2)
        if self._group_alive():
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        self.log.close()

    def _group_alive(self):
        try:
            os.killpg(self.process.pid, 0)
            return True
        except ProcessLookupError:
            return False


def port_in_use(url):
    parts = urllib.parse.urlsplit(url)
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex((parts.hostname, parts.port or 80)) == 0


def check(path, env, report):
    shell, server = Shell(env), None
    relative = os.path.relpath(path, ROOT)
    try:
        for number, (line, kind, argument, text) in enumerate(blocks(path)):
            where = f"{relative}:{line}"
            if kind == "skip":
                report("SKIP", where, argument or "no reason given")
                continue
            started = time.monotonic()
            if kind == "serve":
                if server:
                    server.stop()
                if port_in_use(argument):
                    report("FAIL", where, f"something else already listens where this block's server would ({argument})")
                    return
                server = Server(text, env, os.path.join("/tmp", f"check-docs-{os.getpid()}-{number}.log"))
                problem = server.wait_until_answers(argument)
                if problem:
                    report("FAIL", where, f"the server it starts: {problem}", server.tail())
                    return
                report("PASS", where, f"serves: {argument} answered after {time.monotonic() - started:.1f} s")
                continue
            status, output = shell.run(text)
            if status == 0:
                report("PASS", where, f"{time.monotonic() - started:.1f} s")
                continue
            why = "timed out" if status == "timeout" else f"exit status {status}" if status is not None else "a command failed (set -e)"
            report("FAIL", where, why, output[-30:])
            return
    finally:
        shell.close()
        if server:
            server.stop()


def main():
    files = sys.argv[1:] or [os.path.join(ROOT, "README.md")] + sorted(glob.glob(os.path.join(ROOT, "docs", "*.md")))
    env = dict(os.environ, API_KEY=os.environ.get("API_KEY", "example-key"), DOTNET_NOLOGO="1", DOTNET_CLI_TELEMETRY_OPTOUT="1")
    counts = {"PASS": 0, "FAIL": 0, "SKIP": 0}

    def report(verdict, where, message, details=()):
        counts[verdict] += 1
        print(f"{verdict}  {where}  {message}", flush=True)
        for detail in details:
            print(f"      | {detail}")

    for path in files:
        check(os.path.abspath(path), env, report)
    print(f"check-docs: {counts['PASS']} blocks ran, {counts['FAIL']} failed, {counts['SKIP']} skipped")
    return 1 if counts["FAIL"] else 0


if __name__ == "__main__":
    sys.exit(main())
