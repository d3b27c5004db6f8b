using System.Net;
using System.Net.NetworkInformation;
using System.Runtime.InteropServices;
using VirtioNet.Diagnostics;
using VirtioNet.Net;
using VirtioNet.Net.Control;
using VirtioNet.Net.Offloads;

namespace VirtioNet.Service;

/// <summary>
/// The service's only door into the driver library: every call the service makes on <see cref="VirtioNetDevice"/>, its
/// queue pairs, its control plane and its burst types is in this file (the pumps' device side in <see cref="PairPort"/>, the verbs' reports in DeviceLink.Verbs.cs), so that a change of
/// the driver's API is absorbed here. The rest of the service speaks of TAP queues, kernel headers and counters.
/// </summary>
internal sealed partial class DeviceLink
{
    private readonly VirtioNetDevice _device;

    /// <summary>Wraps a device that is up; the caller keeps ownership of it.</summary>
    public DeviceLink(VirtioNetDevice device)
    {
        _device = device;
        _device.LinkStateChanged += (_, e) => LinkChanged?.Invoke(e.IsUp, e.AnnounceRequested);
    }

    /// <summary>Raised on a link change (up, and whether the device asked for an announcement), on whichever thread saw it.</summary>
    public event Action<bool, bool>? LinkChanged;

    /// <summary>Raised when the service changed something on the device (kind <c>filter</c> or <c>mac</c>, and what), on the caller's thread.</summary>
    public event Action<string, string>? Changed;

    /// <summary>The device's events (link, announce, configuration, queue broken, recovered); one reader: <see cref="ServiceEvents"/>.</summary>
    public System.Threading.Channels.ChannelReader<VirtioNetDeviceEvent> Events => _device.Events;

    /// <summary>Where the pumps hand frames to <c>vnet capture</c> clients.</summary>
    public CaptureHub Capture { get; } = new();

    /// <summary>How many times the device was reset and set up again.</summary>
    public long Recoveries => _device.Recoveries;

    /// <summary>Resets the device and sets it up again (<c>recover</c> on the control socket).</summary>
    public void Recover() => _device.Recover();

    /// <summary>The queue pairs in use.</summary>
    public int Pairs => _device.Pairs.Count;

    /// <summary>The device's MAC address.</summary>
    public byte[] MacAddress => _device.MacAddress.ToArray();

    /// <summary>
    /// The interface's MTU at start: the device's (VIRTIO_NET_F_MTU), else standard Ethernet's 1500 (or less, when the
    /// driver's buffers were sized for less).
    /// </summary>
    public int Mtu => _device.Config.Mtu ?? Math.Min(EthernetFrame.DefaultMtu, _device.Mtu);

    /// <summary>
    /// The largest MTU the interface may take: the device's (VIRTIO_NET_F_MTU); a device that reports none sets no bound
    /// of its own, so the bound is what the driver's buffers were sized for (<see cref="VirtioNetOptions.MaxMtu"/>).
    /// </summary>
    public int MaxMtu => _device.Mtu;

    /// <summary>Whether <see cref="MaxMtu"/> is the device's own (VIRTIO_NET_F_MTU) rather than the driver's buffer sizing.</summary>
    public bool MtuFromDevice => _device.Config.Mtu is not null;

    /// <summary>The virtio_net_hdr length the device uses, which the TAP is told to use too.</summary>
    public int HeaderLength => _device.HeaderLength;

    /// <summary>Whether the device reports its link up.</summary>
    public bool IsLinkUp => _device.IsLinkUp;

    /// <summary>One line for the log: transport, features in use, pairs.</summary>
    public string Description =>
        $"{_device.TransportDescription}, {_device.Pairs.Count} queue pair(s), {_device.ReceiveMode.ToString().ToLowerInvariant()} receive buffers, " +
        $"{_device.RingLayout} rings, {_device.OperationMode.ToString().ToLowerInvariant()} mode, header {_device.HeaderLength} bytes, " +
        $"offloads [{string.Join(' ', VirtioNetFeatureNames.Describe(_device.NegotiatedFeatures & VirtioNetOptions.OffloadFeatures))}]";

