using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Net.Sockets;
using VirtioNet.Core;
using VirtioNet.Net;
using VirtioNet.VhostUser;

namespace VirtioNet.IntegrationTests.VhostUser;

/// <summary>
/// A software vhost-user backend that answers by script, for the failures a real backend does not produce (wrong
/// request ids, wrong sizes, refusals, a close in the middle of the handshake). Listens on a socket in a temporary
/// directory and serves one connection on a background thread. Descriptors sent to it are dropped by the kernel
/// (it reads without a control buffer).
/// </summary>
internal sealed class ScriptedVhostUserBackend : IDisposable
{
    /// <summary>The standard answers, overridden per test.</summary>
    public const ulong DefaultFeatures = VirtioFeatures.Version1 | VirtioNetFeatures.MrgRxBuf | VhostUserFeatures.ProtocolFeatures;

    private readonly Socket _listener;
    private readonly Thread _thread;
    private readonly Func<VhostUserHeader, byte[], byte[]?> _respond;
    private readonly string _directory;
    private Socket? _connection;

    /// <summary>Starts listening. <paramref name="respond"/> returns the bytes to send back (empty: nothing), or null to close the connection.</summary>
    public ScriptedVhostUserBackend(Func<VhostUserHeader, byte[], byte[]?> respond)
    {
        _respond = respond;
        _directory = Directory.CreateTempSubdirectory("vnet-vu-fake-").FullName;
        SocketPath = Path.Combine(_directory, "fake.sock");
        _listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        _listener.Bind(new UnixDomainSocketEndPoint(SocketPath));
        _listener.Listen(1);
        _thread = new Thread(Serve) { IsBackground = true, Name = "scripted vhost-user backend" };
        _thread.Start();
    }

    /// <summary>The socket path.</summary>
    public string SocketPath { get; }

    /// <summary>The requests received, in order.</summary>
    public ConcurrentQueue<VhostUserRequest> Received { get; } = new();

    /// <summary>A reply message: header (request, flags, size) and payload.</summary>
    public static byte[] Reply(VhostUserRequest request, ReadOnlySpan<byte> payload, uint flags = 0x5, int? size = null)
    {
        byte[] message = new byte[VhostUserHeader.Length + payload.Length];
        BinaryPrimitives.WriteUInt32LittleEndian(message, (uint)request);
        BinaryPrimitives.WriteUInt32LittleEndian(message.AsSpan(4), flags);
        BinaryPrimitives.WriteUInt32LittleEndian(message.AsSpan(8), (uint)(size ?? payload.Length));
        payload.CopyTo(message.AsSpan(VhostUserHeader.Length));
        return message;
    }

    /// <summary>A reply carrying one u64.</summary>
    public static byte[] ReplyU64(VhostUserRequest request, ulong value)
    {
        Span<byte> payload = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(payload, value);
        return Reply(request, payload);
    }

    /// <summary>
    /// What a minimal, well-behaved backend answers: the features given, GET_QUEUE_NUM, GET_VRING_BASE, and an
    /// acknowledgement of 0 for every request that asks for one, unless <paramref name="refuse"/> names it (then 1).
    /// </summary>
    public static byte[]? Standard(
        VhostUserHeader header, byte[] payload, ulong features = DefaultFeatures,
        VhostUserProtocolFeatures protocol = VhostUserProtocolFeatures.ReplyAck, ulong queuePairs = 1, VhostUserRequest? refuse = null)
    {
        switch (header.Request)
        {
            case VhostUserRequest.GetFeatures:
                return ReplyU64(header.Request, features);
            case VhostUserRequest.GetProtocolFeatures:
                return ReplyU64(header.Request, (ulong)protocol);
            case VhostUserRequest.GetQueueNum:
                return ReplyU64(header.Request, queuePairs);
            case VhostUserRequest.GetVringBase:
                return Reply(header.Request, payload.AsSpan(0, 8));
            default:
                return (header.Flags & VhostUserHeaderFlags.NeedReply) != 0
                    ? ReplyU64(header.Request, header.Request == refuse ? 1UL : 0UL)
                    : [];
        }
    }

    /// <summary>Waits until the connection is over (the driver closed it, or the script did) and its socket is closed.</summary>
    public bool WaitUntilDisconnected(TimeSpan timeout) => _thread.Join(timeout);

    /// <summary>Closes the connection and the listener and removes the directory.</summary>
    public void Dispose()
    {
        _listener.Dispose();
        _connection?.Dispose();
        _thread.Join(TimeSpan.FromSeconds(5));
        Directory.Delete(_directory, recursive: true);
    }

    private void Serve()
    {
        try
        {
            using Socket connection = _listener.Accept();
            _connection = connection;
            byte[] headerBytes = new byte[VhostUserHeader.Length];
            while (ReadExactly(connection, headerBytes))
            {
                VhostUserHeader header = VhostUserCodec.DecodeHeader(headerBytes);
                byte[] payload = new byte[header.Size];
                if (!ReadExactly(connection, payload))
                {
                    return;
                }

                Received.Enqueue(header.Request);
                byte[]? answer = _respond(header, payload);
                if (answer is null)
                {
                    connection.Shutdown(SocketShutdown.Both);
                    return;
                }

                if (answer.Length > 0)
                {
                    connection.Send(answer);
                }
            }
        }
        catch (SocketException)
        {
            // The test is over (the listener or connection was disposed).
        }
        catch (ObjectDisposedException)
        {
        }
    }

    private static bool ReadExactly(Socket socket, byte[] buffer)
    {
        int got = 0;
        while (got < buffer.Length)
        {
            int n = socket.Receive(buffer, got, buffer.Length - got, SocketFlags.None);
            if (n == 0)
            {
                return false;
            }

            got += n;
        }

        return true;
    }
}
