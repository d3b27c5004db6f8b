using System.Diagnostics;
using VirtioNet.Net;
using Xunit;

namespace VirtioNet.IntegrationTests.Net;

/// <summary>Frames for the wire tests, and the exchange that carries them with the test as the other end of the cable.</summary>
internal static class WireFrames
{
    /// <summary>A broadcast frame, so QEMU's receive filter passes it, with a random body from <paramref name="seed"/>.</summary>
    public static byte[] Make(int length, int seed)
    {
        byte[] frame = new byte[length];
        new Random(seed).NextBytes(frame);
        frame.AsSpan(0, 6).Fill(0xff);
        frame[6] = 0x02;                               // a locally administered, unicast source
        frame[12] = 0x88;                              // EtherType 0x88b5, IEEE local experimental
        frame[13] = 0xb5;
        return frame;
    }

    /// <summary>
    /// Injects <paramref name="frame"/> once the driver, in interrupt mode, is asleep on the device's interrupt: its one
    /// waiter holds the line, so it has asked for a notification and found nothing (§2.7.10), and the frame can only
    /// reach it by an interrupt. <see cref="Injection.Done"/> says whether it is being injected (false until then, and if the
    /// driver never got there within 10 s).
    /// </summary>
    public static Injection InjectOnceTheDriverSleeps(VirtioNetDevice net, UdpWire wire, byte[] frame)
    {
        var injection = new Injection();
        _ = Task.Run(() =>
        {
            if (SpinWait.SpinUntil(() => net.LineHolder == 0, TimeSpan.FromSeconds(10)))
            {
                // Marked before the send: the frame can cross QEMU and wake the driver before Inject returns.
                injection.Done = true;
                wire.Inject(frame);
            }
        });
        return injection;
    }

    /// <summary>
    /// <paramref name="count"/> frames each way, one at a time, of every size from 60 bytes up to the device's MTU plus
    /// the Ethernet header, each compared byte for byte on the other side; then every frame counted once each way, no
    /// receive error, and no queue broken.
    /// </summary>
    public static void ExchangeOneAtATime(VirtioNetDevice net, UdpWire wire, int count)
    {
        CancellationToken ct = TestContext.Current.CancellationToken;
        int largest = net.Mtu + EthernetFrame.HeaderLength;
        byte[] received = new byte[net.Pairs[0].MaxReceiveFrameLength];
        for (int i = 0; i < count; i++)
        {
            int size = 60 + ((i * 997) % (largest - 59));
            byte[] outgoing = Make(size, i);
            var clock = Stopwatch.StartNew();
            while (!net.Pairs[0].TrySend(outgoing))
            {
                Assert.True(clock.Elapsed < TimeSpan.FromSeconds(5), $"frame {i}: the transmit ring stayed full");
                Thread.Yield();
            }

            Assert.Equal(outgoing, wire.Receive(TimeSpan.FromSeconds(5)));

            byte[] incoming = Make(size, -i - 1);
            wire.Inject(incoming);
            Assert.True(net.Pairs[0].WaitForReceive(TimeSpan.FromSeconds(5), ct), $"frame {i} ({size} bytes) did not arrive");
            Assert.True(net.Pairs[0].TryReceive(received, out int length));
            Assert.Equal(incoming, received.AsSpan(0, length).ToArray());
        }

        Assert.Equal(count, net.Pairs[0].ReceiveStatistics.Packets);
        Assert.Equal(count, net.Pairs[0].TransmitStatistics.Packets);
        Assert.Equal(0, net.Pairs[0].ReceiveStatistics.Errors);
        Assert.All(net.GetQueueStates(), q => Assert.Null(q.BrokenReason));
    }

    /// <summary>A frame injected from another thread: <see cref="Done"/> once it is being sent (set just before the send).</summary>
    internal sealed class Injection
    {
        private volatile bool _done;

        public bool Done
        {
            get => _done;
            set => _done = value;
        }
    }
}