    /// <summary>
    /// The TUNSETOFFLOAD flags: what the kernel may hand over when <paramref name="enabled"/>. The driver takes a partial
    /// checksum and TCP/UDP segments whatever the device negotiated (it completes or cuts them in software when the
    /// device cannot), so the kernel is offered all of them; without, the kernel hands over finished frames only.
    /// </summary>
    public static uint KernelOffloads(bool enabled) => enabled
        ? Interop.Tun.TUN_F_CSUM | Interop.Tun.TUN_F_TSO4 | Interop.Tun.TUN_F_TSO6 | Interop.Tun.TUN_F_TSO_ECN | Interop.Tun.TUN_F_USO4 | Interop.Tun.TUN_F_USO6
        : 0;

    /// <summary>Polls the device's link state (for a device whose link is not yet up at start).</summary>
    public bool CheckLink() => _device.CheckLink();

    /// <summary>
    /// DHCP through the diagnostic client on queue pair 0, before the pumps own it. The service's start is synchronous,
    /// so it blocks on the client's asynchronous acquisition (whose continuations run on the thread pool).
    /// </summary>
    public DhcpLease AcquireLease(CancellationToken cancellationToken) =>
        new DiagnosticClient(new VirtioNetFramePort(_device)).AcquireLeaseAsync(cancellationToken).AsTask().GetAwaiter().GetResult();

    /// <summary>Receive mode: promiscuous (CTRL_RX). False with the reason when the device has no CTRL_RX or refuses.</summary>
    public bool TrySetPromiscuous(bool on, out string? why) => Report(TryControl(() => _device.Control.SetPromiscuous(on), out why), "filter", $"promiscuous {(on ? "on" : "off")}");

    /// <summary>Receive mode: all-multicast (CTRL_RX).</summary>
    public bool TrySetAllMulticast(bool on, out string? why) => Report(TryControl(() => _device.Control.SetAllMulticast(on), out why), "filter", $"all-multicast {(on ? "on" : "off")}");

    /// <summary>The MAC table's multicast addresses (CTRL_MAC_TABLE_SET), no extra unicast ones.</summary>
    public bool TrySetMulticastList(IEnumerable<byte[]> addresses, out string? why)
    {
        byte[][] list = [.. addresses];
        return Report(TryControl(() => _device.Control.SetMacFilter([], list.Select(a => new PhysicalAddress(a))), out why), "filter", $"multicast list of {list.Length} address(es)");
    }

    /// <summary>The device's MAC address (CTRL_MAC_ADDR_SET).</summary>
    public bool TrySetMacAddress(byte[] mac, out string? why) =>
        Report(TryControl(() => _device.Control.SetMacAddress(new PhysicalAddress(mac)), out why), "mac", string.Join(':', mac.Select(b => b.ToString("x2", System.Globalization.CultureInfo.InvariantCulture))));

    // Tells Changed about a change the device took.
    private bool Report(bool done, string kind, string detail)
    {
        if (done)
        {
            Changed?.Invoke(kind, detail);
        }

        return done;
    }

    /// <summary>The device's own counters of pair <paramref name="pair"/>'s receive and transmit queues.</summary>
    public (VirtioNetQueueStatistics Receive, VirtioNetQueueStatistics Transmit) PairStatistics(int pair) =>
        (_device.Pairs[pair].ReceiveStatistics, _device.Pairs[pair].TransmitStatistics);

    /// <summary>
    /// The pump state of pair <paramref name="pair"/>, moving up to <paramref name="burst"/> frames per burst in each
    /// direction; each pair's two pumps own it, one direction each.
    /// </summary>
    public PairPort OpenPair(int pair, int burst = PairPort.DefaultBurst) => new(_device, pair, burst, Capture);

    // Control-plane calls from the link watcher: a device without the feature, or one that says no, is reported, not fatal.
    private static bool TryControl(Action call, out string? why)
    {
        try
        {
            call();
            why = null;
            return true;
        }
        catch (Exception e) when (e is VirtioNet.Core.VirtioException or NotSupportedException or InvalidOperationException or ArgumentException)
        {
            why = e.Message;
            return false;
        }
    }

    /// <summary>
    /// The device side of one queue pair's pumps: receive bursts written to a TAP queue, and frames read from a TAP queue
    /// into transmit buffers. Buffers, vectors and scratch are allocated here once; nothing per frame.
    /// </summary>
    internal sealed unsafe class PairPort : IDisposable
    {
        /// <summary>Frames per burst in each direction unless told otherwise (a receive burst counts buffers, so it is also the most segments of one frame).</summary>
        public const int DefaultBurst = 64;

        /// <summary>The smallest burst: a receive burst must hold every buffer of the largest mergeable frame.</summary>
        public const int MinimumBurst = 32;

