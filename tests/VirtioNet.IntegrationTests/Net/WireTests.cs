using System.Diagnostics;
using VirtioNet.IntegrationTests.Qemu;
using VirtioNet.Net;
using VirtioNet.Qemu;
using Xunit;

namespace VirtioNet.IntegrationTests.Net;

/// <summary>
/// The test plays the wire (QEMU's UDP socket netdev) and injects exact frames: what the driver sends and receives is
/// compared byte for byte, and interrupt-mode waits are shown to be woken by the device's interrupt.
/// </summary>
[Trait("Peer", "Qemu")]
public sealed class WireTests
{
    private static (RiscvVirtBoard Board, UdpWire Wire) Start(bool modern, string deviceProperties = "")
    {
        QemuRequirement.EnsureAvailable();
        var wire = new UdpWire();
        try
        {
            var board = RiscvVirtBoard.Start(
                new QemuMachineOptions { ModernMmio = modern, Netdev = wire.Netdev, NetDeviceProperties = deviceProperties },
                TestContext.Current.CancellationToken);
            return (board, wire);
        }
        catch
        {
            wire.Dispose();
            throw;
        }
    }

    [Theory]
    [InlineData(false, OperationMode.Interrupt)]
    [InlineData(true, OperationMode.Interrupt)]
    public void AWaitingDriverIsWokenByTheDeviceInterrupt(bool modern, OperationMode mode)
    {
        var (board, wire) = Start(modern);
        using (board)
        using (wire)
        using (VirtioNetDevice net = board.OpenNetDevice(null, new VirtioNetOptions { OperationMode = mode }))
        {
            byte[] frame = WireFrames.Make(100, 1);
            WireFrames.Injection injection = WireFrames.InjectOnceTheDriverSleeps(net, wire, frame);

            Assert.True(net.Pairs[0].WaitForReceive(TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken));
            Assert.True(injection.Done, "the wait returned before the frame was injected");
            Assert.True(net.Pairs[0].ReceiveStatistics.Interrupts >= 1, "the wait ended without a used-buffer interrupt");

            byte[] received = new byte[net.Pairs[0].MaxReceiveFrameLength];
            Assert.True(net.Pairs[0].TryReceive(received, out int length));
            Assert.Equal(frame, received.AsSpan(0, length).ToArray());
        }
    }

    [Theory]
    [InlineData(false, "", OperationMode.Interrupt)]
    [InlineData(true, "", OperationMode.Poll)]
    [InlineData(false, "mrg_rxbuf=off", OperationMode.Poll)]
    [InlineData(true, "mrg_rxbuf=off,host_mtu=9000", OperationMode.Interrupt)]
    [InlineData(true, "event_idx=off,indirect_desc=off", OperationMode.Interrupt)]
    [InlineData(true, "packed=on", OperationMode.Interrupt)]
    [InlineData(true, "packed=on,event_idx=off", OperationMode.Poll)]
    [InlineData(true, "packed=on,mrg_rxbuf=off,host_mtu=9000", OperationMode.Poll)]
    [InlineData(true, "packed=on,indirect_desc=off,mrg_rxbuf=off", OperationMode.Interrupt)]
    public void ThousandsOfFramesOfEverySizeCrossTheWireIntactInBothDirections(bool modern, string deviceProperties, OperationMode mode)
    {
        var (board, wire) = Start(modern, deviceProperties);
        using (board)
        using (wire)
        using (VirtioNetDevice net = board.OpenNetDevice(null, new VirtioNetOptions { OperationMode = mode }))
        {
            WireFrames.ExchangeOneAtATime(net, wire, 2000);
        }
    }

    [Theory]
    [InlineData(false, "")]
    [InlineData(true, "packed=on")]
    [InlineData(true, "mrg_rxbuf=off")]
    public void TheZeroCopyBurstApiCarriesThousandsOfFramesIntact(bool modern, string deviceProperties)
    {
        var (board, wire) = Start(modern, deviceProperties);
        using (board)
        using (wire)
        using (VirtioNetDevice net = board.OpenNetDevice(null, new VirtioNetOptions { OperationMode = OperationMode.Poll }))
        {
            CancellationToken ct = TestContext.Current.CancellationToken;
            VirtioNetTransmitQueue tx = net.Pairs[0].TransmitQueue;
            VirtioNetReceiveQueue rx = net.Pairs[0].ReceiveQueue;
            var lent = new TransmitPacket[32];
            var received = new ReceivedPacket[32];
            const int Bursts = 64;
            for (int b = 0; b < Bursts; b++)
            {
                int n = tx.AllocateBurst(lent);
                Assert.Equal(32, n);
                for (int i = 0; i < n; i++)
                {
                    byte[] frame = WireFrames.Make(60 + (((b * 32) + i) % 1455), (b * 32) + i);
                    frame.CopyTo(lent[i].Span);
                    lent[i] = lent[i].WithLength(frame.Length);
                }

                Assert.Equal(n, tx.TransmitBurst(lent.AsSpan(0, n)));
                for (int i = 0; i < n; i++)
                {
                    byte[] expected = WireFrames.Make(60 + (((b * 32) + i) % 1455), (b * 32) + i);
                    Assert.Equal(expected, wire.Receive(TimeSpan.FromSeconds(5)));
                }

                for (int i = 0; i < 32; i++)
                {
                    wire.Inject(WireFrames.Make(60 + i, -((b * 32) + i)));
                }

                int got = 0;
                var clock = Stopwatch.StartNew();
                while (got < 32)
                {
                    Assert.True(clock.Elapsed < TimeSpan.FromSeconds(5), $"burst {b}: {got} of 32 frames arrived");
                    int k = rx.ReceiveBurst(received);
                    for (int i = 0; i < k; i++)
                    {
                        Assert.Equal(1, received[i].SegmentCount);
                        Assert.Equal(WireFrames.Make(60 + got + i, -((b * 32) + got + i)), received[i].Span.ToArray());
                    }

                    rx.ReleaseBurst(received.AsSpan(0, k));
                    got += k;
                    if (k == 0)
                    {
                        net.Pairs[0].WaitForReceive(TimeSpan.FromMilliseconds(100), ct);
                    }
                }
            }

            Assert.Equal(Bursts * 32, net.Pairs[0].ReceiveStatistics.Packets);
            Assert.Equal(Bursts * 32, net.Pairs[0].TransmitStatistics.Packets);
            Assert.True(net.Pairs[0].TransmitStatistics.Notifications <= Bursts, "more than one kick per burst");
        }
    }
}
