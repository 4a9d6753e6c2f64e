#!/usr/bin/env python3
"""Benchmarks for the ingestion service, measured side by side in one run.

  python3 bench/bench.py http    throughput and latency of the API against a bare Kestrel baseline
  python3 bench/bench.py scale   2 000 000 ids waiting: accept and status times, memory, latency
                                 against an empty queue, restart time, and scheduling precision
                                 (--store postgres: on a throwaway cluster, and three instances on one database)
  python3 bench/bench.py compare REV
                                 this checkout against git revision REV (built in a temporary
                                 worktree), the http scenarios side by side: did a change cost anything?
  python3 bench/bench.py postgres
                                 the http scenarios on PostgreSQL (a throwaway cluster) beside SQLite
  python3 bench/bench.py instances
                                 three instances on one PostgreSQL database: every window's lateness
                                 against its allowed start, whichever instance starts it (~1 min)
  python3 bench/bench.py soak    ~10 min of compressed time under steady load: memory and the store's
                                 size plateau, every acknowledged ingestion completes or is purged
                                 (CSV and PNG chart in bench/results/; needs python3-matplotlib)
  python3 bench/bench.py sweep   POST latency while the retention sweeps 100 000 finished ingestions
  (scale, soak and sweep take --store postgres: a throwaway cluster of Debian's postgresql, started here)

Both build Release first, start every server on a fresh database on loopback, and stop them at the
end. Requires wrk (Debian: apt-get install wrk). Speed lives here, never in the unit tests.
"""

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SERVICE_DLL = os.path.join(ROOT, "src/IngestionService/bin/Release/net10.0/IngestionService.dll")
BASELINE_DLL = os.path.join(ROOT, "bench/Baseline/bin/Release/net10.0/Baseline.dll")
UNKNOWN_ID = "ffffffff-ffff-4fff-bfff-ffffffffffff"


def build(root=ROOT, projects=("src/IngestionService", "bench/Baseline")):
    for project in projects:
        subprocess.run(["dotnet", "build", "-c", "Release", "--nologo", "-v", "quiet", project],
                       cwd=root, check=True, stdout=subprocess.DEVNULL)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A server process on a free loopback port; the service gets a fresh database folder."""

    def __init__(self, dll, settings=None, data_dir=None, name="service"):
        self.dll, self.name = dll, name
        self.settings = dict(settings or {})
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = None
        self.log = None

    def start(self, ready_path="/status/" + UNKNOWN_ID):
        env = dict(os.environ, ASPNETCORE_ENVIRONMENT="Production")
        if self.data_dir is not None:
            env["Storage__ConnectionString"] = f"Data Source={self.data_dir}/ingestion.db"
        for key, value in self.settings.items():
            env[key.replace(":", "__")] = value
        self.log = tempfile.NamedTemporaryFile(prefix=f"bench-{self.name}-", suffix=".log", delete=False)
        started = time.monotonic()
        self.proc = subprocess.Popen(["dotnet", self.dll, "--urls", self.url], cwd=os.path.dirname(self.dll),
                                     env=env, stdout=self.log, stderr=subprocess.STDOUT)
        while True:
            if self.proc.poll() is not None:
                sys.exit(f"{self.name} exited while starting; see {self.log.name}")
            try:
                urllib.request.urlopen(self.url + ready_path, timeout=1)
                break
            except urllib.error.HTTPError:
                break  # any HTTP answer (404 included) means it is serving
            except (urllib.error.URLError, ConnectionError, socket.timeout):
                time.sleep(0.01)
            if time.monotonic() - started > 60:
                sys.exit(f"{self.name} did not answer within 60 s; see {self.log.name}")
        return time.monotonic() - started

    def jit_compiled(self):
        """How many methods the service's JIT has compiled so far (from its own /metrics)."""
        with urllib.request.urlopen(self.url + "/metrics", timeout=10) as response:
            for line in response.read().decode().splitlines():
                if line.startswith("dotnet_jit_compiled_methods_total"):
                    return float(line.rsplit(" ", 1)[1])
        sys.exit("the service's /metrics has no dotnet_jit_compiled_methods_total")

    def rss_mb(self):
        with open(f"/proc/{self.proc.pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        return float("nan")

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()


def request(method, url, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    started = time.perf_counter()
    with urllib.request.urlopen(req, timeout=60) as response:
        payload = response.read()
    return time.perf_counter() - started, json.loads(payload) if payload else None


def submit(server, ids, priority="LOW"):
    _, body = request("POST", server.url + "/ingest", {"ids": ids, "priority": priority})
    return body["ingestion_id"]


LATENCY_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def wrk(url, seconds, script=None, connections=32, threads=2):
    """Runs wrk and returns (requests/s, p50 ms, p99 ms, non-2xx count)."""
    cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency"]
    if script:
        cmd += ["-s", script]
    out = subprocess.run(cmd + [url], check=True, capture_output=True, text=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))

    def percentile(p):
        value, unit = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M).groups()
        return float(value) * LATENCY_UNITS[unit]

    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return rps, percentile(50), percentile(99), int(bad.group(1)) if bad else 0


