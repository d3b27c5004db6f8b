using System.Net;
using System.Net.NetworkInformation;
using System.Text.Json;
using PacketDotNet;
using VirtioNet.IntegrationTests.VhostUser;
using VirtioNet.Net;
using VirtioNet.Net.Vlan;
using VirtioNet.Qemu;
using Xunit;

namespace VirtioNet.IntegrationTests.Tap;

/// <summary>
/// 802.1Q against the kernel, with promiscuous mode off so QEMU's VLAN table (VIRTIO_NET_CTRL_VLAN) decides what
/// reaches the driver; the driver answers on VLAN 100 (tags stripped with <c>TryReceive(..., out VlanTag?)</c>, replies
/// tagged with <c>TrySend(frame, VlanTag)</c>). The kernels of this project's machines have no 802.1Q
/// (CONFIG_VLAN_8021Q: no <c>type vlan</c> interfaces, no act_vlan, no VLAN-filtering bridge), so the kernel's tagged
/// frames come from a packet socket on the TAP, or from Open vSwitch's userspace VLAN switching.
/// Ref: virtio v1.2 §5.1.6.5.3.
/// </summary>
[Trait("Peer", "Qemu")]
[Trait("Peer", "Kernel")]
public sealed class TapVlanTests
{
    private const int VlanId = 100;
    private const string KernelVlanAddress = "10.78.0.1";
    private const string DriverVlanAddress = "10.78.0.2";

    /// <summary>
    /// The kernel's own ping and ARP, from an interface whose traffic is VLAN 100, to the driver. That interface is not
    /// a kernel 802.1Q interface (the kernel cannot make one) but an Open vSwitch access port: in the test's namespace a
    /// private ovs-vswitchd (netdev datapath, no DPDK, see <see cref="OvsDpdkSwitch.StartInNamespace"/>) bridges QEMU's
    /// TAP as a trunk port for VLAN 100 only (<c>trunks=100</c>) and an <c>internal</c> port with <c>tag=100</c>, a
    /// kernel interface carrying VLAN 100 untagged with the kernel's address on it. OVS, not the kernel, inserts the tag
    /// on the way to QEMU and removes it on the way back; what reaches the device is 802.1Q-tagged, as the driver's
    /// <c>VlanTag</c> on every counted frame shows.
    /// </summary>
    [Fact]
    [Trait("Peer", "Ovs")]
    public async Task KernelPingsOverAVlanInterfaceAreAnsweredOnlyWhileTheIdIsInTheDevicesTable()
    {
        KernelPeerRequirement.EnsureAvailable();
        OvsRequirement.EnsureAvailable();
        using var ns = NetworkNamespace.Create();
        using RiscvVirtBoard board = StartBoard(ns);
        using VirtioNetDevice net = board.OpenNetDevice(null, new VirtioNetOptions { OperationMode = OperationMode.Poll, Offloads = false });
        Assert.NotEqual(0UL, net.NegotiatedFeatures & VirtioNetFeatures.CtrlVlan);

        // QEMU's TAP becomes a switch port in the namespace, so it gets no address of its own; OVS lives in the same
        // namespace, and its interfaces go with it when the namespace is deleted.
        ns.MoveTapInUnaddressed(1500);
        using OvsDpdkSwitch ovs = OvsDpdkSwitch.StartInNamespace(ns.Name);
        string vlan = $"vlan{VlanId}";
        ovs.AddSystemPort(ns.TapName, $"trunks={VlanId}");
        ovs.AddInternalPort(vlan, $"tag={VlanId}");
        ns.IpInside($"addr add {KernelVlanAddress}/24 dev {vlan}");
        ns.IpInside($"link set {vlan} up");

        // QEMU applies its VLAN table only outside promiscuous mode, and starts promiscuous.
        net.Control.SetPromiscuous(false);
        net.Control.AddVlan(VlanId);

        var responder = new VlanResponder(net, VlanId, IPAddress.Parse(DriverVlanAddress));
        (int answered, long sentByKernel) = await PingFromKernel(ns, vlan, responder, timeoutMilliseconds: 3000);
        TestContext.Current.TestOutputHelper?.WriteLine(
            $"VLAN {VlanId} in the table: {answered}/3 pings answered, {sentByKernel} frames sent by {vlan}, {responder.TaggedFrames} tagged frames at the driver ({responder.ArpReplies} ARP, {responder.EchoReplies} echo replies), {responder.OtherTagFrames} with other tags, {responder.UntaggedFrames} untagged");
        Assert.True(answered == 3, $"{answered}/3 pings answered.\n{SwitchState(ns, ovs)}");
        Assert.True(responder.ArpReplies >= 1, "the kernel's ARP request never reached the driver tagged");
        Assert.True(responder.EchoReplies >= 3, "the driver answered fewer echo requests than pings succeeded");
        Assert.Equal(0, responder.OtherTagFrames);
        Assert.Equal(0, responder.UntaggedFrames);

        // Without the id the device drops every tagged frame the kernel sends, ARP and echo alike.
        net.Control.RemoveVlan(VlanId);
        Assert.Empty(net.Control.VlanIds);
        responder = new VlanResponder(net, VlanId, IPAddress.Parse(DriverVlanAddress));
        (answered, sentByKernel) = await PingFromKernel(ns, vlan, responder, timeoutMilliseconds: 700);
        TestContext.Current.TestOutputHelper?.WriteLine(
            $"VLAN {VlanId} removed: {answered}/3 pings answered, {sentByKernel} frames sent by {vlan}, {responder.TaggedFrames} tagged frames at the driver, {responder.UntaggedFrames} untagged");
        Assert.True(sentByKernel >= 3, $"{vlan} sent {sentByKernel} frames, fewer than the 3 pings, so not everything could be dropped");
        Assert.Equal(0, responder.TaggedFrames);
        Assert.Equal(0, answered);

        // And once added back, the same interface is answered again: the drops came from the table, not a broken link.
        net.Control.AddVlan(VlanId);
        responder = new VlanResponder(net, VlanId, IPAddress.Parse(DriverVlanAddress));
        (answered, _) = await PingFromKernel(ns, vlan, responder, timeoutMilliseconds: 3000);
        Assert.True(answered == 3, $"{answered}/3 pings answered once re-added.\n{SwitchState(ns, ovs)}");
        Assert.True(responder.TaggedFrames >= 3);
    }

