using System.Diagnostics;
using System.Net;
using System.Net.NetworkInformation;
using PacketDotNet;

namespace VirtioNet.Diagnostics;

/// <summary>
/// The Ethernet/IPv4 endpoint shared by <see cref="DhcpClient"/>, <see cref="ArpResolver"/> and <see cref="Pinger"/>:
/// it sends frames through an <see cref="IFramePort"/>, and every wait of theirs goes through
/// <c>WaitForAsync</c>, which drops malformed frames, answers ARP requests for our address and learns
/// ARP mappings whatever the caller is waiting for. Not thread-safe: one caller waits at a time.
/// </summary>
public sealed class DiagnosticLink
{
    /// <summary>Enough for any frame a virtio-net device can hand over without TSO/GSO (64 KiB IP plus Ethernet).</summary>
    private const int ReceiveBufferLength = 65_536 + 14;

    /// <summary>The shortest Ethernet frame without FCS (IEEE 802.3 minimum of 64 bytes, less the 4-byte FCS).</summary>
    private const int MinimumFrameLength = 60;

    /// <summary>How long to wait between attempts when the port's transmit ring is full.</summary>
    private static readonly TimeSpan TransmitRetryDelay = TimeSpan.FromMilliseconds(1);

    /// <summary>The port frames go through.</summary>
    private readonly IFramePort _port;

    /// <summary>Receives every frame; the port copies into it, PacketDotNet parses a copy of the used part.</summary>
    private readonly byte[] _receiveBuffer = new byte[ReceiveBufferLength];

    /// <summary>Creates a link over <paramref name="port"/>, unconfigured (no IPv4 address) until <see cref="Configure"/>.</summary>
    /// <param name="port">The device.</param>
    /// <param name="arpCache">The ARP cache to fill; a new default one if null.</param>
    /// <param name="transmitTimeout">How long a full transmit ring is retried before <see cref="DiagnosticsErrorReason.TransmitStalled"/>.
    /// Default 1 s: a ring that does not drain in a second is stuck, not busy.</param>
    public DiagnosticLink(IFramePort port, ArpCache? arpCache = null, TimeSpan? transmitTimeout = null)
    {
        ArgumentNullException.ThrowIfNull(port);
        var timeout = transmitTimeout ?? TimeSpan.FromSeconds(1);
        ArgumentOutOfRangeException.ThrowIfLessThan(timeout, TimeSpan.Zero, nameof(transmitTimeout));
        _port = port;
        MacAddress = port.MacAddress;
        ArpCache = arpCache ?? new ArpCache();
        TransmitTimeout = timeout;
    }

    /// <summary>Our MAC address (the port's).</summary>
    public PhysicalAddress MacAddress { get; }

    /// <summary>Our IPv4 address, or null before a lease or a static configuration.</summary>
    public IPAddress? LocalAddress { get; private set; }

    /// <summary>The local subnet's mask, or null when unconfigured.</summary>
    public IPAddress? SubnetMask { get; private set; }

    /// <summary>The router for off-subnet targets, or null if there is none.</summary>
    public IPAddress? Router { get; private set; }

    /// <summary>Learned IPv4-to-MAC mappings.</summary>
    public ArpCache ArpCache { get; }

    /// <summary>What the link sent, received and dropped.</summary>
    public DiagnosticsCounters Counters { get; } = new();

    /// <summary>How long a full transmit ring is retried.</summary>
    public TimeSpan TransmitTimeout { get; }

    /// <summary>Gives the link an IPv4 address; from then on ARP requests for it are answered.</summary>
    /// <param name="address">Our address.</param>
    /// <param name="subnetMask">The local subnet's mask.</param>
    /// <param name="router">The router for off-subnet targets, or null.</param>
    public void Configure(IPAddress address, IPAddress subnetMask, IPAddress? router)
    {
        ArgumentNullException.ThrowIfNull(address);
        ArgumentNullException.ThrowIfNull(subnetMask);
        RequireIPv4(address, nameof(address));
        RequireIPv4(subnetMask, nameof(subnetMask));
        if (router is not null)
            RequireIPv4(router, nameof(router));
        LocalAddress = address;
        SubnetMask = subnetMask;
        Router = router;
    }

    /// <summary>The host to send to for <paramref name="target"/>: the target itself on the local subnet, else the router.</summary>
    /// <exception cref="DiagnosticsException">Unconfigured, or off-subnet with no router.</exception>
    public IPAddress NextHop(IPAddress target)
    {
        ArgumentNullException.ThrowIfNull(target);
        var (local, mask) = RequireConfiguration();
        if (OnLocalSubnet(target, local, mask))
            return target;
        return Router ?? throw new DiagnosticsException(
            DiagnosticsErrorReason.NoRoute,
            $"{target} is not on the local subnet {local}/{mask} and no router is configured.");
    }

    /// <summary>Our address and mask, or a <see cref="DiagnosticsErrorReason.NotConfigured"/> failure.</summary>
    internal (IPAddress Address, IPAddress Mask) RequireConfiguration() =>
        LocalAddress is { } local && SubnetMask is { } mask
            ? (local, mask)
            : throw new DiagnosticsException(
                DiagnosticsErrorReason.NotConfigured,
                "The link has no IPv4 address yet: acquire a DHCP lease or configure one first.");

