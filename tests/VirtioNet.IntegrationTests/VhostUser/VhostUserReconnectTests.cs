using System.Diagnostics;
using VirtioNet.Core;
using VirtioNet.Net;
using VirtioNet.VhostUser;
using Xunit;

namespace VirtioNet.IntegrationTests.VhostUser;

/// <summary>
/// The backend killed (SIGKILL, as a crash) and started again: the loss is seen, operations fail with one clear error,
/// and after <see cref="VhostUserNetDevice.Reconnect"/> traffic resumes with no descriptor or buffer left behind.
/// </summary>
[Trait("Peer", "Dpdk")]
[Collection(VhostUserCollection.Name)]
public sealed class VhostUserReconnectTests
{
    [Fact]
    public void KilledBackendIsSeenAndTrafficResumesAfterRestartWithNothingLeaked()
    {
        using DpdkTestpmd testpmd = DpdkTestpmd.Start("macswap");
        var netOptions = new VirtioNetOptions { OperationMode = OperationMode.Poll, DisabledFeatures = VirtioFeatures.RingPacked, LinkPollInterval = TimeSpan.FromMilliseconds(10) };
        int baseline = -1;
        for (int round = 0; round < 2; round++)
        {
            // Round 0 pays for what the runtime opens once; round 1 is measured.
            if (round == 1)
            {
                baseline = StableVhostUserDescriptorCount();
            }

            using (VhostUserNetDevice session = VhostUserNetDevice.Open(new VhostUserOptions { SocketPath = testpmd.SocketPath, ConnectTimeout = TimeSpan.FromSeconds(10) }, netOptions, cancellationToken: TestContext.Current.CancellationToken))
            {
                Assert.Equal(100, LoopbackTraffic.Exchange(session.Device, 100, swapped: true, TimeSpan.FromSeconds(10)));
                int regionsInUse = session.Memory.AllocatedRegions;
                var linkEvents = new List<bool>();
                session.Device.LinkStateChanged += (_, e) => linkEvents.Add(e.IsUp);

                testpmd.Kill();

                // Poll mode sees the loss through the link status (the socket's hang-up).
                Assert.True(WaitUntil(() => !session.Device.CheckLink(), TimeSpan.FromSeconds(5)), "the link stayed up after the backend was killed");
                Assert.Contains(false, linkEvents);
                Assert.False(session.Transport.IsConnected);
                var gone = Assert.Throws<VirtioException>(() => session.Transport.ReadStatus());
                Assert.Equal(VirtioErrorReason.PlatformFailure, gone.Reason);
                Assert.Contains($"vhost-user backend at {testpmd.SocketPath} went away", gone.Message, StringComparison.Ordinal);

                // Sending either finds the ring full or fails with the same error; nothing else.
                for (int i = 0; i < 300; i++)
                {
                    try
                    {
                        session.Device.Pairs[0].TrySend(LoopbackTraffic.BuildFrame(session.Device.MacAddress.Span, (uint)i, 60));
                    }
                    catch (VirtioException e) when (e.Message.Contains("went away", StringComparison.Ordinal))
                    {
                        break;
                    }
                }

                testpmd.Restart();
                VirtioNetDevice device = session.Reconnect(TestContext.Current.CancellationToken);

                Assert.True(device.IsLinkUp);
                Assert.True(session.Transport.IsConnected);
                Assert.Equal(1, session.Transport.ReconnectCount);
                Assert.Equal(regionsInUse, session.Memory.AllocatedRegions);
                Assert.Equal(300, LoopbackTraffic.Exchange(device, 300, swapped: true, TimeSpan.FromSeconds(10)));
            }

            if (round == 1)
            {
                Assert.Equal(baseline, StableVhostUserDescriptorCount());
            }
        }
    }

    [Fact]
    public void InInterruptModeAWaitingReceiverLearnsThatTheBackendWentAway()
    {
        using DpdkTestpmd testpmd = DpdkTestpmd.Start("macswap");
        using VhostUserNetDevice session = VhostUserNetDevice.Open(
            new VhostUserOptions { SocketPath = testpmd.SocketPath },
            new VirtioNetOptions { OperationMode = OperationMode.Interrupt, DisabledFeatures = VirtioFeatures.RingPacked },
            cancellationToken: TestContext.Current.CancellationToken);
        Assert.Equal(20, LoopbackTraffic.Exchange(session.Device, 20, swapped: true, TimeSpan.FromSeconds(10)));

        testpmd.Kill();
        var clock = Stopwatch.StartNew();
        var error = Assert.Throws<VirtioException>(() => session.Device.Pairs[0].WaitForReceive(TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken));

        Assert.Equal(VirtioErrorReason.PlatformFailure, error.Reason);
        Assert.Contains("went away", error.Message, StringComparison.Ordinal);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(5), $"the loss took {clock.Elapsed} to be noticed");
    }

    [Fact]
    public void BackendInClientModeComesBackToTheSameListeningSocket()
    {
        using DpdkTestpmd testpmd = DpdkTestpmd.Start("macswap", backendIsClient: true);
        var options = new VhostUserOptions { SocketPath = testpmd.SocketPath, SocketMode = VhostUserSocketMode.Listen, ConnectTimeout = TimeSpan.FromSeconds(10) };
        using VhostUserNetDevice session = VhostUserNetDevice.Open(
            options, new VirtioNetOptions { OperationMode = OperationMode.Poll, DisabledFeatures = VirtioFeatures.RingPacked }, cancellationToken: TestContext.Current.CancellationToken);
        Assert.Equal(50, LoopbackTraffic.Exchange(session.Device, 50, swapped: true, TimeSpan.FromSeconds(10)));

        testpmd.Kill();
        Assert.True(WaitUntil(() => !session.Device.CheckLink(), TimeSpan.FromSeconds(5)), "the link stayed up after the backend was killed");
        testpmd.Restart();
        VirtioNetDevice device = session.Reconnect(TestContext.Current.CancellationToken);

        Assert.True(device.IsLinkUp);
        int received = LoopbackTraffic.Exchange(device, 50, swapped: true, TimeSpan.FromSeconds(10));
        Assert.True(received == 50, $"{received} of 50 frames came back after the reconnect.\n{testpmd.CommandLine}\n{testpmd.Log}");
    }

    // Only the kinds the transport opens (memfd, eventfd, socket): testpmd's stdout and stderr pipes come and go with it.
    // No forced collection: a handle that was not disposed would be closed by its finalizer and the leak would hide.
    private static int StableVhostUserDescriptorCount() => OpenDescriptors.CountVhostUserKinds();

    private static bool WaitUntil(Func<bool> condition, TimeSpan timeout)
    {
        var clock = Stopwatch.StartNew();
        while (!condition())
        {
            if (clock.Elapsed > timeout)
            {
                return false;
            }

            Thread.Sleep(10);
        }

        return true;
    }
}
