using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace VirtioNet.Cli;

/// <summary>JSON output conventions shared by the commands.</summary>
internal static class Json
{
    public static readonly JsonSerializerOptions Options = new() { WriteIndented = true };

    /// <summary>"52:54:00:12:34:56", the form ip and ethtool print.</summary>
    public static string FormatMac(ReadOnlySpan<byte> mac) =>
        string.Join(':', mac.ToArray().Select(b => b.ToString("x2", CultureInfo.InvariantCulture)));

    /// <summary>A listing on stdout: with <c>--json</c> <paramref name="items"/> as one JSON array, else <paramref name="header"/> and a <paramref name="line"/> per item.</summary>
    public static void WriteListing(JsonArray items, bool json, string header, Func<JsonObject, string> line)
    {
        if (json)
        {
            Console.WriteLine(items.ToJsonString(Options));
            return;
        }

        Console.WriteLine(header);
        foreach (JsonNode? node in items)
        {
            Console.WriteLine(line(node!.AsObject()));
        }
    }
}
