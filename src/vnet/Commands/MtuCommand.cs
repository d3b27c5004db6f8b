using System.CommandLine;
using System.Text.Json.Nodes;
using VirtioNet.Service;

namespace VirtioNet.Cli.Commands;

/// <summary>
/// <c>vnet mtu</c>: the MTU in use and the device's maximum (VIRTIO_NET_F_MTU), with the frame sizes they give, like
/// <c>ip link show</c>'s mtu. With <c>--attach NAME</c> the MTU in use is the running instance's interface's, and
/// <c>--set N</c> changes it (as <c>ip link set mtu</c> does) within what the device takes: 68 to the device's MTU.
/// </summary>
internal static class MtuCommand
{
    private static readonly Option<int?> Set = new("--set")
    {
        Description = "With --attach: set the interface's MTU to N (68 to the device's MTU). A private machine's MTU is QEMU's host_mtu=N in --device-opts.",
    };

    public static Command Create() =>
        DeviceVerb.Create(
            "mtu",
            "Show the MTU (the device's, with VIRTIO_NET_F_MTU; pass host_mtu=N in --device-opts to set it) and the frame sizes the driver handles; with --attach and --set, change the running interface's.",
            Execute,
            withQueues: false,
            Set);

    private static int Execute(MachineSettings settings, ParseResult result, CancellationToken cancellationToken)
    {
        int? set = result.GetValue(Set);
        (JsonObject report, string device) = DeviceVerb.Report(result, "mtu", _ => set is { } mtu ? new JsonObject { ["mtu"] = mtu } : new JsonObject(), () =>
        {
            if (set is not null)
            {
                throw new CliException("--set changes a running interface's MTU (with --attach); a private machine's device takes its MTU from --device-opts host_mtu=N.");
            }

            using OneShotDevice session = OneShotDevice.Open(settings, 1, string.Empty, cancellationToken);
            return new DeviceLink(session.Net).MtuReport(session.Net.Mtu);
        });

        if (settings.Json)
        {
            Console.Out.WriteLine(report.ToJsonString(Json.Options));
            return 0;
        }

        Console.Out.WriteLine($"{device}: mtu {report["mtu"]} (device maximum {report["deviceMtu"]?.ToJsonString() ?? "not reported"}), " +
            $"frames up to {report["maxReceiveFrame"]} received / {report["maxTransmitFrame"]} sent, {report["receiveMode"]} receive buffers");
        return 0;
    }
}