        /// <summary>The largest burst.</summary>
        public const int MaximumBurst = 1024;

        // Frames per burst in each direction.
        private readonly int _burst;

        // The largest frame the kernel hands over with TSO/USO: 64 KiB of IP packet behind an Ethernet header.
        private const int LargestKernelFrame = 65536 + 14 + 4;

        // The pair's one burst and copying entries serve both directions (receive: _rx; transmit: _tx).
        private readonly VirtioNetQueuePair _rx;
        private readonly VirtioNetQueuePair _tx;
        private readonly int _headerLength;
        private readonly ReceivedPacket[] _received;
        private readonly TransmitPacket[] _transmit;
        private readonly TransmitPacket[] _large = new TransmitPacket[1];

        // Pinned, so their addresses go into iovecs: the kernel header of each direction, and the part of a large frame
        // from the kernel that does not fit a transmit buffer; a large frame is joined in _staging.
        private readonly byte[] _rxHeader;
        private readonly byte[] _txHeader;
        private readonly byte[] _overflow;
        private readonly byte[] _staging;

        // Native: the iovec arrays of each direction (header + up to _burst segments; header + buffer + overflow).
        private readonly Interop.Unistd.IoVec* _rxVectors;
        private readonly Interop.Unistd.IoVec* _txVectors;

        // The device, for its MAC address (announcements); the data path goes through the pair only.
        private readonly VirtioNetDevice _device;

        // Capture clients, looked at once per burst in each direction; the pair's index, which the records carry.
        private readonly CaptureHub _capture;
        private readonly int _pair;

        internal PairPort(VirtioNetDevice device, int pair, int burst, CaptureHub capture)
        {
            ArgumentOutOfRangeException.ThrowIfLessThan(burst, MinimumBurst);
            ArgumentOutOfRangeException.ThrowIfGreaterThan(burst, MaximumBurst);
            _burst = burst;
            _received = new ReceivedPacket[burst];
            _transmit = new TransmitPacket[burst];
            _device = device;
            _capture = capture;
            _pair = pair;
            _rx = device.Pairs[pair];
            _tx = _rx;
            _headerLength = device.HeaderLength;
            _rxHeader = GC.AllocateArray<byte>(_headerLength, pinned: true);
            _txHeader = GC.AllocateArray<byte>(_headerLength, pinned: true);
            _overflow = GC.AllocateArray<byte>(LargestKernelFrame, pinned: true);
            _staging = GC.AllocateArray<byte>(LargestKernelFrame, pinned: true);
            // SAFETY: freed once in Dispose, after both pump threads have ended.
            _rxVectors = (Interop.Unistd.IoVec*)NativeMemory.AllocZeroed((nuint)(_burst + 1), (nuint)sizeof(Interop.Unistd.IoVec));
            _txVectors = (Interop.Unistd.IoVec*)NativeMemory.AllocZeroed(3, (nuint)sizeof(Interop.Unistd.IoVec));
        }

        /// <summary>Waits until the device has received frames for this pair (true) or the timeout passes.</summary>
        public bool WaitForFrames(TimeSpan timeout, CancellationToken cancellationToken) => _rx.WaitForReceive(timeout, cancellationToken);

        /// <summary>
        /// Device to kernel: takes one receive burst, writes each frame to <paramref name="tap"/> behind the kernel header
        /// that says what the device's header said (a partial checksum stays partial for the kernel to complete or
        /// trust; a coalesced GUEST_TSO/USO frame goes up as a GSO frame), and gives the buffers back. Returns frames moved.
        /// </summary>
        public int DeviceToKernel(TapQueue tap, PumpCounters counters)
        {
            int count = _rx.ReceiveBurst(_received);
            if (count == 0)
            {
                return 0;
            }

            if (_capture.Active is { } capturing)
            {
                CaptureHub.RecordReceived(capturing, _pair, _received.AsSpan(0, count));
            }

            int frames = 0;
            try
            {
                // SAFETY: _rxHeader is pinned for the object's life; segment pointers are the driver's DMA memory (native,
                // never moved), lent by ReceiveBurst until ReleaseBurst below; _rxVectors holds _burst + 1 entries and a
                // packet has at most _burst segments (ReceiveBurst never hands out more than the span holds).
                fixed (byte* header = _rxHeader)
                {
                    _rxVectors[0] = new Interop.Unistd.IoVec { Base = header, Length = (nuint)_headerLength };
                    for (int i = 0; i < count;)
                    {
                        ref readonly ReceivedPacket first = ref _received[i];
                        int segments = Math.Max(1, first.SegmentCount);
                        int length = 0;
                        for (int s = 0; s < segments; s++)
                        {
                            ReceivedPacket segment = _received[i + s];
                            _rxVectors[1 + s] = new Interop.Unistd.IoVec { Base = (void*)segment.Data.Pointer, Length = (nuint)segment.Length };
                            length += segment.Length;
                        }

                        ToKernelHeader(first).Write(_rxHeader);
                        int result = tap.Write(_rxVectors, 1 + segments);
                        if (result == 0)
                        {
                            counters.AddToKernel(length);
                            frames++;
                        }
                        else
                        {
                            counters.AddDrop(result == -Interop.Errno.EIO ? DropReason.InterfaceDown : DropReason.KernelRefused);
                        }

                        i += segments;
                    }
                }
            }
            finally
            {
                _rx.ReleaseBurst(_received.AsSpan(0, count));
            }

            return frames;
        }

