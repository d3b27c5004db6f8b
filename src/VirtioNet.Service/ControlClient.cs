using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace VirtioNet.Service;

/// <summary>
/// The client side of the control socket (docs/CONTROL.md): finds running instances and asks them one request each.
/// A socket file nobody answers is stale (its instance was killed): it is removed, never trusted.
/// </summary>
internal static class ControlClient
{
    // How long a running instance may take to answer.
    private static readonly TimeSpan ReplyTimeout = TimeSpan.FromSeconds(10);

    /// <summary>
    /// Sends <paramref name="request"/> to instance <paramref name="name"/> and returns its reply (ok or not). Throws
    /// <see cref="ServiceException"/> when no such instance runs (a stale socket is removed first).
    /// </summary>
    public static JsonObject Ask(string directory, string name, JsonObject request)
    {
        using Socket socket = Connect(directory, name);
        socket.ReceiveTimeout = (int)ReplyTimeout.TotalMilliseconds;
        socket.SendTimeout = (int)ReplyTimeout.TotalMilliseconds;
        try
        {
            socket.Send(Encoding.UTF8.GetBytes(request.ToJsonString() + "\n"));
            using var reader = new StreamReader(new NetworkStream(socket, ownsSocket: false), new UTF8Encoding(false));
            string line = reader.ReadLine() ?? throw new ServiceException($"instance '{name}' closed the connection without a reply");
            return JsonNode.Parse(line) as JsonObject ?? throw new ServiceException($"instance '{name}' replied with something that is not a JSON object");
        }
        catch (Exception e) when (e is IOException or SocketException or JsonException)
        {
            throw new ServiceException($"instance '{name}' did not answer: {e.Message}");
        }
    }

    /// <summary>
    /// Sends a streaming request to instance <paramref name="name"/> and returns the subscription once the instance has
    /// accepted it (its first reply line said ok). Throws <see cref="ServiceException"/> when no such instance runs or
    /// it refused the request (with its error).
    /// </summary>
    public static ControlSubscription Subscribe(string directory, string name, JsonObject request)
    {
        Socket socket = Connect(directory, name);
        try
        {
            socket.SendTimeout = (int)ReplyTimeout.TotalMilliseconds;
            socket.ReceiveTimeout = (int)ReplyTimeout.TotalMilliseconds;
            socket.Send(Encoding.UTF8.GetBytes(request.ToJsonString() + "\n"));
            var subscription = new ControlSubscription(name, socket);
            JsonObject reply = subscription.Read() ?? throw new ServiceException($"instance '{name}' closed the connection without a reply");
            if (reply["ok"]?.GetValue<bool>() != true)
            {
                throw new ServiceException($"instance '{name}': {reply["error"]?.ToString() ?? "refused"}");
            }

            // From here on lines come when something happens: no timeout.
            socket.ReceiveTimeout = 0;
            subscription.Reply = reply;
            return subscription;
        }
        catch (Exception e) when (e is IOException or SocketException or JsonException or ServiceException or InvalidOperationException)
        {
            socket.Dispose();
            throw e as ServiceException ?? new ServiceException($"instance '{name}' did not answer: {e.Message}");
        }
    }

    // A connected socket to instance name; a stale socket is removed and reported as no instance.
    private static Socket Connect(string directory, string name)
    {
        string path = ControlServer.PathFor(directory, name);
        if (!File.Exists(path))
        {
            throw new ServiceException($"no instance '{name}' is running (no control socket {path})");
        }

        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            socket.Connect(new UnixDomainSocketEndPoint(path));
        }
        catch (SocketException e) when (e.SocketErrorCode == SocketError.ConnectionRefused)
        {
            socket.Dispose();
            RemoveStale(path);
            throw new ServiceException($"no instance '{name}' is running (removed its stale control socket {path})");
        }
        catch (SocketException e)
        {
            socket.Dispose();
            if (e.SocketErrorCode == SocketError.AccessDenied)
            {
                throw new ServiceException($"permission denied on {path}: the control socket of '{name}' is its owner's only (run as root)");
            }

            throw new ServiceException($"cannot reach instance '{name}' at {path}: {e.Message}");
        }

        return socket;
    }

    /// <summary>The names of the instances with a socket in <paramref name="directory"/>; stale sockets are removed on the way.</summary>
    public static IReadOnlyList<string> Running(string directory)
    {
        if (!Directory.Exists(directory))
        {
            return [];
        }

        var names = new List<string>();
        foreach (string path in Directory.EnumerateFiles(directory, "*.sock").Order(StringComparer.Ordinal))
        {
            if (ControlServer.IsAnswered(path))
            {
                names.Add(Path.GetFileNameWithoutExtension(path));
            }
            else
            {
                RemoveStale(path);
            }
        }

        return names;
    }

    private static void RemoveStale(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Not ours to remove (another user's directory): it stays untrusted all the same.
        }
    }
}