    [Fact]
    public async Task TaggedArpFromTheKernelsTapReachesTheDriverOnlyWhileTheIdIsInTheDevicesTable()
    {
        KernelPeerRequirement.EnsureAvailable();
        using var ns = NetworkNamespace.Create();
        using RiscvVirtBoard board = StartBoard(ns);
        using VirtioNetDevice net = Open(board, ns);
        net.Control.SetPromiscuous(false);
        net.Control.AddVlan(VlanId);

        // Kernels without 802.1Q (CONFIG_VLAN_8021Q) still carry tagged frames: a packet socket on the TAP sends
        // tagged ARP requests through the kernel's TAP driver to QEMU, and receives the driver's replies.
        var responder = new VlanResponder(net, VlanId, IPAddress.Parse(DriverVlanAddress));
        int replies = await ArpFromPacketSocket(ns, responder, requests: 3, wait: TimeSpan.FromSeconds(3));
        TestContext.Current.TestOutputHelper?.WriteLine(
            $"VLAN {VlanId} in the table: {replies}/3 ARP replies at the kernel, {responder.TaggedFrames} tagged frames at the driver");
        Assert.Equal(3, responder.TaggedFrames);
        Assert.Equal(3, responder.ArpReplies);
        Assert.Equal(3, replies);

        net.Control.RemoveVlan(VlanId);
        responder = new VlanResponder(net, VlanId, IPAddress.Parse(DriverVlanAddress));
        replies = await ArpFromPacketSocket(ns, responder, requests: 3, wait: TimeSpan.FromSeconds(1));
        TestContext.Current.TestOutputHelper?.WriteLine(
            $"VLAN {VlanId} removed: {replies}/3 ARP replies at the kernel, {responder.TaggedFrames} tagged frames at the driver");
        Assert.Equal(0, responder.TaggedFrames);
        Assert.Equal(0, replies);

        // Another id in the table does not let 100 through either; 100 itself does again.
        net.Control.AddVlan(VlanId + 1);
        responder = new VlanResponder(net, VlanId, IPAddress.Parse(DriverVlanAddress));
        Assert.Equal(0, await ArpFromPacketSocket(ns, responder, requests: 2, wait: TimeSpan.FromSeconds(1)));
        Assert.Equal(0, responder.TaggedFrames);
        net.Control.AddVlan(VlanId);
        responder = new VlanResponder(net, VlanId, IPAddress.Parse(DriverVlanAddress));
        Assert.Equal(2, await ArpFromPacketSocket(ns, responder, requests: 2, wait: TimeSpan.FromSeconds(3)));
        Assert.Equal(2, responder.TaggedFrames);
    }