def post_script(ids):
    body = json.dumps({"ids": ids, "priority": "MEDIUM"})
    script = tempfile.NamedTemporaryFile("w", prefix="bench-post-", suffix=".lua", delete=False)
    script.write('wrk.method = "POST"\n')
    script.write('wrk.headers["Content-Type"] = "application/json"\n')
    script.write(f"wrk.body = {json.dumps(body)}\n")
    script.close()
    return script.name


def warm_up(service, baseline, scenarios, max_passes=6, settled=150):
    """Runs every scenario on both servers (or the service alone, without a baseline), pass after pass, until the service's JIT has settled: a pass
    compiles fewer than `settled` methods. Tiered compilation keeps recompiling hot code for twenty
    seconds or more under load (6 s of compiling in the first 20 s of POSTs, throughput climbing from
    6k to 19k/s meanwhile), so a run measured sooner measures the compiler, not the service. The
    baseline, with far less code, gets the same passes. Returns (passes, methods compiled in the last)."""
    compiled = float("nan")
    for passes in range(1, max_passes + 1):
        before = service.jit_compiled()
        for _, path, script, base_path, _ in scenarios:
            wrk(service.url + path, 3, script)
            if baseline is not None:
                wrk(baseline.url + base_path, 3, script)
        compiled = service.jit_compiled() - before
        print(f"warm-up pass {passes}: the service compiled {compiled:.0f} methods", file=sys.stderr)
        if compiled < settled:
            break
    return passes, compiled


def median_run(url, seconds, rounds, script=None):
    runs = [wrk(url, seconds, script) for _ in range(rounds)]
    return runs


def expect_status(service, path, status):
    """Fails the benchmark unless GET `path` answers `status`: a fast error page is not a fast answer."""
    try:
        with urllib.request.urlopen(service.url + path, timeout=10) as response:
            got = response.status
    except urllib.error.HTTPError as error:
        got = error.code
    if got != status:
        sys.exit(f"bench: GET {path} on {service.name} answered {got}, not {status}; nothing measured")


def http_scenarios(service):
    """(name, path, wrk script, target ratio) of every http scenario, on a service given a 5-id and a
    3 000-id ingestion to read; the baseline answers the same paths with constant bodies."""
    # The small one behind the large one: both wait, behind every 5-id POST the run adds at MEDIUM, so a
    # status read counts the ids ahead of a waiting ingestion in a queue that grows, as a busy service's does.
    large = submit(service, list(range(1, 3001)))
    small = submit(service, list(range(1, 6)))
    # wrk counts a 404 and a 500 alike as non-2xx: the answer each GET scenario measures is checked first.
    for path, status in ((f"/status/{small}", 200), (f"/status/{large}", 200), (f"/status/{UNKNOWN_ID}", 404)):
        expect_status(service, path, status)
    return [
        ("POST /ingest, 5 ids", "/ingest", post_script(list(range(1, 6))), 0.5),
        ("POST /ingest, 1 000 ids", "/ingest", post_script(list(range(1, 1001))), 0.25),
        ("GET /status, 5 ids", f"/status/{small}", None, 0.6),
        ("GET /status, 3 000 ids", f"/status/{large}", None, 0.15),
        ("GET /status, unknown (404)", f"/status/{UNKNOWN_ID}", None, 0.7),
    ]


