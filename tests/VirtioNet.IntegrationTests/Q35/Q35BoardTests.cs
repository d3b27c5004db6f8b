using System.Buffers.Binary;
using System.Globalization;
using System.Security.Cryptography;
using VirtioNet.Core;
using VirtioNet.Discovery.Pci;
using VirtioNet.IntegrationTests.Qemu;
using VirtioNet.Platform;
using VirtioNet.Qemu;
using VirtioNet.Transports.Pci;
using Xunit;

namespace VirtioNet.IntegrationTests.Q35;

/// <summary>The q35 machine and board against real QEMU: parked CPU, RAM at 0, the chipset brought up, enumeration and BAR placement.</summary>
[Trait("Peer", "Qemu")]
public sealed class Q35BoardTests
{
    [Fact]
    public void TheCpuIsParkedAtTheResetVectorAndCostsAlmostNothing()
    {
        using X86Q35Board board = QemuBoards.StartQ35Pci(QemuNetDeviceModel.VirtioPciModern);
        QtestClient qtest = board.Machine.Qtest;

        Assert.Equal(0xf4, qtest.ReadB(Q35ParkFirmware.ResetVector));
        Assert.Equal(0xeb, qtest.ReadB(Q35ParkFirmware.ResetVector + 1));
        Assert.Equal(0xfd, qtest.ReadB(Q35ParkFirmware.ResetVector + 2));

        // A CPU that left the halt would run TCG flat out (a whole core); a parked one leaves QEMU idle.
        TimeSpan before = CpuTime(board.Machine.ProcessId);
        Thread.Sleep(2000);
        TimeSpan used = CpuTime(board.Machine.ProcessId) - before;
        Assert.True(used < TimeSpan.FromMilliseconds(600), $"QEMU used {used.TotalMilliseconds:0} ms of CPU in 2 s: the guest CPU is not parked.");
    }

    [Fact]
    public void GuestRamStartsAtZeroAndIsSharedBothWays()
    {
        using X86Q35Board board = QemuBoards.StartQ35Pci(QemuNetDeviceModel.VirtioPciModern);
        QemuMachine machine = board.Machine;
        var allocator = (GuestRamAllocator)machine.DmaAllocator;

        Assert.Equal(0UL, machine.GuestRam.BaseAddress);
        Assert.Equal(256UL << 20, machine.GuestRam.Length);
        Assert.True(allocator.Start >= 0x10_0000, "DMA memory reaches into the first MiB");
        Assert.True(allocator.End <= machine.GuestRam.EndAddress);

        DmaRegion region = board.Dma.Allocate(4096, 4096);
        uint mine = BinaryPrimitives.ReadUInt32LittleEndian(RandomNumberGenerator.GetBytes(4)) | 1;
        BinaryPrimitives.WriteUInt32LittleEndian(region.Span, mine);
        Assert.Equal(mine, machine.Qtest.ReadL(region.DeviceAddress));
        machine.Qtest.WriteL(region.DeviceAddress + 8, ~mine);
        Assert.Equal(~mine, BinaryPrimitives.ReadUInt32LittleEndian(region.Span[8..]));
    }

    [Fact]
    public void TheChipsetIsBroughtUpEcamEnabledAndPirqsKeptOffThe8259()
    {
        using X86Q35Board board = QemuBoards.StartQ35Pci(QemuNetDeviceModel.VirtioPciModern);

        IRegisterWindow mch = board.OpenConfigPortWindow(Q35Chipset.MchAddress);
        Assert.Equal(Q35Chipset.PciexbarValue, mch.Read64(Q35Chipset.MchPciexbar));
        IRegisterWindow lpc = board.OpenConfigPortWindow(Q35Chipset.LpcAddress);
        for (int i = 0; i < 4; i++)
        {
            Assert.Equal(Q35Chipset.PirqRoutIrqDisable, lpc.Read8((ulong)(Q35Chipset.LpcPirqARout + i)));
            Assert.Equal(Q35Chipset.PirqRoutIrqDisable, lpc.Read8((ulong)(Q35Chipset.LpcPirqERout + i)));
        }

        IReadOnlyList<PciFunction> functions = board.EnumeratePci();
        Assert.Equal(
            ["00:00.0 8086:29c0", "00:01.0 1af4:1041", "00:1f.0 8086:2918", "00:1f.2 8086:2922", "00:1f.3 8086:2930"],
            functions.Select(f => string.Create(CultureInfo.InvariantCulture, $"{f.Address} {f.VendorId:x4}:{f.DeviceId:x4}")));

        // Every function reads the same through ECAM and through the configuration ports.
        foreach (PciFunction function in functions)
        {
            Assert.Equal(board.OpenConfigPortWindow(function.Address).Read32(0), board.Machine.Qtest.ReadL(function.ConfigAddress));
        }
    }

