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
            using var injector = Task.Run(async () =>
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
}
