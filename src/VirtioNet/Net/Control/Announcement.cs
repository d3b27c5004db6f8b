using System.Net;
using System.Net.Sockets;

namespace VirtioNet.Net.Control;

/// <summary>
/// What <see cref="GratuitousArp"/> and <see cref="UnsolicitedNeighbourAdvertisement"/> check before they write an
/// announcement (virtio v1.2 §5.1.6.5.4): a 6-byte MAC, an address of the family the frame announces, and room for the
/// whole frame.
/// </summary>
internal static class Announcement
{
    /// <summary>
    /// Throws <see cref="ArgumentException"/> naming the first argument that is wrong; returns the frame's first
    /// <paramref name="frameLength"/> bytes of <paramref name="destination"/>, cleared. <paramref name="what"/> begins
    /// the family error ("Gratuitous ARP announces").
    /// </summary>
    public static Span<byte> CheckAndSlice(
        ReadOnlySpan<byte> mac, IPAddress address, Span<byte> destination, AddressFamily family, int frameLength, string what)
    {
        ArgumentNullException.ThrowIfNull(address);
        if (mac.Length != EthernetFrame.AddressLength)
        {
            throw new ArgumentException($"A MAC address is {EthernetFrame.AddressLength} bytes; this one has {mac.Length}.", nameof(mac));
        }

        if (address.AddressFamily != family)
        {
            throw new ArgumentException($"{what} {(family == AddressFamily.InterNetwork ? "IPv4" : "IPv6")} addresses; {address} is {address.AddressFamily}.", nameof(address));
        }

        if (destination.Length < frameLength)
        {
            throw new ArgumentException($"The frame needs {frameLength} bytes; the destination has {destination.Length}.", nameof(destination));
        }

        Span<byte> frame = destination[..frameLength];
        frame.Clear();
        return frame;
    }
}
