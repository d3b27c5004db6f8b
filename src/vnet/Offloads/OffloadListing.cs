using System.Text;
using System.Text.Json.Nodes;

namespace VirtioNet.Cli.Offloads;

/// <summary><c>vnet offloads</c>' output: ethtool -k's lines with the feature bits behind each offload, or JSON.</summary>
internal static class OffloadListing
{
    /// <summary>
    /// One object per offload, by name: <c>on</c>, <c>fixed</c>, <c>offered</c>, and the spec names and numbers of the
    /// feature bits behind it (<c>features</c>, <c>bits</c>: numbers above 63 are feature words 2 and 3).
    /// </summary>
    public static JsonObject ToJson(IReadOnlyList<OffloadState> states)
    {
        var offloads = new JsonObject();
        foreach (OffloadState s in states)
        {
            offloads[s.Offload.Name] = new JsonObject
            {
                ["on"] = s.On,
                ["fixed"] = s.Fixed,
                ["offered"] = s.Offered,
                ["features"] = FeatureListing.ToJson(s.Offload.Features),
                ["bits"] = new JsonArray([.. FeatureListing.Bits(s.Offload.Features).Select(b => (JsonNode)b)]),
            };
        }

        return new JsonObject { ["offloads"] = offloads };
    }

    /// <summary>
    /// ethtool -k's lines ("name: state", state "on", "off", "off [fixed]", "off [not offered]"), in aligned columns
    /// with the feature bits behind each offload beside it, one per line. Plain text rather than a drawn table: it
    /// does not wrap in an 80-column terminal or a log, and "name: state" stays greppable as ethtool's is.
    /// </summary>
    public static string ToText(IReadOnlyList<OffloadState> states, string device = "net0")
    {
        int nameWidth = states.Max(s => s.Offload.Name.Length) + 2;
        int stateWidth = states.Max(s => s.Text.Length) + 2;
        var text = new StringBuilder();
        text.Append("Features for ").Append(device).Append(":\n");
        foreach (OffloadState s in states)
        {
            IReadOnlyList<string> features = FeatureListing.NamesWithBits(s.Offload.Features);
            text.Append((s.Offload.Name + ":").PadRight(nameWidth)).Append(s.Text.PadRight(stateWidth)).Append(features[0]).Append('\n');
            foreach (string feature in features.Skip(1))
            {
                text.Append(' ', nameWidth + stateWidth).Append(feature).Append('\n');
            }
        }

        return text.ToString();
    }
}
