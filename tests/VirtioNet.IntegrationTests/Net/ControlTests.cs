using System.Buffers.Binary;
using System.Diagnostics;
using System.Net;
using VirtioNet.Core;
using VirtioNet.IntegrationTests.Qemu;
using VirtioNet.Net;
using VirtioNet.Net.Control;
using VirtioNet.Qemu;
using Xunit;

namespace VirtioNet.IntegrationTests.Net;

/// <summary>The control queue against QEMU: commands QEMU refuses, and announcements it asks for (QMP announce-self).</summary>
[Trait("Peer", "Qemu")]
public sealed class ControlTests
{
    private static (RiscvVirtBoard Board, UdpWire Wire) Start(bool modern)
    {
        QemuRequirement.EnsureAvailable();
        var wire = new UdpWire();
        try
        {
            return (RiscvVirtBoard.Start(new QemuMachineOptions { ModernMmio = modern, Netdev = wire.Netdev }, TestContext.Current.CancellationToken), wire);
        }
        catch
        {
            wire.Dispose();
            throw;
        }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void QemuRejectsCommandsItCannotCarryOutAndTheQueueStaysUsable(bool modern)
    {
        var (board, wire) = Start(modern);
        using (board)
        using (wire)
        using (VirtioNetDevice net = board.OpenNetDevice(null, new VirtioNetOptions { OperationMode = OperationMode.Poll }))
        {
            // A socket backend has no vnet header, so QEMU answers VIRTIO_NET_ERR to any guest offload change.
            VirtioException offloads = Assert.Throws<VirtioException>(() => net.Control.SetGuestOffloads(0));
            Assert.Equal(VirtioErrorReason.CommandRejected, offloads.Reason);
            Assert.Contains("VIRTIO_NET_CTRL_GUEST_OFFLOADS_SET", offloads.Message, StringComparison.Ordinal);

            // An announce ack nothing asked for, and a class QEMU does not know, are refused too.
            Assert.Equal(VirtioErrorReason.CommandRejected, Assert.Throws<VirtioException>(net.Control.AcknowledgeAnnounce).Reason);
            VirtioException unknown = Assert.Throws<VirtioException>(() => net.Control.Queue!.Execute((VirtioNetControlClass)0x7f, 3, [1]));
            Assert.Equal(VirtioErrorReason.CommandRejected, unknown.Reason);
            Assert.Contains("control class 127 command 3", unknown.Message, StringComparison.Ordinal);

            Assert.True(net.Control.Queue!.IsUsable);
            Assert.Equal(3, net.Control.Queue.CommandsRejected);
            net.Control.SetPromiscuous(false);
            net.Control.SetPromiscuous(true);
            Assert.True(net.Control.Queue.CommandsCompleted >= 2);
        }
    }

    [Theory]
    [InlineData(true, OperationMode.Interrupt)]
    [InlineData(false, OperationMode.Poll)]
    public void AnAnnounceRequestSendsGratuitousArpsAndIsAcknowledged(bool modern, OperationMode mode)
    {
        var (board, wire) = Start(modern);
        using (board)
        using (wire)
        using (VirtioNetDevice net = board.OpenNetDevice(null, new VirtioNetOptions { OperationMode = mode }))
        {
            CancellationToken ct = TestContext.Current.CancellationToken;
            Assert.NotEqual(0UL, net.NegotiatedFeatures & VirtioNetFeatures.GuestAnnounce);
            IPAddress address = IPAddress.Parse("10.0.2.15");
            net.Control.SetAnnounceAddresses([address]);

            // One round: QEMU sets VIRTIO_NET_S_ANNOUNCE and raises a configuration change (and sends a RARP of its own).
            board.Machine.Monitor.Execute("announce-self", w =>
            {
                w.WriteNumber("initial"u8, 50);
                w.WriteNumber("max"u8, 100);
                w.WriteNumber("rounds"u8, 1);
                w.WriteNumber("step"u8, 50);
            });

            var clock = Stopwatch.StartNew();
            while (net.Control.Announcements == 0)
            {
                Assert.True(clock.Elapsed < TimeSpan.FromSeconds(10), "no announcement within 10 s");
                net.Pairs[0].WaitForReceive(TimeSpan.FromMilliseconds(50), ct);
            }

            byte[] expected = new byte[GratuitousArp.FrameLength];
            GratuitousArp.Write(net.MacAddress.Span, address, expected);
            bool sawArp = false;
            while (wire.Receive(TimeSpan.FromSeconds(2)) is { } frame)
            {
                if (BinaryPrimitives.ReadUInt16BigEndian(frame.AsSpan(12)) == GratuitousArp.EtherTypeArp)
                {
                    Assert.Equal(expected, frame);
                    sawArp = true;
                    break;
                }
            }

            Assert.True(sawArp, "no gratuitous ARP reached the wire");

            // The ack cleared the request in the device's status.
            ushort status = board.Machine.Qtest.ReadW(board.Machine.NetDeviceBase + 0x100 + VirtioNetConfig.StatusOffset);
            Assert.Equal(0, status & VirtioNetConfig.StatusAnnounce);
            Assert.Equal(1, net.Control.Announcements);
        }
    }
}
