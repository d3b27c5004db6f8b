using System.Security.Cryptography;
using VirtioNet.IntegrationTests.Tap;
using Xunit;

namespace VirtioNet.IntegrationTests.Up;

/// <summary>
/// Explicit congestion notification through <c>vnet up</c> and QEMU's virtio-net, with the kernel's TCP at both ends:
/// a <see cref="CongestionMarkingRelay"/> between QEMU's TAP and a veth to the far kernel marks CE on the data, the
/// receiving kernel echoes ECE, and the sending kernel's next large segment carries CWR, which it hands over as a GSO
/// frame with the ECN bit (virtio v1.2 §5.1.6.2). Sent by the kernel above the driver, that segment crosses the device
/// as VIRTIO_NET_HDR_GSO_ECN only with VIRTIO_NET_F_HOST_ECN (§5.1.3, bit 13); sent by the far kernel, it reaches the
/// driver with the ECN bit only with VIRTIO_NET_F_GUEST_ECN (bit 9), and the driver hands it to its TAP as it came.
/// </summary>
/// <remarks>
/// Namespaces, each the test's own: <c>near</c> holds <c>vnet up</c>'s TAP and the kernel above the driver
/// (10.77.0.2); <c>far</c> holds QEMU's TAP and the relay's veth end, both without addresses; <c>kernel</c> holds the
/// veth's other end and the far kernel (10.77.0.1). Both kernels ask for ECN (<c>net.ipv4.tcp_ecn=1</c>).
/// </remarks>
[Trait("Peer", "Qemu")]
[Trait("Peer", "Kernel")]
public sealed class UpEcnTests
{
    private const int Bytes = 48 << 20;
    private const int MarkEvery = 16;
    private static readonly TimeSpan TransferTimeout = TimeSpan.FromSeconds(300);

    [Theory]
    [InlineData(true, true)]
    [InlineData(false, true)]
    [InlineData(true, false)]
    [InlineData(false, false)]
    public void CongestionMarksMakeTheSendingKernelsCwrSegmentsCrossTheDeviceWithTheGsoEcnBitExactlyWhenItIsNegotiated(bool driverSends, bool offered)
    {
        KernelPeerRequirement.EnsureAvailable();
        using NetworkNamespace far = NetworkNamespace.Create();
        using NetworkNamespace kernel = NetworkNamespace.Create();
        using NetworkNamespace near = NetworkNamespace.Create();
        string suffix = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(3));
        string tap = $"ve{suffix}";
        string relaySide = $"vr{suffix}";
        string kernelSide = $"vk{suffix}";
        string feature = driverSends ? "host_ecn" : "guest_ecn";
        string[] withheld = offered ? [] : ["--device-opts", $"{feature}=off"];
        using UpProcess up = UpProcess.Start(["--netns", near.Name, "--tap", tap, "--netdev", $"tap={far.TapName}", .. withheld]);

        far.MoveTapInUnaddressed(1500);
        far.IpInside($"link add {relaySide} type veth peer name {kernelSide} netns {kernel.Name}");
        far.IpInside($"link set {relaySide} addrgenmode none");
        far.IpInside($"link set {relaySide} up");
        kernel.IpInside($"addr add {NetworkNamespace.KernelAddress}/24 dev {kernelSide}");
        kernel.IpInside($"link set {kernelSide} up");
        near.IpInside($"addr add {NetworkNamespace.DriverAddress}/24 dev {tap}");
        near.ExecInside("sysctl -q -w net.ipv4.tcp_ecn=1");
        kernel.ExecInside("sysctl -q -w net.ipv4.tcp_ecn=1");

