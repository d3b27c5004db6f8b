using System.Diagnostics;
using System.Diagnostics.CodeAnalysis;
using System.Net.NetworkInformation;
using System.Runtime.CompilerServices;
using VirtioNet.Net;

namespace VirtioNet.Diagnostics;

/// <summary>
/// Adapts the driver's copying entry and asynchronous receive wait to <see cref="IFramePort"/>, so the diagnostic
/// client runs over a virtio-net device without a thread of its own. One caller at a time, like the pair it wraps.
/// </summary>
/// <remarks>
/// A wait costs no allocation in the common case: the pair's wait is a reusable value-task source, this port's async
/// method uses a pooled builder, and the timeout is one <see cref="CancellationTokenSource"/> whose timer is re-armed
/// for each wait and reset after it (a new one is made only after a wait that timed out). A reset source holds no
/// armed timer, so the port needs no disposal.
/// </remarks>
[SuppressMessage(
    "Design",
    "CA1001:Types that own disposable fields should be disposable",
    Justification = "The timeout source is reset after every wait, which disarms its timer; it holds no wait handle and nothing else to free.")]
public sealed class VirtioNetFramePort : IFramePort
{
    // The pair the client sends and receives on: receiveq1 and transmitq1.
    private readonly VirtioNetQueuePair _pair;

    // The driver delivers into buffers of MaxReceiveFrameLength; callers may pass smaller ones.
    private readonly byte[] _scratch;

    // Cancels a pending wait when its time is up (or the caller's token fires); reused while it never fired.
    private CancellationTokenSource _timeout = new();

    /// <summary>Wraps <paramref name="device"/>; the caller keeps ownership of it.</summary>
    public VirtioNetFramePort(VirtioNetDevice device)
    {
        ArgumentNullException.ThrowIfNull(device);
        _pair = device.Pairs[0];
        _scratch = new byte[_pair.MaxReceiveFrameLength];
        MacAddress = new PhysicalAddress(device.MacAddress.ToArray());
    }

    /// <inheritdoc />
    public PhysicalAddress MacAddress { get; }

    /// <summary>Frames received that were longer than the caller's buffer, and so dropped here.</summary>
    public long OversizeDrops { get; private set; }

    /// <inheritdoc />
    public bool TrySend(ReadOnlySpan<byte> frame) => _pair.TrySend(frame);

    /// <inheritdoc />
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    public async ValueTask<int> ReceiveAsync(Memory<byte> buffer, TimeSpan timeout, CancellationToken cancellationToken)
    {
        long started = Stopwatch.GetTimestamp();
        while (true)
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (_pair.TryReceive(_scratch, out ReceivedFrame received))
            {
                int length = received.Length;
                if (length <= buffer.Length)
                {
                    _scratch.AsSpan(0, length).CopyTo(buffer.Span);
                    return length;
                }

                OversizeDrops++;
                continue;
            }

            TimeSpan remaining = timeout - Stopwatch.GetElapsedTime(started);
            if (remaining <= TimeSpan.Zero || !await WaitAsync(remaining, cancellationToken).ConfigureAwait(false))
            {
                return 0;
            }
        }
    }

    // One wait of the pair for "frames to take": true when it completed, false when the time ran out first.
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<bool> WaitAsync(TimeSpan remaining, CancellationToken cancellationToken)
    {
        CancellationTokenSource timeout = _timeout;
        timeout.CancelAfter(remaining);
        try
        {
            // The caller's token cancels the same source, so the pair's wait takes one token; the registration's node
            // is recycled by the caller's source.
            using (cancellationToken.UnsafeRegister(static state => ((CancellationTokenSource)state!).Cancel(), timeout))
            {
                await _pair.WaitForReceiveAsync(timeout.Token).ConfigureAwait(false);
            }

            return true;
        }
        catch (OperationCanceledException) when (timeout.IsCancellationRequested)
        {
            // The pair's queue is as before the wait (a cancelled wait disarms its notification when awaited).
            cancellationToken.ThrowIfCancellationRequested();
            return false;
        }
        finally
        {
            if (!timeout.TryReset())
            {
                timeout.Dispose();
                _timeout = new CancellationTokenSource();
            }
        }
    }
}