    [Fact]
    public void TheModernNetFunctionsBarsArePlacedInTheHoleBelowFourGibibytes()
    {
        using X86Q35Board board = QemuBoards.StartQ35Pci(QemuNetDeviceModel.VirtioPciModern);

        PciFunction net = board.FindPciNetFunction();

        Assert.Equal(0xb000_8000UL, net.ConfigAddress);
        Assert.Null(net.GetBar(0));
        PciBar msixBar = net.GetBar(1)!;
        PciBar modernBar = net.GetBar(4)!;
        Assert.Equal(PciAddressSpace.Memory64, modernBar.Space);
        foreach (PciBar bar in new[] { msixBar, modernBar })
        {
            Assert.InRange(bar.CpuAddress, Q35Chipset.Memory32WindowBase, Q35Chipset.IoapicBase - bar.Size);
            Assert.Equal(0UL, bar.CpuAddress % bar.Size);
        }

        var config = board.Machine.OpenRegisterWindow(net.ConfigAddress, 0x100);
        Assert.Equal((uint)modernBar.PciAddress, config.Read32(0x20) & ~0xfu);
        Assert.Equal(0u, config.Read32(0x24));
        Assert.Equal(PciHeaderRegisters.CommandMemorySpace | PciHeaderRegisters.CommandBusMaster, config.Read16(PciHeaderRegisters.Command) & 7);

        PciCapabilityList caps = board.ReadPciCapabilities(net);
        Assert.True(caps.HasModernInterface);
        Assert.Equal(4u, caps.Find(VirtioPciCapabilityType.NotifyCfg)!.NotifyOffMultiplier);
        Assert.NotNull(caps.Msix);
        Assert.Equal((byte)1, caps.Msix.TableBar);
    }

    [Fact]
    public void TheLegacyOnlyFunctionsIoBarIsInPortSpaceAndAnswersThroughInAndOut()
    {
        using X86Q35Board board = QemuBoards.StartQ35Pci(QemuNetDeviceModel.VirtioPciLegacy);

        PciFunction net = board.FindPciNetFunction();

        Assert.Equal((ushort)0x1000, net.DeviceId);
        PciBar io = net.GetBar(0)!;
        Assert.Equal(PciAddressSpace.Io, io.Space);
        Assert.InRange(io.CpuAddress, Q35Chipset.IoWindowBase, Q35Chipset.IoWindowBase + Q35Chipset.IoWindowSize - io.Size);
        Assert.Equal(io.PciAddress, io.CpuAddress);
        Assert.False(board.ReadPciCapabilities(net).HasModernInterface);

        // HostFeatures has VIRTIO_NET_F_MAC (bit 5); device status reads 0 after reset. Ref: virtio v1.2 §4.1.4.10.
        IRegisterWindow bar0 = board.OpenPciFunction(net).GetBar(0)!;
        Assert.IsType<QtestPortWindow>(bar0);
        Assert.NotEqual(0u, bar0.Read32(0x00) & (1u << 5));
        Assert.Equal(0, bar0.Read8(0x12));
    }

    [Fact]
    public void TheVirtioMmioModelIsRejectedOnQ35BeforeQemuStarts()
    {
        var options = new QemuMachineOptions { Machine = QemuMachineKind.X86Q35, NetDeviceModel = QemuNetDeviceModel.VirtioMmio };

        ArgumentException e = Assert.Throws<ArgumentException>(() => QemuMachine.Start(options, TestContext.Current.CancellationToken));

        Assert.Contains("virtio-mmio", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void MissingQemuForQ35NamesTheX86Package()
    {
        var options = new QemuMachineOptions
        {
            Machine = QemuMachineKind.X86Q35,
            NetDeviceModel = QemuNetDeviceModel.VirtioPciModern,
            QemuPath = "qemu-system-x86_64-that-does-not-exist",
        };

        VirtioException e = Assert.Throws<VirtioException>(() => QemuMachine.Start(options, TestContext.Current.CancellationToken));

        Assert.Equal(VirtioErrorReason.PlatformFailure, e.Reason);
        Assert.EndsWith("apt-get install qemu-system-x86", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void TheDefaultBinaryFollowsTheMachine()
    {
        Assert.Equal("qemu-system-x86_64", new QemuMachineOptions { Machine = QemuMachineKind.X86Q35 }.QemuPath);
        Assert.Equal("qemu-system-riscv64", new QemuMachineOptions().QemuPath);
        Assert.Equal("/opt/q", new QemuMachineOptions { Machine = QemuMachineKind.X86Q35, QemuPath = "/opt/q" }.QemuPath);
    }

    private static TimeSpan CpuTime(int pid)
    {
        // /proc/PID/stat fields 14 and 15 (utime, stime) in clock ticks, after the parenthesised command name.
        string stat = File.ReadAllText($"/proc/{pid}/stat");
        string[] fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        long ticks = long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture);
        return TimeSpan.FromSeconds(ticks / 100.0);
    }
}
