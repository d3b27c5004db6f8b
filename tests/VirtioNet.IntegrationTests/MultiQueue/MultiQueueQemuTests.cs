using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using VirtioNet.Net;
using VirtioNet.Net.MultiQueue;
using VirtioNet.Net.Offloads;
using VirtioNet.Qemu;
using Xunit;

namespace VirtioNet.IntegrationTests.MultiQueue;

/// <summary>
/// Multi-queue against QEMU's virtio-net (virtio-mmio version 2, <c>mq=on</c>, <c>rss=on,hash=on</c>) on a multi-queue
/// TAP, with the kernel's UDP stack on the other side: every pair carries traffic both ways, and under RSS each flow
/// lands on the queue the indirection table names, with the hash the test computes. QEMU 7.2 has no eBPF RSS here
/// (libbpf refuses its program) and falls back to its software RSS, which is what these tests exercise.
/// </summary>
[Trait("Peer", "Qemu")]
public sealed class MultiQueueQemuTests
{
    private const int Pairs = 4;

    // The guest's UDP port the kernel sends to; any will do, the device does not look at it.
    internal const ushort GuestPort = 7777;

    private static (RiscvVirtBoard Board, MultiQueueTap Tap) Start(string deviceProperties, QemuNetDeviceModel model = QemuNetDeviceModel.VirtioMmio)
    {
        MultiQueueTap tap = MultiQueueTap.Create();
        try
        {
            RiscvVirtBoard board = RiscvVirtBoard.Start(
                new QemuMachineOptions { ModernMmio = true, NetDeviceModel = model, Netdev = tap.Netdev(Pairs), NetDeviceProperties = deviceProperties },
                TestContext.Current.CancellationToken);
            return (board, tap);
        }
        catch
        {
            tap.Dispose();
            throw;
        }
    }

    // On virtio-pci QEMU reports 3 queues until VIRTIO_NET_F_MQ is accepted, then all pairs: the transport re-reads num_queues.
    [Theory]
    [InlineData(QemuNetDeviceModel.VirtioMmio)]
    [InlineData(QemuNetDeviceModel.VirtioPciModern)]
    public void EveryQueuePairCarriesTrafficInBothDirections(QemuNetDeviceModel model)
    {
        var (board, tap) = Start("mq=on", model);
        using (board)
        using (tap)
        using (VirtioNetDevice net = board.OpenNetDevice(null, new VirtioNetOptions { OperationMode = OperationMode.Poll, QueuePairs = Pairs }))
        {
            Assert.NotEqual(0UL, net.NegotiatedFeatures & VirtioNetFeatures.Mq);
            Assert.Equal(Pairs, net.Config.MaxVirtqueuePairs);
            Assert.Equal((Pairs, Pairs), (net.Pairs.Count, net.Control.ActiveQueuePairs));
            Assert.Equal(2 * Pairs, net.Control.Queue!.QueueIndex);
            tap.AddGuestNeighbour(net.MacAddress.Span);

            // Transmit: a datagram from each pair to a kernel socket, each telling which pair sent it.
            using var host = new UdpClient(new IPEndPoint(tap.HostAddress, 0));
            host.Client.ReceiveTimeout = 5000;
            ushort hostPort = (ushort)((IPEndPoint)host.Client.LocalEndPoint!).Port;
            byte[] hostMac = tap.HostMac.GetAddressBytes();
            for (int pair = 0; pair < Pairs; pair++)
            {
                byte[] frame = UdpFrames.Build(hostMac, net.MacAddress.Span, tap.GuestAddress, tap.HostAddress, (ushort)(5000 + pair), hostPort, Encoding.ASCII.GetBytes($"pair {pair}"));
                Assert.True(net.Pairs[pair].TrySend(frame));
            }

            var sentBy = new HashSet<string>();
            for (int i = 0; i < Pairs; i++)
            {
                IPEndPoint? from = null;
                sentBy.Add(Encoding.ASCII.GetString(host.Receive(ref from)));
            }

            Assert.Equal(Enumerable.Range(0, Pairs).Select(p => $"pair {p}").ToHashSet(), sentBy);
            Assert.All(net.Pairs.Select(p => p.TransmitQueue), q => Assert.Equal(1, q.Statistics.Packets));

            // Receive: without RSS the device delivers each TAP queue's frames to its pair, and the kernel spreads
            // flows over the TAP queues by flow hash; 64 flows leave no queue empty (chance of one empty: ~1e-7).
            var flows = Enumerable.Range(0, 64).Select(i => (ushort)(20000 + i)).ToList();
            SendFlows(tap, flows, datagramsPerFlow: 2);
            Dictionary<ushort, List<(int Pair, ReceiveHash Hash)>> seen = ReceiveFlows(net, tap, flows.Count * 2);
            Assert.Equal(flows.Order(), seen.Keys.Order());
            int[] perPair = [.. Enumerable.Range(0, Pairs).Select(p => net.Pairs[p].ReceiveQueue.Statistics.Packets).Select(n => (int)n)];
            Assert.All(perPair, n => Assert.True(n > 0, $"a receive queue got nothing: {string.Join(", ", perPair)}"));

            // A flow stays on one queue (the kernel keeps a flow on one TAP queue).
            Assert.All(seen.Values, arrivals => Assert.Single(arrivals.Select(a => a.Pair).Distinct()));
        }
    }

