using System.CommandLine;
using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using VirtioNet.Net.MultiQueue;
using VirtioNet.Net.Offloads;
using VirtioNet.Service;

namespace VirtioNet.Cli.Commands;

/// <summary>
/// <c>vnet rss</c>: the RSS indirection table, key and hash types, like <c>ethtool -x</c>; <c>--equal N</c>,
/// <c>--key</c> and <c>--hash-types</c> set them, like <c>ethtool -X</c>. The private machine's device gets <c>rss=on,hash=on</c>; with <c>--attach NAME</c> the running instance's.
/// </summary>
internal static class RssCommand
{
    private static readonly Option<int?> Equal = new("--equal")
    {
        Description = "Spread the indirection table evenly over the first N receive queues (ethtool -X equal N).",
    };

    private static readonly Option<int[]> Weight = new("--weight")
    {
        Description = "Spread the indirection table over the receive queues in these proportions, one weight per queue from the first (ethtool -X weight W0 W1 ...); 0 leaves a queue out.",
        AllowMultipleArgumentsPerToken = true,
    };

    private static readonly Option<string?> Key = new("--key")
    {
        Description = "The Toeplitz key, hex bytes such as 6d:5a:56:da:... (at most the device's rss_max_key_size). Default Microsoft's verification key.",
    };

    private static readonly Option<string?> HashTypes = new("--hash-types")
    {
        Description = "Comma-separated hash types: ipv4, tcp4, udp4, ipv6, tcp6, udp6, ip-ex, tcp-ex, udp-ex. Default the first six.",
    };

    private static readonly Option<int> TableLength = new("--table-length")
    {
        Description = "Indirection table entries, a power of two up to the device's maximum. Default 128.",
        DefaultValueFactory = _ => 128,
    };

    private static readonly Dictionary<string, RssHashTypes> TypeNames = new(StringComparer.Ordinal)
    {
        ["ipv4"] = RssHashTypes.Ipv4,
        ["tcp4"] = RssHashTypes.TcpIpv4,
        ["udp4"] = RssHashTypes.UdpIpv4,
        ["ipv6"] = RssHashTypes.Ipv6,
        ["tcp6"] = RssHashTypes.TcpIpv6,
        ["udp6"] = RssHashTypes.UdpIpv6,
        ["ip-ex"] = RssHashTypes.IpEx,
        ["tcp-ex"] = RssHashTypes.TcpEx,
        ["udp-ex"] = RssHashTypes.UdpEx,
    };

    public static Command Create() =>
        DeviceVerb.Create(
            "rss",
            "Show (and with --equal/--key/--hash-types set) RSS: indirection table, key and hash types, as ethtool -x/-X does.",
            Execute,
            withQueues: true,
            Equal,
            Weight,
            Key,
            HashTypes,
            TableLength);

