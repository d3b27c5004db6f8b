using System.CommandLine;
using System.Text.Json.Nodes;
using Spectre.Console;
using VirtioNet.Core;
using VirtioNet.Discovery;
using VirtioNet.Net;
using VirtioNet.Qemu;
using VirtioNet.Transports.Mmio;

namespace VirtioNet.Cli.Commands;

/// <summary><c>vnet probe</c>: every virtio-mmio slot the device tree describes, and what sits in it.</summary>
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
        using RiscvVirtBoard board = Boards.Start(settings, cancellationToken);
        var devices = new List<SlotReport>();
        foreach (VirtioMmioSlot slot in board.Slots)
        {
            cancellationToken.ThrowIfCancellationRequested();
            devices.Add(Probe(board, slot, settings));
        }

        if (settings.Json)
        {
            var json = new JsonObject
            {
                ["machine"] = "riscv64-virt",
                ["devices"] = new JsonArray([.. devices.Select(d => (JsonNode)d.ToJson())]),
            };
            Console.Out.WriteLine(json.ToJsonString(Json.Options));
            return 0;
        }

        var table = new Table().AddColumns("Slot", "Base", "IRQ", "Transport", "Device", "MAC", "Link", "Offered features");
        foreach (SlotReport d in devices)
        {
            table.AddRow(
                Markup.Escape(d.Slot.NodePath),
                $"0x{d.Slot.BaseAddress:x}",
                d.Slot.Interrupt.ToString(System.Globalization.CultureInfo.InvariantCulture),
                $"virtio-mmio v{d.Version}",
                d.DeviceId == 0 ? "[grey](empty)[/]" : VirtioDeviceTypes.NameOf(d.DeviceId),
                d.Mac ?? "",
                d.LinkUp is null ? "" : d.LinkUp.Value ? "up" : "down",
                Markup.Escape(string.Join(' ', d.OfferedFeatures)));
        }

        AnsiConsole.Write(table);
        return 0;
    }

    private static SlotReport Probe(RiscvVirtBoard board, VirtioMmioSlot slot, MachineSettings settings)
    {
        using VirtioMmioTransport transport = board.OpenTransport(slot, withInterrupt: false);
        var report = new SlotReport(slot, transport.Version, transport.DeviceId, transport.DeviceId == 0 ? 0 : transport.ReadDeviceFeatures());
        if (transport.DeviceId != VirtioDeviceTypes.Network)
        {
            return report;
        }

        // Bringing the device up reads MAC and link exactly as the driver will; Dispose resets it again.
        using VirtioNetDevice net = VirtioNetDevice.Open(transport, board.Dma, new VirtioNetOptions { Mode = OperationMode.Poll });
        _ = settings;
        return report with { Mac = Json.FormatMac(net.MacAddress.Span), LinkUp = net.IsLinkUp };
    }

    private sealed record SlotReport(VirtioMmioSlot Slot, uint Version, uint DeviceId, ulong Offered)
    {
        public string? Mac { get; init; }

        public bool? LinkUp { get; init; }

        public IReadOnlyList<string> OfferedFeatures => DeviceId == VirtioDeviceTypes.Network
            ? VirtioNetFeatureNames.Describe(Offered)
            : VirtioFeatureNames.Describe(Offered);

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
            };
            if (Mac is not null)
            {
                o["mac"] = Mac;
                o["linkUp"] = LinkUp;
            }

            return o;
        }
    }
}
