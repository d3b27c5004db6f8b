using System.Net.NetworkInformation;
using System.Text;
using System.Text.Json.Nodes;
using VirtioNet.Net;
using VirtioNet.Net.Filtering;
using VirtioNet.Net.MultiQueue;
using VirtioNet.Net.Offloads;

namespace VirtioNet.Service;

/// <summary>
/// The control socket's ethtool-style commands (docs/CONTROL.md): each reads its request's fields, checks them, and asks
/// <see cref="DeviceLink"/> for the same report the one-shot verbs print. A field of the wrong type or out of range is
/// an error reply naming it; a change the device refuses is the device's sentence. Commands are run one at a time per
/// process, so the reply to a change shows that change and no other client's half-done one.
/// </summary>
internal static class LiveCommands
{
    // One management command at a time (the control plane serializes each call; this keeps a command's calls together).
    private static readonly Lock Serial = new();

    /// <summary><c>stats</c>: the device's report with the service's per-pair counters (<paramref name="service"/>'s <c>pairs</c>) beside it.</summary>
    public static JsonObject Stats(DeviceLink link, JsonObject service)
    {
        JsonObject report = link.StatsReport();
        foreach ((string key, JsonNode? value) in service.ToArray())
        {
            service.Remove(key);
            report[key] = value;
        }

        return report;
    }

    /// <summary><c>offloads</c>: with <c>guestOffloads</c> (a number), sets the guest offloads first.</summary>
    public static JsonObject Offloads(DeviceLink link, JsonObject request)
    {
        lock (Serial)
        {
            return link.Offloads(request["guestOffloads"] is null ? null : Number<ulong>(request, "guestOffloads"));
        }
    }

    /// <summary><c>channels</c>: with <c>combined</c>, activates that many queue pairs first.</summary>
    public static JsonObject Channels(DeviceLink link, JsonObject request)
    {
        lock (Serial)
        {
            return link.Channels(request["combined"] is null ? null : Number<int>(request, "combined"));
        }
    }

    /// <summary>
    /// <c>rss</c>: with <c>equal</c> (a number of queues) or <c>weights</c> (one per queue), fills the table
    /// (<c>tableLength</c>, <c>hashTypeBits</c>, <c>key</c> in hex) first.
    /// </summary>
    public static JsonObject Rss(DeviceLink link, JsonObject request)
    {
        int? equal = request["equal"] is null ? null : Number<int>(request, "equal");
        int[]? weights = request["weights"] is null ? null : [.. List(request, "weights").Select(n => n is JsonValue v && v.TryGetValue(out int w)
            ? w
            : throw new ServiceException($"weights: a weight is a whole number; got {n?.ToJsonString() ?? "null"}"))];
        if (equal is not null && weights is not null)
        {
            throw new ServiceException("equal and weights both fill the indirection table; give one");
        }

        int tableLength = request["tableLength"] is null ? 128 : Number<int>(request, "tableLength");
        if (tableLength < 1 || tableLength > 0x8000 || (tableLength & (tableLength - 1)) != 0)
        {
            throw new ServiceException($"tableLength must be a power of two from 1 to 32768; got {tableLength}");
        }

        RssHashTypes types = request["hashTypeBits"] is null ? new RssConfiguration().HashTypes : (RssHashTypes)Number<uint>(request, "hashTypeBits");
        byte[] key = request["key"] is null ? ToeplitzHash.DefaultKey.ToArray() : Hex(Text(request, "key"), "key");
        if (key.Length > ToeplitzHash.MaxKeyLength)
        {
            throw new ServiceException($"key has {key.Length} bytes; an RSS key has at most {ToeplitzHash.MaxKeyLength}");
        }

        lock (Serial)
        {
            return link.Rss(equal, weights, tableLength, types, key);
        }
    }

    /// <summary><c>filter</c>: <c>modes</c> (an object of mode names and booleans), <c>unicast</c> and <c>multicast</c> (MAC addresses).</summary>
    public static JsonObject Filter(DeviceLink link, JsonObject request)
    {
        var modes = new List<(ReceiveFilterFlags, bool)>();
        if (request["modes"] is { } node)
        {
            if (node is not JsonObject given)
            {
                throw new ServiceException("modes must be an object of mode names and true/false");
            }

            foreach ((string name, JsonNode? value) in given)
            {
                (string Name, ReceiveFilterFlags Flag) mode = DeviceLink.ReceiveModes.FirstOrDefault(m => m.Name == name);
                if (mode.Name is null)
                {
                    throw new ServiceException($"modes: '{name}' is not a receive mode (use {string.Join(", ", DeviceLink.ReceiveModes.Select(m => m.Name))})");
                }

                modes.Add((mode.Flag, value is JsonValue v && v.TryGetValue(out bool on) ? on : throw new ServiceException($"modes.{name} must be true or false")));
            }
        }

        IReadOnlyList<PhysicalAddress>? unicast = request["unicast"] is null ? null : [.. List(request, "unicast").Select(t => Mac(t, "unicast"))];
        IReadOnlyList<PhysicalAddress>? multicast = request["multicast"] is null ? null : [.. List(request, "multicast").Select(t => Mac(t, "multicast"))];
        lock (Serial)
        {
            return link.Filter(modes, unicast, multicast);
        }
    }

