using System.Buffers.Binary;
using System.Diagnostics;
using System.Security.Cryptography;
using VirtioNet.Core;
using VirtioNet.Platform;
using VirtioNet.Qemu;
using Xunit;

namespace VirtioNet.IntegrationTests.Qemu;

[Trait("Peer", "Qemu")]
public sealed class QemuMachineTests
{
    // VIRTIO_MMIO_MAGIC_VALUE (0x000): "virt" in little-endian. Ref: virtio v1.2 §4.2.2.
    private const uint MmioMagic = 0x7472_6976;

    // Register offsets used below. Ref: virtio v1.2 §4.2.2 (and §4.2.4 for the legacy layout, which shares these).
    private const ulong DeviceIdOffset = 0x008;
    private const ulong InterruptStatusOffset = 0x060;
    private const ulong InterruptAckOffset = 0x064;
    private const ulong StatusOffset = 0x070;

    private static QemuMachine StartMachine(QemuMachineOptions? options = null)
    {
        QemuRequirement.EnsureAvailable();
        return QemuMachine.Start(options ?? new QemuMachineOptions(), TestContext.Current.CancellationToken);
    }

    private static void Signal(string signal, int pid)
    {
        using Process kill = Process.Start("kill", ["-" + signal, pid.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
        kill.WaitForExit();
        Assert.Equal(0, kill.ExitCode);
    }

    // Reaped children vanish from /proc; a zombie would still show, and would mean nobody waited for QEMU.
    private static bool ProcessIsGone(int pid) => !Directory.Exists($"/proc/{pid}");

    [Fact]
    public void TheMagicValueIsReadAtTheTopVirtioMmioSlot()
    {
        using QemuMachine machine = StartMachine();
        Assert.Equal(0x1000_8000UL, machine.NetDeviceBase);
        IRegisterWindow window = machine.OpenRegisterWindow(machine.NetDeviceBase, QemuMachine.VirtioMmioStride);

        Assert.Equal(MmioMagic, window.Read32(0));
        Assert.Equal(VirtioDeviceTypes.Network, window.Read32(DeviceIdOffset));
    }

    [Fact]
    public void DevicesBeforeNetMoveTheNetDeviceToALowerSlotAndLine()
    {
        using QemuMachine machine = StartMachine(new QemuMachineOptions { DevicesBeforeNet = 2 });
        Assert.Equal(0x1000_6000UL, machine.NetDeviceBase);
        Assert.Equal(6, machine.NetDevicePlicLine);

        IRegisterWindow net = machine.OpenRegisterWindow(machine.NetDeviceBase, QemuMachine.VirtioMmioStride);
        IRegisterWindow top = machine.OpenRegisterWindow(0x1000_8000, QemuMachine.VirtioMmioStride);
        Assert.Equal(VirtioDeviceTypes.Network, net.Read32(DeviceIdOffset));
        Assert.Equal(4u, top.Read32(DeviceIdOffset)); // virtio-rng (entropy source). Ref: virtio v1.2 §5.
    }

    [Fact]
    public void ModernMmioReportsVersionTwo()
    {
        using QemuMachine machine = StartMachine(new QemuMachineOptions { ModernMmio = true });
        IRegisterWindow window = machine.OpenRegisterWindow(machine.NetDeviceBase, QemuMachine.VirtioMmioStride);
        Assert.Equal(2u, window.Read32(0x004)); // VIRTIO_MMIO_VERSION
    }

    [Fact]
    public void RegisterWindowRejectsAccessesOutsideItsBounds()
    {
        using QemuMachine machine = StartMachine();
        IRegisterWindow window = machine.OpenRegisterWindow(machine.NetDeviceBase, QemuMachine.VirtioMmioStride);

        Assert.Throws<ArgumentOutOfRangeException>(() => window.Read32(0xffd));
        Assert.Throws<ArgumentOutOfRangeException>(() => window.Write64(ulong.MaxValue - 3, 0));
        Assert.Equal(MmioMagic, window.Read32(0)); // the connection is still in step after the refusals
    }

    [Fact]
    public void GuestRamWrittenThroughTheMappingIsReadByQtestAndTheReverse()
    {
        using QemuMachine machine = StartMachine();
        DmaRegion region = machine.DmaAllocator.Allocate(4096, 4096);
        uint mine = BinaryPrimitives.ReadUInt32LittleEndian(RandomNumberGenerator.GetBytes(4)) | 1;
        uint theirs = ~mine;

        BinaryPrimitives.WriteUInt32LittleEndian(region.Span, mine);
        Assert.Equal(mine, machine.Qtest.ReadL(region.DeviceAddress));

        machine.Qtest.WriteL(region.DeviceAddress + 8, theirs);
        Assert.Equal(theirs, BinaryPrimitives.ReadUInt32LittleEndian(region.Span[8..]));

        byte[] pattern = RandomNumberGenerator.GetBytes(3000);
        machine.Qtest.Write(region.DeviceAddress + 100, pattern);
        Assert.Equal(pattern, region.Span.Slice(100, pattern.Length).ToArray());

        byte[] back = new byte[pattern.Length];
        pattern.AsSpan().Reverse();
        pattern.CopyTo(region.Span[1000..]);
        machine.Qtest.Read(region.DeviceAddress + 1000, back);
        Assert.Equal(pattern, back);
    }

    [Fact]
    public void TheParkProgramIsWhereTheCpuRunsIt()
    {
        using QemuMachine machine = StartMachine();
        Assert.Equal(
            new byte[] { 0x73, 0x00, 0x50, 0x10, 0x6f, 0xf0, 0xdf, 0xff },
            machine.GuestRam.GetSpan(QemuMachine.RamBase, 8).ToArray());
        Assert.True(((GuestRamAllocator)machine.DmaAllocator).Start >= QemuMachine.RamBase + 8);
    }

    [Fact]
    public void TheDeviceTreeFromTheBootRomStartsWithItsMagic()
    {
        using QemuMachine machine = StartMachine();
        byte[] tree = machine.ReadDeviceTree();

        Assert.Equal(0xd00d_feedu, BinaryPrimitives.ReadUInt32BigEndian(tree));
        Assert.Equal((uint)tree.Length, BinaryPrimitives.ReadUInt32BigEndian(tree.AsSpan(4)));

        ulong treeAddress = machine.Qtest.ReadQ(QemuMachine.BootRomDeviceTreePointer);
        Assert.True(((GuestRamAllocator)machine.DmaAllocator).End <= treeAddress, "DMA memory overlaps the device tree.");
    }

    [Fact]
    public void MissingQemuIsReportedWithTheInstallCommand()
    {
        var options = new QemuMachineOptions { QemuPath = "qemu-system-riscv64-that-does-not-exist" };

        VirtioException e = Assert.Throws<VirtioException>(() => QemuMachine.Start(options, TestContext.Current.CancellationToken));

        Assert.Equal(VirtioErrorReason.PlatformFailure, e.Reason);
        Assert.Equal(
            "QEMU not found: 'qemu-system-riscv64-that-does-not-exist' is not on PATH. Install it with: apt-get install qemu-system-misc",
            e.Message);
    }

    [Fact]
    public void DisposeAfterQemuWasKilledFromOutsideNeitherThrowsNorHangs()
    {
        QemuMachine machine = StartMachine();
        int pid = machine.ProcessId;
        using (var qemu = Process.GetProcessById(pid))
        {
            qemu.Kill();
        }

        // The next command learns why instead of waiting for a reply that never comes.
        VirtioException e = Assert.Throws<VirtioException>(() => machine.Qtest.ReadL(0x1000_8000));
        Assert.Contains("QEMU exited (code", e.Message, StringComparison.Ordinal);
        Assert.True(machine.HasExited);

        var watch = Stopwatch.StartNew();
        machine.Dispose();
        machine.Dispose();
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(5), $"Dispose took {watch.Elapsed}.");
        Assert.True(ProcessIsGone(pid));
    }

    [Fact]
    public void AStoppedQemuMakesCommandsTimeOutInsteadOfHanging()
    {
        using QemuMachine machine = StartMachine(new QemuMachineOptions { CommandTimeout = TimeSpan.FromMilliseconds(500) });
        Signal("STOP", machine.ProcessId);
        try
        {
            var watch = Stopwatch.StartNew();
            VirtioException e = Assert.Throws<VirtioException>(() => machine.Qtest.ReadL(0x1000_8000));

            Assert.Equal(VirtioErrorReason.Timeout, e.Reason);
            Assert.True(watch.Elapsed < TimeSpan.FromSeconds(5), $"The timeout took {watch.Elapsed}.");
            Assert.True(machine.Qtest.IsFaulted);
        }
        finally
        {
            Signal("CONT", machine.ProcessId);
        }
    }

    [Fact]
    public void CommandsAfterDisposeThrowObjectDisposed()
    {
        QemuMachine machine = StartMachine();
        QtestClient qtest = machine.Qtest;
        machine.Dispose();

        Assert.Throws<ObjectDisposedException>(() => qtest.ReadL(0x1000_8000));
        Assert.Throws<ObjectDisposedException>(() => machine.OpenPlicLine(8));
    }

    [Fact]
    public void QtestErrorsBecomeExceptionsAndTheConnectionStaysUsable()
    {
        using QemuMachine machine = StartMachine();

        VirtioException e = Assert.Throws<VirtioException>(() => machine.Qtest.Execute("no_such_command 1"));

        Assert.Equal(VirtioErrorReason.PlatformFailure, e.Reason);
        Assert.Contains("FAIL Unknown command", e.Message, StringComparison.Ordinal);
        Assert.Equal(MmioMagic, machine.Qtest.ReadL(machine.NetDeviceBase));
    }

    [Fact]
    public void RepliesReachTheThreadThatAskedWhenThreadsShareTheConnection()
    {
        using QemuMachine machine = StartMachine();
        QtestClient qtest = machine.Qtest;
        ulong treeAddress = qtest.ReadQ(QemuMachine.BootRomDeviceTreePointer);
        int mismatches = 0;

        Parallel.For(0, 4, worker =>
        {
            for (int i = 0; i < 300; i++)
            {
                bool ok = ((worker + i) % 3) switch
                {
                    0 => qtest.ReadL(0x1000_8000) == MmioMagic,
                    1 => qtest.ReadL(0x1000_8000 + DeviceIdOffset) == VirtioDeviceTypes.Network,
                    _ => qtest.ReadQ(QemuMachine.BootRomDeviceTreePointer) == treeAddress,
                };
                if (!ok)
                {
                    Interlocked.Increment(ref mismatches);
                }
            }
        });

        Assert.Equal(0, mismatches);
    }

    [Fact]
    public void PipelinedCommandsAreAnsweredInOrder()
    {
        using QemuMachine machine = StartMachine();

        IReadOnlyList<string> replies = machine.Qtest.ExecuteBatch(
            ["readl 0x10008000", "readl 0x10008008", "readq 0x1020", "readl 0x10007000"]);

        Assert.Equal(4, replies.Count);
        Assert.Equal(MmioMagic, Convert.ToUInt64(replies[0], 16));
        Assert.Equal(1UL, Convert.ToUInt64(replies[1], 16));
        Assert.Equal(machine.Qtest.ReadQ(QemuMachine.BootRomDeviceTreePointer), Convert.ToUInt64(replies[2], 16));
        Assert.Equal(MmioMagic, Convert.ToUInt64(replies[3], 16)); // empty slots answer the magic too

        // More replies than a socket buffer holds: the reader must drain them while the batch is still being sent.
        IReadOnlyList<string> many = machine.Qtest.ExecuteBatch(Enumerable.Repeat("readl 0x10008008", 5000).ToArray());
        Assert.Equal(5000, many.Count);
        Assert.All(many, reply => Assert.Equal(1UL, Convert.ToUInt64(reply, 16)));
    }

    [Fact]
    public void ThePlicLineOfTheNetDeviceFollowsAConfigurationChangeAndItsAcknowledgement()
    {
        using QemuMachine machine = StartMachine();
        IInterruptLine line = machine.OpenPlicLine(machine.NetDevicePlicLine);
        Assert.Equal(8, line.Number);
        Assert.False(line.IsRaised);
        Assert.Equal(0, line.RaiseCount);
        Assert.Matches(@"^/machine/unattached/device\[\d+\]$", machine.PlicQomPath);
        Assert.Same(line, machine.OpenPlicLine(8));

        // QEMU notifies configuration changes only to a driver that set DRIVER_OK: ACKNOWLEDGE | DRIVER | DRIVER_OK
        // (legacy layout: no FEATURES_OK step). Ref: virtio v1.2 §2.1, §4.2.3.3.
        IRegisterWindow net = machine.OpenRegisterWindow(machine.NetDeviceBase, QemuMachine.VirtioMmioStride);
        net.Write32(StatusOffset, 1 | 2 | 4);
        Assert.False(line.Wait(TimeSpan.FromMilliseconds(100), TestContext.Current.CancellationToken));

        machine.Monitor.SetLink(QemuMachine.NetDeviceId, up: false);

        Assert.True(line.Wait(TimeSpan.FromSeconds(5), TestContext.Current.CancellationToken));
        Assert.True(line.IsRaised);
        Assert.Equal(1, line.RaiseCount);
        uint cause = net.Read32(InterruptStatusOffset);
        Assert.NotEqual(0u, cause & 2); // VIRTIO_MMIO_INT_CONFIG (QEMU 7.2 sets the used-buffer bit along with it)

        // The lower arrives before the write's OK: the reader handles lines in order.
        net.Write32(InterruptAckOffset, cause);
        Assert.False(line.IsRaised);
        Assert.Equal(1, line.RaiseCount);
        net.Write32(StatusOffset, 0);
    }

    [Fact]
    public void QmpListsThePlicAndReportsUnknownDevices()
    {
        using QemuMachine machine = StartMachine();

        Assert.Contains(machine.Monitor.QomList("/machine/unattached"), p => p.IsChildOfType(QemuMachine.PlicQomType));
        VirtioException e = Assert.Throws<VirtioException>(() => machine.Monitor.SetLink("no-such-nic", up: false));
        Assert.Contains("set_link failed", e.Message, StringComparison.Ordinal);
    }
}
