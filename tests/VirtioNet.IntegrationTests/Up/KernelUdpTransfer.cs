using System.Buffers.Binary;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using VirtioNet.IntegrationTests.Tap;
using Xunit;

namespace VirtioNet.IntegrationTests.Up;

/// <summary>
/// Numbered UDP datagrams between kernel sockets in two namespaces, spread over several flows (one sending socket, so one
/// source port and one kernel flow hash, per flow), with at most <see cref="Window"/> of them in flight: the sender waits
/// until the receiver has counted enough before it sends more. The receiver checks each datagram's sequence number and
/// content and counts duplicates.
/// <para>
/// UDP has no flow control, so an unpaced sender would overrun a queue on the path (the TAP's 1,000-frame queue drops
/// on overflow, as the socket's receive buffer does) and the count would measure the machine's load, not the driver.
/// With 32 datagrams in flight, fewer than any queue on the path holds (a 256-entry ring, the TAP's 1,000 frames, the
/// receive buffer's 208 KiB), so no loss is tolerated: a missing datagram is a frame the path lost.
/// </para>
/// </summary>
internal static class KernelUdpTransfer
{
    /// <summary>Datagrams in flight at most.</summary>
    public const int Window = 32;

    // After the sender is done, how long the receiver waits for a datagram before it gives up on the rest.
    private static readonly TimeSpan Quiet = TimeSpan.FromSeconds(3);

    /// <summary>What arrived: each sequence number at most once, intact.</summary>
    public sealed record Result(int Sent, int Delivered, int Duplicates, int Corrupted, string Missing);

    public static Result Run(NetworkNamespace receiver, string listenAddress, NetworkNamespace sender, int count, int flows, int payload, TimeSpan timeout)
    {
        IPAddress address = IPAddress.Parse(listenAddress);
        var ready = new TaskCompletionSource<int>(TaskCreationOptions.RunContinuationsAsynchronously);
        int delivered = 0;
        int sent = 0;
        bool senderDone = false;
        var clock = Stopwatch.StartNew();
        Task<(int Duplicates, int Corrupted, string Missing)> receiving = receiver.Run(() =>
        {
            using var socket = new Socket(address.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
            socket.ReceiveBufferSize = 1 << 20;
            socket.Bind(new IPEndPoint(address, 0));
            socket.ReceiveTimeout = 200;
            ready.SetResult(((IPEndPoint)socket.LocalEndPoint!).Port);
            bool[] seen = new bool[count];
            byte[] buffer = new byte[payload + 1];
            int duplicates = 0;
            int corrupted = 0;
            var idle = Stopwatch.StartNew();
            while (Volatile.Read(ref delivered) < count && clock.Elapsed < timeout && !(Volatile.Read(ref senderDone) && idle.Elapsed > Quiet))
            {
                int n;
                try
                {
                    n = socket.Receive(buffer);
                }
                catch (SocketException e) when (e.SocketErrorCode == SocketError.TimedOut)
                {
                    continue;
                }

                idle.Restart();
                uint sequence = n >= 4 ? BinaryPrimitives.ReadUInt32BigEndian(buffer) : uint.MaxValue;
                if (n != payload || sequence >= (uint)count || !Intact(buffer.AsSpan(0, n), sequence))
                {
                    corrupted++;
                    continue;
                }

                if (seen[sequence])
                {
                    duplicates++;
                    continue;
                }

                seen[sequence] = true;
                Interlocked.Increment(ref delivered);
            }

            int[] missing = [.. Enumerable.Range(0, count).Where(i => !seen[i]).Take(10)];
            return (duplicates, corrupted, string.Join(", ", missing));
        });
        Assert.True(ready.Task.Wait(timeout), "The UDP receiver did not bind.");
        int port = ready.Task.Result;

        Task<int> sending = sender.Run(() =>
        {
            var sockets = new Socket[flows];
            try
            {
                for (int f = 0; f < flows; f++)
                {
                    sockets[f] = new Socket(address.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
                    sockets[f].Connect(address, port);
                }

                byte[] datagram = new byte[payload];
                for (int i = 0; i < count; i++)
                {
                    while (i - Volatile.Read(ref delivered) >= Window)
                    {
                        if (clock.Elapsed > timeout)
                        {
                            return i;
                        }

                        Thread.Sleep(1);
                    }

                    Fill(datagram, (uint)i);
                    sockets[i % flows].Send(datagram);
                    Volatile.Write(ref sent, i + 1);
                }

                return count;
            }
            finally
            {
                Volatile.Write(ref senderDone, true);
                foreach (Socket? socket in sockets)
                {
                    socket?.Dispose();
                }
            }
        });

        Assert.True(sending.Wait(timeout + Quiet), "The UDP sender did not finish.");
        Assert.True(receiving.Wait(timeout + Quiet + Quiet), "The UDP receiver did not finish.");
        (int duplicates, int corrupted, string missing) = receiving.Result;
        return new Result(sending.Result, delivered, duplicates, corrupted, missing);
    }

    // The sequence number, then a pattern of it.
    private static void Fill(Span<byte> datagram, uint sequence)
    {
        BinaryPrimitives.WriteUInt32BigEndian(datagram, sequence);
        for (int i = 4; i < datagram.Length; i++)
        {
            datagram[i] = (byte)((sequence * 7) + (uint)i);
        }
    }

    private static bool Intact(ReadOnlySpan<byte> datagram, uint sequence)
    {
        for (int i = 4; i < datagram.Length; i++)
        {
            if (datagram[i] != (byte)((sequence * 7) + (uint)i))
            {
                return false;
            }
        }

        return true;
    }
}
