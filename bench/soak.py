"""The soak and the sweep benchmarks (run through bench.py):

  soak   compressed time (20 ms windows, 1 ms fetches, a one-minute retention) under a steady load of
         5-id POSTs and status reads, sampled every 10 s: does memory and the store's size plateau?
  sweep  POST latency while the sweeper deletes 100 000 finished ingestions, against the same service
         with the same rows and no sweep running: is there a long write lock?
"""

import csv
import http.client
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

import bench
from postgres import ThrowawayPostgres

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
RETENTION_S = 60  # the least Ingestion:Retention allows


def metric(server, name, labels=""):
    """The sum of every sample of Prometheus metric `name` whose labels contain `labels`."""
    with urllib.request.urlopen(server.url + "/metrics", timeout=10) as response:
        text = response.read().decode()
    total = 0.0
    for match in re.finditer(rf"^{name}(\{{[^}}]*\}})? ([\d.eE+-]+)$", text, re.M):
        if labels in (match.group(1) or ""):
            total += float(match.group(2))
    return total


class Store:
    """Where the service keeps its rows, and how big that is, measured from outside the service."""

    def __init__(self, kind):
        self.kind = kind
        self.folder = tempfile.mkdtemp(prefix=f"bench-soak-{kind}-")
        self.postgres = ThrowawayPostgres().start() if kind == "postgres" else None

    def server(self, settings, name):
        if self.postgres is None:
            return bench.Server(bench.SERVICE_DLL, settings, data_dir=self.folder, name=name)
        settings = dict(settings, **{"Storage:Provider": "Postgres", "Storage:ConnectionString": self.postgres.connection_string})
        return bench.Server(bench.SERVICE_DLL, settings, name=name)

    def size_bytes(self):
        """The rows' footprint: SQLite's database file, or PostgreSQL's tables with their indexes and TOAST."""
        if self.postgres is None:
            return os.path.getsize(os.path.join(self.folder, "ingestion.db"))
        return int(self.postgres.sql("SELECT sum(pg_total_relation_size(oid)) FROM pg_class WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace")[0][0])

    def log_bytes(self):
        """The write-ahead log beside it: SQLite's -wal file (the checkpointer brings it back once it passes
        64 MiB), or PostgreSQL's pg_wal folder (recycled by its checkpoints, max_wal_size 1 GB by default)."""
        if self.postgres is None:
            wal = os.path.join(self.folder, "ingestion.db-wal")
            return os.path.getsize(wal) if os.path.exists(wal) else 0
        return int(self.postgres.sql("SELECT coalesce(sum(size), 0) FROM pg_ls_waldir()")[0][0])

    def rows(self):
        if self.postgres is None:
            import sqlite3
            with sqlite3.connect(f"file:{self.folder}/ingestion.db?mode=ro", uri=True, timeout=5) as db:
                tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")]
                return {t: db.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables}
        tables = [r[0] for r in self.postgres.sql("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")]
        counts = self.postgres.sql(" UNION ALL ".join(f"SELECT '{t}', count(*), pg_total_relation_size('\"{t}\"') FROM \"{t}\"" for t in tables))
        # Per table, rows and bytes (indexes and TOAST included): which of them, if any, keeps growing.
        return {k: v for t, n, size in counts for k, v in ((t, int(n)), (f"{t}_kb", int(size) // 1024))}

    def close(self):
        if self.postgres is not None:
            self.postgres.stop()
        shutil.rmtree(self.folder, ignore_errors=True)


class Load:
    """A steady, paced load: POSTs of 5 new ids and GETs of the status of a recent ingestion, each on its
    own keep-alive connection. Every 202 is remembered with the time it came back."""

    def __init__(self, server, posts_per_second, reads_per_second):
        self.server = server
        self.rates = {"post": posts_per_second, "read": reads_per_second}
        self.lock = threading.Lock()
        self.acked = []         # (ingestion id, time.time() of the 202)
        self.post_ms = []       # (time.monotonic(), latency ms) of every POST
        self.errors = {"5xx": 0, "socket": 0, "unexpected": 0}
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(kind,), daemon=True) for kind in self.rates]
        self.next_id = 0

    def start(self):
        for thread in self.threads:
            thread.start()

    def stop(self):
        self.stopping.set()
        for thread in self.threads:
            thread.join()

    def _error(self, kind):
        with self.lock:
            self.errors[kind] += 1

    def _run(self, kind):
        connection = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=30)
        interval, due = 1 / self.rates[kind], time.monotonic()
        while not self.stopping.is_set():
            due += interval
            time.sleep(max(0.0, due - time.monotonic()))
            try:
                if kind == "post":
                    self._post(connection)
                else:
                    self._read(connection)
            except (OSError, http.client.HTTPException):
                self._error("socket")
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=30)

    def _post(self, connection):
        with self.lock:
            first, self.next_id = self.next_id + 1, self.next_id + 5
        body = json.dumps({"ids": list(range(first, first + 5)), "priority": random.choice(["HIGH", "MEDIUM", "LOW"])})
        started = time.monotonic()
        connection.request("POST", "/ingest", body, {"Content-Type": "application/json"})
        response = connection.getresponse()
        payload = response.read()
        elapsed = (time.monotonic() - started) * 1000
        with self.lock:
            self.post_ms.append((started, elapsed))
            if response.status == 202:
                self.acked.append((json.loads(payload)["ingestion_id"], time.time()))
        if response.status != 202:
            self._error("5xx" if response.status >= 500 else "unexpected")

    def _read(self, connection):
        with self.lock:
            recent = [a for a in self.acked[-200:] if time.time() - a[1] < RETENTION_S / 2]
        if not recent:
            return
        connection.request("GET", f"/status/{random.choice(recent)[0]}")
        response = connection.getresponse()
        response.read()
        if response.status != 200:
            self._error("5xx" if response.status >= 500 else "unexpected")

    def post_latencies_since(self, since):
        with self.lock:
            return [ms for t, ms in self.post_ms if t >= since]


