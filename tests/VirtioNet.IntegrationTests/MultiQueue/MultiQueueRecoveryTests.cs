using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using VirtioNet.IntegrationTests.Net;
using VirtioNet.Net;
using VirtioNet.Net.MultiQueue;
using VirtioNet.Net.Offloads;
using VirtioNet.Qemu;
using VirtioNet.Transports.Pci;
using Xunit;

namespace VirtioNet.IntegrationTests.MultiQueue;

/// <summary>
/// Error recovery of a multi-queue device against QEMU's virtio-net (<c>mq=on,rss=on,hash=on</c>) on a multi-queue
/// TAP: the test corrupts every receive queue's descriptors in guest RAM, so that QEMU's virtio_error() sets
/// DEVICE_NEEDS_RESET on the next frame; the driver recovers on its own, and the device's reset state (one pair, RSS
/// off, no hash) must have been replaced again by the driver's: the same active pairs, each flow on the queue the
/// indirection table names, and the Toeplitz hash of the test's key reported beside every frame.
/// </summary>
[Trait("Peer", "Qemu")]
public sealed class MultiQueueRecoveryTests
{
    private const int Pairs = 4;

    // Fewer pairs active than set up, so that a device left with its reset state (one pair) or told "all pairs" differs.
    private const int ActivePairs = 3;

    // The port of the datagrams that trip QEMU over the corrupted rings; ReceiveFlows counts only GuestPort.
    private const ushort TripPort = 7778;

    [Theory]
    [InlineData(QemuNetDeviceModel.VirtioMmio, OperationMode.Poll, VirtioPciInterruptMode.None)]
    [InlineData(QemuNetDeviceModel.VirtioMmio, OperationMode.Interrupt, VirtioPciInterruptMode.None)]
    [InlineData(QemuNetDeviceModel.VirtioPciModern, OperationMode.Poll, VirtioPciInterruptMode.None)]
    [InlineData(QemuNetDeviceModel.VirtioPciModern, OperationMode.Interrupt, VirtioPciInterruptMode.MsixPerQueue)]
    public void AfterQemuFlagsTheDeviceTheActivePairsRssSteeringAndReportedHashAreAsBefore(QemuNetDeviceModel model, OperationMode mode, VirtioPciInterruptMode pciInterrupts)
    {
        using MultiQueueTap tap = MultiQueueTap.Create();
        using RiscvVirtBoard board = RiscvVirtBoard.Start(
            new QemuMachineOptions { ModernMmio = true, NetDeviceModel = model, Netdev = tap.Netdev(Pairs), NetDeviceProperties = "mq=on,rss=on,hash=on" },
            TestContext.Current.CancellationToken);
        board.PciInterruptMode = pciInterrupts;
        using VirtioNetDevice net = board.OpenNetDevice(null, new VirtioNetOptions { OperationMode = mode, QueuePairs = Pairs, AutoRecover = true });
        ulong wanted = VirtioNetFeatures.Mq | VirtioNetFeatures.Rss | VirtioNetFeatures.HashReport;
        Assert.Equal(wanted, net.NegotiatedFeatures & wanted);
        tap.AddGuestNeighbour(net.MacAddress.Span);
        var events = new List<DeviceRecoveredEventArgs>();
        net.Recovered += (_, e) => events.Add(e);

        // Three active pairs; a table over them that is neither the identity spread nor QEMU's default, and a key that
        // is not the default one, so that neither a device left in its reset state nor one given defaults can pass.
        Assert.Equal(Pairs, tap.AttachedQueues);
        net.Control.SetActiveQueuePairs(ActivePairs);
        ushort[] table = [.. Enumerable.Range(0, 128).Select(i => (ushort)(((i * 5 / 3) + 2) % ActivePairs))];
        byte[] key = [.. ToeplitzHash.DefaultKey.ToArray().Select((b, i) => (byte)(b ^ (i * 37) ^ 0x5a))];
        var rss = new RssConfiguration { IndirectionTable = table, Key = key };
        net.Control.ConfigureRss(rss);

        // Three flows per active queue, chosen by the hash the device should compute.
        var flows = new List<ushort>();
        var perQueue = new int[ActivePairs];
        for (ushort port = 31000; perQueue.Min() < 3; port++)
        {
            int queue = rss.QueueFor(MultiQueueQemuTests.Hash(key, tap, port));
            if (perQueue[queue] < 3)
            {
                perQueue[queue]++;
                flows.Add(port);
            }
        }

        AssertSteeredWithTheReportedHash(net, tap, rss, flows);
        AssertActivePairs(net, tap);
        long receivedBefore = net.Pairs[0].ReceiveStatistics.Packets;

        // The sabotage: every receive ring, since RSS spreads the tripping datagrams over the active queues.
        for (int pair = 0; pair < Pairs; pair++)
        {
            RecoveryTests.CorruptReceiveDescriptors(board, net, 2 * pair);
        }

        MultiQueueQemuTests.SendFlows(tap, flows, datagramsPerFlow: 1, destinationPort: TripPort);
        WaitForRecovery(net);

        DeviceRecoveredEventArgs recovered = Assert.Single(events);
        Assert.Contains("DEVICE_NEEDS_RESET", recovered.Cause, StringComparison.Ordinal);
        Assert.True(net.CheckHealth());
        Assert.All(net.GetQueueStates(), q => Assert.Null(q.BrokenReason));
        Assert.Same(rss, net.Control.Rss);
        Assert.True(net.Pairs[0].ReceiveStatistics.Packets >= receivedBefore, "statistics were reset by recovery");

        // The device was told again: the same queue for each flow, the same hash, the same pairs carrying transmits.
        AssertSteeredWithTheReportedHash(net, tap, rss, flows);
        AssertActivePairs(net, tap);
        Assert.Equal(0, net.Pairs[0].ReceiveStatistics.Errors);
        Assert.Equal(1, net.Recoveries);
    }

