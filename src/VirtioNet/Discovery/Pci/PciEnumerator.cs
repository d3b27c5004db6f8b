using VirtioNet.Core;
using VirtioNet.Platform;
using H = VirtioNet.Discovery.Pci.PciHeaderRegisters;

namespace VirtioNet.Discovery.Pci;

/// <summary>
/// Enumerates the functions behind a host bridge through ECAM, sizes their BARs and, since no firmware ran, places
/// them in the bridge's windows and turns on decoding. The platform supplies only a way to map physical ranges as
/// register windows. Ref: PCI Local Bus 3.0 §6.1, §6.2.5; PCI Firmware 3.2 (what firmware would otherwise do).
/// </summary>
/// <remarks>
/// Only the root bus is scanned: bridges are listed but their secondary buses are neither numbered nor scanned, and no
/// bridge windows are programmed (QEMU's riscv64 <c>virt</c> puts every <c>-device</c> on the root bus).
/// </remarks>
public static class PciEnumerator
{
    /// <summary>PCI I/O addresses below this are left alone (the legacy ISA range, as Linux's PCIBIOS_MIN_IO).</summary>
    public const ulong MinimumIoAddress = 0x1000;

    /// <summary>
    /// Scans every device and function of the bridge's root bus and sizes their BARs. Decoding is switched off
    /// while a function's BARs are sized and restored after; nothing else is written.
    /// </summary>
    /// <param name="host">The host bridge.</param>
    /// <param name="map">Maps a physical range (address, length) as a register window.</param>
    public static IReadOnlyList<PciFunction> Enumerate(PciHostBridge host, Func<ulong, ulong, IRegisterWindow> map)
    {
        ArgumentNullException.ThrowIfNull(host);
        ArgumentNullException.ThrowIfNull(map);
        var functions = new List<PciFunction>();
        byte bus = (byte)host.BusStart;
        for (byte device = 0; device < 32; device++)
        {
            if (Probe(host, map, new PciFunctionAddress(bus, device, 0)) is not { } first)
            {
                continue;
            }

            functions.Add(first.Function);
            if ((first.RawHeaderType & H.HeaderTypeMultiFunction) == 0)
            {
                continue;
            }

            for (byte function = 1; function < 8; function++)
            {
                if (Probe(host, map, new PciFunctionAddress(bus, device, function)) is { } more)
                {
                    functions.Add(more.Function);
                }
            }
        }

        return functions;
    }

    /// <summary>
    /// Decides where every BAR of <paramref name="functions"/> goes, without touching any device: I/O BARs in the I/O
    /// window (above <see cref="MinimumIoAddress"/>), 64-bit BARs in the 64-bit window when the bridge has one,
    /// everything else in the 32-bit window below 4 GiB; largest first, each aligned to its size.
    /// </summary>
    /// <exception cref="VirtioException">
    /// With <see cref="VirtioErrorReason.InvalidConfiguration"/> naming the BAR when one does not fit (or its window is
    /// missing). Nothing has been written at that point.
    /// </exception>
    public static IReadOnlyList<PciBarAssignment> PlanAssignments(PciHostBridge host, IReadOnlyList<PciFunction> functions)
    {
        ArgumentNullException.ThrowIfNull(host);
        ArgumentNullException.ThrowIfNull(functions);
        PciWindow? io = host.FindWindow(PciAddressSpace.Io);
        PciWindow? mem32 = host.FindWindow(PciAddressSpace.Memory32);
        PciWindow? mem64 = host.FindWindow(PciAddressSpace.Memory64);
        var allocators = new Dictionary<PciWindow, PciWindowAllocator>();
        var plan = new List<PciBarAssignment>();

        IEnumerable<(PciFunction Function, PciBar Bar)> bars = functions
            .Where(f => !f.IsBridge)
            .SelectMany(f => f.Bars.Select(b => (f, b)))
            .OrderByDescending(x => x.b.Size)
            .ThenBy(x => x.f.Address.Device).ThenBy(x => x.f.Address.Function).ThenBy(x => x.b.Index);
        foreach ((PciFunction function, PciBar bar) in bars)
        {
            PciWindow? window = bar.Space switch
            {
                PciAddressSpace.Io => io,
                PciAddressSpace.Memory64 => mem64 ?? mem32,
                _ => mem32,
            };
            if (window is null)
            {
                throw new VirtioException(
                    VirtioErrorReason.InvalidConfiguration,
                    $"PCI function {function.Address}: {bar} cannot be placed: {host.NodePath} has no {bar.Space} window.");
            }

            if (!allocators.TryGetValue(window, out PciWindowAllocator? allocator))
            {
                allocator = new PciWindowAllocator(window, window.Space == PciAddressSpace.Io ? MinimumIoAddress : 0);
                allocators.Add(window, allocator);
            }

            ulong limit = bar.Space == PciAddressSpace.Memory64 ? ulong.MaxValue : 1UL << 32;
            if (!allocator.TryAllocate(bar.Size, out ulong pci, limit))
            {
                throw new VirtioException(
                    VirtioErrorReason.InvalidConfiguration,
                    $"PCI function {function.Address}: {bar} does not fit in the remaining space of the window {window}.");
            }

            plan.Add(new PciBarAssignment(function, bar with { PciAddress = pci, CpuAddress = window.ToCpuAddress(pci) }));
        }

        return plan;
    }

