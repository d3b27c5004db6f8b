using System.Net.NetworkInformation;

namespace VirtioNet.Diagnostics;

/// <summary>
/// The diagnostic client's view of a network device: whole Ethernet frames in and out, copied. The driver's
/// copying and asynchronous API is adapted to it; tests put a simulated peer behind it.
/// </summary>
public interface IFramePort
{
    /// <summary>The device's MAC address, used as the source of every frame the client sends.</summary>
    PhysicalAddress MacAddress { get; }

    /// <summary>Sends one Ethernet frame (destination, source, type and payload; no FCS).</summary>
    /// <param name="frame">The frame to send; the port copies it before returning.</param>
    /// <returns><see langword="false"/> when the transmit ring is full; the caller may retry.</returns>
    bool TrySend(ReadOnlySpan<byte> frame);

    /// <summary>
    /// Waits up to <paramref name="timeout"/> for one frame, without holding a thread while it waits, and copies it
    /// into <paramref name="buffer"/>.
    /// </summary>
    /// <param name="buffer">Where the frame is copied.</param>
    /// <param name="timeout">How long to wait for a frame.</param>
    /// <param name="cancellationToken">Ends the wait early with <see cref="OperationCanceledException"/>.</param>
    /// <returns>The frame's length, or 0 when no frame arrived in time.</returns>
    ValueTask<int> ReceiveAsync(Memory<byte> buffer, TimeSpan timeout, CancellationToken cancellationToken);
}
