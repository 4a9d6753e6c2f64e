using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace IngestionService.Tests.Infrastructure;

/// <summary>
/// A PostgreSQL server of the test's own (initdb into a temporary folder, on a free loopback port, with
/// Debian's server binaries), for what the shared test server must not see: a restart. As root the
/// cluster belongs to the package's <c>postgres</c> user, as in <c>.ci/run</c>. Without the binaries the
/// test is skipped locally and fails on CI, like the shared server's tests.
/// </summary>
public sealed class ThrowawayPostgresCluster : IAsyncDisposable
{
    private readonly string _bin;
    private readonly DirectoryInfo _folder;
    private readonly int _port;

    private ThrowawayPostgresCluster(string bin, DirectoryInfo folder, int port) => (_bin, _folder, _port) = (bin, folder, port);

    public string ConnectionString => string.Create(CultureInfo.InvariantCulture, $"Host=127.0.0.1;Port={_port};Username=postgres;Database=postgres");

    private string Data => Path.Combine(_folder.FullName, "data");

    public static async Task<ThrowawayPostgresCluster> StartAsync()
    {
        TempPostgresDatabase.RequireServer(); // the same rule for a missing PostgreSQL: skip locally, fail on CI
        var bin = Directory.Exists("/usr/lib/postgresql")
            ? Directory.GetDirectories("/usr/lib/postgresql").Select(version => Path.Combine(version, "bin"))
                .Where(path => File.Exists(Path.Combine(path, "initdb"))).OrderBy(path => path, StringComparer.Ordinal).LastOrDefault()
            : null;
        if (bin is null)
        {
            Assert.Fail("PostgreSQL's server binaries are not in /usr/lib/postgresql/*/bin: apt-get install postgresql");
        }

        var folder = Directory.CreateTempSubdirectory("ingestion-test-cluster-");
        using (var listener = new TcpListener(IPAddress.Loopback, 0))
        {
            listener.Start();
            var cluster = new ThrowawayPostgresCluster(bin, folder, ((IPEndPoint)listener.LocalEndpoint).Port);
            listener.Stop();
            if (IsRoot)
            {
                await RunAsync("chown", "postgres", folder.FullName);
            }

            await cluster.PgAsync("initdb", "-D", cluster.Data, "-U", "postgres", "--auth=trust", "-E", "UTF8");
            await cluster.PgAsync("pg_ctl", "-D", cluster.Data, "-l", Path.Combine(folder.FullName, "server.log"), "-w", "-t", "60", "-o",
                string.Create(CultureInfo.InvariantCulture, $"-p {cluster._port} -k {folder.FullName} -c listen_addresses=127.0.0.1 -c fsync=off"), "start");
            return cluster;
        }
    }

    /// <summary><c>pg_ctl restart -m fast</c>: every session is cut, the server is down for a moment, then up with the same data.</summary>
    public Task RestartAsync() => PgAsync("pg_ctl", "-D", Data, "-m", "fast", "-w", "-t", "60", "restart");

    public async ValueTask DisposeAsync()
    {
        try
        {
            await PgAsync("pg_ctl", "-D", Data, "-m", "immediate", "-w", "stop");
        }
        finally
        {
            _folder.Delete(recursive: true);
        }
    }

    private static bool IsRoot => string.Equals(Environment.UserName, "root", StringComparison.Ordinal);

    private Task PgAsync(string program, params string[] arguments) =>
        IsRoot ? RunAsync("runuser", ["-u", "postgres", "--", Path.Combine(_bin, program), .. arguments]) : RunAsync(Path.Combine(_bin, program), arguments);

    private static async Task RunAsync(string program, params string[] arguments)
    {
        var start = new ProcessStartInfo(program) { WorkingDirectory = "/", RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"{program} {string.Join(' ', arguments)} exited with {process.ExitCode}: {await output}{await error}");
        }
    }
}