    /// <summary>
    /// Sends a frame built with PacketDotNet, padded to the Ethernet minimum, retrying while the ring is full.
    /// </summary>
    /// <remarks>
    /// A full ring is retried after a short delay rather than awaited through a transmit notification: the client has
    /// at most one frame in flight, so a ring that stays full is a stuck device, and the delay bounds how soon that is
    /// reported (<see cref="TransmitTimeout"/>).
    /// </remarks>
    internal async ValueTask SendAsync(EthernetPacket frame, CancellationToken cancellationToken)
    {
        var bytes = frame.Bytes;
        if (bytes.Length < MinimumFrameLength)
            Array.Resize(ref bytes, MinimumFrameLength);

        var start = Stopwatch.GetTimestamp();
        while (!_port.TrySend(bytes))
        {
            Counters.CountTransmitRetry();
            if (Stopwatch.GetElapsedTime(start) >= TransmitTimeout)
            {
                throw new DiagnosticsException(
                    DiagnosticsErrorReason.TransmitStalled,
                    $"The transmit ring stayed full for {TransmitTimeout.TotalMilliseconds:0} ms.");
            }

            await Task.Delay(TransmitRetryDelay, cancellationToken).ConfigureAwait(false);
        }

        Counters.CountSent();
    }

    /// <summary>
    /// Receives frames for up to <paramref name="timeout"/> until <paramref name="match"/> returns non-null for one.
    /// Malformed frames are counted and dropped; ARP is handled first (requests for us answered, mappings learned)
    /// and then offered to <paramref name="match"/> like any frame; valid frames nobody wanted are counted as ignored.
    /// Each wait is the port's asynchronous one: no thread is held while nothing arrives.
    /// </summary>
    /// <returns>What <paramref name="match"/> returned, or null when the time ran out.</returns>
    internal async ValueTask<T?> WaitForAsync<T>(TimeSpan timeout, Func<EthernetPacket, T?> match, CancellationToken cancellationToken)
        where T : class
    {
        var start = Stopwatch.GetTimestamp();
        while (true)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var remaining = timeout - Stopwatch.GetElapsedTime(start);
            if (remaining <= TimeSpan.Zero)
                return null;

            // The loop, not the port, decides when the time is up: a port may return 0 early (a spurious wake-up).
            var length = await _port.ReceiveAsync(_receiveBuffer, remaining, cancellationToken).ConfigureAwait(false);
            if (length == 0)
                continue;

            Counters.CountReceived();
            if (length < 0 || length > _receiveBuffer.Length)
            {
                Counters.CountMalformed();
                continue;
            }

            switch (FrameValidator.Validate(_receiveBuffer.AsSpan(0, length), out var frame))
            {
                case FrameVerdict.Malformed:
                    Counters.CountMalformed();
                    continue;
                case FrameVerdict.Unsupported:
                    Counters.CountIgnored();
                    continue;
            }

            if (!IsAddressedToUs(frame!))
            {
                Counters.CountIgnored();
                continue;
            }

            var handled = frame!.PayloadPacket is ArpPacket arp && await HandleArpAsync(arp, cancellationToken).ConfigureAwait(false);
            if (match(frame) is { } result)
                return result;
            if (!handled)
                Counters.CountIgnored();
        }
    }

    private bool IsAddressedToUs(EthernetPacket frame)
    {
        var destination = frame.DestinationHardwareAddress;
        return destination.Equals(MacAddress) || destination.Equals(BroadcastMac);
    }

    /// <summary>
    /// Learns from ARP the way RFC 826 merges: an existing entry is refreshed from any packet, a new one is added
    /// only when the packet was for us. Answers requests for our address. Returns whether the packet was for us.
    /// </summary>
    private async ValueTask<bool> HandleArpAsync(ArpPacket arp, CancellationToken cancellationToken)
    {
        var senderAddress = arp.SenderProtocolAddress;
        var senderMac = arp.SenderHardwareAddress;
        var forUs = LocalAddress is { } local && arp.TargetProtocolAddress.Equals(local);

        // 0.0.0.0 senders are address probes (RFC 5227) and map nothing.
        var senderIsReal = !senderAddress.Equals(IPAddress.Any);
        if (senderIsReal && (forUs || ArpCache.Contains(senderAddress)))
            ArpCache.Set(senderAddress, senderMac);

        if (!forUs || arp.Operation != ArpOperation.Request)
            return forUs;

        // PacketDotNet's ArpPacket constructor takes the target pair before the sender pair.
        var reply = new ArpPacket(ArpOperation.Response, senderMac, senderAddress, MacAddress, LocalAddress!);
        var ethernet = new EthernetPacket(MacAddress, senderMac, EthernetType.Arp) { PayloadPacket = reply };
        await SendAsync(ethernet, cancellationToken).ConfigureAwait(false);
        Counters.CountArpAnswered();
        return true;
    }

    /// <summary>The Ethernet broadcast address.</summary>
    internal static PhysicalAddress BroadcastMac { get; } = new([0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]);

    private static bool OnLocalSubnet(IPAddress target, IPAddress local, IPAddress mask)
    {
        Span<byte> t = stackalloc byte[4];
        Span<byte> l = stackalloc byte[4];
        Span<byte> m = stackalloc byte[4];
        if (!target.TryWriteBytes(t, out var written) || written != 4)
            return false;
        local.TryWriteBytes(l, out _);
        mask.TryWriteBytes(m, out _);
        for (var i = 0; i < 4; i++)
        {
            if ((t[i] & m[i]) != (l[i] & m[i]))
                return false;
        }

        return true;
    }

    private static void RequireIPv4(IPAddress address, string parameterName)
    {
        if (address.AddressFamily != System.Net.Sockets.AddressFamily.InterNetwork)
            throw new ArgumentException($"{address} is not an IPv4 address.", parameterName);
    }
}