    // On virtio-pci QEMU reports 3 queues until VIRTIO_NET_F_MQ is accepted, then all pairs: the transport re-reads num_queues.
    [Theory]
    [InlineData(QemuNetDeviceModel.VirtioMmio)]
    [InlineData(QemuNetDeviceModel.VirtioPciModern)]
    public void UnderRssEachFlowLandsOnTheQueueTheTableNamesWithTheToeplitzHashReported(QemuNetDeviceModel model)
    {
        var (board, tap) = Start("mq=on,rss=on,hash=on", model);
        using (board)
        using (tap)
        using (VirtioNetDevice net = board.OpenNetDevice(null, new VirtioNetOptions { OperationMode = OperationMode.Poll, QueuePairs = Pairs }))
        {
            ulong wanted = VirtioNetFeatures.Mq | VirtioNetFeatures.Rss | VirtioNetFeatures.HashReport;
            Assert.Equal(wanted, net.NegotiatedFeatures & wanted);
            Assert.Equal(VirtioNetHeader.HashReportLength, net.HeaderLength);
            Assert.True(net.Config.RssMaxIndirectionTableLength >= 128);
            Assert.Equal(40, net.Config.RssMaxKeySize);
            tap.AddGuestNeighbour(net.MacAddress.Span);

            // A table that is not the identity spread, and a key that is not the default, so neither can pass by chance.
            ushort[] table = [.. Enumerable.Range(0, 128).Select(i => (ushort)((i * 3 / 2) % Pairs))];
            byte[] key = [.. ToeplitzHash.DefaultKey.ToArray().Select((b, i) => (byte)(b ^ (i * 29)))];
            var rss = new RssConfiguration { IndirectionTable = table, Key = key };
            net.Control.ConfigureRss(rss);

            // Choose flows so that every queue gets four, by the hash the device should compute.
            var flows = new List<ushort>();
            var perQueue = new int[Pairs];
            for (ushort port = 30000; perQueue.Min() < 4; port++)
            {
                int queue = rss.QueueFor(Hash(key, tap, port));
                if (perQueue[queue] < 4)
                {
                    perQueue[queue]++;
                    flows.Add(port);
                }
            }

            SendFlows(tap, flows, datagramsPerFlow: 2);
            Dictionary<ushort, List<(int Pair, ReceiveHash Hash)>> seen = ReceiveFlows(net, tap, flows.Count * 2);
            Assert.Equal(flows.Order(), seen.Keys.Order());
            foreach ((ushort port, List<(int Pair, ReceiveHash Hash)> arrivals) in seen)
            {
                uint expected = Hash(key, tap, port);
                Assert.All(arrivals, a =>
                {
                    Assert.Equal(new ReceiveHash(expected, HashReportType.UdpIpv4), a.Hash);
                    Assert.Equal(rss.QueueFor(expected), a.Pair);
                });
            }

            Assert.All(net.Pairs.Select(p => p.ReceiveQueue), q => Assert.Equal(8, q.Statistics.Packets));

            // A new table moves every flow to receiveq3 at once.
            net.Control.ConfigureRss(rss with { IndirectionTable = Enumerable.Repeat((ushort)2, 128).ToArray() });
            SendFlows(tap, flows, datagramsPerFlow: 1);
            seen = ReceiveFlows(net, tap, flows.Count);
            Assert.All(seen.Values.SelectMany(a => a), a => Assert.Equal(2, a.Pair));
            Assert.Equal(8 + flows.Count, net.Pairs[2].ReceiveQueue.Statistics.Packets);
        }
    }

