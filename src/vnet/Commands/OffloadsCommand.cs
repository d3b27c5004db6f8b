using System.CommandLine;
using System.Text.Json.Nodes;
using VirtioNet.Cli.Offloads;
using VirtioNet.Core;
using VirtioNet.Service;

namespace VirtioNet.Cli.Commands;

/// <summary>
/// <c>vnet offloads</c>: the offloads in ethtool's names, like <c>ethtool -k</c>, over all 128 feature bits (the UDP
/// tunnel segmentation offloads are bits 65 to 68); <c>--set NAME=on|off</c> changes them, like <c>ethtool -K</c>.
/// Receive offloads change at run time (VIRTIO_NET_CTRL_GUEST_OFFLOADS_SET); the others are features, so turning one
/// off leaves it out of negotiation. An offload the device does not offer is listed "off [not offered]", and a
/// <c>--set</c> of it is refused whole (one error line, exit code 1, nothing changed). With <c>--attach NAME</c> on the
/// running instance, where only the run-time receive offloads can change (a feature's state was fixed by negotiation).
/// </summary>
internal static class OffloadsCommand
{
    private static readonly Option<string[]> Set = new("--set", "-K")
    {
        Description = "NAME=on|off, repeatable, e.g. --set rx-checksumming=off.",
        AllowMultipleArgumentsPerToken = true,
    };

    public static Command Create() =>
        DeviceVerb.Create(
            "offloads",
            "Show (and with --set change) offloads, as ethtool -k/-K does.",
            Execute,
            withQueues: false,
            Set);

    private static int Execute(MachineSettings settings, ParseResult result, CancellationToken cancellationToken)
    {
        IReadOnlyList<(Offload Offload, bool On)> changes = OffloadCatalog.ParseChanges(result.GetValue(Set) ?? []);
        JsonObject facts;
        string device = "net0";
        if (Attach.Name(result) is { } instance)
        {
            device = instance;
            facts = Attach.Ask(instance, "offloads", new JsonObject());
            (VirtioFeatureSet offered, VirtioFeatureSet negotiated, ulong guest) = Read(facts);
            CheckChanges(changes, offered, negotiated);

            // A running device negotiated once; only the receive offloads CTRL_GUEST_OFFLOADS changes can move now.
            var fixedChanges = changes.Where(c => !c.Offload.ChangesAtRunTime && negotiated.ContainsAny(c.Offload.Features) != c.On).ToList();
            if (fixedChanges.Count > 0)
            {
                throw new VirtioException(VirtioErrorReason.RequiredFeatureMissing,
                    $"--set {string.Join(' ', fixedChanges.Select(c => $"{c.Offload.Name}={(c.On ? "on" : "off")}"))}: a feature, fixed when {instance} negotiated; " +
                    "set it in [device] offloads of the configuration file (vnet up --config) and start the instance again.");
            }

            if (changes.Count > 0)
            {
                facts = Attach.Ask(instance, "offloads", new JsonObject { ["guestOffloads"] = NewGuestOffloads(changes, negotiated, guest) });
            }
        }
        else
        {
            // Offloads only negotiation changes, turned off, stay out of it; the rest is checked against the device below.
            using OneShotDevice session = OneShotDevice.Open(settings, 1, string.Empty, cancellationToken, OffloadCatalog.DisabledByNegotiation(changes));
            var link = new DeviceLink(session.Net);
            (VirtioFeatureSet offered, VirtioFeatureSet negotiated, ulong guest) = Read(link.Offloads(null));
            CheckChanges(changes, offered, negotiated);
            facts = link.Offloads(changes.Count > 0 ? NewGuestOffloads(changes, negotiated, guest) : null);
        }

        (VirtioFeatureSet offeredNow, VirtioFeatureSet negotiatedNow, ulong guestNow) = Read(facts);
        IReadOnlyList<OffloadState> states = OffloadCatalog.States(offeredNow, negotiatedNow, guestNow);
        if (settings.Json)
        {
            Console.Out.WriteLine(OffloadListing.ToJson(states).ToJsonString(Json.Options));
            return 0;
        }

        Console.Out.Write(OffloadListing.ToText(states, device));
        return 0;
    }

    private static void CheckChanges(IReadOnlyList<(Offload Offload, bool On)> changes, VirtioFeatureSet offered, VirtioFeatureSet negotiated)
    {
        if (OffloadCatalog.Refusal(changes, offered, negotiated) is { } refusal)
        {
            throw new VirtioException(VirtioErrorReason.RequiredFeatureMissing, refusal);
        }
    }

    // The CTRL_GUEST_OFFLOADS bitmap after the run-time changes.
    private static ulong NewGuestOffloads(IReadOnlyList<(Offload Offload, bool On)> changes, VirtioFeatureSet negotiated, ulong guest) =>
        changes.Where(c => c.Offload.ChangesAtRunTime).Aggregate(guest, (bits, c) => c.On ? bits | c.Offload.NegotiatedGuestOffloadBits(negotiated) : bits & ~c.Offload.GuestOffloadBits);

    private static (VirtioFeatureSet Offered, VirtioFeatureSet Negotiated, ulong GuestOffloads) Read(JsonObject facts) =>
        (new VirtioFeatureSet(facts["offeredLow"]!.GetValue<ulong>(), facts["offeredHigh"]!.GetValue<ulong>()),
         new VirtioFeatureSet(facts["negotiatedLow"]!.GetValue<ulong>(), facts["negotiatedHigh"]!.GetValue<ulong>()),
         facts["guestOffloads"]!.GetValue<ulong>());
}