    /// <summary>
    /// Plans with <see cref="PlanAssignments"/>, then programs each BAR and sets the Command register's I/O, Memory
    /// and Bus Master bits for the functions that have BARs of each kind. If planning fails nothing is written, so
    /// every function keeps decoding off.
    /// </summary>
    public static void AssignResources(PciHostBridge host, IReadOnlyList<PciFunction> functions, Func<ulong, ulong, IRegisterWindow> map)
    {
        ArgumentNullException.ThrowIfNull(map);
        IReadOnlyList<PciBarAssignment> plan = PlanAssignments(host, functions);
        foreach (IGrouping<PciFunction, PciBarAssignment> group in plan.GroupBy(a => a.Function))
        {
            PciFunction function = group.Key;
            IRegisterWindow config = map(function.ConfigAddress, H.ExtendedConfigSpaceSize);
            ushort command = config.Read16(H.Command);
            config.Write16(H.Command, (ushort)(command & ~(H.CommandIoSpace | H.CommandMemorySpace)));
            foreach (PciBarAssignment assignment in group)
            {
                PciBar bar = assignment.Bar;
                ulong register = (ulong)(H.Bar0 + (4 * bar.Index));
                config.Write32(register, (uint)bar.PciAddress);
                if (bar.Is64Bit)
                {
                    config.Write32(register + 4, (uint)(bar.PciAddress >> 32));
                }
            }

            bool anyIo = group.Any(a => a.Bar.Space == PciAddressSpace.Io);
            bool anyMemory = group.Any(a => a.Bar.Space != PciAddressSpace.Io);
            command |= H.CommandBusMaster;
            if (anyIo)
            {
                command |= H.CommandIoSpace;
            }

            if (anyMemory)
            {
                command |= H.CommandMemorySpace;
            }

            config.Write16(H.Command, command);
            function.Bars = [.. function.Bars.Select(b => group.FirstOrDefault(a => a.Bar.Index == b.Index)?.Bar ?? b)];
        }
    }

    private static (PciFunction Function, byte RawHeaderType)? Probe(PciHostBridge host, Func<ulong, ulong, IRegisterWindow> map, PciFunctionAddress address)
    {
        ulong configAddress = host.GetConfigAddress(address);
        IRegisterWindow config = map(configAddress, H.ExtendedConfigSpaceSize);
        ushort vendor = config.Read16(H.VendorId);
        if (vendor is 0xffff or 0)
        {
            return null;
        }

        ushort deviceId = config.Read16(H.DeviceId);
        uint classRevision = config.Read32(H.RevisionId);
        byte rawHeader = config.Read8(H.HeaderType);
        byte layout = (byte)(rawHeader & 0x7f);
        IReadOnlyList<PciBar> bars = layout switch
        {
            0 => SizeBars(config, address, 6),
            _ => [],
        };
        ushort subsystem = layout == 0 ? config.Read16(H.SubsystemId) : (ushort)0;
        byte pin = config.Read8(H.InterruptPin);
        var function = new PciFunction(address, configAddress, vendor, deviceId, classRevision >> 8, (byte)classRevision, layout, subsystem, pin, bars);
        return (function, rawHeader);
    }

    private static List<PciBar> SizeBars(IRegisterWindow config, PciFunctionAddress address, int count)
    {
        // Decoding off while the BARs hold all ones, so the device never answers at those addresses (PCI 3.0 §6.2.5.1).
        ushort command = config.Read16(H.Command);
        config.Write16(H.Command, (ushort)(command & ~(H.CommandIoSpace | H.CommandMemorySpace)));
        var bars = new List<PciBar>();
        for (int i = 0; i < count; i++)
        {
            ulong register = (ulong)(H.Bar0 + (4 * i));
            uint original = config.Read32(register);
            config.Write32(register, 0xffff_ffff);
            uint sizedLow = config.Read32(register);
            config.Write32(register, original);
            uint sizedHigh = 0;
            bool is64 = (original & H.BarIoSpace) == 0 && (original & H.BarMemoryTypeMask) == H.BarMemoryType64;
            if (is64)
            {
                if (i == count - 1)
                {
                    throw new VirtioException(VirtioErrorReason.InvalidConfiguration, $"PCI function {address}: BAR{i} claims to be 64-bit but is the last BAR.");
                }

                uint originalHigh = config.Read32(register + 4);
                config.Write32(register + 4, 0xffff_ffff);
                sizedHigh = config.Read32(register + 4);
                config.Write32(register + 4, originalHigh);
            }

            if (PciBarDecoder.Decode(i, original, sizedLow, sizedHigh) is { } bar)
            {
                bars.Add(bar);
            }

            if (is64)
            {
                i++;
            }
        }

        config.Write16(H.Command, command);
        return bars;
    }
}
