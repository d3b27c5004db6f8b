using System.Buffers;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;

namespace VirtioNet.Qemu;

/// <summary>
/// A client of QEMU's machine protocol (QMP): JSON commands on a unix socket, for what qtest cannot do
/// (flipping a NIC's link, listing QOM objects). Thread-safe: one command at a time.
/// </summary>
/// <remarks>
/// Commands are written with <see cref="Utf8JsonWriter"/> and replies read with <see cref="JsonDocument"/>, so no
/// reflection-based serialization is involved and the type stays trim- and AOT-safe. Asynchronous events
/// (<c>{"event": ...}</c>) are read only while a command waits for its reply; their names are kept for
/// <see cref="TakeEvents"/>.
/// </remarks>
public sealed class QemuMonitor : IDisposable
{
    // Events kept for TakeEvents; older ones are dropped beyond this.
    private const int MaxKeptEvents = 256;

    // One command and its reply at a time.
    private readonly Lock _lock = new();

    // The connection QEMU's -qmp unix:PATH made.
    private readonly Socket _socket;

    // Says why QEMU went away when the socket breaks.
    private readonly Func<string> _describeDeath;

    // Bytes received and not yet consumed as lines.
    private readonly ArrayBufferWriter<byte> _received = new(4096);

    // Names of events seen since the last TakeEvents.
    private readonly Queue<string> _events = new();

    // Set once by Dispose.
    private bool _disposed;

    internal QemuMonitor(Socket socket, Func<string> describeDeath, TimeSpan commandTimeout)
    {
        _socket = socket;
        _describeDeath = describeDeath;
        CommandTimeout = commandTimeout;
        _socket.ReceiveTimeout = (int)Math.Min(int.MaxValue, commandTimeout.TotalMilliseconds);
        _socket.SendTimeout = _socket.ReceiveTimeout;
    }

    /// <summary>How long a command waits for its reply.</summary>
    public TimeSpan CommandTimeout { get; }

