using System.Collections.Concurrent;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Diagnostics.Tracing;
using VirtioNet.IntegrationTests.Qemu;
using VirtioNet.Net;
using VirtioNet.Qemu;
using Xunit;

namespace VirtioNet.IntegrationTests.Net;

/// <summary>
/// The library's in-box telemetry against QEMU's virtio-net (on a UDP socket backend the test plays): the "VirtioNet"
/// meter reports the pair statistics after real traffic, and the "VirtioNet" event source reports a recovery from a
/// fault QEMU itself flagged (DEVICE_NEEDS_RESET after a corrupted receive ring).
/// </summary>
[Trait("Peer", "Qemu")]
public sealed class TelemetryTests
{
    private const int Frames = 20;

    [Fact]
    public void TheVirtioNetMeterReportsThePairStatisticsAfterRealTraffic()
    {
        QemuRequirement.EnsureAvailable();
        using var wire = new UdpWire();
        using RiscvVirtBoard board = RiscvVirtBoard.Start(new QemuMachineOptions { ModernMmio = true, Netdev = wire.Netdev }, TestContext.Current.CancellationToken);
        using VirtioNetDevice net = board.OpenNetDevice(null, new VirtioNetOptions { OperationMode = OperationMode.Poll });
        Exchange(net, wire, Frames);

        // Frames sent as fast as the ring takes them, without waiting for the wire: each attempt the ring turns away is
        // a ring-full event (QEMU drains the ring in its own time, so how many is not known ahead).
        VirtioNetQueueStatistics tx = net.Pairs[0].TransmitStatistics;
        long ringFullBefore = tx.RingFull;
        int refused = 0;
        byte[] filler = Frame([0xff, 0xff, 0xff, 0xff, 0xff, 0xff], 60, 99);
        for (int i = 0; i < 2048; i++)
        {
            if (!net.Pairs[0].TrySend(filler))
            {
                refused++;
            }
        }

        Assert.Equal(refused, tx.RingFull - ringFullBefore);

        var measured = new ConcurrentBag<(string Instrument, string? Direction, int? Queue, int? Instance, long Value)>();
        var instruments = new ConcurrentBag<string>();
        using var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Meter.Name == "VirtioNet")
            {
                instruments.Add(instrument.Name);
                l.EnableMeasurementEvents(instrument);
            }
        };
        listener.SetMeasurementEventCallback<long>((instrument, value, tags, _) =>
        {
            string? device = null, direction = null;
            int? queue = null, instance = null;
            foreach (KeyValuePair<string, object?> tag in tags)
            {
                switch (tag.Key)
                {
                    case "device": device = tag.Value as string; break;
                    case "direction": direction = tag.Value as string; break;
                    case "queue": queue = tag.Value as int?; break;
                    case "instance": instance = tag.Value as int?; break;
                }
            }

            // Other tests' devices may be up in this process, some at the same virtio-mmio address of another QEMU
            // machine: this device's measurements are named after its transport, and its instance is told by its counts.
            if (device == net.TransportDescription)
            {
                measured.Add((instrument.Name, direction, queue, instance, value));
            }
        });
        listener.Start();
        listener.RecordObservableInstruments();

        Assert.Contains("virtionet.packets", instruments);
        Assert.Contains("virtionet.bytes", instruments);
        Assert.Contains("virtionet.drops", instruments);
        Assert.Contains("virtionet.errors", instruments);
        Assert.Contains("virtionet.recoveries", instruments);
        Assert.Contains("virtionet.ring_full", instruments);
        Assert.Contains("virtionet.checksums", instruments);
        Assert.Contains("virtionet.segmentation", instruments);
        VirtioNetQueuePair pair = net.Pairs[0];
        Assert.True(pair.ReceiveStatistics.Packets >= Frames && pair.TransmitStatistics.Packets >= Frames);

        // Every measurement carries an instance number; this device's is the one whose packet counts are this pair's.
        Assert.All(measured, m => Assert.NotNull(m.Instance));
        int? mine = Assert.Single(measured
            .Where(m => m.Instrument == "virtionet.packets" && m.Queue == 0 && m.Direction == "tx" && m.Value == pair.TransmitStatistics.Packets)
            .Select(m => m.Instance)
            .Where(i => measured.Any(m => m.Instance == i && m.Instrument == "virtionet.packets" && m.Direction == "rx" && m.Value == pair.ReceiveStatistics.Packets))
            .Distinct());
        var ours = measured.Where(m => m.Instance == mine).ToList();
        Assert.Contains(pair.ReceiveStatistics.Packets, Values(ours, "virtionet.packets", "rx"));
        Assert.Contains(pair.ReceiveStatistics.Bytes, Values(ours, "virtionet.bytes", "rx"));
        Assert.Contains(pair.TransmitStatistics.Packets, Values(ours, "virtionet.packets", "tx"));
        Assert.Contains(pair.TransmitStatistics.Bytes, Values(ours, "virtionet.bytes", "tx"));

        // Drops come tagged with their reason, one measurement per reason; they add up to the queue's drops.
        Assert.Equal(Enum.GetValues<VirtioNetDropReason>().Length, Values(ours, "virtionet.drops", "rx").Count());
        Assert.Equal(pair.ReceiveStatistics.Drops, Values(ours, "virtionet.drops", "rx").Sum());
        Assert.Equal(pair.TransmitStatistics.Drops, Values(ours, "virtionet.drops", "tx").Sum());
        Assert.Equal(pair.TransmitStatistics.RingFull, Assert.Single(Values(ours, "virtionet.ring_full", "tx")));

        // The socket backend offers no offloads: no checksum or segmentation by the device, none asked of the driver.
        Assert.All(Values(ours, "virtionet.checksums", "rx").Concat(Values(ours, "virtionet.segmentation", "tx")), v => Assert.Equal(0L, v));
        Assert.Contains(net.Recoveries, ours.Where(m => m.Instrument == "virtionet.recoveries").Select(m => m.Value));
    }

    [Fact]
    public void TheVirtioNetEventSourceReportsTheBrokenQueueAndTheRecovery()
    {
        QemuRequirement.EnsureAvailable();
        using var wire = new UdpWire();
        using RiscvVirtBoard board = RiscvVirtBoard.Start(new QemuMachineOptions { ModernMmio = true, Netdev = wire.Netdev }, TestContext.Current.CancellationToken);
        using VirtioNetDevice net = board.OpenNetDevice(null, new VirtioNetOptions { OperationMode = OperationMode.Interrupt, AutoRecover = true });
        using var listener = new Listener();
        Exchange(net, wire, 2);

        RecoveryTests.CorruptReceiveDescriptors(board, net);
        wire.Inject(Frame(net.MacAddress.Span, 100, 0));
        byte[] scratch = new byte[net.Pairs[0].MaxReceiveFrameLength];
        var clock = Stopwatch.StartNew();
        while (net.Recoveries < 1)
        {
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(30), "the driver did not recover");
            if (net.Pairs[0].WaitForReceive(TimeSpan.FromMilliseconds(200), TestContext.Current.CancellationToken))
            {
                net.Pairs[0].TryReceive(scratch, out _);
            }
        }

        // Events of other tests' devices may arrive too: these are the ones naming this device and this fault.
        EventWrittenEventArgs recovered = Assert.Single(listener.Events, e => e.EventName == "Recovered" && Equals(e.Payload?[0], net.TransportDescription)
            && (e.Payload?[1] as string)?.Contains("DEVICE_NEEDS_RESET", StringComparison.Ordinal) == true);
        Assert.Equal(EventLevel.Warning, recovered.Level);
        Assert.Contains(listener.Events, e => e.EventName == "QueueBroken" && Equals(e.Payload?[0], net.TransportDescription));
    }

    private static IEnumerable<long> Values(IEnumerable<(string Instrument, string? Direction, int? Queue, int? Instance, long Value)> measured, string instrument, string direction) =>
        measured.Where(m => m.Instrument == instrument && m.Direction == direction && m.Queue == 0).Select(m => m.Value);

    // Frames both ways through queue pair 0, each checked on the far side.
    private static void Exchange(VirtioNetDevice net, UdpWire wire, int count)
    {
        VirtioNetQueuePair pair = net.Pairs[0];
        byte[] received = new byte[pair.MaxReceiveFrameLength];
        for (int i = 0; i < count; i++)
        {
            byte[] outgoing = Frame([0xff, 0xff, 0xff, 0xff, 0xff, 0xff], 60 + (i * 37), i);
            var clock = Stopwatch.StartNew();
            while (!pair.TrySend(outgoing))
            {
                Assert.True(clock.Elapsed < TimeSpan.FromSeconds(5), "the transmit ring stayed full");
                Thread.Yield();
            }

            Assert.Equal(outgoing, wire.Receive(TimeSpan.FromSeconds(5)));
            byte[] incoming = Frame(net.MacAddress.Span, 64 + (i * 41), i);
            wire.Inject(incoming);
            Assert.True(pair.WaitForReceive(TimeSpan.FromSeconds(5), TestContext.Current.CancellationToken), $"frame {i} did not arrive");
            Assert.True(pair.TryReceive(received, out int length));
            Assert.Equal(incoming, received.AsSpan(0, length).ToArray());
        }
    }

    private static byte[] Frame(ReadOnlySpan<byte> destination, int length, int seed)
    {
        byte[] frame = new byte[length];
        new Random(seed).NextBytes(frame);
        destination.CopyTo(frame);
        frame[6] = 0x02;
        frame[12] = 0x88;
        frame[13] = 0xb5;
        return frame;
    }

    // Collects the "VirtioNet" event source's warnings and errors.
    private sealed class Listener : EventListener
    {
        public ConcurrentQueue<EventWrittenEventArgs> Events { get; } = new();

        protected override void OnEventSourceCreated(EventSource eventSource)
        {
            if (eventSource.Name == "VirtioNet")
            {
                EnableEvents(eventSource, EventLevel.Warning);
            }
        }

        protected override void OnEventWritten(EventWrittenEventArgs eventData) => Events.Enqueue(eventData);
    }
}
