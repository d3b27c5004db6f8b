using System.Globalization;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
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
    private DetachedMachine(string name, int pid, string ramPath, string qmpSocket)
    {
        Name = name;
        ProcessId = pid;
        RamPath = ramPath;
        QmpSocket = qmpSocket;
    }

    public string Name { get; }

    public int ProcessId { get; }

    public string RamPath { get; }

    /// <summary>QEMU's QMP socket, which takes one client at a time (a driver attached to the machine holds it).</summary>
    public string QmpSocket { get; }

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
        return new DetachedMachine(name, (int)entry["pid"]!, (string)entry["ramPath"]!, (string)entry["qmpSocket"]!);
    }

    /// <summary>
    /// QMP <c>set_link</c> for the virtio-net device, while no driver holds the QMP socket: the link state lives in QEMU's
    /// network client, so the device reports it to the next driver from the start.
    /// </summary>
    public void SetLink(bool up)
    {
        using var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        socket.ReceiveTimeout = 10_000;
        socket.Connect(new UnixDomainSocketEndPoint(QmpSocket));
        using var stream = new NetworkStream(socket);
        using var reader = new StreamReader(stream, Encoding.UTF8);
        using var writer = new StreamWriter(stream, new UTF8Encoding(false)) { AutoFlush = true, NewLine = "\n" };
        Assert.Contains("QMP", reader.ReadLine(), StringComparison.Ordinal);
        foreach (string command in new[] { """{"execute":"qmp_capabilities"}""", """{"execute":"set_link","arguments":{"name":"net0","up":""" + (up ? "true" : "false") + "}}" })
        {
            writer.WriteLine(command);
            string? reply;
            while ((reply = reader.ReadLine()) is not null && reply.Contains("\"event\"", StringComparison.Ordinal))
            {
            }

            Assert.True(reply is not null && reply.Contains("\"return\"", StringComparison.Ordinal), $"QMP {command}: {reply}");
        }
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
