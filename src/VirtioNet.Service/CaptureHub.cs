using System.Buffers;
using VirtioNet.Net;

namespace VirtioNet.Service;

/// <summary>
/// Where the pumps hand frames to <c>vnet capture</c> clients. While nobody captures, <see cref="Active"/> is null and a
/// pump pays one read and one branch per burst. While someone does, each frame a client wants is copied into a pooled
/// buffer and offered to the client's bounded queue; a client that cannot keep up loses records (counted), the traffic
/// never waits.
/// </summary>
internal sealed class CaptureHub
{
    private readonly Lock _lock = new();

    // The capturing clients; null (not empty) while there are none, so the pumps' check is one null test.
    private volatile CaptureSubscription[]? _active;

    /// <summary>The capturing clients, or null while nobody captures. A pump reads it once per burst.</summary>
    public CaptureSubscription[]? Active => _active;

    /// <summary>A new capture client: frames of <paramref name="queue"/> (null: every pair) going <paramref name="direction"/> (null: both).</summary>
    public CaptureSubscription Subscribe(int pairs, int? queue, CaptureDirection? direction)
    {
        var client = new CaptureSubscription(this, pairs, queue, direction);
        lock (_lock)
        {
            _active = [.. _active ?? [], client];
        }

        return client;
    }

    internal void Remove(CaptureSubscription client)
    {
        lock (_lock)
        {
            CaptureSubscription[] rest = [.. (_active ?? []).Where(c => c != client)];
            _active = rest.Length == 0 ? null : rest;
        }
    }

    /// <summary>Offers a transmitted or received frame of pair <paramref name="queue"/> to every client that wants it.</summary>
    public static void Record(CaptureSubscription[] clients, int queue, CaptureDirection direction, ReadOnlySpan<byte> frame)
    {
        long now = Now();
        foreach (CaptureSubscription client in clients)
        {
            if (client.Wants(queue, direction))
            {
                byte[] copy = ArrayPool<byte>.Shared.Rent(frame.Length);
                frame.CopyTo(copy);
                client.Offer(new CaptureRecord(copy, frame.Length, queue, direction, now));
            }
        }
    }

    /// <summary>Offers each frame of a receive burst (its segments joined) of pair <paramref name="queue"/>.</summary>
    public static void RecordReceived(CaptureSubscription[] clients, int queue, ReadOnlySpan<ReceivedPacket> burst)
    {
        long now = Now();
        for (int i = 0; i < burst.Length;)
        {
            int segments = Math.Max(1, burst[i].SegmentCount);
            int length = 0;
            for (int s = 0; s < segments && i + s < burst.Length; s++)
            {
                length += burst[i + s].Length;
            }

            foreach (CaptureSubscription client in clients)
            {
                if (!client.Wants(queue, CaptureDirection.Received))
                {
                    continue;
                }

                byte[] copy = ArrayPool<byte>.Shared.Rent(length);
                int at = 0;
                for (int s = 0; s < segments && i + s < burst.Length; s++)
                {
                    Span<byte> segment = burst[i + s].Span;
                    segment.CopyTo(copy.AsSpan(at));
                    at += segment.Length;
                }

                client.Offer(new CaptureRecord(copy, length, queue, CaptureDirection.Received, now));
            }

            i += segments;
        }
    }

    private static long Now() => (DateTime.UtcNow.Ticks - DateTime.UnixEpoch.Ticks) / (TimeSpan.TicksPerMillisecond / 1000);
}
