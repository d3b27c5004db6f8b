using System.Diagnostics;
using VirtioNet.Platform;

namespace VirtioNet.VhostUser;

/// <summary>
/// The device's interrupt as vhost-user delivers it: the call eventfds of the started vrings (the backend writes one
/// after using buffers) and the socket (its hang-up is a configuration change: the link went down). Level-triggered
/// like a virtio line: an eventfd stays readable until <see cref="VhostUserTransport.ReadAndAcknowledgeInterrupt"/> reads it.
/// </summary>
internal sealed class VhostUserInterruptLine : IInterruptLine
{
    // Longest single poll, so that cancellation is noticed without a wake-up descriptor.
    private const int SliceMilliseconds = 50;

    private readonly VhostUserTransport _transport;

    internal VhostUserInterruptLine(VhostUserTransport transport) => _transport = transport;

    /// <inheritdoc />
    public int Number => 0;

    /// <inheritdoc />
    public bool IsRaised => _transport.PollInterrupt(0);

    /// <inheritdoc />
    public long RaiseCount => _transport.InterruptSignals;

    /// <inheritdoc />
    public bool Wait(TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        long start = Stopwatch.GetTimestamp();
        while (true)
        {
            cancellationToken.ThrowIfCancellationRequested();
            TimeSpan remaining = timeout - Stopwatch.GetElapsedTime(start);
            int waitMs = remaining <= TimeSpan.Zero ? 0 : (int)Math.Min(SliceMilliseconds, Math.Ceiling(remaining.TotalMilliseconds));
            if (_transport.PollInterrupt(waitMs))
            {
                return true;
            }

            if (remaining <= TimeSpan.Zero)
            {
                return false;
            }
        }
    }

    /// <inheritdoc />
    public override string ToString() => $"vhost-user call eventfds ({RaiseCount} signals)";
}
