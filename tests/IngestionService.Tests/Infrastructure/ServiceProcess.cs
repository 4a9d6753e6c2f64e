using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.RegularExpressions;

namespace IngestionService.Tests.Infrastructure;

/// <summary>
/// The real service as a child process (<c>dotnet IngestionService.dll</c>), so a test can kill it with
/// SIGKILL the way a crash would and start it again on the same database file.
/// </summary>
public sealed class ServiceProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _output = new();

    private static readonly Regex Listening = new(@"Now listening on: http://[^\s]*:(?<port>\d+)\s*$", RegexOptions.CultureInvariant);
    private HttpClient? _client;

    private ServiceProcess(Process process) => _process = process;

    /// <summary>Where the process said it listens (on loopback); known once <see cref="StartAsync"/> has returned.</summary>
    public Uri BaseAddress => Client.BaseAddress!;

    /// <summary>The operating system's id of the process, as the PostgreSQL store names its windows' owner.</summary>
    public int ProcessId => _process.Id;

    public HttpClient Client => _client ?? throw new InvalidOperationException("The service has not said where it listens yet.");

    /// <summary>What the service wrote to stdout and stderr so far, for failure messages.</summary>
    public string Output
    {
        get
        {
            lock (_output)
            {
                return _output.ToString();
            }
        }
    }

    /// <summary>Runs the service with these settings and arguments until it exits by itself (a start that fails); its exit code and what it printed.</summary>
    public static async Task<(int ExitCode, string Output)> RunToExitAsync(IDictionary<string, string> settings, params string[] arguments)
    {
        var start = StartInfo(settings, null);
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        using var process = Process.Start(start) ?? throw new InvalidOperationException("Could not start the service process.");
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException("The service did not exit within 60 s: it started instead of failing.");
        }

        return (process.ExitCode, (await stdout) + (await stderr));
    }

    /// <summary>
    /// Starts the service and waits until it answers. The port is the one the process itself reports
    /// listening on (Kestrel picks a free one for port 0), never a port chosen beforehand: a port chosen
    /// beforehand can be taken meanwhile by another test's service, whose answers would then look like ours.
    /// </summary>
    public static async Task<ServiceProcess> StartAsync(string connectionString, IDictionary<string, string>? settings = null, bool portFromEnvironment = false, string? workingDirectory = null)
    {
        var start = StartInfo(settings ?? new Dictionary<string, string>(), workingDirectory);
        start.Environment["Storage__ConnectionString"] = connectionString;
        if (portFromEnvironment)
        {
            start.Environment["PORT"] = FreePort().ToString(System.Globalization.CultureInfo.InvariantCulture);
        }
        else
        {
            start.ArgumentList.Add("--urls");
            start.ArgumentList.Add("http://127.0.0.1:0");
        }

        var process = Process.Start(start) ?? throw new InvalidOperationException("Could not start the service process.");
        var service = new ServiceProcess(process);
        process.OutputDataReceived += (_, e) => service.Append(e.Data);
        process.ErrorDataReceived += (_, e) => service.Append(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();

        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (true)
        {
            if (process.HasExited)
            {
                throw new InvalidOperationException($"The service exited with code {process.ExitCode} while starting:\n{service.Output}");
            }

            if (service._client is { } client)
            {
                try
                {
                    using var response = await client.GetAsync(new Uri("/windows?limit=1", UriKind.Relative));
                    if (response.StatusCode == HttpStatusCode.OK)
                    {
                        return service;
                    }
                }
                catch (HttpRequestException)
                {
                    // Listening, but not serving yet.
                }
            }

            if (DateTime.UtcNow > deadline)
            {
                await service.DisposeAsync();
                throw new TimeoutException($"The service did not answer within 30 s:\n{service.Output}");
            }

            await Task.Delay(50);
        }
    }

    /// <summary>SIGKILL: no shutdown code runs, nothing is flushed that was not already committed.</summary>
    public async Task KillAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
        }

        await _process.WaitForExitAsync();
    }

    /// <summary>SIGTERM, as a container runtime or systemd sends it; returns the exit code.</summary>
    public async Task<int> TerminateAsync(TimeSpan timeout)
    {
        using (var kill = Process.Start("kill", ["-TERM", _process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]))
        {
            await kill.WaitForExitAsync();
        }

        using var deadline = new CancellationTokenSource(timeout);
        await _process.WaitForExitAsync(deadline.Token);
        return _process.ExitCode;
    }

    public async ValueTask DisposeAsync()
    {
        await KillAsync();
        _client?.Dispose();
        _process.Dispose();
    }

    private void Append(string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (_output)
        {
            _output.AppendLine(line);
        }

        if (_client is null && Listening.Match(line) is { Success: true } match)
        {
            _client = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{match.Groups["port"].Value}"), Timeout = TimeSpan.FromSeconds(10) };
        }
    }

    /// <summary>The service's binary from this test's output folder, in Production, with the settings as environment variables.</summary>
    private static ProcessStartInfo StartInfo(IDictionary<string, string> settings, string? workingDirectory)
    {
        var directory = AppContext.BaseDirectory;
        var start = new ProcessStartInfo("dotnet")
        {
            WorkingDirectory = workingDirectory ?? directory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.ArgumentList.Add(Path.Combine(directory, "IngestionService.dll"));
        start.Environment.Remove("ASPNETCORE_URLS");
        start.Environment["ASPNETCORE_ENVIRONMENT"] = "Production";
        foreach (var (key, value) in settings)
        {
            start.Environment[key.Replace(":", "__", StringComparison.Ordinal)] = value;
        }

        return start;
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
