using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace VirtioNet.Service;

/// <summary>
/// The control socket of one running instance: a unix stream socket <c>DIRECTORY/NAME.sock</c> (mode 0600) speaking
/// one JSON object per line each way (docs/CONTROL.md). Each client is served on its own task; a client that sends
/// something that is not a request gets an error reply, one that sends too long a line or goes away is dropped, and
/// neither disturbs the service or the other clients. A streaming command (<see cref="ControlStream"/>) answers with one
/// line and then sends lines until the client disconnects; the connection then ends.
/// </summary>
internal sealed class ControlServer : IDisposable
{
    /// <summary>Where instances put their sockets unless told otherwise.</summary>
    public const string DefaultDirectory = "/run/vnet";

    // A request longer than this is not one: the client is dropped.
    private const int MaxRequestLength = 64 * 1024;

    private readonly Socket _listener;
    private readonly Func<string, JsonObject, JsonObject> _handle;

    // Opens the stream of a streaming command; null for a command that answers once (then _handle answers).
    private readonly Func<string, JsonObject, ControlStream?>? _openStream;
    private readonly Action<string> _log;
    private readonly CancellationTokenSource _stop = new();
    private readonly Thread _acceptor;
    private int _clients;

    private ControlServer(string path, Socket listener, Func<string, JsonObject, JsonObject> handle, Func<string, JsonObject, ControlStream?>? openStream, Action<string> log)
    {
        SocketPath = path;
        _listener = listener;
        _handle = handle;
        _openStream = openStream;
        _log = log;
        _acceptor = new Thread(Accept) { IsBackground = true, Name = "vnet control" };
    }

    /// <summary>The socket's path.</summary>
    public string SocketPath { get; }

    /// <summary>Clients connected right now.</summary>
    public int Clients => Volatile.Read(ref _clients);

    /// <summary>The socket path of instance <paramref name="name"/> in <paramref name="directory"/>.</summary>
    public static string PathFor(string directory, string name) => Path.Combine(directory, name + ".sock");

    /// <summary>
    /// Binds the socket of instance <paramref name="name"/>. A socket file that nobody answers (left by a killed
    /// instance) is removed and replaced; one that answers means the name is taken. <paramref name="handle"/> gets each
    /// request's command and object and returns the reply (it may throw <see cref="ServiceException"/> for an error reply).
    /// <paramref name="openStream"/>, when given, is asked first: a stream it returns answers the request instead.
    /// </summary>
    public static ControlServer Start(string directory, string name, Func<string, JsonObject, JsonObject> handle, Action<string> log, Func<string, JsonObject, ControlStream?>? openStream = null)
    {
        if (name.Length == 0 || name.Contains('/', StringComparison.Ordinal) || name.StartsWith('.'))
        {
            throw new ServiceException($"instance name '{name}' cannot name a control socket (no '/', no leading '.')");
        }

        Directory.CreateDirectory(directory);
        string path = PathFor(directory, name);
        if (File.Exists(path) || Directory.Exists(path))
        {
            if (IsAnswered(path))
            {
                throw new ServiceException($"instance '{name}' is already running (its control socket {path} answers)");
            }

            File.Delete(path);
            log($"removed the stale control socket {path} (nobody answered it)");
        }

        var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            listener.Bind(new UnixDomainSocketEndPoint(path));
            // The service runs on Linux only (TUN); the guard is for the platform analyzer.
            if (!OperatingSystem.IsWindows())
            {
                File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
            }
            listener.Listen(16);
        }
        catch (Exception e) when (e is SocketException or IOException or UnauthorizedAccessException)
        {
            listener.Dispose();
            throw new ServiceException($"cannot make the control socket {path}: {e.Message}", e);
        }

