using System.CommandLine;
using System.Globalization;
using System.Text.Json.Nodes;
using VirtioNet.Net.MultiQueue;
using VirtioNet.Net.Offloads;

namespace VirtioNet.Cli.Commands;

/// <summary>
/// <c>vnet rss</c>: the RSS indirection table, key and hash types, like <c>ethtool -x</c>; <c>--equal N</c>,
/// <c>--key</c> and <c>--hash-types</c> set them, like <c>ethtool -X</c>. The device gets <c>rss=on,hash=on</c>.
/// </summary>
internal static class RssCommand
{
    private static readonly Option<int?> Equal = new("--equal")
    {
        Description = "Spread the indirection table evenly over the first N receive queues (ethtool -X equal N).",
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

    public static Command Create()
    {
        var command = new Command("rss", "Show (and with --equal/--key/--hash-types set) RSS: indirection table, key and hash types, as ethtool -x/-X does.");
        command.Options.Add(Equal);
        command.Options.Add(Key);
        command.Options.Add(HashTypes);
        command.Options.Add(TableLength);
        command.Options.Add(NetDeviceSession.Queues);
        CommonOptions.AddTo(command, includeOperationMode: false);
        CommandRunner.SetAction(command, Execute);
        return command;
    }

    private static int Execute(MachineSettings settings, ParseResult result, CancellationToken cancellationToken)
    {
        int queues = NetDeviceSession.ReadQueues(result);
        int? equal = result.GetValue(Equal);
        if (equal is { } e && (e < 1 || e > queues))
        {
            throw new CliException($"--equal must be 1 to {queues} (the pairs set up with --queues); got {e}.");
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

        bool change = equal is not null || result.GetValue(Key) is not null || result.GetValue(HashTypes) is not null;
        using NetDeviceSession session = NetDeviceSession.Open(settings, queues, "rss=on,hash=on", cancellationToken);
        if (change)
        {
            // The device's limits are checked here (ArgumentException → one line, exit 2).
            session.Net.Control.ConfigureRss(RssConfiguration.Spread(equal ?? queues, tableLength, types, key));
        }

        RssConfiguration? rss = session.Net.Control.Rss;
        if (settings.Json)
        {
            Console.Out.WriteLine(new JsonObject
            {
                ["rxQueues"] = session.Net.Control.ActiveQueuePairs,
                ["enabled"] = rss is not null,
                ["maxKeySize"] = session.Net.Config.RssMaxKeySize,
                ["maxIndirectionTableLength"] = session.Net.Config.RssMaxIndirectionTableLength,
                ["supportedHashTypes"] = new JsonArray([.. Names((RssHashTypes)session.Net.Config.SupportedHashTypes).Select(n => (JsonNode)n)]),
                ["hashTypes"] = new JsonArray([.. Names(rss?.HashTypes ?? RssHashTypes.None).Select(n => (JsonNode)n)]),
                ["indirectionTable"] = new JsonArray([.. (rss?.IndirectionTable.ToArray() ?? []).Select(q => (JsonNode)(int)q)]),
                ["key"] = rss is null ? null : Hex(rss.Key.Span),
                ["hashFunction"] = "toeplitz",
            }.ToJsonString(Json.Options));
            return 0;
        }

        if (rss is null)
        {
            Console.Out.WriteLine($"RSS is off for net0 ({session.Net.Control.ActiveQueuePairs} RX ring(s)); the device steers by its own choice.");
            Console.Out.WriteLine($"Device limits: key {session.Net.Config.RssMaxKeySize} bytes, table {session.Net.Config.RssMaxIndirectionTableLength} entries, hash types {string.Join(' ', Names((RssHashTypes)session.Net.Config.SupportedHashTypes))}");
            return 0;
        }

        Console.Out.WriteLine($"RX flow hash indirection table for net0 with {session.Net.Control.ActiveQueuePairs} RX ring(s):");
        ushort[] table = rss.IndirectionTable.ToArray();
        for (int row = 0; row < table.Length; row += 8)
        {
            Console.Out.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{row,5}: ") + string.Join(' ', table.Skip(row).Take(8).Select(q => q.ToString(CultureInfo.InvariantCulture).PadLeft(5))));
        }

        Console.Out.WriteLine("RSS hash key:");
        Console.Out.WriteLine(Hex(rss.Key.Span));
        Console.Out.WriteLine("RSS hash function:");
        Console.Out.WriteLine("    toeplitz: on");
        Console.Out.WriteLine($"Hash types: {string.Join(' ', Names(rss.HashTypes))}");
        return 0;
    }

    private static IEnumerable<string> Names(RssHashTypes types) => TypeNames.Where(kv => (types & kv.Value) != 0).Select(kv => kv.Key);

    private static string Hex(ReadOnlySpan<byte> bytes) => string.Join(':', bytes.ToArray().Select(b => b.ToString("x2", CultureInfo.InvariantCulture)));
}
