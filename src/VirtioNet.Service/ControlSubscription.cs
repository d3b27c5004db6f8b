using System.Net.Sockets;
using System.Text;
using System.Text.Json.Nodes;

namespace VirtioNet.Service;

/// <summary>
/// The client side of a streaming reply (docs/CONTROL.md): the instance's first reply, then its lines as they come.
/// Disposing it closes the connection, which ends the stream on the instance's side.
/// </summary>
internal sealed class ControlSubscription : IDisposable
{
    private readonly string _name;
    private readonly Socket _socket;
    private readonly StreamReader _reader;

    internal ControlSubscription(string name, Socket socket)
    {
        _name = name;
        _socket = socket;
        _reader = new StreamReader(new NetworkStream(socket, ownsSocket: false), new UTF8Encoding(false));
    }

    /// <summary>The instance's first reply (ok).</summary>
    public JsonObject Reply { get; internal set; } = [];

    /// <summary>
    /// The next line, waiting for it; null when the instance ended the stream (it stopped) or <paramref name="cancellationToken"/>
    /// fired. Throws <see cref="ServiceException"/> for a line that is not a JSON object.
    /// </summary>
    public JsonObject? Read(CancellationToken cancellationToken = default)
    {
        using CancellationTokenRegistration registration = cancellationToken.Register(Interrupt);
        string? line;
        try
        {
            line = _reader.ReadLine();
        }
        catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException)
        {
            if (cancellationToken.IsCancellationRequested)
            {
                return null;
            }

            throw new ServiceException($"instance '{_name}' dropped the connection: {e.Message}");
        }

        if (line is null || cancellationToken.IsCancellationRequested)
        {
            return null;
        }

        try
        {
            return JsonNode.Parse(line) as JsonObject ?? throw new ServiceException($"instance '{_name}' sent something that is not a JSON object");
        }
        catch (System.Text.Json.JsonException e)
        {
            throw new ServiceException($"instance '{_name}' sent something that is not JSON: {e.Message}");
        }
    }

    // Ends a read in progress from another thread (Ctrl-C).
    private void Interrupt()
    {
        try
        {
            _socket.Shutdown(SocketShutdown.Both);
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            // Already closed.
        }
    }

    public void Dispose()
    {
        _reader.Dispose();
        _socket.Dispose();
    }
}
