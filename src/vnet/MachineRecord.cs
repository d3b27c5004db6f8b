using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using VirtioNet.Qemu;
using VirtioNet.Service;

namespace VirtioNet.Cli;

/// <summary>
/// A machine started by <c>vnet machine start</c>, as recorded in <c>/run/vnet/machines/NAME/machine.json</c>: where
/// QEMU and its sockets and RAM are, and the machine options it was started with, which every later <c>vnet up
/// --machine-name NAME</c> drives it by.
/// </summary>
internal sealed record MachineRecord(string Name, DetachedQemuMachine Detached, MachineSettings Settings, DateTime Started)
{
    /// <summary>The directory that holds one directory per machine.</summary>
    public static string Root => Path.Combine(ControlServer.DefaultDirectory, "machines");

    public static string DirectoryOf(string name) => Path.Combine(Root, name);

    private static string FileOf(string name) => Path.Combine(DirectoryOf(name), "machine.json");

    /// <summary>Machine names: a letter or digit, then letters, digits, '.', '_' or '-', 32 at most (they name a directory).</summary>
    public static void CheckName(string name)
    {
        if (name.Length is 0 or > 32 || !char.IsAsciiLetterOrDigit(name[0]) || !name.All(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-'))
        {
            throw new CliException($"machine name '{name}' must be 1 to 32 letters, digits, '.', '_' or '-', starting with a letter or digit");
        }
    }

    /// <summary>The record of machine <paramref name="name"/>, or null when there is none.</summary>
    public static MachineRecord? Find(string name)
    {
        CheckName(name);
        try
        {
            return Parse(name, JsonNode.Parse(File.ReadAllText(FileOf(name)))?.AsObject());
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            return null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or JsonException or InvalidOperationException or FormatException)
        {
            throw new CliException($"the record of machine '{name}' ({FileOf(name)}) is unreadable: {e.Message}");
        }
    }

    /// <summary>Every recorded machine, by name.</summary>
    public static IReadOnlyList<MachineRecord> All()
    {
        if (!Directory.Exists(Root))
        {
            return [];
        }

        var records = new List<MachineRecord>();
        foreach (string directory in Directory.GetDirectories(Root).Order(StringComparer.Ordinal))
        {
            try
            {
                if (Find(Path.GetFileName(directory)) is { } record)
                {
                    records.Add(record);
                }
            }
            catch (CliException e)
            {
                Log.Info(e.Message);
            }
        }

        return records;
    }

    public void Save()
    {
        var json = new JsonObject
        {
            ["name"] = Name,
            ["pid"] = Detached.ProcessId,
            ["ramPath"] = Detached.RamPath,
            ["qtestSocket"] = Detached.QtestSocket,
            ["qmpSocket"] = Detached.QmpSocket,
            ["started"] = Started.ToString("o", CultureInfo.InvariantCulture),
            ["machine"] = Settings.MachineName,
            ["transport"] = Settings.Transport,
            ["pciInterrupts"] = Settings.PciInterrupts,
            ["deviceOptions"] = Settings.DeviceOptions,
            ["netdev"] = Settings.Netdev,
            ["slot"] = Settings.NetSlot,
            ["qemu"] = Settings.QemuPath,
        };
        File.WriteAllText(FileOf(Name), json.ToJsonString(Json.Options));
    }

    /// <summary>The machine as JSON for <c>vnet machine list --json</c>.</summary>
    public JsonObject Describe(bool running, int? driver) => new()
    {
        ["name"] = Name,
        ["pid"] = Detached.ProcessId,
        ["state"] = running ? "running" : "exited",
        ["driverPid"] = driver,
        ["machine"] = Settings.MachineName,
        ["transport"] = Settings.Transport,
        ["netdev"] = Settings.Netdev,
        ["deviceOptions"] = Settings.DeviceOptions,
        ["ramPath"] = Detached.RamPath,
        ["qtestSocket"] = Detached.QtestSocket,
        ["qmpSocket"] = Detached.QmpSocket,
        ["started"] = Started.ToString("o", CultureInfo.InvariantCulture),
    };

    private static MachineRecord Parse(string name, JsonObject? json)
    {
        if (json is null)
        {
            throw new FormatException("empty record");
        }

        string Text(string key) => json[key]?.GetValue<string>() ?? throw new FormatException($"no '{key}'");
        string machine = Text("machine");
        string transport = Text("transport");
        var settings = new MachineSettings
        {
            Machine = machine == "x86_64-q35" ? QemuMachineKind.X86Q35 : QemuMachineKind.RiscvVirt,
            Transport = transport,
            ModernMmio = transport == "mmio",
            PciInterrupts = Text("pciInterrupts"),
            DeviceOptions = Text("deviceOptions"),
            Netdev = Text("netdev"),
            NetSlot = json["slot"]?.GetValue<int>() ?? 7,
            QemuPath = json["qemu"]?.GetValue<string>(),
            Mode = VirtioNet.Net.OperationMode.Interrupt,
            Json = false,
        };
        var detached = new DetachedQemuMachine
        {
            ProcessId = json["pid"]?.GetValue<int>() ?? 0,
            Directory = DirectoryOf(name),
            RamPath = Text("ramPath"),
        };
        DateTime started = DateTime.Parse(Text("started"), CultureInfo.InvariantCulture, DateTimeStyles.RoundtripKind);
        return new MachineRecord(name, detached, settings, started);
    }
}
