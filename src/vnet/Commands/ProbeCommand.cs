using System.CommandLine;
using System.Text.Json.Nodes;
using Spectre.Console;
using VirtioNet.Core;
using VirtioNet.Discovery;
using VirtioNet.Discovery.Pci;
using VirtioNet.Net;
using VirtioNet.Qemu;
using VirtioNet.Transports;
using VirtioNet.Transports.Mmio;
using VirtioNet.Transports.Pci;

namespace VirtioNet.Cli.Commands;

/// <summary><c>vnet probe</c>: every virtio-mmio slot the device tree describes, every PCI function on the host bridge, and what sits in each.</summary>
internal static class ProbeCommand
{
    public static Command Create()
    {
        var command = new Command("probe", "Boot the machine, walk the device tree and list every virtio-mmio slot.");
        CommonOptions.AddTo(command);
        CommandRunner.SetAction(command, Execute);
        return command;
    }

    private static int Execute(MachineSettings settings, ParseResult result, CancellationToken cancellationToken)
    {
        using IQemuBoard board = Boards.Start(settings, cancellationToken);
        var devices = new List<SlotReport>();
        // Only riscv64 virt has virtio-mmio slots; q35 has PCI functions only.
        if (board is RiscvVirtBoard riscv)
        {
            foreach (VirtioMmioSlot slot in riscv.Slots)
            {
                cancellationToken.ThrowIfCancellationRequested();
                devices.Add(Probe(riscv, slot, settings));
            }
        }

        // PCI: the functions on the root bus, with BARs placed by the board as firmware would.
        List<PciReport> pci = [.. board.EnumeratePci().Select(f => ProbePci(board, f) with { IntxKey = settings.Machine == QemuMachineKind.X86Q35 ? "intxGsi" : "intxPlicLine" })];

        if (settings.Json)
        {
            var json = new JsonObject
            {
                ["machine"] = settings.MachineName,
                ["devices"] = new JsonArray([.. devices.Select(d => (JsonNode)d.ToJson())]),
                ["pciFunctions"] = new JsonArray([.. pci.Select(p => (JsonNode)p.ToJson())]),
            };
            Console.Out.WriteLine(json.ToJsonString(Json.Options));
            return 0;
        }

        // Narrow columns, so the table stays readable in an 80-column terminal or a log; the offered features, too long
        // for a cell, are listed under the table, one device per paragraph.
        var table = new Table().AddColumns("Base", "IRQ", "Transport", "Device", "MAC", "Link");
        foreach (SlotReport d in devices)
        {
            table.AddRow(
                $"0x{d.Slot.BaseAddress:x}",
                d.Slot.Interrupt.ToString(System.Globalization.CultureInfo.InvariantCulture),
                $"virtio-mmio v{d.Version}",
                d.DeviceId == 0 ? "[grey](empty)[/]" : VirtioDeviceTypes.NameOf(d.DeviceId),
                d.Mac ?? "",
                d.LinkUp is null ? "" : (d.LinkUp.Value ? "up" : "down") + (d.SpeedMbps is { } speed ? $", {speed} Mb/s {DuplexName(d.FullDuplex) ?? "unknown"} duplex" : ""));
        }

        if (board is RiscvVirtBoard)
        {
            AnsiConsole.Write(table);
            foreach (SlotReport d in devices.Where(d => d.DeviceId != 0))
            {
                Console.Out.WriteLine($"0x{d.Slot.BaseAddress:x} ({d.Slot.NodePath}) offers:");
                Console.Out.WriteLine("  " + string.Join(' ', d.OfferedFeatures));
            }
        }

        var pciTable = new Table().AddColumns("PCI", "Id", "Class", "INTx", "BARs", "Capabilities", "MSI-X", "Device");
        foreach (PciReport p in pci)
        {
            pciTable.AddRow(
                p.Function.Address.ToString(),
                $"{p.Function.VendorId:x4}:{p.Function.DeviceId:x4}",
                $"{p.Function.ClassCode:x6}",
                p.IntxLine?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "",
                Markup.Escape(string.Join('\n', p.Function.Bars.Select(b => $"{b.Index}: {b.Space} 0x{b.Size:x} @ 0x{b.CpuAddress:x}"))),
                Markup.Escape(string.Join(' ', p.CapabilityNames)),
                p.Capabilities?.Msix?.TableSize.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "",
                Markup.Escape(p.Transport is null ? "" : $"{p.Transport}\nMAC {p.Mac}, link {(p.LinkUp == true ? "up" : "down")}"));
        }

        AnsiConsole.Write(pciTable);
        return 0;
    }