    private static int Execute(MachineSettings settings, ParseResult result, CancellationToken cancellationToken)
    {
        int? equal = result.GetValue(Equal);
        int[]? weights = result.GetValue(Weight) is { Length: > 0 } w ? w : null;
        if (weights is not null && equal is not null)
        {
            throw new CliException("--equal and --weight both say how to fill the indirection table; give one.");
        }

        if (weights is not null && (weights.Any(v => v < 0) || weights.All(v => v == 0)))
        {
            throw new CliException($"--weight takes whole numbers of at least 0, not all 0; got {string.Join(' ', weights)}.");
        }
        byte[] key = result.GetValue(Key) is { } keyText ? OnOff.ParseHex(keyText, "--key") : ToeplitzHash.DefaultKey.ToArray();
        if (key.Length > ToeplitzHash.MaxKeyLength)
        {
            throw new CliException($"--key has {key.Length} bytes; an RSS key has at most {ToeplitzHash.MaxKeyLength}.");
        }

        RssHashTypes types = new RssConfiguration().HashTypes;
        if (result.GetValue(HashTypes) is { } typeText)
        {
            types = RssHashTypes.None;
            foreach (string name in typeText.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            {
                types |= TypeNames.TryGetValue(name, out RssHashTypes t)
                    ? t
                    : throw new CliException($"--hash-types: '{name}' is not a hash type (use {string.Join(", ", TypeNames.Keys)}).");
            }
        }

        int tableLength = result.GetValue(TableLength);
        if (tableLength < 1 || tableLength > 0x8000 || (tableLength & (tableLength - 1)) != 0)
        {
            throw new CliException($"--table-length must be a power of two from 1 to 32768; got {tableLength}.");
        }

        bool change = equal is not null || weights is not null || result.GetValue(Key) is not null || result.GetValue(HashTypes) is not null;
        (JsonObject report, string device) = DeviceVerb.Report(
            result,
            "rss",
            instance =>
            {
                JsonObject request = new();
                if (change)
                {
                    // Without --equal or --weight, over the pairs active now, as the one-shot mode spreads over those set up.
                    request = new JsonObject { ["tableLength"] = tableLength, ["hashTypeBits"] = (uint)types, ["key"] = Convert.ToHexStringLower(key) };
                    if (weights is not null)
                    {
                        request["weights"] = new JsonArray([.. weights.Select(v => (JsonNode)v)]);
                    }
                    else
                    {
                        request["equal"] = equal ?? Attach.Ask(instance, "channels", new JsonObject())["combined"]!.GetValue<int>();
                    }
                }

                return request;
            },
            () =>
            {
                int queues = OneShotDevice.ReadQueues(result);
                if (equal is { } e && (e < 1 || e > queues))
                {
                    throw new CliException($"--equal must be 1 to {queues} (the pairs set up with --queues); got {e}.");
                }

                using OneShotDevice session = OneShotDevice.Open(settings, queues, "rss=on,hash=on", cancellationToken);

                // The device's limits are checked there (ArgumentException → one line, exit 2).
                return new DeviceLink(session.Net).Rss(change && weights is null ? equal ?? queues : null, weights, tableLength, types, key);
            });

        // The hash types by name.
        report["supportedHashTypes"] = new JsonArray([.. Names((RssHashTypes)report["supportedHashTypeBits"]!.GetValue<uint>()).Select(n => (JsonNode)n)]);
        report["hashTypes"] = new JsonArray([.. Names((RssHashTypes)report["hashTypeBits"]!.GetValue<uint>()).Select(n => (JsonNode)n)]);
        report.Remove("supportedHashTypeBits");
        report.Remove("hashTypeBits");
        if (settings.Json)
        {
            Console.Out.WriteLine(report.ToJsonString(Json.Options));
            return 0;
        }

        Console.Out.Write(ToText(report, device));
        return 0;
    }

    /// <summary>ethtool -x's lines from the report.</summary>
    public static string ToText(JsonObject report, string device)
    {
        var text = new StringBuilder();
        string Types(string field) => string.Join(' ', report[field]!.AsArray().Select(n => n!.GetValue<string>()));
        if (!report["enabled"]!.GetValue<bool>())
        {
            text.Append(CultureInfo.InvariantCulture, $"RSS is off for {device} ({report["rxQueues"]} RX ring(s)); the device steers by its own choice.\n");
            text.Append(CultureInfo.InvariantCulture, $"Device limits: key {report["maxKeySize"]} bytes, table {report["maxIndirectionTableLength"]} entries, hash types {Types("supportedHashTypes")}\n");
            return text.ToString();
        }

        text.Append(CultureInfo.InvariantCulture, $"RX flow hash indirection table for {device} with {report["rxQueues"]} RX ring(s):\n");
        int[] table = [.. report["indirectionTable"]!.AsArray().Select(n => n!.GetValue<int>())];
        for (int row = 0; row < table.Length; row += 8)
        {
            text.Append(string.Create(CultureInfo.InvariantCulture, $"{row,5}: ") + string.Join(' ', table.Skip(row).Take(8).Select(q => q.ToString(CultureInfo.InvariantCulture).PadLeft(5)))).Append('\n');
        }

        text.Append("RSS hash key:\n").Append(report["key"]!.GetValue<string>()).Append('\n');
        text.Append("RSS hash function:\n    toeplitz: on\n");
        text.Append("Hash types: ").Append(Types("hashTypes")).Append('\n');
        return text.ToString();
    }

    private static IEnumerable<string> Names(RssHashTypes types) => TypeNames.Where(kv => (types & kv.Value) != 0).Select(kv => kv.Key);

}
