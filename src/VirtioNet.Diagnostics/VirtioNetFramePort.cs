using System.Diagnostics;
using System.Net.NetworkInformation;
using VirtioNet.Net;

namespace VirtioNet.Diagnostics;

/// <summary>
/// Adapts the driver's copying API to <see cref="IFramePort"/>, so the diagnostic client runs over a virtio-net device.
/// Single-threaded, like the device it wraps.
/// </summary>
public sealed class VirtioNetFramePort : IFramePort
{
    // The pair the client sends and receives on: receiveq1 and transmitq1.
    private readonly VirtioNetQueuePair _pair;

    // The driver delivers into buffers of MaxReceiveFrameLength; callers may pass smaller ones.
    private readonly byte[] _scratch;

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
    public int Receive(Span<byte> buffer, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (_pair.TryReceive(_scratch, out ReceivedFrame received))
            {
                int length = received.Length;
                if (length <= buffer.Length)
                {
                    _scratch.AsSpan(0, length).CopyTo(buffer);
                    return length;
                }

                OversizeDrops++;
                continue;
            }

            TimeSpan remaining = timeout - clock.Elapsed;
            if (remaining <= TimeSpan.Zero)
            {
                return 0;
            }

            _pair.WaitForReceive(remaining, cancellationToken);
        }
    }
}
