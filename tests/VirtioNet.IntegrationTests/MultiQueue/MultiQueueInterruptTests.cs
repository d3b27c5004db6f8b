using System.Net;
using System.Net.Sockets;
using System.Text;
using VirtioNet.Core;
using VirtioNet.Discovery;
using VirtioNet.Net;
using VirtioNet.Net.MultiQueue;
using VirtioNet.Net.Offloads;
using VirtioNet.Platform;
using VirtioNet.Qemu;
using VirtioNet.Transports;
using VirtioNet.Transports.Mmio;
using VirtioNet.Transports.Pci;
using Xunit;

namespace VirtioNet.IntegrationTests.MultiQueue;

/// <summary>
/// Interrupt mode with one worker thread per queue pair, each blocked in <see cref="VirtioNetQueuePair.WaitForReceive"/>,
/// against QEMU's virtio-net (<c>mq=on,rss=on</c>, 4 pairs) on a multi-queue TAP with the kernel's UDP stack as the
/// peer, on every interrupt layout: virtio-mmio (one PLIC line for the device), virtio-pci with INTx, with one MSI-X
/// vector shared by all queues, and with a vector per queue. RSS puts each flow on the pair the test chose; every
/// worker must receive exactly its own pair's datagrams, by interrupt, and then send its own back to a kernel socket.
/// </summary>
[Trait("Peer", "Qemu")]
public sealed class MultiQueueInterruptTests
{
    private const int Pairs = 4;
    private const int FlowsPerPair = 3;
    private const int DatagramsPerFlow = 4;
    private const int RepliesPerPair = 16;
    private const ushort GuestPort = 7777;

    // How long a worker waits for one frame, and the whole exchange, before the test fails; both end at once when it passes.
    private static readonly TimeSpan WaitLimit = TimeSpan.FromSeconds(30);

    /// <summary>The interrupt layouts, from one line for everything to one vector per queue.</summary>
    public enum Layout
    {
        /// <summary>virtio-mmio version 2: one PLIC line for the device.</summary>
        MmioLine,

        /// <summary>virtio-pci modern with INTx (PLIC line 33), read-to-clear ISR.</summary>
        PciIntx,

        /// <summary>virtio-pci modern with MSI-X, every queue and configuration on vector 0.</summary>
        PciMsixShared,

        /// <summary>virtio-pci modern with MSI-X, configuration on vector 0 and each queue on its own.</summary>
        PciMsixPerQueue,

        /// <summary>x86_64 q35, virtio-pci modern with INTx through the IOAPIC (GSI 21).</summary>
        Q35Intx,

        /// <summary>x86_64 q35, virtio-pci modern with one shared MSI-X vector.</summary>
        Q35MsixShared,

        /// <summary>x86_64 q35, virtio-pci modern with a vector per queue.</summary>
        Q35MsixPerQueue,
    }