        // What the device's header said, as the kernel's header says it. Ref: virtio v1.2 §5.1.6.4.
        private static KernelVnetHeader ToKernelHeader(in ReceivedPacket first)
        {
            ReceivedFrameInfo info = first.Offload;
            byte flags = info.Checksum switch
            {
                ReceivedChecksumState.Partial => KernelVnetHeader.NeedsCsum,
                ReceivedChecksumState.DeviceValidated or ReceivedChecksumState.Verified or ReceivedChecksumState.Completed => KernelVnetHeader.DataValid,
                _ => 0,
            };
            ushort csumStart = info.Checksum == ReceivedChecksumState.Partial ? (ushort)info.ChecksumStart : (ushort)0;
            ushort csumOffset = info.Checksum == ReceivedChecksumState.Partial ? (ushort)info.ChecksumOffset : (ushort)0;
            if (!info.IsGso)
            {
                return new KernelVnetHeader(flags, KernelVnetHeader.GsoNone, 0, 0, csumStart, csumOffset);
            }

            ushort hdrLen = PacketLayout.TryParse(first.Span, out PacketLayout layout) ? (ushort)layout.HeaderLength : (ushort)0;
            return new KernelVnetHeader(flags, (byte)info.GsoType, hdrLen, (ushort)info.GsoSize, csumStart, csumOffset);
        }

        /// <summary>
        /// GUEST_ANNOUNCE: a gratuitous ARP for each IPv4 address and an unsolicited neighbour advertisement for each IPv6
        /// one, from the device's MAC, through the copying path on this pair's transmit queue (called by its owner).
        /// </summary>
        public void Announce(IReadOnlyList<IPAddress> addresses, PumpCounters counters, CancellationToken cancellationToken)
        {
            Span<byte> frame = stackalloc byte[Math.Max(GratuitousArp.FrameLength, UnsolicitedNeighbourAdvertisement.FrameLength)];
            ReadOnlySpan<byte> mac = _device.MacAddress.Span;
            foreach (IPAddress address in addresses)
            {
                int length = address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6
                    ? UnsolicitedNeighbourAdvertisement.Write(mac, address, frame)
                    : GratuitousArp.Write(mac, address, frame);
                if (_capture.Active is { } capturing)
                {
                    CaptureHub.Record(capturing, _pair, CaptureDirection.Transmitted, frame[..length]);
                }

                SendCopying(frame[..length], default, counters, cancellationToken);
            }
        }