    // What the namespace's interfaces saw (per-interface counters) and the switch's log, for a failure message.
    private static string SwitchState(NetworkNamespace ns, OvsDpdkSwitch ovs) =>
        $"{ns.IpInside("-s -d link show")}\n{ns.IpInside("addr show")}\n{ns.IpInside("route show")}\n{ns.IpInside("neigh show")}\n"
        + ovs.Log;

    private static RiscvVirtBoard StartBoard(NetworkNamespace ns) =>
        RiscvVirtBoard.Start(new QemuMachineOptions { ModernMmio = true, Netdev = ns.Netdev }, TestContext.Current.CancellationToken);

    private static VirtioNetDevice Open(RiscvVirtBoard board, NetworkNamespace ns)
    {
        VirtioNetDevice net = board.OpenNetDevice(null, new VirtioNetOptions { OperationMode = OperationMode.Poll, Offloads = false });
        try
        {
            Assert.NotEqual(0UL, net.NegotiatedFeatures & VirtioNetFeatures.CtrlVlan);
            ns.MoveTapIn(1500, net.MacAddress.Span);
            return net;
        }
        catch
        {
            net.Dispose();
            throw;
        }
    }

    // Sends tagged ARP requests for the driver's address from a packet socket on the TAP inside the namespace while the
    // responder runs, and returns how many ARP replies from that address the socket received.
    private static async Task<int> ArpFromPacketSocket(NetworkNamespace ns, VlanResponder responder, int requests, TimeSpan wait)
    {
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
        Task serving = Task.Factory.StartNew(() => responder.Serve(stop.Token), stop.Token, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        try
        {
            return await ns.Run(() =>
            {
                using var socket = PacketSocket.Open(ns.TapName);
                var kernelMac = new PhysicalAddress(NetworkNamespace.KernelMac);
                var request = new ArpPacket(
                    ArpOperation.Request, PhysicalAddress.Parse("00-00-00-00-00-00"), IPAddress.Parse(DriverVlanAddress), kernelMac, IPAddress.Parse(KernelVlanAddress));
                byte[] untagged = new EthernetPacket(kernelMac, PhysicalAddress.Parse("FF-FF-FF-FF-FF-FF"), EthernetType.Arp) { PayloadPacket = request }.Bytes;
                byte[] tagged = new byte[untagged.Length + EthernetFrame.VlanTagLength];
                VlanFrame.InsertTag(untagged, new VlanTag(VlanId), tagged);
                for (int i = 0; i < requests; i++)
                {
                    socket.Send(tagged);
                }

                int replies = 0;
                byte[] buffer = new byte[2048];
                DateTime deadline = DateTime.UtcNow + wait;
                while (DateTime.UtcNow < deadline && replies < requests)
                {
                    int length = socket.Receive(buffer, TimeSpan.FromMilliseconds(100));
                    if (length > 0 && IsArpReplyFrom(buffer.AsSpan(0, length), IPAddress.Parse(DriverVlanAddress)))
                    {
                        replies++;
                    }
                }

                // Late replies would show as a count above the requests; give them a moment when all were answered.
                if (replies == requests && socket.Receive(buffer, TimeSpan.FromMilliseconds(200)) is int late and > 0
                    && IsArpReplyFrom(buffer.AsSpan(0, late), IPAddress.Parse(DriverVlanAddress)))
                {
                    replies++;
                }

                return replies;
            });
        }
        finally
        {
            await stop.CancelAsync();
            await serving;
        }
    }

    // The kernel moves a received 802.1Q tag into the packet's metadata before packet sockets see it, so the reply
    // may arrive with or without the tag in its bytes; both are accepted (the tag itself is checked on the wire by
    // FilteringTests.TaggedSendsLeaveWithTheTagInPlace).
    private static bool IsArpReplyFrom(ReadOnlySpan<byte> frame, IPAddress sender)
    {
        byte[] bytes = frame.ToArray();
        if (VlanFrame.TryReadTag(bytes, out _))
        {
            bytes = [.. bytes.AsSpan(0, 12), .. bytes.AsSpan(12 + EthernetFrame.VlanTagLength)];
        }

        return new EthernetPacket(new PacketDotNet.Utils.ByteArraySegment(bytes)).PayloadPacket is ArpPacket { Operation: ArpOperation.Response } arp
            && arp.SenderProtocolAddress.Equals(sender);
    }

    // Three pings from the namespace to the driver's VLAN address while the responder runs; returns how many were
    // answered and how many frames the VLAN interface transmitted meanwhile.
    private static async Task<(int Answered, long SentByKernel)> PingFromKernel(NetworkNamespace ns, string vlan, VlanResponder responder, int timeoutMilliseconds)
    {
        long before = TransmittedPackets(ns, vlan);
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
        Task serving = Task.Factory.StartNew(() => responder.Serve(stop.Token), stop.Token, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        int answered;
        try
        {
            // A raw ICMP socket (root) created on the namespace's thread: the kernel's own ping, from inside.
            answered = await ns.Run(() =>
            {
                using var ping = new Ping();
                int ok = 0;
                for (int i = 0; i < 3; i++)
                {
                    if (ping.Send(IPAddress.Parse(DriverVlanAddress), timeoutMilliseconds).Status == IPStatus.Success)
                    {
                        ok++;
                    }
                }

                return ok;
            });
        }
        finally
        {
            await stop.CancelAsync();
            await serving;
        }

        return (answered, TransmittedPackets(ns, vlan) - before);
    }

    private static long TransmittedPackets(NetworkNamespace ns, string device)
    {
        using JsonDocument json = JsonDocument.Parse(ns.IpInside($"-j -s link show dev {device}"));
        JsonElement stats = json.RootElement[0].GetProperty("stats64");
        return stats.GetProperty("tx").GetProperty("packets").GetInt64();
    }

    /// <summary>
    /// The driver's side of VLAN 100: answers ARP requests and ICMP echo requests for its address that arrive tagged
    /// with the id, and counts what arrives.
    /// </summary>
    private sealed class VlanResponder(VirtioNetDevice net, int vlanId, IPAddress address)
    {
        public int TaggedFrames { get; private set; }

        public int OtherTagFrames { get; private set; }

        public int UntaggedFrames { get; private set; }

        public int ArpReplies { get; private set; }

        public int EchoReplies { get; private set; }

        public void Serve(CancellationToken stop)
        {
            byte[] buffer = new byte[net.Pairs[0].MaxReceiveFrameLength];
            var mac = new PhysicalAddress(net.MacAddress.ToArray());
            while (!stop.IsCancellationRequested)
            {
                if (!net.Pairs[0].WaitForReceive(TimeSpan.FromMilliseconds(50), CancellationToken.None))
                {
                    continue;
                }

                while (net.Pairs[0].TryReceive(buffer, out int length, out VlanTag? tag))
                {
                    if (tag is null)
                    {
                        UntaggedFrames++;
                        continue;
                    }

                    if (tag.Value.Id != vlanId)
                    {
                        OtherTagFrames++;
                        continue;
                    }

                    TaggedFrames++;
                    byte[]? reply = Answer(new EthernetPacket(new PacketDotNet.Utils.ByteArraySegment(buffer, 0, length)), mac);
                    if (reply is not null)
                    {
                        Assert.True(net.Pairs[0].TrySend(reply, new VlanTag(vlanId)), "the transmit queue was full");
                    }
                }
            }
        }

        private byte[]? Answer(EthernetPacket frame, PhysicalAddress mac)
        {
            if (frame.PayloadPacket is ArpPacket { Operation: ArpOperation.Request } arp && arp.TargetProtocolAddress.Equals(address))
            {
                var reply = new ArpPacket(ArpOperation.Response, arp.SenderHardwareAddress, arp.SenderProtocolAddress, mac, address);
                ArpReplies++;
                return new EthernetPacket(mac, frame.SourceHardwareAddress, EthernetType.Arp) { PayloadPacket = reply }.Bytes;
            }

            if (frame.PayloadPacket is IPv4Packet { PayloadPacket: IcmpV4Packet { TypeCode: IcmpV4TypeCode.EchoRequest } icmp } ip
                && ip.DestinationAddress.Equals(address))
            {
                var echo = new IcmpV4Packet(new PacketDotNet.Utils.ByteArraySegment(icmp.Bytes.ToArray()))
                {
                    TypeCode = IcmpV4TypeCode.EchoReply,
                };
                echo.Checksum = 0;
                echo.UpdateIcmpChecksum();
                var ipReply = new IPv4Packet(address, ip.SourceAddress) { TimeToLive = 64, Protocol = PacketDotNet.ProtocolType.Icmp, PayloadPacket = echo };
                var reply = new EthernetPacket(mac, frame.SourceHardwareAddress, EthernetType.IPv4) { PayloadPacket = ipReply };
                reply.UpdateCalculatedValues();
                ipReply.UpdateIPChecksum();
                EchoReplies++;
                return reply.Bytes;
            }

            return null;
        }
    }
}