def http_bench(args):
    build()
    data = tempfile.mkdtemp(prefix="bench-http-")
    service = Server(SERVICE_DLL, {"Logging:LogLevel:Default": "Warning"}, data_dir=data)
    baseline = Server(BASELINE_DLL, name="baseline")
    service.start()
    baseline.start()
    try:
        scenarios = [(name, path, script, path, target) for name, path, script, target in http_scenarios(service)]
        passes, compiled = warm_up(service, baseline, scenarios)

        print(f"\nwrk -t2 -c32, {args.seconds} s per run, {args.rounds} alternating rounds, medians; "
              f"{os.cpu_count()} cores; {time.strftime('%Y-%m-%d %H:%M')}; warm-up: {passes} passes "
              f"over every scenario, the last one compiling {compiled:.0f} methods\n")
        header = "| scenario | baseline req/s | service req/s | ratio | target | service p50 ms | service p99 ms | baseline p99 ms | non-2xx |"
        print(header)
        print("|" + "---|" * 9)
        for name, path, script, base_path, target in scenarios:
            base_runs, svc_runs = [], []
            for _ in range(args.rounds):  # alternate, so both see the same machine
                base_runs.append(wrk(baseline.url + base_path, args.seconds, script))
                svc_runs.append(wrk(service.url + path, args.seconds, script))
            base = statistics.median(r[0] for r in base_runs)
            svc = statistics.median(r[0] for r in svc_runs)
            p50 = statistics.median(r[1] for r in svc_runs)
            p99 = statistics.median(r[2] for r in svc_runs)
            base_p99 = statistics.median(r[2] for r in base_runs)
            expected_errors = name.endswith("(404)")
            bad = 0 if expected_errors else sum(r[3] for r in svc_runs)
            ratio = svc / base
            verdict = "ok" if ratio >= target else "MISS"
            print(f"| {name} | {base:,.0f} | {svc:,.0f} | {ratio:.2f} ({verdict}) | ≥ {target} | {p50:.2f} | {p99:.2f} | {base_p99:.2f} | {bad} |")
        print(f"\nservice resident memory after the run: {service.rss_mb():.0f} MB; "
              f"ingestions stored: see {data}/ingestion.db")
    finally:
        service.stop()
        baseline.stop()
        shutil.rmtree(data, ignore_errors=True)