        /// <summary>
        /// Kernel to device: reads up to a burst of frames from <paramref name="tap"/> straight into transmit buffers
        /// (a TSO/USO segment longer than a buffer is joined and sent from a large buffer, or cut in software), turns the
        /// kernel's header into an offload request, and queues them. A full ring is waited out holding the frames
        /// (back-pressure: the TAP keeps the rest). Returns frames read; 0 when the TAP queue was empty.
        /// </summary>
        public int KernelToDevice(TapQueue tap, PumpCounters counters, CancellationToken cancellationToken)
        {
            int lent = AllocateWaiting(counters, cancellationToken);
            if (lent == 0)
            {
                return 0;
            }

            int ready = 0;
            int read = 0;
            try
            {
                // SAFETY: _txHeader and _overflow are pinned for the object's life; a transmit buffer's span is the driver's
                // DMA memory (native, never moved), lent by AllocateBurst until TransmitBurst or FreeBurst, so its address
                // stays valid after the fixed block that takes it; _txVectors holds 3 entries; readv writes at most each
                // vector's length.
                fixed (byte* header = _txHeader)
                fixed (byte* overflow = _overflow)
                {
                    while (ready < lent)
                    {
                        TransmitPacket packet = _transmit[ready];
                        Span<byte> room = packet.Span;
                        fixed (byte* buffer = room)
                        {
                            _txVectors[0] = new Interop.Unistd.IoVec { Base = header, Length = (nuint)_headerLength };
                            _txVectors[1] = new Interop.Unistd.IoVec { Base = buffer, Length = (nuint)room.Length };
                            _txVectors[2] = new Interop.Unistd.IoVec { Base = overflow, Length = (nuint)_overflow.Length };
                        }

                        int result = tap.Read(_txVectors, 3);
                        if (result == 0)
                        {
                            break;
                        }

                        if (result < 0)
                        {
                            counters.AddDrop(DropReason.TapReadError);
                            break;
                        }

                        read++;
                        int length = result - _headerLength;
                        if (length < 14)
                        {
                            counters.AddDrop(DropReason.KernelRunt);
                            continue;
                        }

                        KernelVnetHeader kernel = KernelVnetHeader.Read(_txHeader);
                        if (length <= room.Length)
                        {
                            if (TryRequest(room[..length], kernel, counters, out TransmitOffloadRequest request))
                            {
                                counters.AddFromKernel(length);
                                _transmit[ready++] = packet.WithLength(length).WithOffload(request);
                            }

                            continue;
                        }

                        // Longer than a transmit buffer: only a segment the device or the driver is to cut.
                        counters.AddFromKernelLarge();
                        room.CopyTo(_staging);
                        _overflow.AsSpan(0, length - room.Length).CopyTo(_staging.AsSpan(room.Length));
                        Span<byte> frame = _staging.AsSpan(0, length);
                        if (!kernel.IsGso)
                        {
                            counters.AddDrop(DropReason.KernelOversize);
                            continue;
                        }

                        if (!TryRequest(frame, kernel, counters, out TransmitOffloadRequest segmentation))
                        {
                            continue;
                        }

                        counters.AddFromKernel(length);

                        // Everything before it goes first: frames of one pair leave in the order the kernel gave them.
                        Send(ready, counters, cancellationToken);
                        _tx.FreeBurst(_transmit.AsSpan(ready, lent - ready));
                        lent = 0;
                        ready = 0;
                        SendLarge(frame, segmentation, counters, cancellationToken);
                        return read;
                    }
                }
            }
            catch
            {
                _tx.FreeBurst(_transmit.AsSpan(0, lent));
                throw;
            }

            _tx.FreeBurst(_transmit.AsSpan(ready, lent - ready));
            Send(ready, counters, cancellationToken);
            return read;
        }

        // Free transmit buffers, waiting for the device to complete some while the ring is full (the kernel's frames wait
        // in the TAP meanwhile). 0 only when cancelled.
        private int AllocateWaiting(PumpCounters counters, CancellationToken cancellationToken)
        {
            Span<TransmitPacket> span = _transmit;
            int lent = _tx.AllocateBurst(span);
            if (lent > 0)
            {
                return lent;
            }

            counters.AddRingFullWait();
            var spinner = default(SpinWait);
            while (!cancellationToken.IsCancellationRequested)
            {
                spinner.SpinOnce(sleep1Threshold: 30);
                lent = _tx.AllocateBurst(span);
                if (lent > 0)
                {
                    return lent;
                }
            }

            return 0;
        }

        // Queues _transmit[0..count), waiting out a full ring; a frame whose segmentation the device cannot do goes
        // through the driver's copying path, which cuts it in software.
        private void Send(int count, PumpCounters counters, CancellationToken cancellationToken)
        {
            if (_capture.Active is { } capturing)
            {
                for (int i = 0; i < count; i++)
                {
                    CaptureHub.Record(capturing, _pair, CaptureDirection.Transmitted, _transmit[i].Span[.._transmit[i].Length]);
                }
            }

            int next = 0;
            var spinner = default(SpinWait);
            while (next < count)
            {
                int sent;
                TransmitBurstStatus status;
                try
                {
                    sent = _tx.TransmitBurst(_transmit.AsSpan(next, count - next), out status);
                }
                catch (ArgumentException)
                {
                    // The frames before the refused one were queued; which one it was is not said, so the driver's
                    // statistics tell the rest. The rest of the burst is given back and counted.
                    counters.AddDrop(DropReason.DeviceRefused);
                    _tx.FreeBurst(_transmit.AsSpan(next, count - next));
                    return;
                }

                next += sent;
                switch (status)
                {
                    case TransmitBurstStatus.Complete:
                        return;
                    case TransmitBurstStatus.OffloadUnavailable:
                        TransmitPacket packet = _transmit[next];
                        SendCopying(packet.Span[..packet.Length], packet.Offload, counters, cancellationToken);
                        _tx.FreeBurst(_transmit.AsSpan(next, 1));
                        next++;
                        break;
                    default:
                        if (cancellationToken.IsCancellationRequested)
                        {
                            _tx.FreeBurst(_transmit.AsSpan(next, count - next));
                            return;
                        }

                        counters.AddRingFullWait();
                        spinner.SpinOnce(sleep1Threshold: 30);
                        _tx.Reclaim();
                        break;
                }
            }
        }