    private static PciReport ProbePci(IQemuBoard board, PciFunction function)
    {
        PciCapabilityList? capabilities = function.HeaderType == 0 ? board.ReadPciCapabilities(function) : null;
        uint? intx = board.FindPciIntxLine(function);
        var report = new PciReport(function, capabilities, intx);
        if (!VirtioPciIdentity.IsVirtio(function.VendorId, function.DeviceId)
            || VirtioPciIdentity.DeviceType(function.DeviceId, function.SubsystemId) != VirtioDeviceTypes.Network)
        {
            return report;
        }

        // As for mmio: bring the device up the way the driver will, read MAC and link, and reset it again on Dispose.
        using IVirtioTransport transport = board.OpenPciTransport(function, legacy: null, VirtioPciInterruptMode.None);
        using VirtioNetDevice net = VirtioNetDevice.Open(transport, board.Dma, new VirtioNetOptions { OperationMode = OperationMode.Poll });
        return report with
        {
            Transport = transport.Description,
            Mac = Json.FormatMac(net.MacAddress.Span),
            LinkUp = net.IsLinkUp,
            SpeedMbps = net.Config.SpeedMbps,
            FullDuplex = net.Config.FullDuplex,
            Offered = net.OfferedFeatures,
        };
    }

    private sealed record PciReport(PciFunction Function, PciCapabilityList? Capabilities, uint? IntxLine)
    {
        public string? Transport { get; init; }

        // The INTx line is a PLIC source on riscv64 virt, an IOAPIC input (GSI) on q35.
        public string IntxKey { get; init; } = "intxPlicLine";

        public string? Mac { get; init; }

        public bool? LinkUp { get; init; }

        // VIRTIO_NET_F_SPEED_DUPLEX: Mbit/s and duplex, null when unknown or not offered.
        public uint? SpeedMbps { get; init; }

        public bool? FullDuplex { get; init; }

        // All 128 bits the device offered.
        public VirtioFeatureSet Offered { get; init; }

        public IReadOnlyList<string> OfferedFeatures => FeatureListing.Names(Offered);

        public IEnumerable<string> CapabilityNames =>
            Capabilities is null ? [] : Capabilities.All.Select(c => Capabilities.Virtio.FirstOrDefault(v => v.ConfigOffset == c.Offset) is { } v
                ? $"virtio-{v.TypeName}"
                : c.Name);

        public JsonObject ToJson()
        {
            var o = new JsonObject
            {
                ["address"] = Function.Address.ToString(),
                ["vendorId"] = $"0x{Function.VendorId:x4}",
                ["deviceId"] = $"0x{Function.DeviceId:x4}",
                ["classCode"] = $"0x{Function.ClassCode:x6}",
                ["headerType"] = Function.HeaderType,
                ["interruptPin"] = Function.InterruptPin,
                ["bars"] = new JsonArray([.. Function.Bars.Select(b => (JsonNode)new JsonObject
                {
                    ["index"] = b.Index,
                    ["space"] = b.Space switch { PciAddressSpace.Io => "io", PciAddressSpace.Memory64 => "mem64", _ => "mem32" },
                    ["prefetchable"] = b.Prefetchable,
                    ["size"] = $"0x{b.Size:x}",
                    ["pciAddress"] = $"0x{b.PciAddress:x}",
                    ["cpuAddress"] = $"0x{b.CpuAddress:x}",
                })]),
                ["capabilities"] = new JsonArray([.. (Capabilities?.All ?? []).Select(c => (JsonNode)CapabilityJson(c))]),
            };
            if (IntxLine is { } line)
            {
                o[IntxKey] = line;
            }

            if (Capabilities?.Msix is { } msix)
            {
                o["msixTableSize"] = msix.TableSize;
            }

            if (Transport is not null)
            {
                o["type"] = "net";
                o["transport"] = Transport;
                o["mac"] = Mac;
                o["linkUp"] = LinkUp;
                o["speedMbps"] = SpeedMbps;
                o["duplex"] = DuplexName(FullDuplex);
                o["offeredFeatures"] = new JsonArray([.. OfferedFeatures.Select(f => (JsonNode)f)]);
                o["offeredFeatureBits"] = Offered.ToString();
            }

            return o;
        }