def trend_rise(points):
    """The rise a least-squares line through (t, value) points makes over their span."""
    mean_t = statistics.fmean(t for t, _ in points)
    mean_v = statistics.fmean(v for _, v in points)
    slope = sum((t - mean_t) * (v - mean_v) for t, v in points) / sum((t - mean_t) ** 2 for t, _ in points)
    return slope * (points[-1][0] - points[0][0])


def verify(server, load):
    """Every acknowledged ingestion completed, or was purged after its retention. Returns the failures."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and bench.request("GET", server.url + "/queue")[1]["total_waiting"] > 0:
        time.sleep(0.5)
    failures, counts = [], {"completed": 0, "purged": 0}
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    for ingestion, acked_at in load.acked:
        for attempt in range(50):
            connection.request("GET", f"/status/{ingestion}")
            response = connection.getresponse()
            body = response.read()
            if response.status == 200 and json.loads(body)["status"] == "completed":
                counts["completed"] += 1
                break
            if response.status == 404 and time.time() - acked_at > RETENTION_S:
                counts["purged"] += 1
                break
            if response.status != 200:
                failures.append(f"{ingestion} (acknowledged {time.time() - acked_at:.0f} s ago) answers {response.status}")
                break
            time.sleep(0.1)  # still running its last window
        else:
            failures.append(f"{ingestion} did not complete")
    return counts, failures


def chart(samples, path, title):
    """Three panels over time (memory, store size, POST p99 and p50) as an SVG, turned into a PNG by the
    headless Chromium the dashboard's tests use already (apt-get install chromium)."""
    width, panel, left, top = 900, 230, 70, 40
    minutes = [s["t_s"] / 60 for s in samples]
    x = lambda m: left + (width - left - 30) * m / max(minutes[-1], 1e-9)
    reference = min(samples, key=lambda s: abs(s["t_s"] - 180))
    svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{top + 3 * panel + 30}" font-family="sans-serif" font-size="12">',
           '<rect width="100%" height="100%" fill="white"/>', f'<text x="{width / 2}" y="22" text-anchor="middle" font-size="15">{title}</text>']
    panels = ((("rss_mb", "#1f77b4"),), (("store_mb", "#1f77b4"),), (("post_p99_ms", "#1f77b4"), ("post_p50_ms", "#ff7f0e")))
    labels = ("resident memory, MB", "store size (the database file, or the tables), MB", "POST p99 (blue) and p50 (orange), ms")
    for i, (series, label) in enumerate(zip(panels, labels)):
        y0 = top + i * panel
        bound = 1.1 * reference[series[0][0]] if i < 2 else None
        high = max([s[k] for s in samples for k, _ in series] + ([bound] if bound else [])) * 1.15 or 1
        y = lambda v: y0 + panel - 30 - (panel - 45) * v / high
        svg.append(f'<text x="{left}" y="{y0 + 10}">{label}</text>')
        svg.append(f'<line x1="{left}" y1="{y(0)}" x2="{width - 30}" y2="{y(0)}" stroke="#888"/>')
        for tick in range(5):
            value = high / 1.15 * tick / 4
            svg.append(f'<text x="{left - 6}" y="{y(value) + 4}" text-anchor="end" fill="#555">{value:.3g}</text>')
            svg.append(f'<line x1="{left}" y1="{y(value)}" x2="{width - 30}" y2="{y(value)}" stroke="#eee"/>')
        if bound:
            svg.append(f'<line x1="{left}" y1="{y(bound)}" x2="{width - 30}" y2="{y(bound)}" stroke="#d62728" stroke-dasharray="6 4"/>')
            svg.append(f'<text x="{width - 32}" y="{y(bound) - 4}" text-anchor="end" fill="#d62728">1.1 × minute 3</text>')
        for key, colour in series:
            points = " ".join(f"{x(m):.1f},{y(s[key]):.1f}" for m, s in zip(minutes, samples))
            svg.append(f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="2"/>')
        for m in range(int(minutes[-1]) + 1):
            svg.append(f'<text x="{x(m)}" y="{y(0) + 15}" text-anchor="middle" fill="#555">{m}</text>')
    svg.append(f'<text x="{width / 2}" y="{top + 3 * panel + 20}" text-anchor="middle">minutes</text></svg>')
    with open(path + ".svg", "w") as file:
        file.write("\n".join(svg))
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        print(f"no chromium to turn {path}.svg into a PNG: apt-get install chromium", file=sys.stderr)
        return
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", f"--screenshot={path}.png",
                    f"--window-size={width},{top + 3 * panel + 30}", "file://" + os.path.abspath(path + ".svg")],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def soak_bench(args):
    bench.build(projects=("src/IngestionService",))
    store = Store(args.store)
    settings = {"Ingestion:Window": "00:00:00.020", "Upstream:SimulatedDelay": "00:00:00.001",
                "Ingestion:Retention": "00:01:00", "Ingestion:IdempotencyKeyLifetime": "00:01:00",
                "Logging:LogLevel:Default": "Warning"}
    server = store.server(settings, "soak")
    load = Load(server, posts_per_second=args.posts, reads_per_second=args.posts)
    samples, ok = [], True
    try:
        server.start()
        print(f"soak on {args.store}: {args.minutes} min, {args.posts} POSTs/s of 5 ids and {args.posts} status reads/s, "
              f"20 ms windows of 3 ids (capacity {3 / 0.020:.0f} ids/s), retention 1 min; {time.strftime('%Y-%m-%d %H:%M')}", file=sys.stderr)
        started = time.monotonic()
        load.start()
        windows_before, last = metric(server, "ingestion_windows_started_total"), started
        while time.monotonic() - started < args.minutes * 60:
            time.sleep(max(0.0, last + 10 - time.monotonic()))
            now = time.monotonic()
            latencies = load.post_latencies_since(last) or [float("nan")]
            windows = metric(server, "ingestion_windows_started_total")
            sample = {"t_s": round(now - started), "rss_mb": round(server.rss_mb(), 1), "store_mb": round(store.size_bytes() / 2**20, 2),
                      "log_mb": round(store.log_bytes() / 2**20, 2),
                      "post_p50_ms": round(bench.pct(latencies, 50), 2), "post_p99_ms": round(bench.pct(latencies, 99), 2),
                      "windows_per_s": round((windows - windows_before) / (now - last), 1),
                      "acked": len(load.acked), "errors": sum(load.errors.values()),
                      "purged_ingestions": int(metric(server, "ingestion_store_purged_total", 'ingestion_table="ingestions"')),
                      **{f"rows_{t}": n for t, n in store.rows().items()}}
            samples.append(sample)
            windows_before, last = windows, now
            print("  ".join(f"{k}={v}" for k, v in sample.items()), file=sys.stderr)
        load.stop()
        counts, failures = verify(server, load)
    finally:
        load.stopping.set()
        server.stop()
        store.close()

    os.makedirs(args.out, exist_ok=True)
    name = os.path.join(args.out, f"soak-{args.store}")
    with open(name + ".csv", "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(dict.fromkeys(k for s in samples for k in s)))
        writer.writeheader()
        writer.writerows(samples)
    chart(samples, name, f"soak on {args.store}: {args.posts} POSTs/s, 20 ms windows, retention 1 min ({time.strftime('%Y-%m-%d')})")

    print(f"\nsoak on {args.store}, {args.minutes} min: {len(load.acked)} ingestions acknowledged, {counts['completed']} completed "
          f"and {counts['purged']} purged after the retention at the end; errors {load.errors}; samples in {name}.csv, chart {name}.png (.svg)")
    ok = not failures and not any(load.errors.values())
    for failure in failures[:10]:
        print("  lost or unfinished:", failure)
    reference = min(samples, key=lambda s: abs(s["t_s"] - 180))
    tail = [s for s in samples if s["t_s"] >= samples[-1]["t_s"] - 120]
    for key, label in (("rss_mb", "resident memory"), ("store_mb", "store size")):
        peak = max(s[key] for s in tail)
        rise = trend_rise([(s["t_s"], s[key]) for s in tail])
        # No upward trend: the fitted line over the last two minutes rises by less than 5 % of the
        # minute-3 value (a rise that, kept up, would cross the 1.1 × bound within four minutes).
        passed = peak <= 1.1 * reference[key] and rise < 0.05 * reference[key]
        ok &= passed
        print(f"{label}: minute 3 {reference[key]:.1f} MB, last two minutes max {peak:.1f} MB "
              f"({peak / reference[key]:.2f} ×, bound 1.1), fitted rise {rise:+.2f} MB (bound < {0.05 * reference[key]:.2f}): {'ok' if passed else 'FAIL'}")
    log_bound = 64 + 8 if args.store == "sqlite" else 1024  # MiB: the restart size and a pass's worth of frames; max_wal_size
    log_peak = max(s["log_mb"] for s in samples)
    ok &= log_peak <= log_bound
    print(f"write-ahead log: at most {log_peak:.1f} MB (bound {log_bound} MB, where it is brought back): {'ok' if log_peak <= log_bound else 'FAIL'}")
    print("PASS" if ok else "FAIL")
    if not ok:
        sys.exit(1)


def fill(server, ingestions, threads=4):
    """Submits `ingestions` 5-id ingestions as fast as `threads` keep-alive connections go."""
    def run(count):
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        body = json.dumps({"ids": [1, 2, 3, 4, 5], "priority": "LOW"})
        for _ in range(count):
            connection.request("POST", "/ingest", body, {"Content-Type": "application/json"})
            response = connection.getresponse()
            response.read()
            if response.status != 202:
                sys.exit(f"bench: a fill POST answered {response.status}")
    workers = [threading.Thread(target=run, args=(ingestions // threads,)) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()


def sweep_bench(args):
    """Two services side by side on the same machine, each given the same finished 5-id ingestions and the
    same light steady load (200 POSTs/s, paced, not saturating: a long write lock shows as a latency
    spike, not as shared CPU). One has a retention that passes over its ingestions; the other keeps them.
    POST latencies of both are compared over the same interval: while the first one's sweeper deletes
    what was filled (its own purge counter, polled every 100 ms)."""
    bench.build(projects=("src/IngestionService",))
    stores = [Store(args.store), Store(args.store)]
    settings = {"Ingestion:Window": "00:00:00.010", "Ingestion:BatchSize": "1000", "Upstream:SimulatedDelay": "00:00:00",
                "Ingestion:IdempotencyKeyLifetime": "00:01:00", "Logging:LogLevel:Default": "Warning"}
    sweeping = stores[0].server(dict(settings, **{"Ingestion:Retention": "00:03:00"}), "sweeping")
    keeping = stores[1].server(dict(settings, **{"Ingestion:Retention": "7.00:00:00"}), "keeping")
    servers = (sweeping, keeping)
    purged = lambda: metric(sweeping, "ingestion_store_purged_total", 'ingestion_table="ingestions"')
    loads = []
    try:
        for server in servers:
            server.start()
        filled = time.monotonic()
        fillers = [threading.Thread(target=fill, args=(server, args.ingestions)) for server in servers]
        for filler in fillers:
            filler.start()
        for filler in fillers:
            filler.join()
        for server in servers:
            while bench.request("GET", server.url + "/queue")[1]["total_waiting"] > 0:
                time.sleep(0.5)
        print(f"sweep on {args.store}: {args.ingestions} ingestions submitted to each service and finished in "
              f"{time.monotonic() - filled:.0f} s; store {stores[0].size_bytes() / 2**20:.0f} MB; waiting for the "
              f"retention (3 min) to pass over them on one", file=sys.stderr)
        loads = [Load(server, posts_per_second=200, reads_per_second=20) for server in servers]
        for load in loads:
            load.start()
        base = purged()
        polls = []  # (monotonic, ingestions purged so far)
        while not polls or polls[-1][1] - base < args.ingestions:  # until the sweep has deleted as many as were filled
            polls.append((time.monotonic(), purged()))
            if time.monotonic() - filled > 1200:
                sys.exit("bench: the sweep did not delete the filled ingestions within 20 minutes")
            time.sleep(0.1)
        for load in loads:
            load.stop()
    finally:
        for load in loads:
            load.stopping.set()
        for server, store in zip(servers, stores):
            server.stop()
            store.close()
    start = max(t for t, n in polls if n == base)  # the last poll that saw nothing purged yet
    end = polls[-1][0]                             # the first that saw as many purged as were filled
    before = [[ms for t, ms in load.post_ms if start - 30 < t < start] for load in loads]
    during = [[ms for t, ms in load.post_ms if start <= t and t + ms / 1000 <= end] for load in loads]
    print(f"\nsweep on {args.store}: {polls[-1][1] - base:.0f} ingestions purged in {end - start:.1f} s "
          f"(batches of at most 500 ids, each followed by a pause 50 times as long); both services under "
          f"200 POSTs/s of 5 ids; {time.strftime('%Y-%m-%d %H:%M')}\n")
    print("| POSTs | service | count | p50 ms | p99 ms | max ms |")
    print("|---|---|---|---|---|---|")
    for label, phase in (("30 s before the sweep", before), ("during the sweep", during)):
        for server, values in zip(servers, phase):
            print(f"| {label} | {server.name} | {len(values)} | {bench.pct(values, 50):.2f} | {bench.pct(values, 99):.2f} | {max(values):.2f} |")
    ratio = bench.pct(during[0], 99) / bench.pct(during[1], 99)
    errors = [load.errors for load in loads]
    print(f"\nPOST p99 during the sweep, sweeping / keeping: {ratio:.2f} (target ≤ 1.5); before it: "
          f"{bench.pct(before[0], 99) / bench.pct(before[1], 99):.2f}; errors {errors}")
    if ratio > 1.5 or any(any(e.values()) for e in errors):
        print("FAIL")
        sys.exit(1)
    print("PASS")