    /// <summary>
    /// Runs QMP <paramref name="command"/> and returns its <c>return</c> value.
    /// <paramref name="writeArguments"/>, when given, writes the members of the <c>arguments</c> object.
    /// </summary>
    /// <exception cref="VirtioException">With the QMP error class and description, on a timeout, or when QEMU is gone.</exception>
    public JsonElement Execute(string command, Action<Utf8JsonWriter>? writeArguments = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(command);
        var request = new ArrayBufferWriter<byte>(256);
        using (var writer = new Utf8JsonWriter(request))
        {
            writer.WriteStartObject();
            writer.WriteString("execute"u8, command);
            if (writeArguments is not null)
            {
                writer.WriteStartObject("arguments"u8);
                writeArguments(writer);
                writer.WriteEndObject();
            }

            writer.WriteEndObject();
        }

        request.Write("\n"u8);
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            Send(request.WrittenSpan);
            while (true)
            {
                using JsonDocument reply = ReceiveMessage(command);
                JsonElement root = reply.RootElement;
                if (root.TryGetProperty("return"u8, out JsonElement result))
                {
                    return result.Clone();
                }

                if (root.TryGetProperty("error"u8, out JsonElement error))
                {
                    string errorClass = error.TryGetProperty("class"u8, out JsonElement c) ? c.GetString() ?? "?" : "?";
                    string description = error.TryGetProperty("desc"u8, out JsonElement d) ? d.GetString() ?? "" : "";
                    throw new VirtioException(VirtioErrorReason.PlatformFailure, $"QMP {command} failed: {errorClass}: {description}");
                }

                KeepEvent(root);
            }
        }
    }

    /// <summary>
    /// QMP <c>set_link</c>: takes the link of a NIC (by device id, e.g. <see cref="QemuMachine.NetDeviceId"/>) or of a
    /// netdev down or up. The device sees the change at once (VIRTIO_NET_S_LINK_UP in its config space, and a
    /// configuration change interrupt when the driver negotiated STATUS).
    /// </summary>
    public void SetLink(string name, bool up)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        Execute("set_link", w =>
        {
            w.WriteString("name"u8, name);
            w.WriteBoolean("up"u8, up);
        });
    }

    /// <summary>QMP <c>qom-list</c>: the properties and children of the QOM object at <paramref name="path"/>.</summary>
    public IReadOnlyList<QomProperty> QomList(string path)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        JsonElement result = Execute("qom-list", w => w.WriteString("path"u8, path));
        if (result.ValueKind != JsonValueKind.Array)
        {
            throw new VirtioException(VirtioErrorReason.PlatformFailure, $"QMP qom-list {path} returned {result.ValueKind}, not an array.");
        }

        var properties = new List<QomProperty>(result.GetArrayLength());
        foreach (JsonElement entry in result.EnumerateArray())
        {
            string? name = entry.TryGetProperty("name"u8, out JsonElement n) ? n.GetString() : null;
            string? type = entry.TryGetProperty("type"u8, out JsonElement t) ? t.GetString() : null;
            if (name is not null && type is not null)
            {
                properties.Add(new QomProperty(name, type));
            }
        }

        return properties;
    }

    /// <summary>Names of the QMP events read since the last call (e.g. <c>NIC_RX_FILTER_CHANGED</c>), oldest first.</summary>
    public IReadOnlyList<string> TakeEvents()
    {
        lock (_lock)
        {
            string[] events = [.. _events];
            _events.Clear();
            return events;
        }
    }

    /// <summary>Closes the connection. Idempotent.</summary>
    public void Dispose()
    {
        lock (_lock)
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
            _socket.Dispose();
        }
    }

    /// <summary>Reads QEMU's greeting and leaves capabilities negotiation mode, as QMP requires before any other command.</summary>
    internal void Handshake()
    {
        lock (_lock)
        {
            using JsonDocument greeting = ReceiveMessage("greeting");
            if (!greeting.RootElement.TryGetProperty("QMP"u8, out _))
            {
                throw new VirtioException(VirtioErrorReason.PlatformFailure, $"QEMU's QMP socket did not greet with a QMP banner: {greeting.RootElement.GetRawText()}");
            }
        }

        Execute("qmp_capabilities");
    }

    private void KeepEvent(JsonElement root)
    {
        if (root.TryGetProperty("event"u8, out JsonElement name) && name.GetString() is string eventName)
        {
            if (_events.Count == MaxKeptEvents)
            {
                _events.Dequeue();
            }

            _events.Enqueue(eventName);
        }
    }

    private void Send(ReadOnlySpan<byte> bytes)
    {
        try
        {
            while (!bytes.IsEmpty)
            {
                bytes = bytes[_socket.Send(bytes, SocketFlags.None)..];
            }
        }
        catch (SocketException e)
        {
            throw new VirtioException(VirtioErrorReason.PlatformFailure, $"QMP connection broke: {_describeDeath()}", e);
        }
    }

    // Reads one line (QMP sends one JSON object per line) and parses it.
    private JsonDocument ReceiveMessage(string waitingFor)
    {
        while (true)
        {
            ReadOnlySpan<byte> pending = _received.WrittenSpan;
            int newline = pending.IndexOf((byte)'\n');
            if (newline >= 0)
            {
                byte[] line = pending[..newline].ToArray();
                byte[] rest = pending[(newline + 1)..].ToArray();
                _received.Clear();
                _received.Write(rest);
                if (line.AsSpan().Trim("\r "u8).IsEmpty)
                {
                    continue;
                }

                try
                {
                    return JsonDocument.Parse(line);
                }
                catch (JsonException e)
                {
                    throw new VirtioException(VirtioErrorReason.PlatformFailure, $"QEMU sent a QMP line that is not JSON: {Encoding.UTF8.GetString(line)}", e);
                }
            }

            int received;
            try
            {
                received = _socket.Receive(_received.GetSpan(4096), SocketFlags.None);
            }
            catch (SocketException e) when (e.SocketErrorCode == SocketError.TimedOut || e.SocketErrorCode == SocketError.WouldBlock)
            {
                throw new VirtioException(VirtioErrorReason.Timeout, $"QMP {waitingFor}: no reply within {CommandTimeout.TotalSeconds:0.#} s.", e);
            }
            catch (SocketException e)
            {
                throw new VirtioException(VirtioErrorReason.PlatformFailure, $"QMP connection broke: {_describeDeath()}", e);
            }

            if (received == 0)
            {
                throw new VirtioException(VirtioErrorReason.PlatformFailure, $"QMP connection closed while waiting for {waitingFor}: {_describeDeath()}");
            }

            _received.Advance(received);
        }
    }
}
