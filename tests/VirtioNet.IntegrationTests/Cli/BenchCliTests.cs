using System.Text.Json;
using VirtioNet.IntegrationTests.VhostUser;
using Xunit;

namespace VirtioNet.IntegrationTests.Cli;

/// <summary><c>vnet bench</c> from the command line: the sweep with its chart against DPDK, and bad options.</summary>
[Collection(VhostUserCollection.Name)]
public sealed class BenchCliTests
{
    [Theory]
    [InlineData("bench --chart out.png", "--chart needs --sizes")]
    [InlineData("bench --sizes 64,128", "give --vhost-user PATH")]
    [InlineData("bench --sizes 64,9000 --vhost-user /tmp/x.sock", "'9000' is not one")]
    [InlineData("bench --sizes 64 --vhost-user /tmp/x.sock --chart out.gif", ".png or .svg")]
    [InlineData("bench --size 20", "--size must be 60 to 1514")]
    [InlineData("bench --mode sideways", "sideways")]
    public void BadBenchOptionsAreOneClearErrorLine(string arguments, string expected)
    {
        VnetProcess.Result result = VnetProcess.Run(arguments.Split(' '));
        Assert.Equal(2, result.ExitCode);
        string[] errors = result.StandardError.Split('\n').Where(l => l.StartsWith("vnet: error:", StringComparison.Ordinal)).ToArray();
        Assert.Single(errors);
        Assert.Contains(expected, errors[0], StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", result.StandardError, StringComparison.Ordinal);
    }

    [Fact]
    [Trait("Peer", "Dpdk")]
    public void ASweepAgainstTestpmdReportsEverySizeAndDrawsTheChart()
    {
        DpdkRequirement.EnsureAvailable();
        using DpdkTestpmd testpmd = DpdkTestpmd.Start("rxonly");
        string chart = Path.Combine(Path.GetTempPath(), $"vnet-sweep-{Environment.ProcessId}.png");
        try
        {
            VnetProcess.Result result = VnetProcess.Run(
                "bench", "--vhost-user", testpmd.SocketPath, "--mode", "tx", "--sizes", "64,512,1514", "--seconds", "0.5", "--chart", chart, "--json");
            Assert.True(result.ExitCode == 0, result.StandardError);

            using JsonDocument json = JsonDocument.Parse(result.StandardOutput);
            JsonElement[] rows = [.. json.RootElement.GetProperty("results").EnumerateArray()];
            Assert.Equal([64, 512, 1514], rows.Select(r => r.GetProperty("size").GetInt32()));
            Assert.All(rows, r => Assert.True(r.GetProperty("mpps").GetDouble() > 0));
            Assert.All(rows, r => Assert.Equal(0, r.GetProperty("allocatedBytes").GetInt64()));

            byte[] png = File.ReadAllBytes(chart);
            Assert.True(png.Length > 1000);
            Assert.Equal(new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G' }, png[..4]);
        }
        finally
        {
            File.Delete(chart);
        }
    }
}
