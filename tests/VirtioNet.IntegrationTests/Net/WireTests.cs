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

    private static byte[] Frame(int length, int seed)
    {
        byte[] frame = new byte[length];
        new Random(seed).NextBytes(frame);
        frame.AsSpan(0, 6).Fill(0xff);                 // broadcast, so QEMU's receive filter passes it
        frame[6] = 0x02;                               // a locally administered, unicast source
        frame[12] = 0x88;                              // EtherType 0x88b5, IEEE local experimental
        frame[13] = 0xb5;
        return frame;
    }

    [Theory]
    [InlineData(false, OperationMode.Interrupt)]
    [InlineData(true, OperationMode.Interrupt)]
    public void AWaitingDriverIsWokenByTheDeviceInterrupt(bool modern, OperationMode mode)
    {
        var (board, wire) = Start(modern);
        using (board)
        using (wire)
        using (VirtioNetDevice net = board.OpenNetDevice(null, new VirtioNetOptions { Mode = mode }))
        {
            byte[] frame = Frame(100, 1);
            var clock = Stopwatch.StartNew();
            Task injector = Task.Run(async () =>
            {
                await Task.Delay(300, TestContext.Current.CancellationToken);
                wire.Inject(frame);
            }, TestContext.Current.CancellationToken);

            Assert.True(net.WaitForReceive(TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken));
            Assert.True(clock.Elapsed >= TimeSpan.FromMilliseconds(250), "the wait returned before the frame was injected");
            Assert.True(net.ReceiveStatistics.Interrupts >= 1, "the wait ended without a used-buffer interrupt");

            byte[] received = new byte[net.MaxReceiveFrameLength];
            Assert.True(net.TryReceive(received, out int length));
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
        using (VirtioNetDevice net = board.OpenNetDevice(null, new VirtioNetOptions { Mode = mode }))
        {
            CancellationToken ct = TestContext.Current.CancellationToken;
            int maxFrame = net.Mtu + 14;
            byte[] received = new byte[net.MaxReceiveFrameLength];
            const int Count = 2000;
            for (int i = 0; i < Count; i++)
            {
                int size = 60 + ((i * 997) % (maxFrame - 59));

                // Driver to wire.
                byte[] outgoing = Frame(size, i);
                while (!net.TrySend(outgoing))
                {
                    Thread.Yield();
                }

                byte[]? seen = wire.Receive(TimeSpan.FromSeconds(5));
                Assert.NotNull(seen);
                Assert.Equal(outgoing, seen);

                // Wire to driver.
                byte[] incoming = Frame(size, -i);
                wire.Inject(incoming);
                Assert.True(net.WaitForReceive(TimeSpan.FromSeconds(5), ct), $"frame {i} ({size} bytes) did not arrive");
                Assert.True(net.TryReceive(received, out int length));
                Assert.Equal(incoming, received.AsSpan(0, length).ToArray());
            }

            Assert.Equal(Count, net.ReceiveStatistics.Packets);
            Assert.Equal(Count, net.TransmitStatistics.Packets);
            Assert.Equal(0, net.ReceiveStatistics.Errors);
            Assert.All(net.GetQueueStates(), q => Assert.Null(q.BrokenReason));
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
        using (VirtioNetDevice net = board.OpenNetDevice(null, new VirtioNetOptions { Mode = OperationMode.Poll }))
        {
            CancellationToken ct = TestContext.Current.CancellationToken;
            VirtioNetTransmitQueue tx = net.TransmitQueues[0];
            VirtioNetReceiveQueue rx = net.ReceiveQueues[0];
            var lent = new TransmitPacket[32];
            var received = new ReceivedPacket[32];
            const int Bursts = 64;
            for (int b = 0; b < Bursts; b++)
            {
                int n = tx.AllocateBurst(lent);
                Assert.Equal(32, n);
                for (int i = 0; i < n; i++)
                {
                    byte[] frame = Frame(60 + (((b * 32) + i) % 1455), (b * 32) + i);
                    frame.CopyTo(lent[i].Span);
                    lent[i] = lent[i].WithLength(frame.Length);
                }

                Assert.Equal(n, tx.TransmitBurst(lent.AsSpan(0, n)));
                for (int i = 0; i < n; i++)
                {
                    byte[] expected = Frame(60 + (((b * 32) + i) % 1455), (b * 32) + i);
                    Assert.Equal(expected, wire.Receive(TimeSpan.FromSeconds(5)));
                }

                for (int i = 0; i < 32; i++)
                {
                    wire.Inject(Frame(60 + i, -((b * 32) + i)));
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
                        Assert.Equal(Frame(60 + got + i, -((b * 32) + got + i)), received[i].Span.ToArray());
                    }

                    rx.ReleaseBurst(received.AsSpan(0, k));
                    got += k;
                    if (k == 0)
                    {
                        net.WaitForReceive(TimeSpan.FromMilliseconds(100), ct);
                    }
                }
            }

            Assert.Equal(Bursts * 32, net.ReceiveStatistics.Packets);
            Assert.Equal(Bursts * 32, net.TransmitStatistics.Packets);
            Assert.True(net.TransmitStatistics.Notifications <= Bursts, "more than one kick per burst");
        }
    }
}