    [Theory]
    [InlineData(Layout.MmioLine, "")]
    [InlineData(Layout.PciIntx, "")]
    [InlineData(Layout.PciMsixShared, "")]
    [InlineData(Layout.PciMsixPerQueue, "")]
    [InlineData(Layout.MmioLine, ",packed=on")]
    [InlineData(Layout.PciIntx, ",packed=on")]
    [InlineData(Layout.PciMsixShared, ",packed=on")]
    [InlineData(Layout.PciMsixPerQueue, ",packed=on")]
    [InlineData(Layout.MmioLine, ",event_idx=off")]
    [InlineData(Layout.PciMsixPerQueue, ",event_idx=off,packed=on")]
    [InlineData(Layout.Q35Intx, "")]
    [InlineData(Layout.Q35MsixShared, ",packed=on")]
    [InlineData(Layout.Q35MsixPerQueue, "")]
    public void EveryWorkerIsWokenForItsOwnPairsFramesAndSendsItsOwnBack(Layout layout, string ringProperties)
    {
        CancellationToken ct = TestContext.Current.CancellationToken;
        using MultiQueueTap tap = MultiQueueTap.Create();
        using Rig rig = Rig.Open(tap, layout, "mq=on,rss=on" + ringProperties, ct);
        VirtioNetDevice net = rig.Net;
        IVirtioTransport transport = rig.Transport;
        Assert.Equal(OperationMode.Interrupt, net.OperationMode);
        Assert.Equal((Pairs, Pairs), (net.Pairs.Count, net.Control.ActiveQueuePairs));
        Assert.Equal(ringProperties.Contains("packed=on", StringComparison.Ordinal) ? VirtioNet.Virtqueues.RingLayout.Packed : VirtioNet.Virtqueues.RingLayout.Split, net.RingLayout);
        Assert.Equal(!ringProperties.Contains("event_idx=off", StringComparison.Ordinal), (net.NegotiatedFeatures & VirtioFeatures.EventIdx) != 0);
        Assert.Contains(layout switch
        {
            Layout.MmioLine => "virtio-mmio",
            Layout.PciIntx or Layout.Q35Intx => "INTx",
            Layout.PciMsixShared or Layout.Q35MsixShared => "MSI-X shared",
            _ => "MSI-X per queue",
        }, net.TransportDescription, StringComparison.Ordinal);
        tap.AddGuestNeighbour(net.MacAddress.Span);

        // RSS with a table that is not the identity spread, and flows chosen by the hash so each pair gets its own.
        ushort[] table = [.. Enumerable.Range(0, 128).Select(i => (ushort)((i * 5 / 3) % Pairs))];
        byte[] key = [.. ToeplitzHash.DefaultKey.ToArray().Select((b, i) => (byte)(b ^ (i * 17)))];
        var rss = new RssConfiguration { IndirectionTable = table, Key = key, HashTypes = RssHashTypes.UdpIpv4 | RssHashTypes.Ipv4 };
        net.Control.ConfigureRss(rss);
        var flowsOf = Enumerable.Range(0, Pairs).Select(_ => new List<ushort>()).ToArray();
        for (ushort port = 31000; flowsOf.Any(f => f.Count < FlowsPerPair); port++)
        {
            int pair = rss.QueueFor(ToeplitzHash.ComputeAddressesAndPorts(key, tap.HostAddress, tap.GuestAddress, port, GuestPort));
            if (flowsOf[pair].Count < FlowsPerPair)
            {
                flowsOf[pair].Add(port);
            }
        }

        using var host = new UdpClient(new IPEndPoint(tap.HostAddress, 0));
        host.Client.ReceiveTimeout = (int)WaitLimit.TotalMilliseconds;
        ushort hostPort = (ushort)((IPEndPoint)host.Client.LocalEndPoint!).Port;
        byte[] hostMac = tap.HostMac.GetAddressBytes();
        long raisesBefore = transport.Interrupt!.RaiseCount;

        // One worker per pair: wait, take every frame, keep those for the guest's port; then send this pair's replies.
        var workers = new PairWorker[Pairs];
        for (int pair = 0; pair < Pairs; pair++)
        {
            workers[pair] = new PairWorker(net, pair, FlowsPerPair * DatagramsPerFlow, tap, hostMac, hostPort, ct);
        }

        foreach (PairWorker worker in workers)
        {
            worker.Start();
        }

        // Every worker is blocked in WaitForReceive (one of them on the line) before the first datagram leaves the kernel.
        Assert.True(SpinWait.SpinUntil(() => Enumerable.Range(0, Pairs).All(net.IsWaitingForReceive) && net.LineHolder >= 0, WaitLimit), "the workers did not all start waiting");

        // The first datagram goes to a pair whose worker does not hold the line: only the holder's dispatch can wake it
        // (the holder keeps the line, since its own queue stays empty, and nobody else leaves the wait).
        int holder = net.LineHolder;
        var datagrams = (
            from round in Enumerable.Range(0, DatagramsPerFlow)
            from f in Enumerable.Range(0, FlowsPerPair)
            from pair in Enumerable.Range(0, Pairs)
            select (Pair: pair, Port: flowsOf[pair][f], Round: round)).ToList();
        var first = datagrams.First(d => d.Pair != holder);
        SendDatagram(tap, first.Pair, first.Port, first.Round);
        Assert.True(SpinWait.SpinUntil(() => workers[first.Pair].Count >= 1, WaitLimit), $"pair {first.Pair}'s worker was not woken by the holder (pair {holder}): {workers[first.Pair].Describe()}");
        Assert.True(net.WaitersWokenByHolder >= 1, "the worker holding the line did not wake the worker whose queue had the frame");

        // The rest interleaved, so frames for every pair arrive together and the workers wake in any order.
        foreach (var (pair, port, round) in datagrams.Where(d => d != first))
        {
            SendDatagram(tap, pair, port, round);
        }

        // The replies: each worker sends its own once it has all its frames; the kernel socket gets every one.
        var replies = new HashSet<string>();
        for (int i = 0; i < Pairs * RepliesPerPair; i++)
        {
            IPEndPoint? from = null;
            byte[] datagram;
            try
            {
                datagram = host.Receive(ref from);
            }
            catch (SocketException e) when (e.SocketErrorCode == SocketError.TimedOut)
            {
                Assert.Fail($"{replies.Count} of {Pairs * RepliesPerPair} replies reached the kernel; workers: {string.Join("; ", workers.Select(w => w.Describe()))}");
                throw;
            }

            replies.Add(Encoding.ASCII.GetString(datagram));
        }

        foreach (PairWorker worker in workers)
        {
            Assert.True(worker.Join(WaitLimit), $"pair {worker.Pair}'s worker did not finish: {worker.Describe()}");
            worker.ThrowIfFailed();
        }

        for (int pair = 0; pair < Pairs; pair++)
        {
            // Exactly this pair's datagrams: every flow RSS put on it, each datagram once, nothing of another pair's.
            var expected = flowsOf[pair].SelectMany(port => Enumerable.Range(0, DatagramsPerFlow).Select(r => $"to pair {pair} flow {port} #{r}")).Order().ToList();
            Assert.Equal(expected, workers[pair].Received.Order().ToList());
            Assert.True(net.Pairs[pair].ReceiveQueue.Statistics.Interrupts > 0, $"receiveq{pair + 1}'s worker was never woken by an interrupt");
            Assert.Equal(FlowsPerPair * DatagramsPerFlow, net.Pairs[pair].ReceiveQueue.Statistics.Packets);
            Assert.Equal(Enumerable.Range(0, RepliesPerPair).Select(i => $"from pair {pair} #{i}").ToHashSet(), replies.Where(r => r.StartsWith($"from pair {pair} ", StringComparison.Ordinal)).ToHashSet());
            Assert.Equal(RepliesPerPair, net.Pairs[pair].TransmitQueue.Statistics.Packets);
        }

        // Interrupts, not polling: the device's line (or vectors) fired and the driver acknowledged used-buffer interrupts.
        // The holder may have found a frame by its scan before the interrupt for it arrived; with no worker waiting now,
        // ProcessEvents acknowledges what is still pending, so the platform's counts are complete.
        net.ProcessEvents();
        Assert.False(transport.Interrupt!.IsRaised);
        Assert.True(net.UsedBufferInterrupts > 0);
        Assert.True(transport.Interrupt!.RaiseCount > raisesBefore, $"the interrupt line never fired: {transport.Interrupt}");
        if (layout is Layout.PciMsixPerQueue or Layout.Q35MsixPerQueue)
        {
            // Each receive queue's own vector fired: the per-queue messages were what woke the workers.
            var vectors = (IQueueInterrupts)transport;
            Assert.All(Enumerable.Range(0, Pairs), pair => Assert.True(vectors.GetQueueInterrupt(2 * pair)!.RaiseCount > 0, $"receiveq{pair + 1}'s vector never fired"));
        }
    }