    [Fact]
    public void HashReportingAloneReportsTheHashWithoutMovingFrames()
    {
        var (board, tap) = Start("mq=on,hash=on");
        using (board)
        using (tap)
        using (VirtioNetDevice net = board.OpenNetDevice(null, new VirtioNetOptions { OperationMode = OperationMode.Poll, QueuePairs = 1 }))
        {
            Assert.Equal(0UL, net.NegotiatedFeatures & VirtioNetFeatures.Rss);
            Assert.NotEqual(0UL, net.NegotiatedFeatures & VirtioNetFeatures.HashReport);
            tap.AddGuestNeighbour(net.MacAddress.Span);

            byte[] key = ToeplitzHash.DefaultKey.ToArray();
            net.Control.ConfigureHashReport(RssHashTypes.UdpIpv4 | RssHashTypes.Ipv4, key);
            var flows = Enumerable.Range(0, 8).Select(i => (ushort)(40000 + (i * 13))).ToList();
            SendFlows(tap, flows, datagramsPerFlow: 1);
            Dictionary<ushort, List<(int Pair, ReceiveHash Hash)>> seen = ReceiveFlows(net, tap, flows.Count);
            Assert.Equal(flows.Order(), seen.Keys.Order());
            Assert.All(seen, kv => Assert.Equal(new ReceiveHash(Hash(key, tap, kv.Key), HashReportType.UdpIpv4), Assert.Single(kv.Value).Hash));

            // Without UDPv4 in the types, the device falls back to the IPv4 (addresses only) hash.
            net.Control.ConfigureHashReport(RssHashTypes.Ipv4, key);
            SendFlows(tap, flows.Take(1).ToList(), datagramsPerFlow: 1);
            ReceiveHash ipOnly = Assert.Single(Assert.Single(ReceiveFlows(net, tap, 1)).Value).Hash;
            Assert.Equal(new ReceiveHash(ToeplitzHash.ComputeAddresses(key, tap.HostAddress, tap.GuestAddress), HashReportType.Ipv4), ipOnly);
        }
    }

    // The device hashes the frame as it arrives: source = the kernel's address and port, destination = the guest's.
    internal static uint Hash(ReadOnlySpan<byte> key, MultiQueueTap tap, ushort sourcePort, ushort destinationPort = GuestPort) =>
        ToeplitzHash.ComputeAddressesAndPorts(key, tap.HostAddress, tap.GuestAddress, sourcePort, destinationPort);

    internal static void SendFlows(MultiQueueTap tap, IReadOnlyList<ushort> sourcePorts, int datagramsPerFlow, ushort destinationPort = GuestPort)
    {
        foreach (ushort port in sourcePorts)
        {
            using var socket = new UdpClient(new IPEndPoint(tap.HostAddress, port));
            for (int i = 0; i < datagramsPerFlow; i++)
            {
                byte[] payload = Encoding.ASCII.GetBytes($"flow {port} #{i}");
                socket.Send(payload, payload.Length, new IPEndPoint(tap.GuestAddress, destinationPort));
            }
        }
    }

    // Polls every pair until `expected` UDP frames to GuestPort arrived (other frames are ignored), or 10 s pass.
    internal static Dictionary<ushort, List<(int Pair, ReceiveHash Hash)>> ReceiveFlows(VirtioNetDevice net, MultiQueueTap tap, int expected)
    {
        var seen = new Dictionary<ushort, List<(int, ReceiveHash)>>();
        byte[] buffer = new byte[net.Pairs[0].MaxReceiveFrameLength];
        int count = 0;
        var clock = Stopwatch.StartNew();
        while (count < expected && clock.Elapsed < TimeSpan.FromSeconds(10))
        {
            TestContext.Current.CancellationToken.ThrowIfCancellationRequested();
            bool any = false;
            for (int pair = 0; pair < net.Pairs.Count; pair++)
            {
                while (net.Pairs[pair].TryReceive(buffer, out int length, out ReceiveHash hash))
                {
                    any = true;
                    if (UdpFrames.TryParse(buffer.AsSpan(0, length), out IPAddress source, out _, out ushort sourcePort, out ushort destinationPort)
                        && destinationPort == GuestPort && source.Equals(tap.HostAddress))
                    {
                        count++;
                        if (!seen.TryGetValue(sourcePort, out List<(int, ReceiveHash)>? list))
                        {
                            seen[sourcePort] = list = [];
                        }

                        list.Add((pair, hash));
                    }
                }
            }

            if (!any)
            {
                Thread.Sleep(1);
            }
        }

        Assert.True(count == expected, $"{count} of {expected} datagrams arrived within 10 s");
        return seen;
    }
}