        var server = new ControlServer(path, listener, handle, openStream, log);
        server._acceptor.Start();
        return server;
    }

    /// <summary>Whether something accepts connections on the socket at <paramref name="path"/>.</summary>
    public static bool IsAnswered(string path)
    {
        using var probe = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            probe.Connect(new UnixDomainSocketEndPoint(path));
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }

    private void Accept()
    {
        while (!_stop.IsCancellationRequested)
        {
            Socket client;
            try
            {
                client = _listener.Accept();
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException)
            {
                return;
            }

            _ = Task.Run(() => Serve(client));
        }
    }

    private async Task Serve(Socket client)
    {
        Interlocked.Increment(ref _clients);
        try
        {
            using (client)
            await using (var stream = new NetworkStream(client, ownsSocket: false))
            {
                var reader = new StreamReader(stream, new UTF8Encoding(false), false, 4096);
                while (!_stop.IsCancellationRequested)
                {
                    string? line = await ReadLine(reader, _stop.Token).ConfigureAwait(false);
                    if (line is null)
                    {
                        return;
                    }

                    if (line.Length == 0)
                    {
                        continue;
                    }

                    if (TryOpenStream(line, out JsonObject? refused) is { } opened)
                    {
                        await Stream(opened, stream, reader).ConfigureAwait(false);
                        return;
                    }

                    JsonObject reply = refused ?? Answer(line);
                    byte[] bytes = Encoding.UTF8.GetBytes(reply.ToJsonString() + "\n");
                    await stream.WriteAsync(bytes, _stop.Token).ConfigureAwait(false);
                }
            }
        }
        catch (Exception e) when (e is IOException or SocketException or OperationCanceledException or ObjectDisposedException or InvalidDataException)
        {
            // The client went away, or sent no line within the limit: dropped; the others go on.
        }
        finally
        {
            Interlocked.Decrement(ref _clients);
        }
    }

    // One line, or null at the end of the stream; a line longer than the limit is InvalidDataException.
    private static async Task<string?> ReadLine(StreamReader reader, CancellationToken cancellationToken)
    {
        var line = new StringBuilder();
        var one = new char[1];
        while (true)
        {
            int read = await reader.ReadAsync(one, cancellationToken).ConfigureAwait(false);
            if (read == 0)
            {
                return line.Length == 0 ? null : line.ToString();
            }

            if (one[0] == '\n')
            {
                return line.ToString().TrimEnd('\r');
            }

            if (line.Length >= MaxRequestLength)
            {
                throw new InvalidDataException("request too long");
            }

            line.Append(one[0]);
        }
    }

    // The stream of a streaming request, or null (with refused set when the stream's command refused the request).
    private ControlStream? TryOpenStream(string line, out JsonObject? refused)
    {
        refused = null;
        if (_openStream is null || !TryParse(line, out JsonObject? request, out string? command, out _))
        {
            return null;
        }

        try
        {
            return _openStream(command, request);
        }
        catch (Exception e) when (e is ServiceException or ArgumentException or InvalidOperationException or IOException)
        {
            refused = Error(e.Message);
            return null;
        }
    }

    // Sends the stream's reply and then its lines until it ends, the client goes away or the server stops. The client
    // says nothing more on a streaming connection: what it sends is read and ignored, and its end of the connection ends
    // the stream (a killed client is noticed even while the stream has nothing to send).
    private async Task Stream(ControlStream opened, NetworkStream network, StreamReader reader)
    {
        using var gone = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
        Task watch = WatchForEnd(reader, gone);
        try
        {
            JsonObject reply = opened.Reply;
            reply["ok"] = true;
            reply["stream"] = true;
            await network.WriteAsync(Encoding.UTF8.GetBytes(reply.ToJsonString() + "\n"), gone.Token).ConfigureAwait(false);
            while (await opened.NextAsync(gone.Token).ConfigureAwait(false) is { } line)
            {
                await network.WriteAsync(Encoding.UTF8.GetBytes(line.ToJsonString() + "\n"), gone.Token).ConfigureAwait(false);
            }
        }
        finally
        {
            await gone.CancelAsync().ConfigureAwait(false);
            opened.Dispose();
            await watch.ConfigureAwait(false);
        }
    }

    private static async Task WatchForEnd(StreamReader reader, CancellationTokenSource gone)
    {
        var ignored = new char[256];
        try
        {
            while (await reader.ReadAsync(ignored, gone.Token).ConfigureAwait(false) > 0)
            {
            }
        }
        catch (Exception e) when (e is IOException or SocketException or OperationCanceledException or ObjectDisposedException)
        {
            // Gone, or the stream ended first.
        }
        finally
        {
            try
            {
                await gone.CancelAsync().ConfigureAwait(false);
            }
            catch (ObjectDisposedException)
            {
            }
        }
    }

    private static bool TryParse(string line, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out JsonObject? request, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out string? command, out JsonObject? error)
    {
        request = null;
        command = null;
        try
        {
            request = JsonNode.Parse(line) as JsonObject ?? throw new JsonException("not a JSON object");
        }
        catch (JsonException e)
        {
            error = Error($"not a request: {e.Message}");
            return false;
        }

        if (request["command"] is not JsonValue value || !value.TryGetValue(out command))
        {
            error = Error("a request needs \"command\" (a string)");
            return false;
        }

        error = null;
        return true;
    }

    private JsonObject Answer(string line)
    {
        if (!TryParse(line, out JsonObject? request, out string? command, out JsonObject? error))
        {
            return error!;
        }

        try
        {
            JsonObject reply = _handle(command, request);
            reply["ok"] = true;
            return reply;
        }
        catch (ServiceException e)
        {
            return Error(e.Message);
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException or NotSupportedException or VirtioNet.Core.VirtioException)
        {
            _log($"control: '{command}' failed: {e.Message}");
            return Error(e.Message);
        }
    }

    private static JsonObject Error(string message) => new() { ["ok"] = false, ["error"] = message };

    /// <summary>Stops accepting, drops the clients and removes the socket file.</summary>
    public void Dispose()
    {
        _stop.Cancel();
        _listener.Dispose();
        _acceptor.Join(TimeSpan.FromSeconds(5));
        try
        {
            File.Delete(SocketPath);
        }
        catch (IOException)
        {
            // Already gone.
        }

        _stop.Dispose();
    }
}