    // Link off and on while all four workers wait: the holder of the line takes the configuration interrupt.
    [Theory]
    [InlineData(Layout.MmioLine)]
    [InlineData(Layout.PciIntx)]
    [InlineData(Layout.PciMsixShared)]
    [InlineData(Layout.PciMsixPerQueue)]
    [InlineData(Layout.Q35Intx)]
    [InlineData(Layout.Q35MsixPerQueue)]
    public void LinkChangesAreSeenWhileEveryWorkerWaits(Layout layout)
    {
        CancellationToken ct = TestContext.Current.CancellationToken;
        using MultiQueueTap tap = MultiQueueTap.Create();
        using Rig rig = Rig.Open(tap, layout, "mq=on", ct);
        VirtioNetDevice net = rig.Net;
        IVirtioTransport transport = rig.Transport;
        var events = new List<bool>();
        net.LinkStateChanged += (_, e) =>
        {
            lock (events)
            {
                events.Add(e.IsUp);
            }
        };

        using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var waiters = Enumerable.Range(0, Pairs).Select(pair => new Thread(() =>
        {
            try
            {
                byte[] buffer = new byte[net.Pairs[0].MaxReceiveFrameLength];
                while (!stop.IsCancellationRequested)
                {
                    // Nothing is sent to the guest; anything the kernel sends anyway (none expected) is dropped.
                    if (net.Pairs[pair].WaitForReceive(WaitLimit, stop.Token))
                    {
                        while (net.Pairs[pair].TryReceive(buffer, out _))
                        {
                        }
                    }
                }
            }
            catch (OperationCanceledException)
            {
            }
        })
        { IsBackground = true }).ToList();
        waiters.ForEach(t => t.Start());
        try
        {
            Assert.True(SpinWait.SpinUntil(() => Enumerable.Range(0, Pairs).All(net.IsWaitingForReceive) && net.LineHolder >= 0, WaitLimit), "the workers did not all start waiting");
            rig.SetLink(false);
            Assert.True(SpinWait.SpinUntil(() => !net.IsLinkUp, WaitLimit), "link down was not seen");
            rig.SetLink(true);
            Assert.True(SpinWait.SpinUntil(() => net.IsLinkUp, WaitLimit), "link up was not seen");
            lock (events)
            {
                Assert.Equal([false, true], events);
            }

            Assert.Equal(2, net.ConfigurationInterrupts);
        }
        finally
        {
            stop.Cancel();
            waiters.ForEach(t => Assert.True(t.Join(WaitLimit), "a worker did not stop"));
        }
    }

