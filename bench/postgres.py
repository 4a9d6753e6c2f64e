"""A throwaway PostgreSQL cluster for the benchmarks: initdb into a temporary folder, started on a free
loopback port with Debian's server binaries (apt-get install postgresql), stopped and deleted at the end.
Durability stays at PostgreSQL's defaults (fsync and synchronous_commit on): a benchmark measures what a
production server would do. As root the cluster belongs to the package's 'postgres' user, as in .ci/run."""

import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile


def _bin_dir():
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: [int(x) for x in p.split("/")[4].split(".")])
    if not found:
        sys.exit("PostgreSQL is needed for this benchmark: apt-get install postgresql")
    return found[-1]


class ThrowawayPostgres:
    def __init__(self, settings=None):
        self.settings = dict(settings or {})
        self.bin = _bin_dir()
        self.dir = tempfile.mkdtemp(prefix="bench-pg-")
        self.root = os.geteuid() == 0
        if self.root:
            shutil.chown(self.dir, "postgres")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.connection_string = f"Host=127.0.0.1;Port={self.port};Username=postgres;Database=ingestion"

    def _run(self, *command, **kwargs):
        if self.root:
            command = ("runuser", "-u", "postgres", "--") + command
        return subprocess.run(command, cwd="/", check=True, **kwargs)

    def start(self):
        data = os.path.join(self.dir, "data")
        self._run(os.path.join(self.bin, "initdb"), "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8",
                  stdout=subprocess.DEVNULL)
        self._run(os.path.join(self.bin, "pg_ctl"), "-D", data, "-l", os.path.join(self.dir, "server.log"), "-w",
                  "-t", "60", "-o", f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c max_connections=200"
                  + "".join(f" -c {key}={value}" for key, value in self.settings.items()),
                  "start", stdout=subprocess.DEVNULL)
        self.sql("CREATE DATABASE ingestion", database="postgres")
        return self

    def sql(self, statement, database="ingestion"):
        """Runs one statement with psql and returns its rows, each a list of column strings."""
        out = self._run(os.path.join(self.bin, "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
                        "-d", database, "-XAtF", "\t", "-v", "ON_ERROR_STOP=1", "-c", statement,
                        capture_output=True, text=True).stdout
        return [line.split("\t") for line in out.splitlines() if line]

    def stop(self):
        try:
            self._run(os.path.join(self.bin, "pg_ctl"), "-D", os.path.join(self.dir, "data"), "-m", "fast", "stop",
                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)
