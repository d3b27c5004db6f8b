using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using VirtioNet.Core;
using VirtioNet.Net;
using VirtioNet.Qemu;

namespace VirtioNet.Cli.Commands;

/// <summary>
/// What the ethtool/ip-like commands share: a machine booted from the common options, the net device brought up on
/// it, and with <c>--queues N</c> a multi-queue TAP behind it (root only; created with a unique name and always
/// deleted), so the device offers N queue pairs (<c>mq=on</c>).
/// </summary>
internal sealed class OneShotDevice : IDisposable
{
    public static readonly Option<int> Queues = new("--queues")
    {
        Description = "Queue pairs: with more than 1, the device sits on a multi-queue TAP (needs root) with mq=on, and the driver sets up that many pairs.",
        DefaultValueFactory = _ => 1,
    };

    private readonly string? _tap;

    private OneShotDevice(IQemuBoard board, VirtioNetDevice net, string? tap)
    {
        Board = board;
        Net = net;
        _tap = tap;
    }

    public IQemuBoard Board { get; }

    public VirtioNetDevice Net { get; }

    /// <summary>Reads --queues; call before anything slow, so a bad value fails at once.</summary>
    public static int ReadQueues(ParseResult result)
    {
        int queues = result.GetValue(Queues);
        if (queues is < 1 or > 64)
        {
            throw new CliException($"--queues must be 1 to 64; got {queues}.");
        }

        return queues;
    }

    /// <summary>Boots the machine and brings the device up, in poll mode (these commands wait for nothing), without <paramref name="disabledFeatures"/> (any of the 128 bits).</summary>
    public static OneShotDevice Open(MachineSettings settings, int queues, string extraDeviceOptions, CancellationToken cancellationToken, VirtioFeatureSet disabledFeatures = default)
    {
        string? tap = null;
        if (queues > 1)
        {
            if (!Environment.IsPrivilegedProcess)
            {
                throw new CliException("--queues above 1 needs a multi-queue TAP, and creating one needs root.");
            }

            tap = string.Create(CultureInfo.InvariantCulture, $"vnet{Environment.ProcessId % 1000000}");
            Ip($"tuntap add dev {tap} mode tap multi_queue");
            settings = settings with
            {
                Netdev = string.Create(CultureInfo.InvariantCulture, $"tap,id=n0,ifname={tap},script=no,downscript=no,vnet_hdr=on,queues={queues}"),
                DeviceOptions = string.Join(',', new[] { settings.DeviceOptions, "mq=on", extraDeviceOptions }.Where(o => o.Length > 0)),
            };
        }

        IQemuBoard? board = null;
        try
        {
            board = Boards.Start(settings, cancellationToken);
            VirtioNetDevice net = board.OpenNetDevice(settings.BaseAddress, new VirtioNetOptions { OperationMode = OperationMode.Poll, QueuePairs = queues, DisabledFeatures = disabledFeatures.Low, DisabledFeaturesHigh = disabledFeatures.High });
            Log.Info($"{net.TransportDescription}: {net.Pairs.Count} queue pair(s) of {net.Config.MaxVirtqueuePairs} offered");
            return new OneShotDevice(board, net, tap);
        }
        catch
        {
            board?.Dispose();
            if (tap is not null)
            {
                Ip($"link del {tap}", throwOnFailure: false);
            }

            throw;
        }
    }

    public void Dispose()
    {
        Net.Dispose();
        Board.Dispose();
        if (_tap is not null)
        {
            Ip($"link del {_tap}", throwOnFailure: false);
        }
    }

    private static void Ip(string arguments, bool throwOnFailure = true)
    {
        using Process process = Process.Start(new ProcessStartInfo("ip", arguments)
        {
            RedirectStandardError = true,
            RedirectStandardOutput = true,
            UseShellExecute = false,
        }) ?? throw new InvalidOperationException("ip could not be started.");
        string error = process.StandardError.ReadToEnd();
        process.WaitForExit();
        if (process.ExitCode != 0 && throwOnFailure)
        {
            throw new InvalidOperationException($"ip {arguments} failed: {error.Trim()}");
        }
    }
}
