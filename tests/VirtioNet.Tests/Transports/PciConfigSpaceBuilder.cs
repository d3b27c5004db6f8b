using VirtioNet.Transports.Pci;

namespace VirtioNet.Tests.Transports;

/// <summary>Builds a virtio-pci function's configuration space the way QEMU lays it out, with hooks to corrupt it.</summary>
internal static class PciConfigSpaceBuilder
{
    /// <summary>
    /// 1af4:1041 with the capability chain 0x98 (MSI-X) → 0x84 → 0x70 → 0x60 → 0x50 → 0x40 (vendor caps), as QEMU 7.2
    /// builds it: pci-cfg at 0x84, notify at 0x70, device at 0x60, isr at 0x50, common at 0x40; all in BAR 4 except
    /// pci-cfg; MSI-X table of 4 vectors in BAR 1.
    /// </summary>
    public static PciTestWindow ModernNet(ushort deviceId = 0x1041)
    {
        var config = new PciTestWindow(0x1000);
        config.Set16(PciConfigRegisters.VendorId, 0x1af4);
        config.Set16(PciConfigRegisters.DeviceId, deviceId);
        config.Set16(PciConfigRegisters.SubsystemId, 1);
        config.Set16(PciConfigRegisters.Status, PciConfigRegisters.StatusCapabilitiesList);
        config.Set8(PciConfigRegisters.CapabilitiesPointer, 0x98);
        config.Set8(PciConfigRegisters.InterruptPin, 1);

        Msix(config, 0x98, next: 0x84, tableSize: 4, tableBar: 1, tableOffset: 0, pbaOffset: 0x800);
        Vendor(config, 0x84, next: 0x70, VirtioPciCapabilityType.PciCfg, bar: 0, offset: 0, length: 0, capLength: 20);
        Vendor(config, 0x70, next: 0x60, VirtioPciCapabilityType.NotifyCfg, bar: 4, offset: 0x3000, length: 0x1000, capLength: 20, multiplier: 4);
        Vendor(config, 0x60, next: 0x50, VirtioPciCapabilityType.DeviceCfg, bar: 4, offset: 0x2000, length: 0x1000);
        Vendor(config, 0x50, next: 0x40, VirtioPciCapabilityType.IsrCfg, bar: 4, offset: 0x1000, length: 0x1000);
        Vendor(config, 0x40, next: 0x00, VirtioPciCapabilityType.CommonCfg, bar: 4, offset: 0x0, length: 0x1000);
        return config;
    }

    public static void Vendor(PciTestWindow config, int at, int next, VirtioPciCapabilityType type, byte bar, uint offset, uint length, int capLength = 16, uint multiplier = 0)
    {
        config.Set8(at, PciConfigRegisters.CapabilityIdVendorSpecific);
        config.Set8(at + 1, (byte)next);
        config.Set8(at + 2, (byte)capLength);
        config.Set8(at + 3, (byte)type);
        config.Set8(at + 4, bar);
        config.Set32(at + 8, offset);
        config.Set32(at + 12, length);
        if (type == VirtioPciCapabilityType.NotifyCfg)
        {
            config.Set32(at + 16, multiplier);
        }
    }

    public static void Msix(PciTestWindow config, int at, int next, int tableSize, byte tableBar, uint tableOffset, uint pbaOffset)
    {
        config.Set8(at, PciConfigRegisters.CapabilityIdMsix);
        config.Set8(at + 1, (byte)next);
        config.Set16(at + 2, (ushort)(tableSize - 1));
        config.Set32(at + 4, tableOffset | tableBar);
        config.Set32(at + 8, pbaOffset | tableBar);
    }
}
