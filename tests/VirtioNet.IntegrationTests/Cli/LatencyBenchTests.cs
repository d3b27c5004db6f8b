using System.Text.Json;
using VirtioNet.IntegrationTests.Qemu;
using VirtioNet.IntegrationTests.VhostUser;
using Xunit;

namespace VirtioNet.IntegrationTests.Cli;

/// <summary>
/// <c>vnet bench --mode latency</c>: stamped frames through a peer that sends them back (testpmd's macswap, QEMU's
/// socket netdev with the bench's UDP peer echoing). Checked: every measured frame came back and went into the
/// histogram, the percentiles are ordered, and the measured loop neither allocated nor collected. Never the times.
/// </summary>
[Collection(VhostUserCollection.Name)]
public sealed class LatencyBenchTests
{
    [Theory]
    [Trait("Peer", "Dpdk")]
    [InlineData("poll", "2000")]
    [InlineData("interrupt", "2000")]
    public void AtAFixedRateThroughTestpmdEveryStampedFrameComesBackWithoutAllocationOrCollection(string operationMode, string rate)
    {
        DpdkRequirement.EnsureAvailable();
        using DpdkTestpmd testpmd = DpdkTestpmd.Start("macswap");
        JsonElement r = RunLatency(operationMode, "--vhost-user", testpmd.SocketPath, "--rate", rate);
        AssertComplete(r);
        Assert.Equal(0, r.GetProperty("foreign").GetInt64());
        Assert.Equal(0, r.GetProperty("gcCollections").GetInt32());

        // At most the 32 bytes the first interrupt handled on the thread allocates once (poll mode: none).
        Assert.True(r.GetProperty("allocatedBytes").GetInt64() <= 32, r.ToString());
        if (operationMode == "interrupt")
        {
            // Paced frames leave the receive queue empty between them: the driver slept until the device interrupted.
            Assert.True(r.GetProperty("receiveWaits").GetInt64() > 0, r.ToString());
        }
    }

    [Fact]
    [Trait("Peer", "Dpdk")]
    public void UnderLoadTheRingIsKeptFullAndEveryRoundTripIsStillRecorded()
    {
        DpdkRequirement.EnsureAvailable();
        using DpdkTestpmd testpmd = DpdkTestpmd.Start("macswap");
        JsonElement r = RunLatency("poll", "--vhost-user", testpmd.SocketPath, "--rate", "0");
        Assert.Equal(0, r.GetProperty("rate").GetInt32());

        // Under load the backend may drop what does not fit the receive ring: what came back is counted, nothing more.
        long measured = r.GetProperty("measured").GetInt64();
        long returned = r.GetProperty("returned").GetInt64();
        Assert.True(returned > 0 && returned <= measured, r.ToString());
        AssertOrdered(r);
    }

    [Fact]
    [Trait("Peer", "Qemu")]
    public void OnAQemuMachineTheSocketPeerSendsEveryFrameBack()
    {
        QemuRequirement.EnsureAvailable();
        JsonElement r = RunLatency("poll", "--rate", "500");
        AssertComplete(r);
    }

    private static JsonElement RunLatency(string operationMode, params string[] arguments)
    {
        VnetProcess.Result result = VnetProcess.Run(["bench", "--mode", "latency", "--mode", operationMode, "--seconds", "2", "--json", .. arguments]);
        Assert.True(result.ExitCode == 0, result.StandardError);
        using JsonDocument json = JsonDocument.Parse(result.StandardOutput);
        JsonElement r = json.RootElement.Clone();
        Assert.Equal("latency", r.GetProperty("mode").GetString());
        Assert.Equal(operationMode, r.GetProperty("operationMode").GetString());
        return r;
    }

    // Every frame sent after the warm-up came back and was recorded.
    private static void AssertComplete(JsonElement r)
    {
        long measured = r.GetProperty("measured").GetInt64();
        Assert.True(measured > 0, r.ToString());
        Assert.Equal(measured, r.GetProperty("returned").GetInt64());
        Assert.Equal(0, r.GetProperty("lost").GetInt64());
        AssertOrdered(r);
    }

    private static void AssertOrdered(JsonElement r)
    {
        long p50 = r.GetProperty("p50Ns").GetInt64();
        long p99 = r.GetProperty("p99Ns").GetInt64();
        long p999 = r.GetProperty("p999Ns").GetInt64();
        long max = r.GetProperty("maxNs").GetInt64();
        Assert.True(p50 > 0 && p50 <= p99 && p99 <= p999 && p999 <= max, r.ToString());
    }
}
