using System.CommandLine;
using System.Text.Json.Nodes;
using VirtioNet.Core;
using VirtioNet.Net;

namespace VirtioNet.Cli.Commands;

/// <summary>
/// <c>vnet offloads</c>: the offloads in ethtool's names, like <c>ethtool -k</c>; <c>--set NAME=on|off</c> changes them,
/// like <c>ethtool -K</c>. Receive offloads change at run time (VIRTIO_NET_CTRL_GUEST_OFFLOADS_SET); the others are
/// features, so turning one off leaves it out of negotiation.
/// </summary>
internal static class OffloadsCommand
{
    private static readonly Option<string[]> Set = new("--set", "-K")
    {
        Description = "NAME=on|off, repeatable, e.g. --set rx-checksumming=off.",
        AllowMultipleArgumentsPerToken = true,
    };

    // ethtool's feature names → the virtio bits behind them, and whether the device can change them after bring-up.
    private static readonly (string Name, ulong Bits, bool RunTime)[] Offloads =
    [
        ("rx-checksumming", VirtioNetFeatures.GuestCsum, true),
        ("tx-checksumming", VirtioNetFeatures.Csum, false),
        ("tcp-segmentation-offload", VirtioNetFeatures.HostTso4 | VirtioNetFeatures.HostTso6, false),
        ("tx-tcp-ecn-segmentation", VirtioNetFeatures.HostEcn, false),
        ("tx-udp-segmentation", VirtioNetFeatures.HostUso, false),
        ("rx-gro-hw", VirtioNetFeatures.GuestTso4 | VirtioNetFeatures.GuestTso6 | VirtioNetFeatures.GuestEcn | VirtioNetFeatures.GuestUfo | VirtioNetFeatures.GuestUso4 | VirtioNetFeatures.GuestUso6, true),
        ("receive-hashing", VirtioNetFeatures.HashReport, false),
        ("rx-vlan-filter", VirtioNetFeatures.CtrlVlan, false),
    ];

    public static Command Create()
    {
        var command = new Command("offloads", "Show (and with --set change) offloads, as ethtool -k/-K does.");
        command.Options.Add(Set);
        CommonOptions.AddTo(command, includeOperationMode: false);
        CommandRunner.SetAction(command, Execute);
        return command;
    }

    private static int Execute(MachineSettings settings, ParseResult result, CancellationToken cancellationToken)
    {
        var changes = new List<((string Name, ulong Bits, bool RunTime) Offload, bool On)>();
        foreach (string text in result.GetValue(Set) ?? [])
        {
            (string name, bool on) = OnOff.ParseSetting(text, "--set");
            var offload = Offloads.FirstOrDefault(o => o.Name == name);
            if (offload.Name is null)
            {
                throw new CliException($"--set: '{name}' is not an offload (use {string.Join(", ", Offloads.Select(o => o.Name))}).");
            }

            changes.Add((offload, on));
        }

        // Fixed offloads turned off stay out of negotiation; fixed ones turned on must be negotiated (checked below).
        ulong disabled = changes.Where(c => !c.Offload.RunTime && !c.On).Aggregate(0UL, (bits, c) => bits | c.Offload.Bits);
        using NetDeviceSession session = NetDeviceSession.Open(settings, 1, string.Empty, cancellationToken, disabled);
        VirtioNetDevice net = session.Net;
        foreach (var (offload, on) in changes)
        {
            if (on && (net.NegotiatedFeatures & offload.Bits) == 0)
            {
                throw new VirtioException(VirtioErrorReason.RequiredFeatureMissing, $"{offload.Name} cannot be turned on: {string.Join(", ", VirtioNetFeatureNames.Describe(offload.Bits))} was not negotiated (offered: {((net.OfferedFeatures & offload.Bits) != 0 ? "yes" : "no")}).");
            }

            if (offload.RunTime)
            {
                ulong bits = offload.Bits & net.NegotiatedFeatures;
                net.SetGuestOffloads(on ? net.GuestOffloads | bits : net.GuestOffloads & ~bits);
            }
        }

        bool IsOn((string Name, ulong Bits, bool RunTime) o) => ((o.RunTime ? net.GuestOffloads : net.NegotiatedFeatures) & o.Bits) != 0;
        bool IsFixed((string Name, ulong Bits, bool RunTime) o) =>
            !o.RunTime || (net.NegotiatedFeatures & VirtioNetFeatures.CtrlGuestOffloads) == 0 || (net.NegotiatedFeatures & o.Bits) == 0;

        if (settings.Json)
        {
            var json = new JsonObject();
            foreach (var o in Offloads)
            {
                json[o.Name] = new JsonObject { ["on"] = IsOn(o), ["fixed"] = IsFixed(o), ["offered"] = (net.OfferedFeatures & o.Bits) != 0 };
            }

            Console.Out.WriteLine(new JsonObject { ["offloads"] = json }.ToJsonString(Json.Options));
            return 0;
        }

        Console.Out.WriteLine("Features for net0:");
        foreach (var o in Offloads)
        {
            Console.Out.WriteLine($"{o.Name}: {(IsOn(o) ? "on" : "off")}{(IsFixed(o) ? " [fixed]" : string.Empty)}");
        }

        return 0;
    }
}
