using VirtioNet.Core;
using VirtioNet.Transports;
using VirtioNet.Transports.Pci;
using Xunit;

namespace VirtioNet.Tests.Transports;

/// <summary>The modern virtio-pci transport against register windows laid out as QEMU lays them out.</summary>
public sealed class PciModernTransportTests
{
    // BAR 4 offsets of QEMU's structures (PciConfigSpaceBuilder.ModernNet).
    private const int Common = 0x0000;
    private const int Isr = 0x1000;
    private const int Device = 0x2000;
    private const int Notify = 0x3000;

    private static (PciTestWindow Config, PciTestWindow Bar1, PciTestWindow Bar4) Function(int numQueues = 3)
    {
        PciTestWindow config = PciConfigSpaceBuilder.ModernNet();
        var bar1 = new PciTestWindow(0x1000);
        var bar4 = new PciTestWindow(0x4000);
        bar4.Set16(Common + 0x12, (ushort)numQueues);
        bar4.Set16(Common + 0x18, 256);
        return (config, bar1, bar4);
    }

    private static PciFunctionAccess Access(PciTestWindow config, PciTestWindow bar1, PciTestWindow bar4) =>
        new("00:01.0", config, [null, bar1, null, null, bar4, null]);

    [Fact]
    public void TheQueueIsNotifiedAtItsOwnOffsetTimesTheMultiplier()
    {
        var (config, bar1, bar4) = Function();
        using var transport = new VirtioPciModernTransport(Access(config, bar1, bar4), VirtioPciInterruptMode.None);
        bar4.Set16(Common + 0x1e, 1);   // queue_notify_off of whichever queue is selected

        transport.ActivateQueue(1, 256, 0x8010_0000, 0x8010_1000, 0x8010_2000);
        transport.Notify(1);

        Assert.Contains((Notify + 4UL, 2, 1UL), bar4.Writes);
        Assert.Contains((Common + 0x20UL, 4, 0x8010_0000UL), bar4.Writes);
        Assert.Contains((Common + 0x24UL, 4, 0UL), bar4.Writes);
        Assert.Equal(1, bar4.Read16(Common + 0x1c));
        Assert.Equal(1u, transport.DeviceId);
        Assert.False(transport.IsLegacy);
    }

    [Fact]
    public void ANotifyOffsetOutsideTheNotifyStructureFailsAndResetsTheDevice()
    {
        var (config, bar1, bar4) = Function();
        using var transport = new VirtioPciModernTransport(Access(config, bar1, bar4), VirtioPciInterruptMode.None);
        bar4.Set8(Common + 0x14, (byte)(VirtioDeviceStatus.Acknowledge | VirtioDeviceStatus.Driver | VirtioDeviceStatus.FeaturesOk));
        bar4.Set16(Common + 0x1e, 0x400);   // 0x400 × 4 = 0x1000: the first byte past the 0x1000-byte structure

        var e = Assert.Throws<VirtioException>(() => transport.ActivateQueue(0, 256, 0x8010_0000, 0x8010_1000, 0x8010_2000));

        Assert.Equal(VirtioErrorReason.InvalidConfiguration, e.Reason);
        Assert.Contains("notify offset", e.Message, StringComparison.Ordinal);
        Assert.Equal(0, bar4.Read8(Common + 0x14));
        Assert.Equal(0, bar4.Read16(Common + 0x1c));
        Assert.DoesNotContain(bar4.Writes, w => w.Offset >= Notify);
        Assert.Throws<InvalidOperationException>(() => transport.Notify(0));
    }

    [Fact]
    public void AStructureThatLeavesItsBarIsRefused()
    {
        var (config, bar1, bar4) = Function();
        config.Set32(0x60 + 8, 0x3800);   // device structure at 0x3800 + 0x1000 in a 0x4000-byte BAR

        var e = Assert.Throws<VirtioException>(() => new VirtioPciModernTransport(Access(config, bar1, bar4), VirtioPciInterruptMode.None));

        Assert.Equal(VirtioErrorReason.InvalidConfiguration, e.Reason);
        Assert.Contains("device configuration at BAR 4 + 0x3800", e.Message, StringComparison.Ordinal);
        Assert.Empty(bar4.Writes);
    }

