using System.Diagnostics.CodeAnalysis;
using VirtioNet.Core;
using VirtioNet.Platform;
using C = VirtioNet.Transports.Pci.PciConfigRegisters;

namespace VirtioNet.Transports.Pci;

/// <summary>
/// Walks a PCI function's capability list and decodes the virtio structure capabilities and MSI-X. Every read stays
/// inside conventional configuration space: a pointer below the header or past 0xff, a capability whose length runs
/// past the end, or a list that loops fails with a <see cref="VirtioException"/> before anything outside is touched.
/// Ref: virtio v1.2 §4.1.4; PCI Local Bus 3.0 §6.7.
/// </summary>
public static class VirtioPciCapabilityParser
{
    /// <summary>
    /// The most capabilities a list can hold: every one is at least 4 bytes, dword-aligned, between 0x40 and 0xff.
    /// A walk longer than this has revisited a capability.
    /// </summary>
    public const int MaxCapabilities = (C.ConfigSpaceSize - C.FirstCapabilityOffset) / 4;

    /// <summary>Reads and decodes the capability list of the function whose configuration space is <paramref name="config"/>.</summary>
    /// <param name="config">The function's configuration space (at least 256 bytes).</param>
    /// <param name="function">The function's name for messages, e.g. "00:01.0".</param>
    /// <exception cref="VirtioException">With <see cref="VirtioErrorReason.InvalidConfiguration"/> when the list is malformed.</exception>
    public static PciCapabilityList Parse(IRegisterWindow config, string function)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(function);
        if (config.Length < C.ConfigSpaceSize)
        {
            throw new ArgumentException($"{function}: a configuration space window needs 0x{C.ConfigSpaceSize:x} bytes; this one has 0x{config.Length:x}.", nameof(config));
        }

        var all = new List<PciCapability>();
        var virtio = new List<VirtioPciCapability>();
        MsixCapability? msix = null;
        if ((config.Read16(C.Status) & C.StatusCapabilitiesList) == 0)
        {
            return new PciCapabilityList(all, virtio, msix);
        }

        // §6.7: the bottom two bits of every pointer are reserved and masked off.
        int pointer = config.Read8(C.CapabilitiesPointer) & 0xfc;
        Span<bool> visited = stackalloc bool[C.ConfigSpaceSize / 4];
        while (pointer != 0)
        {
            if (pointer < C.FirstCapabilityOffset)
            {
                Throw(function, $"a capability pointer 0x{pointer:x2} points into the configuration header (capabilities start at 0x{C.FirstCapabilityOffset:x2})");
            }

            // The mask keeps the pointer below 0x100; a 2-byte header at 0xfc still fits, a longer structure is checked below.
            if (visited[pointer / 4] || all.Count >= MaxCapabilities)
            {
                Throw(function, $"the capability list loops back to 0x{pointer:x2} after {all.Count} capabilities");
            }

            visited[pointer / 4] = true;
            byte id = config.Read8((ulong)(pointer + C.CapId));
            int next = config.Read8((ulong)(pointer + C.CapNext)) & 0xfc;
            all.Add(new PciCapability(id, pointer));
            if (id == C.CapabilityIdVendorSpecific)
            {
                if (ReadVirtioCapability(config, function, pointer) is { } cap)
                {
                    virtio.Add(cap);
                }
            }
            else if (id == C.CapabilityIdMsix && msix is null)
            {
                msix = ReadMsix(config, function, pointer);
            }

            pointer = next;
        }

        return new PciCapabilityList(all, virtio, msix);
    }

    private static VirtioPciCapability? ReadVirtioCapability(IRegisterWindow config, string function, int at)
    {
        RequireInside(function, at, C.VirtioCapSize, "virtio capability");
        int length = config.Read8((ulong)(at + C.VirtioCapLength));
        if (length < C.VirtioCapSize)
        {
            Throw(function, $"the virtio capability at 0x{at:x2} has cap_len {length}, below the {C.VirtioCapSize} of struct virtio_pci_cap");
        }

        RequireInside(function, at, length, "virtio capability");
        var type = (VirtioPciCapabilityType)config.Read8((ulong)(at + C.VirtioCapCfgType));
        byte bar = config.Read8((ulong)(at + C.VirtioCapBar));
        byte id = config.Read8((ulong)(at + C.VirtioCapId));
        uint offset = config.Read32((ulong)(at + C.VirtioCapOffset));
        uint structureLength = config.Read32((ulong)(at + C.VirtioCapStructureLength));
        uint multiplier = 0;
        if (type == VirtioPciCapabilityType.NotifyCfg)
        {
            if (length < C.VirtioNotifyCapSize)
            {
                Throw(function, $"the notify capability at 0x{at:x2} has cap_len {length}, too short for notify_off_multiplier ({C.VirtioNotifyCapSize})");
            }

            multiplier = config.Read32((ulong)(at + C.VirtioNotifyCapMultiplier));
        }

        // §4.1.4: BAR values 0x6-0xff are reserved; the driver ignores such a capability rather than failing.
        return bar > 5 ? null : new VirtioPciCapability(type, bar, id, offset, structureLength, at, multiplier);
    }

    private static MsixCapability ReadMsix(IRegisterWindow config, string function, int at)
    {
        RequireInside(function, at, C.MsixCapSize, "MSI-X capability");
        ushort control = config.Read16((ulong)(at + C.MsixMessageControl));
        uint table = config.Read32((ulong)(at + C.MsixTable));
        uint pba = config.Read32((ulong)(at + C.MsixPendingBitArray));
        return new MsixCapability(at, (control & 0x7ff) + 1, (byte)(table & 7), table & ~7u, (byte)(pba & 7), pba & ~7u);
    }

    private static void RequireInside(string function, int at, int length, string what)
    {
        if (at + length > C.ConfigSpaceSize)
        {
            Throw(function, $"the {what} at 0x{at:x2} ({length} bytes) runs past the end of configuration space (0x{C.ConfigSpaceSize:x})");
        }
    }

    [DoesNotReturn]
    private static void Throw(string function, string message) =>
        throw new VirtioException(VirtioErrorReason.InvalidConfiguration, $"PCI function {function}: {message}.");
}