def compare_bench(args):
    """This checkout's service against the same service at git revision `args.revision`, built in a
    temporary worktree: both on fresh databases, warmed up alike, then every http scenario in alternating
    rounds. The ratio this/REV is what a change cost or gained; the machine's noise hits both sides."""
    build(projects=("src/IngestionService",))
    cluster = None
    if args.store == "postgres":  # one throwaway cluster, a database for each side
        from postgres import ThrowawayPostgres
        cluster = ThrowawayPostgres().start()
    worktree = tempfile.mkdtemp(prefix="bench-compare-")
    subprocess.run(["git", "worktree", "add", "--detach", worktree, args.revision], cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    servers, folders = [], []
    try:
        build(worktree, ("src/IngestionService",))
        other_dll = os.path.join(worktree, os.path.relpath(SERVICE_DLL, ROOT))
        for side, (name, dll) in enumerate(((args.revision, other_dll), ("this", SERVICE_DLL))):
            settings = {"Logging:LogLevel:Default": "Warning"}
            if cluster is not None:
                cluster.sql(f"CREATE DATABASE side{side}", database="postgres")
                settings.update({"Storage:Provider": "Postgres", "Storage:ConnectionString": cluster.connection_string.replace("Database=ingestion", f"Database=side{side}")})
                servers.append(Server(dll, settings, name=name))
            else:
                folders.append(tempfile.mkdtemp(prefix=f"bench-compare-{name}-"))
                servers.append(Server(dll, settings, data_dir=folders[-1], name=name))
            servers[-1].start()
        side_by_side(servers, args, f"{args.revision} vs this checkout on {args.store}")
        print(f"\nresident memory after the run: {args.revision} {servers[0].rss_mb():.0f} MB, this {servers[1].rss_mb():.0f} MB")
    finally:
        for server in servers:
            server.stop()
        for folder in folders:
            shutil.rmtree(folder, ignore_errors=True)
        if cluster is not None:
            cluster.stop()
        subprocess.run(["git", "worktree", "remove", "--force", worktree], cwd=ROOT, check=False,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def side_by_side(servers, args, title, baseline=None, ratios=((1, 0),)):
    """Every http scenario on running servers, each warmed up on its own ingestions, in alternating rounds
    (who goes first rotated each round); prints their medians and, for each (i, j) of `ratios`, the ratio
    of server i to server j. A `baseline` (bare Kestrel, constant answers to any path) goes first in the
    table as server 0 and is driven with the first server's paths."""
    scenarios = [http_scenarios(server) for server in servers]
    for server, own in zip(servers, scenarios):
        # Each server has its own ingestion ids, so each warms up on its own paths.
        warm_up(server, None, [(n, p, s, p, t) for n, p, s, t in own], max_passes=4)
    if baseline is not None:
        servers, scenarios = [baseline] + list(servers), [scenarios[0]] + scenarios
        ratios = tuple((i + 1, j + 1) for i, j in ratios) + tuple((i, 0) for i in range(1, len(servers)))
        for _ in range(2):  # the baseline has no JIT counter to watch; it has far less code to compile
            for _, path, script, _ in scenarios[0]:
                wrk(baseline.url + path, 3, script)

    names = [server.name for server in servers]
    print(f"\n{title}: wrk -t2 -c32, {args.seconds} s per run, {args.rounds} alternating rounds, medians; "
          f"{os.cpu_count()} cores; {time.strftime('%Y-%m-%d %H:%M')}\n")
    print("| scenario | " + " | ".join(f"{n} req/s" for n in names) + " | "
          + " | ".join(f"{names[i]} / {names[j]}" for i, j in ratios) + " | "
          + " | ".join(f"{n} p99 ms" for n in names) + " |")
    print("|" + "---|" * (1 + 2 * len(names) + len(ratios)))
    for k, (name, *_rest) in enumerate(scenarios[0]):
        runs = [[] for _ in servers]
        for round_ in range(args.rounds):  # alternate, and rotate who goes first, so all see the same machine
            order = list(range(len(servers)))
            for side in order[round_ % len(order):] + order[:round_ % len(order)]:
                _, path, script, _ = scenarios[side][k]
                runs[side].append(wrk(servers[side].url + path, args.seconds, script))
        rps = [statistics.median(r[0] for r in side) for side in runs]
        p99 = [statistics.median(r[2] for r in side) for side in runs]
        print(f"| {name} | " + " | ".join(f"{v:,.0f}" for v in rps) + " | "
              + " | ".join(f"{rps[i] / rps[j]:.2f}" for i, j in ratios) + " | "
              + " | ".join(f"{v:.2f}" for v in p99) + " |")


def postgres_bench(args):
    """The http scenarios on PostgreSQL (a throwaway cluster at its defaults: every 202 committed) beside the
    same build on SQLite, side by side in one run: the ratios issue 15 sets its targets on."""
    from postgres import ThrowawayPostgres
    build()
    cluster = ThrowawayPostgres().start()
    folder = tempfile.mkdtemp(prefix="bench-sqlite-")
    quiet = {"Logging:LogLevel:Default": "Warning"}
    servers = [Server(SERVICE_DLL, quiet, data_dir=folder, name="sqlite"),
               Server(SERVICE_DLL, dict(quiet, **{"Storage:Provider": "Postgres", "Storage:ConnectionString": cluster.connection_string}), name="postgres")]
    try:
        baseline = Server(BASELINE_DLL, name="kestrel")
        servers.append(baseline)
        for server in servers:
            server.start()
        side_by_side(servers[:2], args, "the same build on SQLite and on PostgreSQL, beside bare Kestrel",
                     baseline=baseline)
        print(f"\nresident memory after the run: sqlite {servers[0].rss_mb():.0f} MB, postgres {servers[1].rss_mb():.0f} MB")
    finally:
        for server in servers:
            server.stop()
        cluster.stop()
        shutil.rmtree(folder, ignore_errors=True)


def lateness(windows, window_seconds):
    """Lateness of each window against its earliest allowed start: max(previous start + Window, previous finish)."""
    parse = lambda s: time.mktime(time.strptime(s[:19], "%Y-%m-%dT%H:%M:%S")) + float("0." + (s[20:-1] or "0"))
    rows = sorted(windows, key=lambda w: w["seq"])
    late, gaps = [], []
    for prev, cur in zip(rows, rows[1:]):
        if prev["finished_at"] is None:
            continue
        allowed = max(parse(prev["started_at"]) + window_seconds, parse(prev["finished_at"]))
        start = parse(cur["started_at"])
        gaps.append(start - parse(prev["started_at"]))
        late.append((start - allowed) * 1000)
    return late, gaps


def windows_of(server, limit=1000):
    _, body = request("GET", f"{server.url}/windows?limit={limit}")
    return body["windows"]


def pct(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


class Stores:
    """Where each server of a benchmark keeps its queue: a fresh SQLite folder each, or, with
    --store postgres, a database each in one throwaway cluster (several servers may share one)."""

    def __init__(self, kind):
        self.kind, self.cluster, self.folders = kind, None, []
        if kind == "postgres":
            from postgres import ThrowawayPostgres
            self.cluster = ThrowawayPostgres().start()

    def server(self, settings, name, database=None):
        if self.cluster is None:
            self.folders.append(tempfile.mkdtemp(prefix=f"bench-{name}-"))
            return Server(SERVICE_DLL, settings, data_dir=self.folders[-1], name=name)
        database = database or f"bench_{name}"
        if not self.cluster.sql(f"SELECT 1 FROM pg_database WHERE datname = '{database}'", database="postgres"):
            self.cluster.sql(f"CREATE DATABASE {database}", database="postgres")
        connection = self.cluster.connection_string.replace("Database=ingestion", f"Database={database}")
        return Server(SERVICE_DLL, dict(settings, **{"Storage:Provider": "Postgres", "Storage:ConnectionString": connection}), name=name)

    def close(self):
        if self.cluster is not None:
            self.cluster.stop()
        for folder in self.folders:
            shutil.rmtree(folder, ignore_errors=True)


def fill(server, ids_wanted, script):
    """5-id POSTs (MEDIUM) with wrk until at least `ids_wanted` ids wait: many small ingestions, the shape
    that makes any per-ingestion scan show."""
    while request("GET", server.url + "/queue")[1]["total_waiting"] < ids_wanted:
        wrk(server.url + "/ingest", 5, script)
    return request("GET", server.url + "/queue")[1]["total_waiting"]


def scale_bench(args):
    build()
    stores = Stores(args.store)
    quick = {"Ingestion:Window": "00:00:00.200", "Upstream:SimulatedDelay": "00:00:00.050",
             "Logging:LogLevel:Default": "Warning"}
    empty = stores.server(quick, "empty")
    full = stores.server(quick, "full")
    real = stores.server({"Logging:LogLevel:Default": "Warning"}, "real")
    servers = [empty, full, real]
    try:
        for server in servers:
            server.start()

        # A few windows at the real 5 s, running alongside the rest.
        submit(real, list(range(1, 22)))

        print(f"\nscale, on {args.store}: {os.cpu_count()} cores; {time.strftime('%Y-%m-%d %H:%M')}\n")
        accept = []
        big_ids = []
        for i in range(10):
            ids = [(i * 100_000 + k) % 1_000_000_007 + 1 for k in range(100_000)]
            elapsed, body = request("POST", full.url + "/ingest", {"ids": ids, "priority": "LOW"})
            accept.append(elapsed * 1000)
            big_ids.append(body["ingestion_id"])
        status_times = [request("GET", f"{full.url}/status/{big_ids[-1]}")[0] * 1000 for _ in range(5)]
        print(f"POST /ingest of 100 000 ids (10 in a row): median {statistics.median(accept):.0f} ms, "
              f"max {max(accept):.0f} ms (target ≤ 150 ms)")
        print(f"GET /status of a 100 000-id ingestion: median {statistics.median(status_times):.0f} ms, "
              f"max {max(status_times):.0f} ms (target ≤ 150 ms)")

        # And 1 000 000 more in 5-id ingestions ahead of them, so that 200 000 ingestions wait.
        script = post_script(list(range(1, 6)))
        waiting = fill(full, 2_000_000, script)
        print(f"waiting on the full queue: {waiting:,} ids (10 ingestions of 100 000, the rest of 5)")

        # Precision over >= 100 consecutive windows of 200 ms, on both services, with nothing else running:
        # the lateness of a window against its earliest allowed start is the time it takes to admit one.
        marks = {server.name: max([w["seq"] for w in windows_of(server, 1)] or [0]) for server in (empty, full)}
        submit(empty, list(range(1, 400)))
        time.sleep(26)
        admission = {}
        for server in (empty, full):
            recent = [w for w in windows_of(server) if w["seq"] > marks[server.name]]
            late, gaps = lateness(recent, 0.2)
            admission[server.name] = pct(late, 50)
            print(f"{server.name:>5} queue: {len(late)} windows at 200 ms: min gap {min(gaps) * 1000:.0f} ms, "
                  f"lateness p50 {pct(late, 50):.1f} ms, p99 {pct(late, 99):.1f} ms, max {max(late):.1f} ms "
                  f"(target p99 ≤ 20 ms, no gap < 200 ms)")
        print(f"time to admit a window (lateness p50): {waiting:,} waiting / empty = "
              f"{admission['full']:.1f} / {admission['empty']:.1f} ms")

        real_windows = windows_of(real)
        late, gaps = lateness(real_windows, 5.0)
        print(f" real: {len(real_windows)} windows at 5 s: min gap {min(gaps):.3f} s, lateness max {max(late):.1f} ms")

        # A 5-id ingestion waiting at the back of each queue: its status read, and POSTs, on both.
        small = {server.name: submit(server, list(range(1, 6))) for server in (empty, full)}
        rows = []
        for _ in range(args.rounds):
            for server in (empty, full):
                rows.append((server.name, "post", wrk(server.url + "/ingest", args.seconds, script)))
                rows.append((server.name, "status", wrk(f"{server.url}/status/{small[server.name]}", args.seconds)))
        for what, label in (("post", "POST /ingest (5 ids)"), ("status", "GET /status of a waiting 5-id ingestion")):
            med = {name: (statistics.median(r[0] for n, w, r in rows if n == name and w == what),
                          statistics.median(r[2] for n, w, r in rows if n == name and w == what)) for name in ("empty", "full")}
            print(f"{label}, wrk -t2 -c32: empty queue {med['empty'][0]:,.0f} req/s p99 {med['empty'][1]:.2f} ms, "
                  f"{waiting:,} waiting {med['full'][0]:,.0f} req/s p99 {med['full'][1]:.2f} ms; "
                  f"p99 full / empty {med['full'][1] / med['empty'][1]:.2f} (target ≤ 1.5)")
        print(f"resident memory with {waiting:,} ids waiting, after the load: {full.rss_mb():.0f} MB (target ≤ 200 MB)")

        full.kill()
        restart = full.start()
        print(f"restart with {waiting:,} ids waiting: answering HTTP after {restart * 1000:.0f} ms (target ≤ 2 s)")
    finally:
        for server in servers:
            server.stop()
        stores.close()
    if args.store == "postgres":
        instances_bench(args)


def instances_bench(args):
    """Three instances on one PostgreSQL database, windows of 200 ms, POSTs spread over them: every
    window's lateness against its earliest allowed start, whichever instance admits it, and which
    instance that was. A cluster of its own: one that has just taken millions of rows is still
    vacuuming them, which is another benchmark's cost, not the claim's."""
    build()
    stores = Stores("postgres")
    quick = {"Ingestion:Window": "00:00:00.200", "Upstream:SimulatedDelay": "00:00:00.050",
             "Logging:LogLevel:Default": "Warning"}
    three = [stores.server(quick, f"instance{i}", database="shared") for i in range(3)]
    try:
        for server in three:
            server.start()

        def run(windows):  # 3 ids each, POSTed to the instances in turn, then drained
            for k in range(windows):
                submit(three[k % 3], [k * 3 + 1, k * 3 + 2, k * 3 + 3])
            deadline = time.monotonic() + 120
            while request("GET", three[0].url + "/queue")[1]["total_waiting"] > 0 and time.monotonic() < deadline:
                time.sleep(0.5)
            time.sleep(0.5)

        run(30)  # warm-up: a running service has compiled its claim path long ago
        mark = max(w["seq"] for w in windows_of(three[0], 1))
        run(150)  # about 30 s
        windows = [w for w in windows_of(three[0]) if w["seq"] > mark]
        late, gaps = lateness(windows, 0.2)
        owner = dict(stores.cluster.sql(f"SELECT seq, owner FROM windows WHERE seq > {mark}", database="shared"))
        ordered = [owner[str(w["seq"])] for w in sorted(windows, key=lambda w: w["seq"])]
        handovers = sum(1 for prev, cur in zip(ordered, ordered[1:]) if prev != cur)
        per_instance = sorted(ordered.count(name) for name in set(ordered))
        print(f"\nthree instances on one database: {len(late)} windows at 200 ms: min gap {min(gaps) * 1000:.0f} ms, "
              f"lateness p50 {pct(late, 50):.1f} ms, p99 {pct(late, 99):.1f} ms, max {max(late):.1f} ms "
              f"(target: within 50 ms of the allowed start, no gap < 200 ms); windows per instance "
              f"{per_instance}, {handovers} started by another instance than the one before")
        rows = sorted(windows, key=lambda w: w["seq"])
        for label, other in (("by the instance of the window before", False), ("by another instance", True)):
            pairs = [[p, c] for p, c in zip(rows, rows[1:])
                     if p["finished_at"] is not None and (owner[str(p["seq"])] != owner[str(c["seq"])]) == other]
            split = [lateness(pair, 0.2)[0][0] for pair in pairs]
            if split:
                print(f"  started {label}: {len(split)}, lateness p50 {pct(split, 50):.1f} ms, max {max(split):.1f} ms")
    finally:
        for server in three:
            server.stop()
        stores.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scenario", choices=["http", "scale", "compare", "postgres", "instances", "soak", "sweep"])
    parser.add_argument("revision", nargs="?", help="compare: the git revision to measure this checkout against")
    parser.add_argument("--seconds", type=int, default=10, help="length of one wrk run")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per scenario (medians are quoted)")
    parser.add_argument("--store", choices=["sqlite", "postgres"], default="sqlite", help="scale, compare, soak, sweep: the store to run on")
    parser.add_argument("--minutes", type=float, default=10, help="soak: how long")
    parser.add_argument("--posts", type=int, default=20, help="soak: 5-id POSTs per second (and as many status reads)")
    parser.add_argument("--ingestions", type=int, default=100_000, help="sweep: finished ingestions to sweep")
    parser.add_argument("--out", default=os.path.join(ROOT, "bench", "results"), help="soak: folder for the CSV and the chart")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is needed: apt-get install wrk")
    if args.scenario == "compare" and not args.revision:
        sys.exit("compare needs a git revision to measure against, for example: python3 bench/bench.py compare HEAD~1")
    if args.scenario in ("soak", "sweep"):
        import soak  # the long runs, in their own file
        {"soak": soak.soak_bench, "sweep": soak.sweep_bench}[args.scenario](args)
        return
    {"http": http_bench, "scale": scale_bench, "compare": compare_bench, "postgres": postgres_bench,
     "instances": instances_bench}[args.scenario](args)


if __name__ == "__main__":
    main()