    private static void SendDatagram(MultiQueueTap tap, int pair, ushort port, int round)
    {
        using var socket = new UdpClient(new IPEndPoint(tap.HostAddress, port));
        byte[] payload = Encoding.ASCII.GetBytes($"to pair {pair} flow {port} #{round}");
        socket.Send(payload, payload.Length, new IPEndPoint(tap.GuestAddress, GuestPort));
    }

    /// <summary>QEMU with the layout's machine and device, the transport with the layout's interrupt, and the driver on it.</summary>
    private sealed class Rig : IDisposable
    {
        private readonly IDisposable _board;
        private readonly Action<bool> _setLink;

        private Rig(IDisposable board, Action<bool> setLink, IVirtioTransport transport, VirtioNetDevice net)
        {
            _board = board;
            _setLink = setLink;
            Transport = transport;
            Net = net;
        }

        public IVirtioTransport Transport { get; }

        public VirtioNetDevice Net { get; }

        public static Rig Open(MultiQueueTap tap, Layout layout, string deviceProperties, CancellationToken ct)
        {
            bool q35 = layout is Layout.Q35Intx or Layout.Q35MsixShared or Layout.Q35MsixPerQueue;
            var options = new QemuMachineOptions
            {
                Machine = q35 ? QemuMachineKind.X86Q35 : QemuMachineKind.RiscvVirt,
                ModernMmio = !q35,
                NetDeviceModel = layout == Layout.MmioLine ? QemuNetDeviceModel.VirtioMmio : QemuNetDeviceModel.VirtioPciModern,
                Netdev = tap.Netdev(Pairs),
                NetDeviceProperties = deviceProperties,
            };
            VirtioPciInterruptMode mode = layout switch
            {
                Layout.PciMsixShared or Layout.Q35MsixShared => VirtioPciInterruptMode.MsixShared,
                Layout.PciMsixPerQueue or Layout.Q35MsixPerQueue => VirtioPciInterruptMode.MsixPerQueue,
                _ => VirtioPciInterruptMode.Intx,
            };
            IDisposable board;
            Action<bool> setLink;
            IDmaAllocator dma;
            Func<IVirtioTransport> openTransport;
            if (q35)
            {
                X86Q35Board x86 = X86Q35Board.Start(options, ct);
                (board, setLink, dma) = (x86, x86.SetLink, x86.Dma);
                openTransport = () => x86.OpenPciTransport(x86.FindPciNetFunction(), legacy: false, mode);
            }
            else
            {
                RiscvVirtBoard riscv = RiscvVirtBoard.Start(options, ct);
                (board, setLink, dma) = (riscv, riscv.SetLink, riscv.Dma);
                openTransport = layout == Layout.MmioLine
                    ? () => riscv.OpenTransport(
                        riscv.Slots.First(s =>
                        {
                            using VirtioMmioTransport probe = riscv.OpenTransport(s, withInterrupt: false);
                            return probe.DeviceId == VirtioDeviceTypes.Network;
                        }),
                        withInterrupt: true)
                    : () => riscv.OpenPciTransport(riscv.FindPciNetFunction(), legacy: false, mode);
            }

            IVirtioTransport? transport = null;
            try
            {
                transport = openTransport();
                VirtioNetDevice net = VirtioNetDevice.Open(transport, dma, new VirtioNetOptions { OperationMode = OperationMode.Interrupt, QueuePairs = Pairs });
                return new Rig(board, setLink, transport, net);
            }
            catch
            {
                transport?.Dispose();
                board.Dispose();
                throw;
            }
        }

