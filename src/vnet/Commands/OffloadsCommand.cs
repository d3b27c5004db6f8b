using System.CommandLine;
using VirtioNet.Cli.Offloads;
using VirtioNet.Core;
using VirtioNet.Net;

namespace VirtioNet.Cli.Commands;

/// <summary>
/// <c>vnet offloads</c>: the offloads in ethtool's names, like <c>ethtool -k</c>, over all 128 feature bits (the UDP
/// tunnel segmentation offloads are bits 65 to 68); <c>--set NAME=on|off</c> changes them, like <c>ethtool -K</c>.
/// Receive offloads change at run time (VIRTIO_NET_CTRL_GUEST_OFFLOADS_SET); the others are features, so turning one
/// off leaves it out of negotiation. An offload the device does not offer is listed "off [not offered]", and a
/// <c>--set</c> of it is refused whole (one error line, exit code 1, nothing changed).
/// </summary>
internal static class OffloadsCommand
{
    private static readonly Option<string[]> Set = new("--set", "-K")
    {
        Description = "NAME=on|off, repeatable, e.g. --set rx-checksumming=off.",
        AllowMultipleArgumentsPerToken = true,
    };

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
        IReadOnlyList<(Offload Offload, bool On)> changes = OffloadCatalog.ParseChanges(result.GetValue(Set) ?? []);

        // Offloads only negotiation changes, turned off, stay out of it; the rest is checked against the device below.
        using NetDeviceSession session = NetDeviceSession.Open(settings, 1, string.Empty, cancellationToken, OffloadCatalog.DisabledByNegotiation(changes));
        VirtioNetDevice net = session.Net;
        if (OffloadCatalog.Refusal(changes, net.OfferedFeatures, net.NegotiatedFeatures) is { } refusal)
        {
            throw new VirtioException(VirtioErrorReason.RequiredFeatureMissing, refusal);
        }

        foreach (var (offload, on) in changes.Where(c => c.Offload.ChangesAtRunTime))
        {
            net.Control.SetGuestOffloads(on ? net.Control.GuestOffloads | offload.NegotiatedGuestOffloadBits(net.NegotiatedFeatures) : net.Control.GuestOffloads & ~offload.GuestOffloadBits);
        }

        IReadOnlyList<OffloadState> states = OffloadCatalog.States(net.OfferedFeatures, net.NegotiatedFeatures, net.Control.GuestOffloads);
        if (settings.Json)
        {
            Console.Out.WriteLine(OffloadListing.ToJson(states).ToJsonString(Json.Options));
            return 0;
        }

        Console.Out.Write(OffloadListing.ToText(states));
        return 0;
    }
}
