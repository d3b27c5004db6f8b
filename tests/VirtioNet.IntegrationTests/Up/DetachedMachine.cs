using System.Globalization;
using System.Security.Cryptography;
using System.Text.Json.Nodes;
using VirtioNet.IntegrationTests.Cli;
using Xunit;

namespace VirtioNet.IntegrationTests.Up;

/// <summary>
/// A QEMU machine started with <c>vnet machine start</c> under a unique name, stopped (with <c>--force</c>) on dispose;
/// the dispose checks that nothing of it is left: no QEMU, no RAM file, no directory.
/// </summary>
internal sealed class DetachedMachine : IDisposable
{
    private DetachedMachine(string name, int pid, string ramPath)
    {
        Name = name;
        ProcessId = pid;
        RamPath = ramPath;
    }

    public string Name { get; }

    public int ProcessId { get; }

    public string RamPath { get; }

    /// <summary>The directory the machine's state is recorded in.</summary>
    public string Directory => $"/run/vnet/machines/{Name}";

    /// <summary>The driver lock's pid file: the process that drives the machine now (or last did).</summary>
    public int DriverPid => int.Parse(File.ReadAllText(Path.Combine(Directory, "driver.pid")).Trim(), CultureInfo.InvariantCulture);

    public static DetachedMachine Start(params string[] options)
    {
        string name = $"vt{Environment.ProcessId.ToString(CultureInfo.InvariantCulture)}-{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(3))}";
        VnetProcess.Result started = VnetProcess.Run(["machine", "start", name, .. options]);
        Assert.True(started.ExitCode == 0, $"vnet machine start exited with {started.ExitCode}:\n{started.StandardError}");
        VnetProcess.Result listed = VnetProcess.Run("machine", "list", "--json");
        JsonObject entry = JsonNode.Parse(listed.StandardOutput)!.AsArray().Select(n => n!.AsObject()).Single(m => (string?)m["name"] == name);
        return new DetachedMachine(name, (int)entry["pid"]!, (string)entry["ramPath"]!);
    }

    public void Dispose()
    {
        VnetProcess.Result stopped = VnetProcess.Run("machine", "stop", Name, "--force");
        Assert.True(stopped.ExitCode == 0, $"vnet machine stop exited with {stopped.ExitCode}:\n{stopped.StandardError}");
        Assert.False(System.IO.Directory.Exists(Directory), $"vnet machine stop left {Directory}.");
        Assert.False(File.Exists(RamPath), $"vnet machine stop left the RAM file {RamPath}.");
        Assert.False(File.Exists($"/proc/{ProcessId.ToString(CultureInfo.InvariantCulture)}/cmdline")
            && File.ReadAllText($"/proc/{ProcessId.ToString(CultureInfo.InvariantCulture)}/cmdline").Contains(RamPath, StringComparison.Ordinal)
            && !File.ReadAllText($"/proc/{ProcessId.ToString(CultureInfo.InvariantCulture)}/stat").Contains(") Z", StringComparison.Ordinal),
            "QEMU still runs after vnet machine stop.");
    }
}
