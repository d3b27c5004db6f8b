using System.Diagnostics;
using VirtioNet.Core;
using VirtioNet.IntegrationTests.Net;
using VirtioNet.IntegrationTests.Qemu;
using VirtioNet.Net;
using VirtioNet.Qemu;
using VirtioNet.Virtqueues;
using Xunit;

namespace VirtioNet.IntegrationTests.Matrix;

/// <summary>
/// VIRTIO_F_IN_ORDER against QEMU 10.0's virtio-net (<c>in_order=on</c>; 7.2 has no such property) on every modern
/// transport: {riscv64 virt mmio, pci; x86_64 q35 pci} × {split, packed} × {interrupt, poll}. The transport matrix's
/// check (DHCP and ping through slirp, then thousands of frames each way one at a time, compared byte for byte), then
/// bursts that keep many chains in flight each way, with IN_ORDER negotiated and every queue in in-order mode. Split
/// rows run with event_idx on (INTx on PCI), packed rows with it off (per-queue MSI-X on PCI). QEMU 10 returns every
/// chain with a used entry (split) or used descriptor (packed) of its own, in order, never a batch: the count of chains
/// returned in batches is printed for each row. Ref: virtio v1.2 §2.7.9, §2.8.9.
/// </summary>
[Trait("Peer", "Qemu10")]
public sealed class Qemu10InOrderTests
{
    private const int Bursts = 60;
    private const int BurstLength = 48;

    public static TheoryData<string, string, bool, OperationMode> Rows()
    {
        var data = new TheoryData<string, string, bool, OperationMode>();
        (string Machine, string Transport)[] transports = [("riscv64-virt", "mmio"), ("riscv64-virt", "pci"), ("x86_64-q35", "pci")];
        foreach (var (machine, transport) in transports)
        {
            foreach (bool packed in new[] { false, true })
            {
                foreach (OperationMode mode in new[] { OperationMode.Interrupt, OperationMode.Poll })
                {
                    data.Add(machine, transport, packed, mode);
                }
            }
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(Rows))]
    public void PingAndThousandsOfVerifiedFramesWorkInOrder(string machine, string transport, bool packed, OperationMode mode)
    {
        TransportMatrixTests.MatrixRow row = Row(machine, transport, packed, mode);
        var batched = new List<string>();
        TransportMatrixTests.PingAndExchangeFrames(row, net =>
        {
            AssertInOrder(net);
            batched.Add(Batches(net));
        });

        TestContext.Current.TestOutputHelper?.WriteLine(
            $"{machine} {transport} {(packed ? "packed" : "split")} {mode}, event_idx {(row.EventIdx ? "on" : "off")}: chains returned in batches (ping board / wire board before and after traffic): {string.Join(" / ", batched)}");
    }

    [Theory]
    [MemberData(nameof(Rows))]
    public void BurstsKeepManyChainsInFlightAndComeBackInOrderIntact(string machine, string transport, bool packed, OperationMode mode)
    {
        TransportMatrixTests.MatrixRow row = Row(machine, transport, packed, mode);
        CancellationToken ct = TestContext.Current.CancellationToken;
        using var wire = new UdpWire();
        using IQemuBoard board = TransportMatrixTests.Start(row, wire.Netdev);
        using VirtioNetDevice net = TransportMatrixTests.Open(board, row);
        AssertInOrder(net);

        byte[] received = new byte[net.Pairs[0].MaxReceiveFrameLength];
        int sent = 0;
        for (int burst = 0; burst < Bursts; burst++)
        {
            // A burst of transmits before any is read off the wire: up to BurstLength chains in flight.
            byte[][] outgoing = [.. Enumerable.Range(0, BurstLength).Select(i => WireFrames.Make(Size(burst, i), (burst * BurstLength) + i))];
            foreach (byte[] frame in outgoing)
            {
                var clock = Stopwatch.StartNew();
                while (!net.Pairs[0].TrySend(frame))
                {
                    Assert.True(clock.Elapsed < TimeSpan.FromSeconds(5), $"burst {burst}: the transmit ring stayed full");
                    net.Pairs[0].Reclaim();
                    Thread.Yield();
                }

                sent++;
            }

            for (int i = 0; i < BurstLength; i++)
            {
                Assert.Equal(outgoing[i], wire.Receive(TimeSpan.FromSeconds(5)));
            }

            // A burst of frames onto the wire before the driver takes any: the device fills that many receive buffers.
            byte[][] incoming = [.. Enumerable.Range(0, BurstLength).Select(i => WireFrames.Make(Size(burst, i), -(burst * BurstLength) - i - 1))];
            foreach (byte[] frame in incoming)
            {
                wire.Inject(frame);
            }

            for (int i = 0; i < BurstLength; i++)
            {
                var clock = Stopwatch.StartNew();
                int length;
                while (!net.Pairs[0].TryReceive(received, out length))
                {
                    Assert.True(clock.Elapsed < TimeSpan.FromSeconds(5), $"burst {burst}: frame {i} did not arrive");
                    if (mode == OperationMode.Interrupt)
                    {
                        net.Pairs[0].WaitForReceive(TimeSpan.FromMilliseconds(100), ct);
                    }
                }

                Assert.Equal(incoming[i], received.AsSpan(0, length).ToArray());
            }
        }

        net.Pairs[0].Reclaim();
        Assert.Equal(sent, net.Pairs[0].TransmitStatistics.Packets);
        Assert.Equal(Bursts * BurstLength, net.Pairs[0].ReceiveStatistics.Packets);
        Assert.Equal(0, net.Pairs[0].ReceiveStatistics.Errors);
        Assert.All(net.GetQueueStates(), q => Assert.Null(q.BrokenReason));
        TestContext.Current.TestOutputHelper?.WriteLine(
            $"{machine} {transport} {(packed ? "packed" : "split")} {mode}: {sent} frames each way in bursts of {BurstLength}; chains returned in batches: {Batches(net)}");
    }

    private static TransportMatrixTests.MatrixRow Row(string machine, string transport, bool packed, OperationMode mode)
    {
        // event_idx on with the split ring and off with the packed one, so PCI interrupt rows run INTx and per-queue MSI-X.
        var row = new TransportMatrixTests.MatrixRow(machine, transport, packed, mode, EventIdx: !packed, ExtraProperties: "in_order=on");
        return row with { QemuPath = QemuRequirement.EnsureQemu10Available(row.Kind) };
    }

    private static void AssertInOrder(VirtioNetDevice net)
    {
        Assert.True((net.OfferedFeatures & VirtioFeatures.InOrder) != 0, $"QEMU 10 with in_order=on did not offer IN_ORDER (offered 0x{net.OfferedFeatures:x})");
        Assert.True((net.NegotiatedFeatures & VirtioFeatures.InOrder) != 0, "IN_ORDER was offered but not negotiated");
        Assert.All(net.GetQueueStates(), q => Assert.NotNull(q.ChainsReturnedInBatches));
    }

    private static string Batches(VirtioNetDevice net) =>
        string.Join(", ", net.GetQueueStates().Select(q => $"queue {q.QueueIndex}: {q.ChainsReturnedInBatches}"));

    private static int Size(int burst, int index) => 60 + ((((burst * BurstLength) + index) * 997) % 1455);
}
