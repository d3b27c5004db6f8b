using System.Buffers;
using System.Text.Json.Nodes;
using System.Threading.Channels;

namespace VirtioNet.Service;

/// <summary>
/// One <c>capture</c> client's stream (docs/CONTROL.md): a bounded queue of captured frames that drops what does not fit
/// (<see cref="BoundedChannelFullMode.DropWrite"/>, counted) and sends each as a JSON line with its bytes in base64.
/// </summary>
internal sealed class CaptureSubscription : ControlStream
{
    // Records one client may have waiting; beyond it new ones are dropped and counted.
    private const int ClientQueue = 4096;

    private readonly CaptureHub _hub;
    private readonly int? _queue;
    private readonly CaptureDirection? _direction;
    private readonly Channel<CaptureRecord> _records;
    private long _dropped;

    internal CaptureSubscription(CaptureHub hub, int pairs, int? queue, CaptureDirection? direction)
    {
        _hub = hub;
        _queue = queue;
        _direction = direction;
        _records = Channel.CreateBounded<CaptureRecord>(
            new BoundedChannelOptions(ClientQueue) { FullMode = BoundedChannelFullMode.DropWrite, SingleReader = true },
            Drop);
        Reply = new JsonObject
        {
            ["pairs"] = pairs,
            ["queue"] = queue,
            ["direction"] = direction is { } d ? Name(d) : null,
        };
    }

    public override JsonObject Reply { get; }

    /// <summary>Records this client could not take (its queue was full).</summary>
    public long Dropped => Interlocked.Read(ref _dropped);

    /// <summary>The protocol's name of a direction: <c>rx</c> or <c>tx</c>.</summary>
    public static string Name(CaptureDirection direction) => direction == CaptureDirection.Received ? "rx" : "tx";

    internal bool Wants(int queue, CaptureDirection direction) =>
        (_queue is null || _queue == queue) && (_direction is null || _direction == direction);

    internal void Offer(CaptureRecord record)
    {
        if (!_records.Writer.TryWrite(record))
        {
            // Completed: the client is gone.
            ArrayPool<byte>.Shared.Return(record.Buffer);
        }
    }

    private void Drop(CaptureRecord record)
    {
        Interlocked.Increment(ref _dropped);
        ArrayPool<byte>.Shared.Return(record.Buffer);
    }

    public override async ValueTask<JsonObject?> NextAsync(CancellationToken cancellationToken)
    {
        if (!await _records.Reader.WaitToReadAsync(cancellationToken).ConfigureAwait(false) || !_records.Reader.TryRead(out CaptureRecord record))
        {
            return null;
        }

        try
        {
            return new JsonObject
            {
                ["queue"] = record.Queue,
                ["direction"] = Name(record.Direction),
                ["time"] = record.TimestampMicroseconds,
                ["dropped"] = Dropped,
                ["data"] = Convert.ToBase64String(record.Buffer, 0, record.Length),
            };
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(record.Buffer);
        }
    }

    public override void Dispose()
    {
        _hub.Remove(this);
        _records.Writer.TryComplete();
        while (_records.Reader.TryRead(out CaptureRecord left))
        {
            ArrayPool<byte>.Shared.Return(left.Buffer);
        }
    }
}
