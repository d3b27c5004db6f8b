using Tomlyn.Parsing;
using Tomlyn.Syntax;

namespace VirtioNet.Cli.Config;

/// <summary>
/// Reads <c>virtio-net.toml</c> (Tomlyn's syntax tree, so every fault has its line and column): TOML syntax errors,
/// unknown sections and keys, values of the wrong type or out of range, and keys that contradict each other are all
/// collected, each as one <see cref="ConfigError"/>. Nothing is started on a file with any error.
/// </summary>
internal static class ConfigReader
{
    // The keys that describe QEMU's machine and device, which a vhost-user backend does not have.
    private static readonly string[] QemuOnlyKeys = ["transport", "pci_interrupts", "mac", "mtu", "machine", "qemu", "device_properties", "netdev"];

    /// <summary>Reads the file at <paramref name="path"/>; a file that cannot be read is one error at 1:1.</summary>
    public static (VnetConfig Config, IReadOnlyList<ConfigError> Errors) ReadFile(string path)
    {
        string text;
        try
        {
            text = File.ReadAllText(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
        {
            return (new VnetConfig(), [new ConfigError(path, 1, 1, $"cannot read the configuration file: {e.Message}")]);
        }

        return Read(text, path);
    }

    /// <summary>Reads configuration <paramref name="text"/>; <paramref name="file"/> names it in errors.</summary>
    public static (VnetConfig Config, IReadOnlyList<ConfigError> Errors) Read(string text, string file)
    {
        var config = new VnetConfig();
        var errors = new List<ConfigError>();
        DocumentSyntax document = SyntaxParser.Parse(text, file, validate: true);
        foreach (DiagnosticMessage message in document.Diagnostics)
        {
            if (message.Kind == DiagnosticMessageKind.Error)
            {
                errors.Add(At(file, message.Span, $"not TOML: {message.Message}"));
            }
        }

        if (errors.Count > 0)
        {
            return (config, errors);
        }

        // Where each key was given, and which were given other than at their defaults, for the checks across keys.
        var given = new Dictionary<string, SourceSpan>(StringComparer.Ordinal);
        var changed = new HashSet<string>(StringComparer.Ordinal);
        foreach (KeyValueSyntax item in document.KeyValues)
        {
            errors.Add(At(file, item.Span, $"'{KeyText(item.Key)}' is outside any section; keys belong in [{string.Join("], [", ConfigSchema.Sections)}]"));
        }

        foreach (TableSyntaxBase table in document.Tables)
        {
            string section = table.Name is null ? string.Empty : KeyText(table.Name);
            if (table is not TableSyntax || !ConfigSchema.Sections.Contains(section))
            {
                errors.Add(At(file, table.Span, table is TableSyntax
                    ? $"unknown section [{section}] (the sections are [{string.Join("], [", ConfigSchema.Sections)}])"
                    : $"[[{section}]] is an array of tables; the sections are plain tables such as [device]"));
                continue;
            }

            foreach (KeyValueSyntax item in table.Items)
            {
                string name = KeyText(item.Key);
                if (ConfigSchema.Find(section, name) is not { } key)
                {
                    ConfigKey? elsewhere = ConfigSchema.Keys.FirstOrDefault(k => k.Name == name);
                    errors.Add(At(file, item.Span, $"unknown key '{name}' in [{section}]{(elsewhere is null ? "" : $" (it belongs in [{elsewhere.Section}])")}"));
                    continue;
                }

                try
                {
                    key.Apply(new ConfigValue($"[{section}] {name}", item.Value!), config);
                    given[name] = item.Span;
                    if (item.Value!.ToString()?.Trim() != key.Default)
                    {
                        changed.Add(name);
                    }
                }
                catch (ConfigValueException e)
                {
                    errors.Add(At(file, item.Value?.Span ?? item.Span, e.Message));
                }
            }
        }

        CheckAcrossKeys(config, given, changed, file, errors);
        return (config, errors);
    }

    /// <summary>A key's text: bare or quoted, dotted parts joined with dots.</summary>
    public static string KeyText(KeySyntax? key)
    {
        if (key is null)
        {
            return string.Empty;
        }

        static string Part(BareKeyOrStringValueSyntax? part) => part switch
        {
            BareKeySyntax bare => bare.Key?.Text ?? string.Empty,
            StringValueSyntax quoted => quoted.Value ?? string.Empty,
            _ => string.Empty,
        };

        return string.Join('.', new[] { Part(key.Key) }.Concat(key.DotKeys.Select(d => Part(d.Key))));
    }

    // Keys that each make sense alone but not together.
    private static void CheckAcrossKeys(VnetConfig config, Dictionary<string, SourceSpan> given, HashSet<string> changed, string file, List<ConfigError> errors)
    {
        void Refuse(string key, string message) => errors.Add(At(file, given[key], message));

        if (config.Backend == "vhost-user")
        {
            if (config.VhostUserSocket is null)
            {
                Refuse("backend", "[device] backend = \"vhost-user\" needs [device] vhost_user_socket (the backend's unix socket)");
            }

            // What only a QEMU machine has.
            foreach (string key in QemuOnlyKeys.Where(changed.Contains))
            {
                Refuse(key, $"{key} sets up the QEMU machine's device; with backend = \"vhost-user\" the backend's device is used as it is");
            }

            if (config.RingLayout == "packed")
            {
                Refuse("ring_layout", "ring_layout = \"packed\" asks QEMU's device for packed rings; a vhost-user backend offers them or not (leave it \"\", or \"split\" to withhold them)");
            }
        }
        else if (config.VhostUserSocket is not null || config.VhostUserListen == true)
        {
            Refuse(given.ContainsKey("vhost_user_socket") ? "vhost_user_socket" : "vhost_user_listen", "vhost_user_socket and vhost_user_listen need [device] backend = \"vhost-user\"");
        }

        if (config.Machine == "x86_64-q35" && config.Transport is not null and not ("pci" or "pci-legacy"))
        {
            Refuse("transport", $"[platform] machine = \"x86_64-q35\" has no virtio-mmio slots: transport must be \"pci\" or \"pci-legacy\" (got \"{config.Transport}\")");
        }

        if (config.QueuePairs > 1 && (config.Netdev ?? "user") == "user" && config.Backend != "vhost-user")
        {
            Refuse("queue_pairs", "QEMU's user network has one queue: queue_pairs above 1 needs [platform] netdev = \"tap=IFNAME\" or backend = \"vhost-user\"");
        }

        if (config.BusyPollBudget is > 0 && config.Mode != "adaptive")
        {
            Refuse("busy_poll_budget", $"[performance] busy_poll_budget applies to mode = \"adaptive\" (mode is \"{config.Mode ?? "interrupt"}\"); set the mode or remove the key");
        }

        if (config.PairCpus is { } cpus && cpus.Count > (config.QueuePairs ?? 1))
        {
            Refuse("pair_cpus", $"[performance] pair_cpus lists {cpus.Count} CPUs for {config.QueuePairs ?? 1} queue pair(s)");
        }
    }

    private static ConfigError At(string file, SourceSpan span, string message) => new(file, span.Start.Line + 1, span.Start.Column + 1, message);
}