    [Fact]
    public void AStructureInAnUnassignedBarIsRefused()
    {
        var (config, bar1, _) = Function();

        var e = Assert.Throws<VirtioException>(() => new VirtioPciModernTransport(new PciFunctionAccess("00:01.0", config, [null, bar1]), VirtioPciInterruptMode.None));

        Assert.Contains("BAR 4, which is absent", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void AFunctionWithoutModernCapabilitiesPointsToTheLegacyTransport()
    {
        var (config, bar1, bar4) = Function();
        config.Set16(PciConfigRegisters.Status, 0);

        var e = Assert.Throws<VirtioException>(() => new VirtioPciModernTransport(Access(config, bar1, bar4), VirtioPciInterruptMode.None));

        Assert.Equal(VirtioErrorReason.UnsupportedVersion, e.Reason);
        Assert.Contains("legacy transport", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ANonVirtioFunctionIsRefused()
    {
        var (config, bar1, bar4) = Function();
        config.Set16(PciConfigRegisters.VendorId, 0x8086);

        var e = Assert.Throws<VirtioException>(() => new VirtioPciModernTransport(Access(config, bar1, bar4), VirtioPciInterruptMode.None));

        Assert.Equal(VirtioErrorReason.NotVirtio, e.Reason);
    }

    [Fact]
    public void IntxReadsTheIsrToLearnAndClearTheCause()
    {
        var (config, bar1, bar4) = Function();
        var line = new ManualLine();
        using var transport = new VirtioPciModernTransport(Access(config, bar1, bar4), VirtioPciInterruptMode.Intx, line);
        bar4.Set8(Isr, 3);

        InterruptCause cause = transport.ReadAndAcknowledgeInterrupt();

        Assert.Equal(InterruptCause.UsedBuffer | InterruptCause.ConfigurationChange, cause);
        Assert.Same(line, transport.Interrupt);
        Assert.Equal(0, config.Read16(PciConfigRegisters.Command) & PciConfigRegisters.CommandInterruptDisable);
        Assert.NotEqual(0, config.Read16(PciConfigRegisters.Command) & PciConfigRegisters.CommandBusMaster);
    }

    [Fact]
    public void MsixPerQueueProgramsTheTableAndGivesEachQueueItsVector()
    {
        var (config, bar1, bar4) = Function();
        var opened = new Dictionary<int, ManualMessageLine>();
        using var transport = new VirtioPciModernTransport(
            Access(config, bar1, bar4), VirtioPciInterruptMode.MsixPerQueue, null, v => opened[v] = new ManualMessageLine(v));

        transport.ActivateQueue(0, 256, 0x8010_0000, 0x8010_1000, 0x8010_2000);
        bar4.Set16(Common + 0x1c, 0);   // the flat fake has one set of per-queue registers: let queue 1 read as disabled
        transport.ActivateQueue(1, 256, 0x8020_0000, 0x8020_1000, 0x8020_2000);

        Assert.Equal([0, 1, 2], opened.Keys.Order());
        Assert.Contains((Common + 0x10UL, 2, 0UL), bar4.Writes);        // config_msix_vector = 0
        Assert.Contains((Common + 0x1aUL, 2, 1UL), bar4.Writes);        // queue 0 → vector 1
        Assert.Contains((Common + 0x1aUL, 2, 2UL), bar4.Writes);        // queue 1 → vector 2
        for (int v = 0; v < 3; v++)
        {
            Assert.Equal((uint)opened[v].MessageAddress, bar1.Read32((ulong)(v * 16)));
            Assert.Equal(opened[v].MessageData, bar1.Read32((ulong)(v * 16) + 8));
            Assert.Equal(0u, bar1.Read32((ulong)(v * 16) + 12));       // unmasked
        }

        Assert.Equal(1u, bar1.Read32((3 * 16) + 12));                   // the unused vector stays masked
        Assert.Equal(PciConfigRegisters.MsixControlEnable, config.Read16(0x98 + 2));
        Assert.Same(opened[2], transport.GetQueueInterrupt(1));

        opened[2].Raised = true;
        Assert.True(transport.Interrupt!.IsRaised);
        Assert.Equal(InterruptCause.UsedBuffer, transport.ReadAndAcknowledgeInterrupt());
        opened[0].Raised = true;
        Assert.Equal(InterruptCause.ConfigurationChange, transport.ReadAndAcknowledgeInterrupt());
        Assert.False(transport.Interrupt.IsRaised);
    }

    [Fact]
    public void AVectorTheDeviceRefusesFailsTheQueue()
    {
        var (config, bar1, bar4) = Function();
        var device = new RefusingCommonCfg(bar4);
        using var transport = new VirtioPciModernTransport(
            new PciFunctionAccess("00:01.0", config, [null, bar1, null, null, device, null]),
            VirtioPciInterruptMode.MsixShared, null, v => new ManualMessageLine(v));

        var e = Assert.Throws<VirtioException>(() => transport.ActivateQueue(0, 256, 0x8010_0000, 0x8010_1000, 0x8010_2000));

        Assert.Contains("did not accept MSI-X vector 0", e.Message, StringComparison.Ordinal);
    }

    private sealed class ManualLine : VirtioNet.Platform.IInterruptLine
    {
        public int Number => 33;

        public bool IsRaised => false;

        public long RaiseCount => 0;

        public bool Wait(TimeSpan timeout, CancellationToken cancellationToken = default) => false;
    }

    private sealed class ManualMessageLine(int number) : VirtioNet.Platform.IMessageInterruptLine
    {
        public bool Raised { get; set; }

        public int Number => number;

        public bool IsRaised => Raised;

        public long RaiseCount { get; private set; }

        public ulong MessageAddress => 0x8800_0000UL + ((ulong)number * 64);

        public uint MessageData => 0x100u + (uint)number;

        public bool Acknowledge()
        {
            bool was = Raised;
            Raised = false;
            RaiseCount += was ? 1 : 0;
            return was;
        }

        public bool Wait(TimeSpan timeout, CancellationToken cancellationToken = default) => Raised;
    }

    // A device that answers VIRTIO_MSI_NO_VECTOR whatever vector is written (as QEMU does when it cannot allocate one).
    private sealed class RefusingCommonCfg(PciTestWindow inner) : VirtioNet.Platform.IRegisterWindow
    {
        public ulong Length => inner.Length;

        public byte Read8(ulong offset) => inner.Read8(offset);

        public ushort Read16(ulong offset) => offset is Common + 0x10 or Common + 0x1a ? (ushort)0xffff : inner.Read16(offset);

        public uint Read32(ulong offset) => inner.Read32(offset);

        public ulong Read64(ulong offset) => inner.Read64(offset);

        public void Write8(ulong offset, byte value) => inner.Write8(offset, value);

        public void Write16(ulong offset, ushort value) => inner.Write16(offset, value);

        public void Write32(ulong offset, uint value) => inner.Write32(offset, value);

        public void Write64(ulong offset, ulong value) => inner.Write64(offset, value);
    }
}
