using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using System.Text.Json;
using VirtioNet.IntegrationTests.Qemu;
using VirtioNet.IntegrationTests.Tap;
using Xunit;

namespace VirtioNet.IntegrationTests.Up;

/// <summary>
/// dotnet-counters (the .NET diagnostics tool, installed by scripts/install-deps into its own tool path) reads the
/// "VirtioNet" meter of a running <c>vnet up</c> from outside, as an operator would: QEMU's virtio-net on its user
/// network, the kernel's ping in the service's namespace while the tool collects.
/// </summary>
[Trait("Peer", "Qemu")]
[Trait("Peer", "Kernel")]
public sealed class DotnetCountersTests
{
    /// <summary>Where scripts/install-deps puts dotnet-counters.</summary>
    public const string ToolPath = "/opt/virtionet/dotnet-tools/dotnet-counters";

    [Fact]
    public void DotnetCountersReadsThePacketChecksumAndRingCountersOfARunningVnetUp()
    {
        KernelPeerRequirement.EnsureAvailable();
        QemuRequirement.EnsureAvailable();
        EnsureToolAvailable();
        string suffix = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(3));
        using NetworkNamespace near = NetworkNamespace.Create();
        using UpProcess up = UpProcess.Start("--netns", near.Name, "--tap", $"vd{suffix}", "--dhcp");
        near.ExecInside("ping -c 2 -W 5 10.0.2.2");

        // The kernel pings all through the collection, so each interval's rate of packets is above 0.
        string output = Path.Combine(Path.GetTempPath(), $"vnet-counters-{Environment.ProcessId.ToString(CultureInfo.InvariantCulture)}-{suffix}.json");
        var pinging = new Thread(() => near.ExecInside("ping -c 25 -i 0.2 -W 5 10.0.2.2")) { IsBackground = true };
        pinging.Start();
        try
        {
            (int exitCode, string said) = Collect(up.ProcessId, output);
            Assert.True(exitCode == 0, $"dotnet-counters exited with {exitCode}:\n{said}");
            Assert.True(pinging.Join(TimeSpan.FromSeconds(60)), "The kernel's ping did not end.");

            // {"TargetProcess": ..., "Events": [{"provider": "VirtioNet", "name": "virtionet.packets ({packet})",
            // "tags": "device=...,direction=rx,queue=0", "counterType": "Rate", "value": N}, ...]}
            using JsonDocument document = JsonDocument.Parse(File.ReadAllText(output));
            var events = document.RootElement.GetProperty("Events").EnumerateArray()
                .Select(e => (Name: e.GetProperty("name").GetString()!, Tags: e.TryGetProperty("tags", out JsonElement t) ? t.GetString() ?? "" : "", Value: e.GetProperty("value").GetDouble()))
                .ToList();
            Assert.All(events, e => Assert.StartsWith("virtionet.", e.Name, StringComparison.Ordinal));
            foreach (string instrument in (string[])["virtionet.packets", "virtionet.bytes", "virtionet.drops", "virtionet.ring_full", "virtionet.checksums", "virtionet.segmentation", "virtionet.recoveries"])
            {
                Assert.Contains(events, e => e.Name.StartsWith(instrument + " ", StringComparison.Ordinal));
            }

            Assert.Contains(events, e => e.Name.StartsWith("virtionet.packets ", StringComparison.Ordinal) && e.Tags.Contains("direction=rx", StringComparison.Ordinal) && e.Value > 0);
            Assert.Contains(events, e => e.Name.StartsWith("virtionet.packets ", StringComparison.Ordinal) && e.Tags.Contains("direction=tx", StringComparison.Ordinal) && e.Value > 0);
            Assert.Contains(events, e => e.Name.StartsWith("virtionet.drops ", StringComparison.Ordinal) && e.Tags.Contains("reason=in_flight_at_recovery", StringComparison.Ordinal));
        }
        finally
        {
            File.Delete(output);
        }

        Assert.Equal(0, up.Stop());
    }

    // dotnet-counters collect for 4 s into `output` (JSON); its exit code and what it printed.
    private static (int ExitCode, string Output) Collect(int processId, string output)
    {
        var start = new ProcessStartInfo(ToolPath) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (string argument in (string[])["collect", "-p", processId.ToString(CultureInfo.InvariantCulture), "--counters", "VirtioNet",
            "--format", "json", "-o", output, "--refresh-interval", "1", "--duration", "00:00:00:04"])
        {
            start.ArgumentList.Add(argument);
        }

        using Process counters = Process.Start(start)!;
        var said = new System.Text.StringBuilder();
        counters.OutputDataReceived += (_, e) => { lock (said) { said.AppendLine(e.Data); } };
        counters.ErrorDataReceived += (_, e) => { lock (said) { said.AppendLine(e.Data); } };
        counters.BeginOutputReadLine();
        counters.BeginErrorReadLine();
        if (!counters.WaitForExit(TimeSpan.FromSeconds(60)))
        {
            counters.Kill();
            counters.WaitForExit();
            Assert.Fail("dotnet-counters did not stop after its 4 s.");
        }

        counters.WaitForExit();
        lock (said)
        {
            return (counters.ExitCode, said.ToString());
        }
    }

    // Skipped on a developer machine without the tool; failed on CI, where scripts/install-deps installs it.
    private static void EnsureToolAvailable()
    {
        if (File.Exists(ToolPath))
        {
            return;
        }

        string missing = $"{ToolPath} does not exist (run scripts/install-deps as root)";
        if (string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase))
        {
            Assert.Fail($"dotnet-counters tests cannot run on CI: {missing}.");
        }

        Assert.Skip($"dotnet-counters tests skipped: {missing}.");
    }
}