        // A frame longer than a transmit buffer: a large buffer when the device segments, else the copying path.
        private void SendLarge(ReadOnlySpan<byte> frame, TransmitOffloadRequest request, PumpCounters counters, CancellationToken cancellationToken)
        {
            // AllocateLargeBurst gives none when the device negotiated no segmentation (the large buffers exist only then).
            if (frame.Length <= EthernetFrame.MaxGsoFrameLength && _tx.AllocateLargeBurst(_large) == 1)
            {
                frame.CopyTo(_large[0].Span);
                _transmit[0] = _large[0].WithLength(frame.Length).WithOffload(request);
                Send(1, counters, cancellationToken);
                return;
            }

            if (_capture.Active is { } capturing)
            {
                CaptureHub.Record(capturing, _pair, CaptureDirection.Transmitted, frame);
            }

            SendCopying(frame, request, counters, cancellationToken);
        }

        private void SendCopying(ReadOnlySpan<byte> frame, TransmitOffloadRequest request, PumpCounters counters, CancellationToken cancellationToken)
        {
            var spinner = default(SpinWait);
            try
            {
                while (!_tx.TrySend(frame, request))
                {
                    if (cancellationToken.IsCancellationRequested)
                    {
                        return;
                    }

                    counters.AddRingFullWait();
                    spinner.SpinOnce(sleep1Threshold: 30);
                }
            }
            catch (ArgumentException)
            {
                counters.AddDrop(DropReason.DeviceRefused);
            }
        }

        // The kernel's header as the driver's offload request: NEEDS_CSUM asks for the TCP/UDP checksum, a GSO type for
        // segments of gso_size. A partial checksum the driver cannot place (not TCP/UDP over IPv4/IPv6 as it parses
        // them) is completed here from csum_start/csum_offset, so the frame leaves finished. Ref: virtio v1.2 §5.1.6.2.
        private static bool TryRequest(Span<byte> frame, KernelVnetHeader kernel, PumpCounters counters, out TransmitOffloadRequest request)
        {
            request = default;
            bool needsChecksum = (kernel.Flags & KernelVnetHeader.NeedsCsum) != 0;
            if (!needsChecksum && !kernel.IsGso)
            {
                return true;
            }

            bool parsed = PacketLayout.TryParse(frame, out PacketLayout layout);
            if (kernel.IsGso)
            {
                byte type = (byte)(kernel.GsoType & ~KernelVnetHeader.GsoEcn);
                bool tcp = type is KernelVnetHeader.GsoTcpV4 or KernelVnetHeader.GsoTcpV6;
                if (!parsed || kernel.GsoSize == 0 || (tcp ? !layout.IsTcp : type != KernelVnetHeader.GsoUdpL4 || layout.IsTcp))
                {
                    counters.AddDrop(DropReason.KernelBadOffload);
                    return false;
                }

                request = TransmitOffloadRequest.Segmentation(kernel.GsoSize);
                return true;
            }

            if (parsed && layout.TransportOffset == kernel.CsumStart && layout.ChecksumFieldOffset == kernel.CsumOffset)
            {
                request = TransmitOffloadRequest.Checksum;
                return true;
            }

            if (kernel.CsumStart + kernel.CsumOffset + 2 > frame.Length)
            {
                counters.AddDrop(DropReason.KernelBadOffload);
                return false;
            }

            InternetChecksum.CompletePartial(frame, kernel.CsumStart, kernel.CsumOffset);
            return true;
        }

        public void Dispose()
        {
            NativeMemory.Free(_rxVectors);
            NativeMemory.Free(_txVectors);
        }
    }
}
