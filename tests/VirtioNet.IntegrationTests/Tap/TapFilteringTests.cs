using System.Diagnostics;
using System.Net;
using System.Net.NetworkInformation;
using System.Net.Sockets;
using System.Text;
using VirtioNet.IntegrationTests.MultiQueue;
using VirtioNet.Net;
using VirtioNet.Qemu;
using Xunit;

namespace VirtioNet.IntegrationTests.Tap;

/// <summary>
/// The receive filter with the kernel on the other side of a TAP (virtio v1.2 §5.1.6.5.1, §5.1.6.5.2): the kernel's UDP
/// sends datagrams addressed, by its neighbour table, to the driver's MAC or to another one; promiscuous mode, the MAC
/// table (VIRTIO_NET_CTRL_MAC_TABLE_SET) and a new MAC address (VIRTIO_NET_CTRL_MAC_ADDR_SET) decide which reach the
/// driver, and the driver's replies from its new address reach the kernel's socket.
/// </summary>
[Trait("Peer", "Qemu")]
[Trait("Peer", "Kernel")]
public sealed class TapFilteringTests
{
    private const string OtherAddress = "10.77.0.9";
    private const ushort DriverPort = 7000;
    private static readonly PhysicalAddress OtherMac = PhysicalAddress.Parse("02-00-00-77-00-99");
    private static readonly PhysicalAddress NewMac = PhysicalAddress.Parse("02-00-00-77-00-42");

    [Fact]
    public async Task PromiscuousModeTheMacTableAndANewMacAddressDecideWhatTheKernelsFramesReach()
    {
        KernelPeerRequirement.EnsureAvailable();
        using var ns = NetworkNamespace.Create();
        using var board = RiscvVirtBoard.Start(new QemuMachineOptions { ModernMmio = true, Netdev = ns.Netdev }, TestContext.Current.CancellationToken);
        using VirtioNetDevice net = board.OpenNetDevice(null, new VirtioNetOptions { OperationMode = OperationMode.Poll });
        ns.MoveTapIn(1500, net.MacAddress.Span);
        ns.IpInside($"neigh replace {OtherAddress} lladdr {Colons(OtherMac)} dev {ns.TapName} nud permanent");

        // QEMU starts promiscuous (§5.1.6.5.1: the device "SHOULD" be, until told otherwise): a frame for another MAC arrives.
        Assert.True(await Arrives(ns, net, OtherAddress, "promiscuous"));
        Assert.True(await Arrives(ns, net, NetworkNamespace.DriverAddress, "own, promiscuous"));

        net.Control.SetPromiscuous(false);
        Assert.False(await Arrives(ns, net, OtherAddress, "filtered"));
        Assert.True(await Arrives(ns, net, NetworkNamespace.DriverAddress, "own, filtered"));

        net.Control.SetMacFilter([OtherMac], []);
        Assert.True(await Arrives(ns, net, OtherAddress, "in the MAC table"));
        net.Control.SetMacFilter([], []);
        Assert.False(await Arrives(ns, net, OtherAddress, "out of the MAC table"));

        // A new address: the kernel's neighbour entry follows it, as an announcement would make it; the old one is dropped.
        byte[] oldMac = net.MacAddress.ToArray();
        net.Control.SetMacAddress(NewMac);
        Assert.Equal(NewMac.GetAddressBytes(), net.MacAddress.ToArray());
        ns.IpInside($"neigh replace {OtherAddress} lladdr {Colons(new PhysicalAddress(oldMac))} dev {ns.TapName} nud permanent");
        ns.IpInside($"neigh replace {NetworkNamespace.DriverAddress} lladdr {Colons(NewMac)} dev {ns.TapName} nud permanent");
        Assert.True(await Arrives(ns, net, NetworkNamespace.DriverAddress, "new address"));
        Assert.False(await Arrives(ns, net, OtherAddress, "old address"));

        // Traffic follows it the other way: a datagram from the new address reaches a kernel socket.
        string reply = await ns.Run(() =>
        {
            using var socket = new UdpClient(new IPEndPoint(IPAddress.Parse(NetworkNamespace.KernelAddress), 0));
            socket.Client.ReceiveTimeout = 5000;
            var local = (IPEndPoint)socket.Client.LocalEndPoint!;
            byte[] frame = UdpFrames.Build(
                NetworkNamespace.KernelMac, NewMac.GetAddressBytes(), IPAddress.Parse(NetworkNamespace.DriverAddress),
                local.Address, DriverPort, (ushort)local.Port, Encoding.ASCII.GetBytes("from the new address"));
            Assert.True(net.Pairs[0].TrySend(frame));
            IPEndPoint? from = null;
            return Encoding.ASCII.GetString(socket.Receive(ref from));
        });
        Assert.Equal("from the new address", reply);
    }

    // Sends a datagram from the kernel to the given address (its neighbour entry names the destination MAC) and reports
    // whether the driver received it within a second; other frames (IPv6 router solicitations and the like) are skipped.
    // The payload is read by the UDP length (offset 38 of an IPv4 frame without options), not to the frame's end, which
    // may be padding.
    private static async Task<bool> Arrives(NetworkNamespace ns, VirtioNetDevice net, string destination, string marker)
    {
        await ns.Run(() =>
        {
            using var socket = new UdpClient(new IPEndPoint(IPAddress.Parse(NetworkNamespace.KernelAddress), 0));
            socket.Send(Encoding.ASCII.GetBytes(marker), new IPEndPoint(IPAddress.Parse(destination), DriverPort));
            return true;
        });

        byte[] buffer = new byte[net.Pairs[0].MaxReceiveFrameLength];
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < TimeSpan.FromSeconds(1))
        {
            if (!net.Pairs[0].TryReceive(buffer, out int length))
            {
                Thread.Sleep(5);
                continue;
            }

            if (UdpFrames.TryParse(buffer.AsSpan(0, length), out _, out _, out _, out ushort port) && port == DriverPort
                && Encoding.ASCII.GetString(buffer, 42, System.Buffers.Binary.BinaryPrimitives.ReadUInt16BigEndian(buffer.AsSpan(38)) - 8) == marker)
            {
                return true;
            }
        }

        return false;
    }

    private static string Colons(PhysicalAddress mac) => string.Join(':', mac.GetAddressBytes().Select(b => b.ToString("x2", System.Globalization.CultureInfo.InvariantCulture)));
}