        private JsonObject CapabilityJson(PciCapability c)
        {
            var o = new JsonObject { ["offset"] = $"0x{c.Offset:x2}", ["id"] = c.Name };
            if (Capabilities!.Virtio.FirstOrDefault(v => v.ConfigOffset == c.Offset) is { } v)
            {
                o["cfgType"] = v.TypeName;
                o["bar"] = v.Bar;
                o["structureOffset"] = $"0x{v.Offset:x}";
                o["length"] = $"0x{v.Length:x}";
                if (v.Type == VirtioPciCapabilityType.NotifyCfg)
                {
                    o["notifyOffMultiplier"] = v.NotifyOffMultiplier;
                }
            }

            return o;
        }
    }

    private static SlotReport Probe(RiscvVirtBoard board, VirtioMmioSlot slot, MachineSettings settings)
    {
        using VirtioMmioTransport transport = board.OpenTransport(slot, withInterrupt: false);
        var report = new SlotReport(slot, transport.Version, transport.DeviceId, transport.DeviceId == 0 ? VirtioFeatureSet.None : FeatureListing.ReadOffered(transport));
        if (transport.DeviceId != VirtioDeviceTypes.Network)
        {
            return report;
        }

        // Bringing the device up reads MAC and link exactly as the driver will; Dispose resets it again.
        using VirtioNetDevice net = VirtioNetDevice.Open(transport, board.Dma, new VirtioNetOptions { OperationMode = OperationMode.Poll });
        _ = settings;
        return report with { Mac = Json.FormatMac(net.MacAddress.Span), LinkUp = net.IsLinkUp, SpeedMbps = net.Config.SpeedMbps, FullDuplex = net.Config.FullDuplex };
    }

    // Offered: all 128 bits (feature words 2 and 3 on version 2), named for the device's type.
    private sealed record SlotReport(VirtioMmioSlot Slot, uint Version, uint DeviceId, VirtioFeatureSet Offered)
    {
        public string? Mac { get; init; }

        public bool? LinkUp { get; init; }

        // VIRTIO_NET_F_SPEED_DUPLEX: Mbit/s and duplex, null when unknown or not offered.
        public uint? SpeedMbps { get; init; }

        public bool? FullDuplex { get; init; }

        public IReadOnlyList<string> OfferedFeatures => FeatureListing.Names(Offered, DeviceId);

        public JsonObject ToJson()
        {
            var o = new JsonObject
            {
                ["node"] = Slot.NodePath,
                ["transport"] = "virtio-mmio",
                ["version"] = Version,
                ["base"] = $"0x{Slot.BaseAddress:x}",
                ["irq"] = Slot.Interrupt,
                ["deviceId"] = DeviceId,
                ["type"] = DeviceId == 0 ? "empty" : VirtioDeviceTypes.NameOf(DeviceId),
                ["offeredFeatures"] = new JsonArray([.. OfferedFeatures.Select(f => (JsonNode)f)]),
                ["offeredFeatureBits"] = Offered.ToString(),
            };
            if (Mac is not null)
            {
                o["mac"] = Mac;
                o["linkUp"] = LinkUp;
                o["speedMbps"] = SpeedMbps;
                o["duplex"] = DuplexName(FullDuplex);
            }

            return o;
        }
    }

    // virtio_net_config.duplex as ethtool names it; null when unknown.
    private static string? DuplexName(bool? full) => full switch { true => "full", false => "half", null => null };
}