    // Two datagrams per flow from the kernel: each on the queue the table names for the test's Toeplitz hash, and that
    // hash (UDPv4) reported beside it.
    private static void AssertSteeredWithTheReportedHash(VirtioNetDevice net, MultiQueueTap tap, RssConfiguration rss, List<ushort> flows)
    {
        MultiQueueQemuTests.SendFlows(tap, flows, datagramsPerFlow: 2);
        Dictionary<ushort, List<(int Pair, ReceiveHash Hash)>> seen = MultiQueueQemuTests.ReceiveFlows(net, tap, flows.Count * 2);
        Assert.Equal(flows.Order(), seen.Keys.Order());
        var queues = new HashSet<int>();
        foreach ((ushort port, List<(int Pair, ReceiveHash Hash)> arrivals) in seen)
        {
            uint expected = MultiQueueQemuTests.Hash(rss.Key.Span, tap, port);
            Assert.All(arrivals, a =>
            {
                Assert.Equal(new ReceiveHash(expected, HashReportType.UdpIpv4), a.Hash);
                Assert.Equal(rss.QueueFor(expected), a.Pair);
                queues.Add(a.Pair);
            });
        }

        Assert.Equal(Enumerable.Range(0, ActivePairs).ToHashSet(), queues);
    }

    // The active pairs as the device holds them: QEMU keeps the TAP queue of each active pair attached and detaches the
    // rest (virtio_net_set_queue_pairs), which the kernel shows as the TAP's queue count; and each active pair's
    // transmit queue carries a datagram to a kernel socket.
    private static void AssertActivePairs(VirtioNetDevice net, MultiQueueTap tap)
    {
        Assert.Equal(ActivePairs, net.Control.ActiveQueuePairs);
        Assert.Equal(ActivePairs, tap.AttachedQueues);
        using var host = new UdpClient(new IPEndPoint(tap.HostAddress, 0));
        host.Client.ReceiveTimeout = 5000;
        ushort hostPort = (ushort)((IPEndPoint)host.Client.LocalEndPoint!).Port;
        byte[] hostMac = tap.HostMac.GetAddressBytes();
        for (int pair = 0; pair < ActivePairs; pair++)
        {
            byte[] frame = UdpFrames.Build(hostMac, net.MacAddress.Span, tap.GuestAddress, tap.HostAddress, (ushort)(5000 + pair), hostPort, Encoding.ASCII.GetBytes($"pair {pair}"));
            var clock = Stopwatch.StartNew();
            while (!net.Pairs[pair].TrySend(frame))
            {
                Assert.True(clock.Elapsed < TimeSpan.FromSeconds(5), $"pair {pair}'s transmit ring stayed full");
                net.Pairs[pair].Reclaim();
                Thread.Yield();
            }
        }

        var sentBy = new HashSet<string>();
        for (int i = 0; i < ActivePairs; i++)
        {
            IPEndPoint? from = null;
            sentBy.Add(Encoding.ASCII.GetString(host.Receive(ref from)));
        }

        Assert.Equal(Enumerable.Range(0, ActivePairs).Select(p => $"pair {p}").ToHashSet(), sentBy);
        for (int pair = 0; pair < ActivePairs; pair++)
        {
            net.Pairs[pair].Reclaim();
        }
    }

    // Polls (discarding what arrives) until the driver has recovered once: in poll mode it reads the status every
    // LinkPollInterval and finds DEVICE_NEEDS_RESET there; in interrupt mode ProcessEvents takes the configuration
    // interrupt QEMU raised with it.
    private static void WaitForRecovery(VirtioNetDevice net)
    {
        byte[] scratch = new byte[net.Pairs[0].MaxReceiveFrameLength];
        var clock = Stopwatch.StartNew();
        while (net.Recoveries < 1)
        {
            TestContext.Current.CancellationToken.ThrowIfCancellationRequested();
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(20), $"the driver did not recover (status healthy: {net.CheckHealth()})");
            net.ProcessEvents();
            for (int pair = 0; pair < net.Pairs.Count; pair++)
            {
                while (net.Pairs[pair].TryReceive(scratch, out _))
                {
                }
            }

            Thread.Sleep(1);
        }

        // Frames the kernel sent while the device was being reset (TripPort) are drained, so none is counted later.
        Thread.Sleep(200);
        for (int pair = 0; pair < net.Pairs.Count; pair++)
        {
            while (net.Pairs[pair].TryReceive(scratch, out _))
            {
            }
        }
    }
}