    /// <summary><c>vlan</c>: <c>add</c> and <c>del</c>, arrays of VLAN ids (0-4095).</summary>
    public static JsonObject Vlan(DeviceLink link, JsonObject request)
    {
        int[] add = Ids(request, "add");
        int[] remove = Ids(request, "del");
        lock (Serial)
        {
            return link.Vlan(add, remove);
        }
    }

    /// <summary>
    /// <c>mtu</c>: the interface's MTU beside the device's; with <c>mtu</c>, first sets the interface's MTU (RTM_NEWLINK, as
    /// <c>ip link set mtu</c> does), within what the device takes: 68 to its MTU (<see cref="DeviceLink.MaxMtu"/>). The link watcher carries it on as it
    /// does any change of the interface.
    /// </summary>
    public static JsonObject Mtu(DeviceLink link, TapInterface tap, JsonObject request)
    {
        lock (Serial)
        {
            if (request["mtu"] is not null)
            {
                int mtu = Number<int>(request, "mtu");
                if (mtu < EthernetFrame.MinimumMtu || mtu > link.MaxMtu)
                {
                    throw new ServiceException($"mtu must be {EthernetFrame.MinimumMtu} to {link.MaxMtu} ({(link.MtuFromDevice ? "the device's MTU" : "what the driver's buffers were sized for: vnet up --max-mtu")}); got {mtu}");
                }

                using RouteNetlink netlink = RouteNetlink.Open(tap.Namespace);
                netlink.SetLink(tap.Index, default, mtu, up: true);
            }

            return link.MtuReport(InterfaceMtu(tap));
        }
    }

    /// <summary><c>dump</c>: registers, queue states and counters.</summary>
    public static JsonObject Dump(DeviceLink link)
    {
        lock (Serial)
        {
            return link.Dump();
        }
    }

    // SIOCGIFMTU on a socket of the TAP's namespace: the MTU the kernel uses now, whoever set it.
    private static unsafe int InterfaceMtu(TapInterface tap) => NamespaceThread.Run(tap.Namespace, () =>
    {
        int fd = Interop.Netlink.Socket(Interop.Sockios.AF_INET, Interop.Sockios.SOCK_DGRAM | Interop.Netlink.SOCK_CLOEXEC, 0);
        if (fd < 0)
        {
            throw Interop.Failure("opening a socket to read the MTU", Interop.LastErrno);
        }

        try
        {
            Interop.Sockios.MtuRequest request = default;
            byte[] name = Encoding.ASCII.GetBytes(tap.Name);
            for (int i = 0; i < name.Length && i < Interop.Tun.IFNAMSIZ - 1; i++)
            {
                request.Name[i] = name[i];
            }

            // SAFETY: SIOCGIFMTU reads the name from and writes ifr_mtu into the 40-byte struct ifreq on this stack frame.
            if (Interop.Tun.IoctlPointer(fd, Interop.Sockios.SIOCGIFMTU, &request) != 0)
            {
                throw Interop.Failure($"reading {tap.Name}'s MTU", Interop.LastErrno);
            }

            return request.Mtu;
        }
        finally
        {
            _ = Interop.Unistd.Close(fd);
        }
    });

    private static T Number<T>(JsonObject request, string field)
        where T : struct
    {
        try
        {
            return request[field] is JsonValue value && value.TryGetValue(out T number)
                ? number
                : throw new ServiceException($"{field} must be a whole number in range");
        }
        catch (FormatException)
        {
            throw new ServiceException($"{field} must be a whole number in range");
        }
    }

    private static string Text(JsonObject request, string field) =>
        request[field] is JsonValue value && value.TryGetValue(out string? text) ? text : throw new ServiceException($"{field} must be a string");

    private static IEnumerable<JsonNode?> List(JsonObject request, string field) =>
        request[field] as JsonArray ?? throw new ServiceException($"{field} must be an array");

    private static int[] Ids(JsonObject request, string field)
    {
        if (request[field] is null)
        {
            return [];
        }

        return [.. List(request, field).Select(n => n is JsonValue v && v.TryGetValue(out int id) && id is >= 0 and <= 4095
            ? id
            : throw new ServiceException($"{field}: a VLAN id is a whole number from 0 to 4095; got {n?.ToJsonString() ?? "null"}"))];
    }

    private static PhysicalAddress Mac(JsonNode? node, string field)
    {
        string text = node is JsonValue v && v.TryGetValue(out string? s) ? s : string.Empty;
        string[] parts = text.Split(':', '-');
        if (parts.Length != 6 || parts.Any(p => p.Length != 2 || !p.All(Uri.IsHexDigit)))
        {
            throw new ServiceException($"{field}: '{text}' is not a MAC address such as 52:54:00:12:34:56");
        }

        return new PhysicalAddress(Convert.FromHexString(string.Concat(parts)));
    }

    private static byte[] Hex(string text, string field)
    {
        string digits = text.Replace(":", string.Empty, StringComparison.Ordinal);
        if (digits.Length == 0 || digits.Length % 2 != 0 || !digits.All(Uri.IsHexDigit))
        {
            throw new ServiceException($"{field} must be hex bytes such as 6d:5a:56:da; got '{text}'");
        }

        return Convert.FromHexString(digits);
    }
}
