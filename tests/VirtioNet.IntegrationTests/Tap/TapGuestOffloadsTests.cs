using System.Security.Cryptography;
using VirtioNet.Net;
using VirtioNet.Net.Offloads;
using VirtioNet.Qemu;
using Xunit;

namespace VirtioNet.IntegrationTests.Tap;

/// <summary>
/// VIRTIO_NET_F_CTRL_GUEST_OFFLOADS taking effect (§5.1.6.5.6.1): QEMU with a TAP backend (<c>vnet_hdr=on</c>) honours
/// GUEST_OFFLOADS_SET by telling its TAP which offloads the kernel may hand over (TUNSETOFFLOAD). Three kernel TCP
/// streams to the driver on one device: with the guest offloads negotiated, the kernel's large TSO segments and partial
/// checksums arrive; with them turned off by the command, the kernel cuts and checksums every segment itself, so only
/// MTU-sized frames with finished checksums arrive; turned on again, large frames come back.
/// </summary>
[Trait("Peer", "Qemu")]
[Trait("Peer", "Kernel")]
public sealed class TapGuestOffloadsTests
{
    private const int TransferBytes = 4 << 20;
    private const int LargestFrame = 1514;
    private static readonly TimeSpan TransferTimeout = TimeSpan.FromSeconds(120);

    [Fact]
    public async Task GuestOffloadsTurnedOffStopLargeAndPartiallyChecksummedFramesFromTheKernelAndTurnedOnBringThemBack()
    {
        KernelPeerRequirement.EnsureAvailable();
        using var ns = NetworkNamespace.Create();
        using RiscvVirtBoard board = RiscvVirtBoard.Start(new QemuMachineOptions { ModernMmio = true, Netdev = ns.Netdev }, TestContext.Current.CancellationToken);
        using VirtioNetDevice net = board.OpenNetDevice(null, new VirtioNetOptions { OperationMode = OperationMode.Poll });
        const ulong wanted = VirtioNetFeatures.CtrlGuestOffloads | VirtioNetFeatures.GuestCsum | VirtioNetFeatures.GuestTso4;
        Assert.Equal(wanted, net.NegotiatedFeatures & wanted);
        ulong negotiated = net.Control.GuestOffloads;
        Assert.NotEqual(0UL, negotiated & VirtioNetFeatures.GuestTso4);
        ns.MoveTapIn(1500, net.MacAddress.Span);

        TestTcpEndpoint on = await Stream(net, ns, 5011);
        Assert.True(on.GsoFramesReceived > 0 && on.FramesLargerThanMtu > 0, $"with the guest offloads on no large frame arrived (longest {on.LongestFrameReceived})");
        Assert.True(on.ChecksumStates.GetValueOrDefault(ReceivedChecksumState.Completed) > 0, "with the guest offloads on no partial checksum arrived");

        net.Control.SetGuestOffloads(0);
        Assert.Equal(0UL, net.Control.GuestOffloads);
        TestTcpEndpoint off = await Stream(net, ns, 5012);
        Assert.Equal(0, off.GsoFramesReceived);
        Assert.True(off.LongestFrameReceived <= LargestFrame, $"a {off.LongestFrameReceived}-byte frame arrived with the guest offloads off");
        Assert.Equal(0, off.ChecksumStates.GetValueOrDefault(ReceivedChecksumState.Completed));

        net.Control.SetGuestOffloads(negotiated);
        TestTcpEndpoint again = await Stream(net, ns, 5013);
        Assert.True(again.GsoFramesReceived > 0 && again.LongestFrameReceived > LargestFrame, $"with the guest offloads on again no large frame arrived (longest {again.LongestFrameReceived})");
    }

    // A kernel TCP stream to the driver on a port of its own (no TIME_WAIT of an earlier stream in the way), hash compared.
    private static async Task<TestTcpEndpoint> Stream(VirtioNetDevice net, NetworkNamespace ns, ushort port)
    {
        byte[] data = RandomNumberGenerator.GetBytes(TransferBytes);
        Task<int> kernel = KernelTcpPeer.Send(ns, 4, port, data, TransferTimeout);
        TestTcpEndpoint endpoint = TapTcpTests.Endpoint(net, 1500, 4, kernelPort: port);
        endpoint.Connect(TimeSpan.FromSeconds(10));
        byte[] received = endpoint.ReceiveAll(TransferTimeout);
        Assert.Equal(0, await kernel.WaitAsync(TransferTimeout, TestContext.Current.CancellationToken));
        Assert.Equal(SHA256.HashData(data), SHA256.HashData(received));
        Assert.Equal(0, endpoint.BadChecksums);
        TestContext.Current.TestOutputHelper?.WriteLine(
            $"port {port}, guest offloads 0x{net.Control.GuestOffloads:x}: {endpoint.FramesReceived} frames, {endpoint.GsoFramesReceived} GSO, longest {endpoint.LongestFrameReceived}; checksums {string.Join(", ", endpoint.ChecksumStates.Select(p => $"{p.Key} {p.Value}"))}");
        return endpoint;
    }
}
