using System.Buffers.Binary;
using System.Diagnostics;
using System.Text.Json;
using VirtioNet.Core;
using VirtioNet.IntegrationTests.Cli;
using VirtioNet.Net;
using VirtioNet.Net.Control;
using VirtioNet.VhostUser;
using Xunit;

namespace VirtioNet.IntegrationTests.VhostUser;

/// <summary>
/// Multi-queue over vhost-user against testpmd with N queues, split and packed rings: the transport serves the control
/// queue itself (in the same layout as the data rings) and turns
/// VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET into SET_VRING_ENABLE; testpmd forwards receive queue k to transmit queue k, so a
/// frame sent on pair k comes back on pair k.
/// </summary>
[Trait("Peer", "Dpdk")]
[Collection(VhostUserCollection.Name)]
public sealed class VhostUserMultiQueueTests
{
    private static VhostUserNetDevice Open(DpdkTestpmd testpmd, int pairs, bool packed = true) =>
        VhostUserNetDevice.Open(
            new VhostUserOptions { SocketPath = testpmd.SocketPath, QueuePairs = pairs },
            new VirtioNetOptions { OperationMode = OperationMode.Poll, QueuePairs = pairs, DisabledFeatures = packed ? 0 : VirtioFeatures.RingPacked },
            cancellationToken: TestContext.Current.CancellationToken);

    [Theory]
    [InlineData(2, false)]
    [InlineData(4, false)]
    [InlineData(2, true)]
    [InlineData(4, true)]
    public void EveryPairComesUpAndCarriesFramesBackOnItsOwnQueue(int pairs, bool packed)
    {
        using DpdkTestpmd testpmd = DpdkTestpmd.StartMultiQueue(pairs, "macswap");
        using VhostUserNetDevice session = Open(testpmd, pairs, packed);
        VirtioNetDevice device = session.Device;
        VhostUserTransport transport = session.Transport;

        Assert.True(transport.ServesControlQueue);
        // DPDK answers GET_QUEUE_NUM with its build's maximum (128), not the port's queues=N; the options cap it.
        Assert.True(transport.MaxQueuePairs >= pairs, $"GET_QUEUE_NUM answered {transport.MaxQueuePairs}");
        Assert.Equal(2 * pairs, transport.ControlQueueIndex);
        Assert.NotEqual(0UL, device.NegotiatedFeatures & VirtioNetFeatures.Mq);
        Assert.NotEqual(0UL, device.NegotiatedFeatures & VirtioNetFeatures.CtrlVq);
        // Every ring in the layout asked for, the control queue the transport serves included.
        Assert.Equal(packed, (device.NegotiatedFeatures & VirtioFeatures.RingPacked) != 0);
        Assert.Equal(pairs, device.Config.MaxVirtqueuePairs);
        Assert.Equal(pairs, device.Pairs.Count);
        Assert.Equal(pairs, device.Control.ActiveQueuePairs);

        // The bring-up's VQ_PAIRS_SET went through the transport's control queue and enabled every pair.
        Assert.Equal(pairs, transport.EnabledQueuePairs);
        Assert.True(transport.ControlCommandsServed >= 1);
        Assert.Equal(transport.ControlCommandsServed, device.Control.Queue!.CommandsCompleted);

        const int PerPair = 300;
        long[] received = ExchangeOnEveryPair(device, pairs, PerPair, TimeSpan.FromSeconds(30));
        for (int pair = 0; pair < pairs; pair++)
        {
            Assert.True(received[pair] == PerPair, $"pair {pair} got {received[pair]} of {PerPair} frames back: [{string.Join(", ", received)}].\n{testpmd.Log}");
        }
    }

    [Fact]
    public void FewerPairsDisableTheOthersAtTheBackendAndMorePairsResumeThem()
    {
        using DpdkTestpmd testpmd = DpdkTestpmd.StartMultiQueue(2, "macswap");
        using VhostUserNetDevice session = Open(testpmd, 2);
        VirtioNetDevice device = session.Device;
        VhostUserTransport transport = session.Transport;

        device.Control.SetActiveQueuePairs(1);
        Assert.Equal(1, transport.EnabledQueuePairs);
        Assert.Equal(1, device.Control.ActiveQueuePairs);

        // Pair 0 still forwards; a frame put on pair 1's disabled transmit ring is not taken by the backend.
        Assert.Equal(new long[] { 50 }, ExchangeOnEveryPair(device, 1, 50, TimeSpan.FromSeconds(10)));
        byte[] frame = LoopbackTraffic.BuildFrame(device.MacAddress.Span, 0x7fff_0000, device.Pairs[0].MaxTransmitFrameLength);
        Assert.True(device.Pairs[1].TrySend(frame));
        byte[] buffer = new byte[device.Pairs[0].MaxReceiveFrameLength];
        Assert.False(WaitForFrame(device, 1, buffer, TimeSpan.FromMilliseconds(500), out _), "a frame came back on pair 1 while it was disabled");

        // Enabled again, the backend takes the waiting frame and sends it back on pair 1.
        device.Control.SetActiveQueuePairs(2);
        Assert.Equal(2, transport.EnabledQueuePairs);
        Assert.True(WaitForFrame(device, 1, buffer, TimeSpan.FromSeconds(5), out int length), $"the frame left on pair 1 did not come back once it was enabled.\n{testpmd.Log}");
        Assert.Equal(0x7fff_0000u, BinaryPrimitives.ReadUInt32BigEndian(buffer.AsSpan(14, length - 14)));
    }

