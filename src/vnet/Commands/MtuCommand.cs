using System.CommandLine;
using System.Text.Json.Nodes;

namespace VirtioNet.Cli.Commands;

/// <summary><c>vnet mtu</c>: the MTU in use and the device's maximum (VIRTIO_NET_F_MTU), with the frame sizes they give, like <c>ip link show</c>'s mtu.</summary>
internal static class MtuCommand
{
    public static Command Create()
    {
        var command = new Command("mtu", "Show the MTU (the device's, with VIRTIO_NET_F_MTU; pass host_mtu=N in --device-opts to set it) and the frame sizes the driver handles.");
        CommonOptions.AddTo(command, includeOperationMode: false);
        CommandRunner.SetAction(command, Execute);
        return command;
    }

    private static int Execute(MachineSettings settings, ParseResult result, CancellationToken cancellationToken)
    {
        using NetDeviceSession session = NetDeviceSession.Open(settings, 1, string.Empty, cancellationToken);
        if (settings.Json)
        {
            Console.Out.WriteLine(new JsonObject
            {
                ["mtu"] = session.Net.Mtu,
                ["deviceMtu"] = session.Net.Config.Mtu,
                ["maxReceiveFrame"] = session.Net.Pairs[0].MaxReceiveFrameLength,
                ["maxTransmitFrame"] = session.Net.Pairs[0].MaxTransmitFrameLength,
                ["receiveMode"] = session.Net.ReceiveMode.ToString().ToLowerInvariant(),
            }.ToJsonString(Json.Options));
            return 0;
        }

        Console.Out.WriteLine($"net0: mtu {session.Net.Mtu} (device maximum {session.Net.Config.Mtu?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "not reported"}), " +
            $"frames up to {session.Net.Pairs[0].MaxReceiveFrameLength} received / {session.Net.Pairs[0].MaxTransmitFrameLength} sent, {session.Net.ReceiveMode.ToString().ToLowerInvariant()} receive buffers");
        return 0;
    }
}
