using VirtioNet.Discovery.Pci;
using VirtioNet.IntegrationTests.Qemu;
using VirtioNet.Qemu;
using VirtioNet.Transports.Pci;
using Xunit;

namespace VirtioNet.IntegrationTests.Pci;

/// <summary>Enumeration of QEMU's riscv64 virt PCIe root bus, BAR placement and the capability walk, against the real device.</summary>
[Trait("Peer", "Qemu")]
public sealed class PciEnumerationTests
{
    [Fact]
    public void TheModernNetFunctionIsFoundWithItsBarsPlacedAndItsCapabilitiesWalked()
    {
        using RiscvVirtBoard board = QemuBoards.StartRiscvVirtPci(QemuNetDeviceModel.VirtioPciModern);

        IReadOnlyList<PciFunction> functions = board.EnumeratePci();

        PciFunction root = functions[0];
        Assert.Equal(new PciFunctionAddress(0, 0, 0), root.Address);
        Assert.Equal(0x060000u, root.ClassCode);                     // the host bridge itself
        PciFunction net = board.FindPciNetFunction();
        Assert.Equal("00:01.0", net.Address.ToString());
        Assert.Equal((ushort)0x1af4, net.VendorId);
        Assert.Equal((ushort)0x1041, net.DeviceId);
        Assert.Equal(1, net.InterruptPin);
        Assert.Equal(33u, board.RoutePciIntx(net).Line);

        PciBar msixBar = net.GetBar(1)!;
        PciBar modernBar = net.GetBar(4)!;
        Assert.Null(net.GetBar(0));                                  // disable-legacy=on: no I/O BAR
        Assert.Equal(PciAddressSpace.Memory32, msixBar.Space);
        Assert.InRange(msixBar.CpuAddress, 0x4000_0000UL, 0x7fff_ffffUL);
        Assert.Equal(PciAddressSpace.Memory64, modernBar.Space);
        Assert.True(modernBar.Prefetchable);
        Assert.InRange(modernBar.CpuAddress, 0x4_0000_0000UL, 0x7_ffff_ffffUL);
        Assert.Equal(0UL, modernBar.CpuAddress % modernBar.Size);

        // The device decodes its BARs where they were placed: the command register has memory and bus master on.
        var config = board.Machine.OpenRegisterWindow(net.ConfigAddress, 0x100);
        Assert.Equal((uint)msixBar.PciAddress, config.Read32(0x14) & ~0xfu);
        Assert.Equal(PciHeaderRegisters.CommandMemorySpace | PciHeaderRegisters.CommandBusMaster, config.Read16(PciHeaderRegisters.Command) & 7);

        PciCapabilityList caps = board.ReadPciCapabilities(net);
        Assert.True(caps.HasModernInterface);
        Assert.Equal(
            [VirtioPciCapabilityType.CommonCfg, VirtioPciCapabilityType.NotifyCfg, VirtioPciCapabilityType.IsrCfg, VirtioPciCapabilityType.DeviceCfg, VirtioPciCapabilityType.PciCfg],
            caps.Virtio.Select(c => c.Type).Order());
        Assert.Equal(4u, caps.Find(VirtioPciCapabilityType.NotifyCfg)!.NotifyOffMultiplier);
        Assert.All(caps.Virtio.Where(c => c.Type != VirtioPciCapabilityType.PciCfg), c => Assert.Equal((byte)4, c.Bar));
        Assert.NotNull(caps.Msix);
        Assert.Equal((byte)1, caps.Msix.TableBar);
        Assert.True(caps.Msix.TableSize >= 3, $"MSI-X table of {caps.Msix.TableSize}");
    }

    [Fact]
    public void TheLegacyOnlyFunctionHasAnIoBarInTheIoWindowAndNoModernCapabilities()
    {
        using RiscvVirtBoard board = QemuBoards.StartRiscvVirtPci(QemuNetDeviceModel.VirtioPciLegacy);

        PciFunction net = board.FindPciNetFunction();

        Assert.Equal((ushort)0x1000, net.DeviceId);
        Assert.Equal((ushort)1, net.SubsystemId);
        PciBar io = net.GetBar(0)!;
        Assert.Equal(PciAddressSpace.Io, io.Space);
        Assert.True(io.PciAddress >= PciEnumerator.MinimumIoAddress);
        Assert.Equal(0x0300_0000UL + io.PciAddress, io.CpuAddress);   // riscv virt: PCI I/O is MMIO at 0x03000000
        Assert.False(board.ReadPciCapabilities(net).HasModernInterface);

        // Through the I/O window the legacy header answers: HostFeatures has VIRTIO_NET_F_MAC (bit 5), status reads 0 after reset.
        var bar0 = board.Machine.OpenRegisterWindow(io.CpuAddress, io.Size);
        Assert.NotEqual(0u, bar0.Read32(0x00) & (1u << 5));
        Assert.Equal(0, bar0.Read8(0x12));
    }

    [Fact]
    public void TheTransitionalFunctionOffersBothInterfaces()
    {
        using RiscvVirtBoard board = QemuBoards.StartRiscvVirtPci(QemuNetDeviceModel.VirtioPciTransitional);

        PciFunction net = board.FindPciNetFunction();

        Assert.Equal((ushort)0x1000, net.DeviceId);
        Assert.NotNull(net.GetBar(0));
        Assert.NotNull(net.GetBar(4));
        Assert.True(board.ReadPciCapabilities(net).HasModernInterface);
        using var modern = board.OpenPciTransport(net, legacy: null, VirtioPciInterruptMode.None);
        Assert.False(modern.IsLegacy);
    }
}