    [Fact]
    public void VqPairsSetBeyondMaxVirtqueuePairsIsAnsweredWithErr()
    {
        using DpdkTestpmd testpmd = DpdkTestpmd.StartMultiQueue(2, "io");
        using VhostUserNetDevice session = Open(testpmd, 2);
        VirtioNetControlQueue control = session.Device.Control.Queue!;

        byte[] payload = new byte[2];
        BinaryPrimitives.WriteUInt16LittleEndian(payload, 3);
        VirtioException e = Assert.Throws<VirtioException>(() => control.Execute(VirtioNetControlClass.Mq, VirtioNetControlCommands.MqVqPairsSet, payload));
        Assert.Equal(VirtioErrorReason.CommandRejected, e.Reason);

        // A command of a class the transport does not offer is refused too, and the queue stays usable.
        var rx = Assert.Throws<VirtioException>(() => control.Execute(VirtioNetControlClass.Rx, VirtioNetControlCommands.RxPromisc, [1]));
        Assert.Equal(VirtioErrorReason.CommandRejected, rx.Reason);
        Assert.True(control.IsUsable);
        Assert.Equal(2, session.Transport.EnabledQueuePairs);
        Assert.Equal(2, control.CommandsRejected);
    }

    [Fact]
    public void OnePairAskedForLeavesTheControlQueueUnoffered()
    {
        using DpdkTestpmd testpmd = DpdkTestpmd.StartMultiQueue(2, "io");
        using VhostUserNetDevice session = Open(testpmd, 1);

        Assert.False(session.Transport.ServesControlQueue);
        Assert.Equal(-1, session.Transport.ControlQueueIndex);
        Assert.Equal(0UL, session.Device.NegotiatedFeatures & (VirtioNetFeatures.CtrlVq | VirtioNetFeatures.Mq));
        Assert.Null(session.Device.Control.Queue);
    }

    [Fact]
    public void BenchWithTwoQueuesDrivesBothPairsAndSumsTheirRates()
    {
        using DpdkTestpmd testpmd = DpdkTestpmd.StartMultiQueue(2, "macswap");
        VnetProcess.Result result = VnetProcess.Run("bench", "--vhost-user", testpmd.SocketPath, "--mode", "loopback", "--queues", "2", "--seconds", "1", "--json");
        Assert.True(result.ExitCode == 0, result.StandardError);
        Assert.Contains("2 queue pair(s)", result.StandardError, StringComparison.Ordinal);

        using JsonDocument json = JsonDocument.Parse(result.StandardOutput);
        Assert.True(json.RootElement.GetProperty("received").GetInt64() > 0, result.StandardOutput);
        Assert.True(json.RootElement.GetProperty("mpps").GetDouble() > 0, result.StandardOutput);
        Assert.Equal(0, json.RootElement.GetProperty("allocatedBytes").GetInt64());
    }

    [Fact]
    public void BenchQueuesAboveOneWithoutVhostUserIsOneClearError()
    {
        VnetProcess.Result result = VnetProcess.Run("bench", "--queues", "2");
        Assert.Equal(2, result.ExitCode);
        Assert.Contains("vnet: error: --queues must be 1 to 128, and above 1 only with --vhost-user", result.StandardError, StringComparison.Ordinal);
    }

    // Sends perPair numbered frames on each pair (at most 32 in flight per pair) and counts those that come back on the
    // pair they were sent on; a frame that comes back on another pair, or unknown, fails the test.
    internal static long[] ExchangeOnEveryPair(VirtioNetDevice device, int pairs, int perPair, TimeSpan timeout)
    {
        long[] received = new long[pairs];
        int[] next = new int[pairs];
        var outstanding = new HashSet<uint>[pairs];
        for (int pair = 0; pair < pairs; pair++)
        {
            outstanding[pair] = [];
        }

        byte[] buffer = new byte[device.Pairs[0].MaxReceiveFrameLength];
        var clock = Stopwatch.StartNew();
        while (received.Sum() < (long)pairs * perPair && clock.Elapsed < timeout)
        {
            for (int pair = 0; pair < pairs; pair++)
            {
                while (next[pair] < perPair && next[pair] - received[pair] < 32)
                {
                    uint sequence = ((uint)pair << 16) | (uint)next[pair];
                    byte[] frame = LoopbackTraffic.BuildFrame(device.MacAddress.Span, sequence, device.Pairs[0].MaxTransmitFrameLength);
                    if (!device.Pairs[pair].TrySend(frame))
                    {
                        break;
                    }

                    outstanding[pair].Add(sequence);
                    next[pair]++;
                }

                device.Pairs[pair].Reclaim();
                while (device.Pairs[pair].TryReceive(buffer, out int length))
                {
                    Assert.True(length >= 18, $"a {length}-byte frame came back on pair {pair}");
                    uint sequence = BinaryPrimitives.ReadUInt32BigEndian(buffer.AsSpan(14));
                    Assert.True(outstanding[pair].Remove(sequence), $"frame 0x{sequence:x} came back on pair {pair}, which did not send it (or came back twice)");
                    received[pair]++;
                }
            }

            Thread.Yield();
        }

        return received;
    }

    private static bool WaitForFrame(VirtioNetDevice device, int pair, byte[] buffer, TimeSpan timeout, out int length)
    {
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < timeout)
        {
            device.Pairs[pair].Reclaim();
            if (device.Pairs[pair].TryReceive(buffer, out length))
            {
                return true;
            }

            Thread.Sleep(1);
        }

        length = 0;
        return false;
    }
}