        public void SetLink(bool up) => _setLink(up);

        public void Dispose()
        {
            Net.Dispose();
            Transport.Dispose();
            _board.Dispose();
        }
    }

    /// <summary>One pair's worker thread: receives its pair's datagrams by waiting on interrupts, then sends its replies.</summary>
    private sealed class PairWorker
    {
        private readonly VirtioNetDevice _net;
        private readonly int _expected;
        private readonly MultiQueueTap _tap;
        private readonly byte[] _hostMac;
        private readonly ushort _hostPort;
        private readonly CancellationToken _cancellationToken;
        private readonly Thread _thread;
        private Exception? _error;
        private int _waits;
        private int _emptyWakes;
        private int _count;

        public PairWorker(VirtioNetDevice net, int pair, int expected, MultiQueueTap tap, byte[] hostMac, ushort hostPort, CancellationToken cancellationToken)
        {
            _net = net;
            Pair = pair;
            _expected = expected;
            _tap = tap;
            _hostMac = hostMac;
            _hostPort = hostPort;
            _cancellationToken = cancellationToken;
            _thread = new Thread(Run) { IsBackground = true, Name = $"pair {pair}" };
        }

        public int Pair { get; }

        /// <summary>The payloads of the guest-port datagrams this worker received (read after <see cref="Join"/>).</summary>
        public List<string> Received { get; } = [];

        /// <summary>Datagrams for the guest's port received so far (readable while the worker runs).</summary>
        public int Count => Volatile.Read(ref _count);

        public void Start() => _thread.Start();

        public bool Join(TimeSpan timeout) => _thread.Join(timeout);

        public void ThrowIfFailed()
        {
            if (_error is not null)
            {
                throw new InvalidOperationException($"pair {Pair}'s worker failed", _error);
            }
        }

        public string Describe() => $"pair {Pair}: {Volatile.Read(ref _waits)} waits, {Volatile.Read(ref _emptyWakes)} without frames, {_error?.Message ?? "no error"}";

        private void Run()
        {
            try
            {
                byte[] buffer = new byte[_net.Pairs[0].MaxReceiveFrameLength];
                int count = 0;
                while (count < _expected)
                {
                    Interlocked.Increment(ref _waits);
                    if (!_net.Pairs[Pair].WaitForReceive(WaitLimit, _cancellationToken))
                    {
                        throw new TimeoutException($"no frame within {WaitLimit.TotalSeconds} s after {count} of {_expected}");
                    }

                    bool any = false;
                    while (_net.Pairs[Pair].TryReceive(buffer, out int length))
                    {
                        any = true;
                        if (UdpFrames.TryParse(buffer.AsSpan(0, length), out IPAddress source, out _, out _, out ushort destinationPort)
                            && destinationPort == GuestPort && source.Equals(_tap.HostAddress))
                        {
                            int udp = 14 + ((buffer[14] & 0x0F) * 4);
                            int payload = ((buffer[udp + 4] << 8) | buffer[udp + 5]) - 8;
                            Received.Add(Encoding.ASCII.GetString(buffer, udp + 8, payload));
                            count++;
                            Volatile.Write(ref _count, count);
                        }
                    }

                    if (!any)
                    {
                        Interlocked.Increment(ref _emptyWakes);
                    }
                }

                for (int i = 0; i < RepliesPerPair; i++)
                {
                    byte[] frame = UdpFrames.Build(_hostMac, _net.MacAddress.Span, _tap.GuestAddress, _tap.HostAddress, (ushort)(6000 + Pair), _hostPort, Encoding.ASCII.GetBytes($"from pair {Pair} #{i}"));
                    while (!_net.Pairs[Pair].TrySend(frame))
                    {
                        _cancellationToken.ThrowIfCancellationRequested();
                        _net.Pairs[Pair].Reclaim();
                        Thread.Yield();
                    }
                }
            }
            catch (Exception e)
            {
                _error = e;
            }
        }
    }
}
