using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace VirtioNet.Service;

/// <summary>
/// The TAP of <c>vnet up</c> outlives its process when the process dies (TUNSETPERSIST), so the kernel keeps the
/// interface's addresses, routes and sockets across a restart. This type tells what holds an interface name (nothing;
/// a TAP left by a dead instance, which a new instance adopts; something else, which is refused) and keeps the record
/// (<c>NAME.tap</c> beside the control socket) that <c>vnet down NAME</c> finds a kept TAP by.
/// </summary>
internal static class PersistentTap
{
    /// <summary>What holds an interface name.</summary>
    public enum Holder
    {
        /// <summary>No interface has the name.</summary>
        Nobody,

        /// <summary>A persistent multi-queue TAP with a vnet header and no queue attached: left by an instance that died, or kept.</summary>
        Orphan,

        /// <summary>A TAP with queues attached (a running instance), or an interface that is not such a TAP.</summary>
        Other,
    }

    /// <summary>
    /// Finds out what holds <paramref name="name"/> in <paramref name="netns"/>, from the kernel's own description of the
    /// link (<c>ip -details -json link show</c>: kind tun, type tap, vnet_hdr, multi_queue, persist, numqueues).
    /// </summary>
    public static Holder Find(string name, string? netns, out string description)
    {
        description = string.Empty;
        if (NamespaceThread.Run(netns, () => Interop.Tun.NameToIndex(name)) == 0)
        {
            return Holder.Nobody;
        }

        List<string> arguments = netns is null ? [] : ["-n", netns];
        arguments.AddRange(["-details", "-json", "link", "show", "dev", name]);
        (int code, string output, string error) = Ip(arguments);
        if (code != 0)
        {
            description = error.Trim();
            return Holder.Other;
        }

        try
        {
            using JsonDocument document = JsonDocument.Parse(output);
            JsonElement link = document.RootElement[0];
            if (!link.TryGetProperty("linkinfo", out JsonElement info)
                || !info.TryGetProperty("info_kind", out JsonElement kind) || kind.GetString() != "tun"
                || !info.TryGetProperty("info_data", out JsonElement data))
            {
                description = "not a TUN/TAP interface";
                return Holder.Other;
            }

            bool tap = data.TryGetProperty("type", out JsonElement type) && type.GetString() == "tap";
            bool shaped = tap && Flag(data, "vnet_hdr") && Flag(data, "multi_queue") && !Flag(data, "pi");
            bool persistent = Flag(data, "persist");
            int queues = data.TryGetProperty("numqueues", out JsonElement count) ? count.GetInt32() : -1;
            description = $"{(tap ? "TAP" : "TUN")}{(shaped ? "" : " of another shape")}, {(persistent ? "persistent" : "not persistent")}, {queues} queue(s) attached";
            return shaped && persistent && queues == 0 ? Holder.Orphan : Holder.Other;
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException or IndexOutOfRangeException or KeyNotFoundException or FormatException)
        {
            description = $"unreadable ip output: {e.Message}";
            return Holder.Other;
        }
    }

    /// <summary>Writes the record of instance <paramref name="instance"/>'s TAP: its name and namespace.</summary>
    public static void WriteRecord(string directory, string instance, string tap, string? netns)
    {
        var record = new JsonObject { ["tap"] = tap, ["namespace"] = netns, ["pid"] = Environment.ProcessId };
        File.WriteAllText(RecordPath(directory, instance), record.ToJsonString());
    }

    /// <summary>The TAP name and namespace instance <paramref name="instance"/> recorded, or null when it left none.</summary>
    public static (string Tap, string? Namespace)? ReadRecord(string directory, string instance)
    {
        try
        {
            JsonNode? record = JsonNode.Parse(File.ReadAllText(RecordPath(directory, instance)));
            string? tap = record?["tap"]?.GetValue<string>();
            return tap is null ? null : (tap, record?["namespace"]?.GetValue<string>());
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or JsonException or InvalidOperationException)
        {
            return null;
        }
    }

    /// <summary>Removes instance <paramref name="instance"/>'s record.</summary>
    public static void DeleteRecord(string directory, string instance)
    {
        try
        {
            File.Delete(RecordPath(directory, instance));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Nothing better to do at teardown; a stale record is checked against the kernel before it is trusted.
        }
    }

    /// <summary>Removes an orphaned TAP: a queue attached, persistence cleared, the queue closed (the kernel deletes the interface with it).</summary>
    public static void Remove(string tap, string? netns, int headerLength)
    {
        using TapInterface adopted = TapInterface.Create(tap, netns, 1, headerLength, adopt: true);
        adopted.SetPersistent(false);
    }

    private static string RecordPath(string directory, string instance) => Path.Combine(directory, instance + ".tap");

    private static bool Flag(JsonElement data, string name) => data.TryGetProperty(name, out JsonElement value) && value.ValueKind == JsonValueKind.True;

    private static (int Code, string Output, string Error) Ip(List<string> arguments)
    {
        var start = new ProcessStartInfo("ip") { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        foreach (string argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        try
        {
            using Process process = Process.Start(start) ?? throw new ServiceException("ip (iproute2) could not be started");
            Task<string> error = process.StandardError.ReadToEndAsync();
            string output = process.StandardOutput.ReadToEnd();
            process.WaitForExit();
            return (process.ExitCode, output, error.Result);
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new ServiceException($"ip (iproute2) could not be started: {e.Message}", e);
        }
    }
}