        string sent;
        string received;
        long fromNearKernel;
        long toNearKernel;
        using (var relay = CongestionMarkingRelay.Start(far, far.TapName, relaySide, markTowardKernel: driverSends, MarkEvery))
        {
            using (var nearTap = EcnSegmentCounter.Start(near, tap))
            {
                (sent, received) = driverSends
                    ? KernelTcpTransfer.Run(kernel, NetworkNamespace.KernelAddress, near, Bytes, TransferTimeout)
                    : KernelTcpTransfer.Run(near, NetworkNamespace.DriverAddress, kernel, Bytes, TransferTimeout);
                fromNearKernel = nearTap.Sent;
                toNearKernel = nearTap.Received;
            }

            Assert.Equal(sent, received);
            string counts = $"marked {relay.Marked}, ECN segments from the device {relay.EcnSegmentsFromDevice}, from the far kernel {relay.EcnSegmentsFromKernel}, " +
                $"handed by the near kernel to vnet up {fromNearKernel}, written by vnet up to its TAP {toNearKernel}, forwarded {relay.Forwarded}";
            Assert.True(relay.Marked > 0, $"The relay marked nothing: {counts}.");
            if (driverSends)
            {
                Assert.True(fromNearKernel > 0, $"The kernel above the driver handed it no segment with the GSO ECN bit: {counts}.");
            }
            else
            {
                Assert.True(relay.EcnSegmentsFromKernel > 0, $"The far kernel sent no segment with the GSO ECN bit: {counts}.");
            }

            if (driverSends && offered)
            {
                // The kernel above the driver sent CWR segments; they left QEMU's virtio-net with the ECN bit, which
                // QEMU takes only from the driver's header (HOST_ECN).
                Assert.True(relay.EcnSegmentsFromDevice > 0, $"No segment with the GSO ECN bit left the device: {counts}.");
            }
            else if (driverSends)
            {
                // Without HOST_ECN the driver cuts a CWR segment in software (CWR on the first piece only): no segment
                // with the ECN bit crosses the device, and the stream is still whole.
                Assert.True(relay.EcnSegmentsFromDevice == 0, $"A segment with the GSO ECN bit crossed a device without HOST_ECN: {counts}.");
            }
            else if (offered)
            {
                // The far kernel sent CWR segments into QEMU's TAP; the driver received them with the ECN bit
                // (GUEST_ECN) and wrote them to its TAP with it.
                Assert.True(toNearKernel > 0, $"vnet up wrote no segment with the GSO ECN bit to its TAP: {counts}.");
            }
            else
            {
                // Without GUEST_ECN QEMU does not let its TAP take ECN segments, so the far kernel's are cut before
                // they reach the device: none reaches the driver.
                Assert.True(toNearKernel == 0, $"vnet up wrote a segment with the GSO ECN bit although GUEST_ECN was not offered: {counts}.");
            }
        }

        string negotiated = $"VIRTIO_NET_F_{feature.ToUpperInvariant()}";
        Assert.True(up.Log.Contains(negotiated, StringComparison.Ordinal) == offered, $"{negotiated} {(offered ? "not " : string.Empty)}negotiated:\n{up.Log}");
        Assert.Equal(0, up.Stop());
        Assert.DoesNotContain(tap, near.IpInside("link show"), StringComparison.Ordinal);
    }

    /// <summary>
    /// Counts the GSO frames with the ECN bit at <c>vnet up</c>'s TAP, each way: those the kernel sent (handed to the
    /// driver) and those the interface received (which the driver wrote).
    /// </summary>
    private sealed class EcnSegmentCounter : IDisposable
    {
        private readonly PacketSocket _socket;
        private readonly Thread _thread;
        private volatile bool _stopping;
        private long _sent;
        private long _received;

        private EcnSegmentCounter(PacketSocket socket)
        {
            _socket = socket;
            _thread = new Thread(Run) { IsBackground = true, Name = "ECN segment counter" };
            _thread.Start();
        }

        public long Sent => Interlocked.Read(ref _sent);

        public long Received => Interlocked.Read(ref _received);

        public static EcnSegmentCounter Start(NetworkNamespace ns, string device) =>
            new(ns.Run(() => PacketSocket.Open(device, vnetHeader: true)).GetAwaiter().GetResult());

        public void Dispose()
        {
            _stopping = true;
            _thread.Join(TimeSpan.FromSeconds(5));
            _socket.Dispose();
        }

        private void Run()
        {
            byte[] buffer = new byte[PacketSocket.VnetHeaderLength + 65_600];
            while (!_stopping)
            {
                int n = _socket.Receive(buffer, TimeSpan.FromMilliseconds(200), out bool outgoing);
                if (n > 0 && CongestionMarkingRelay.IsEcnSegment(buffer.AsSpan(0, n)))
                {
                    Interlocked.Increment(ref outgoing ? ref _sent : ref _received);
                }
            }
        }
    }
}
