using VirtioNet.Core;
using VirtioNet.Platform;
using VirtioNet.Tests.Fakes;
using VirtioNet.Transports;
using VirtioNet.Transports.Mmio;
using VirtioNet.Transports.Pci;
using Xunit;

namespace VirtioNet.Tests.Transports;

/// <summary>
/// The transport primitives of VIRTIO_F_RING_RESET (QueueReset at 0x0c0 on virtio-mmio, queue_reset at 0x3a of the
/// PCI common structure) and VIRTIO_F_NOTIFICATION_DATA (a 32-bit notification), against register files that play the
/// device, including ones that ignore the reset. Ref: virtio v1.2 §2.6.1, §2.9, §4.1.4.3, §4.2.2.
/// </summary>
public sealed class QueueResetAndNotificationDataTests
{
    private const int Common = 0x0000;
    private const int Notify = 0x3000;

    private static PciTestWindow Bar4()
    {
        var bar4 = new PciTestWindow(0x4000);
        bar4.Set16(Common + 0x12, 3);
        bar4.Set16(Common + 0x18, 256);
        return bar4;
    }

    private static VirtioPciModernTransport Pci(IRegisterWindow bar4) =>
        new(new PciFunctionAccess("00:01.0", PciConfigSpaceBuilder.ModernNet(), [null, new PciTestWindow(0x1000), null, null, bar4, null]), VirtioPciInterruptMode.None);

    [Fact]
    public void AnMmioQueueResetWritesQueueResetAndTheQueueCanBeActivatedAgain()
    {
        var device = new SoftwareMmioDevice { SupportsQueueReset = true };
        var transport = new VirtioMmioTransport(device, 0x10008000, null);
        transport.ActivateQueue(0, 128, 0x8100_0000, 0x8100_0800, 0x8100_1000);
        transport.ActivateQueue(1, 128, 0x8200_0000, 0x8200_0800, 0x8200_1000);

        transport.ResetQueue(0);

        Assert.Equal(new[] { 0u }, device.QueueResets);
        Assert.False(transport.IsQueueActive(0));
        Assert.True(transport.IsQueueActive(1));
        transport.ActivateQueue(0, 64, 0x8300_0000, 0x8300_0400, 0x8300_0800);
        Assert.Equal(0x8300_0000UL, device.Queues[0].Desc);
        Assert.True(device.Queues[0].Ready);
    }

    [Fact]
    public void AnMmioDeviceThatIgnoresQueueResetIsCaught()
    {
        var device = new SoftwareMmioDevice();
        var transport = new VirtioMmioTransport(device, 0x10008000, null);
        transport.ActivateQueue(0, 128, 0x8100_0000, 0x8100_0800, 0x8100_1000);

        var e = Assert.Throws<VirtioException>(() => transport.ResetQueue(0));

        Assert.Equal(VirtioErrorReason.DeviceMisbehaved, e.Reason);
        Assert.Contains("QueueReady", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void TheLegacyMmioLayoutHasNoQueueReset()
    {
        var transport = new VirtioMmioTransport(new SoftwareMmioDevice { Version = 1, SupportsQueueReset = true }, 0x10008000, null);
        Assert.Throws<NotSupportedException>(() => transport.ResetQueue(0));
    }

    [Fact]
    public void AnMmioNotificationWithDataWritesTheWholeValueToQueueNotify()
    {
        var device = new SoftwareMmioDevice();
        var transport = new VirtioMmioTransport(device, 0x10008000, null);

        transport.Notify(1, 0x8003_0001);
        transport.Notify(1);

        Assert.Equal(new[] { 0x8003_0001u, 1u }, device.Notifications);
        Assert.Throws<ArgumentException>(() => transport.Notify(2, 0x0001_0001));
    }

    [Fact]
    public void APciQueueResetWaitsForQueueResetToReadZeroAndForgetsTheNotifyAddress()
    {
        var bar4 = new ResettingCommonCfg(Bar4());
        using VirtioPciModernTransport transport = Pci(bar4);
        transport.ActivateQueue(1, 256, 0x8010_0000, 0x8010_1000, 0x8010_2000);
        transport.Notify(1);

        transport.ResetQueue(1);

        Assert.Equal(1, bar4.Resets);
        Assert.False(transport.IsQueueActive(1));
        Assert.Throws<InvalidOperationException>(() => transport.Notify(1));
        transport.ActivateQueue(1, 128, 0x8020_0000, 0x8020_1000, 0x8020_2000);
        Assert.True(transport.IsQueueActive(1));
        transport.Notify(1);
    }

    [Fact]
    public void APciQueueResetThatNeverCompletesTimesOut()
    {
        // A plain register file: queue_reset keeps the 1 written to it, as a device stuck in the reset would show.
        PciTestWindow bar4 = Bar4();
        using VirtioPciModernTransport transport = Pci(bar4);
        transport.ActivateQueue(0, 256, 0x8010_0000, 0x8010_1000, 0x8010_2000);

        var e = Assert.Throws<VirtioException>(() => transport.ResetQueue(0));

        Assert.Equal(VirtioErrorReason.Timeout, e.Reason);
        Assert.Contains((Common + 0x3aUL, 2, 1UL), bar4.Writes);
    }

    [Fact]
    public void APciQueueThatStaysEnabledAfterItsResetIsCaught()
    {
        var bar4 = new ResettingCommonCfg(Bar4()) { LeaveEnabled = true };
        using VirtioPciModernTransport transport = Pci(bar4);
        transport.ActivateQueue(0, 256, 0x8010_0000, 0x8010_1000, 0x8010_2000);

        var e = Assert.Throws<VirtioException>(() => transport.ResetQueue(0));
        Assert.Equal(VirtioErrorReason.DeviceMisbehaved, e.Reason);
    }

    [Fact]
    public void APciNotificationWithDataIsOneFourByteWriteAtTheQueuesNotifyAddress()
    {
        PciTestWindow bar4 = Bar4();
        bar4.Set16(Common + 0x1e, 1);
        using VirtioPciModernTransport transport = Pci(bar4);
        transport.ActivateQueue(1, 256, 0x8010_0000, 0x8010_1000, 0x8010_2000);

        transport.Notify(1, 0x0005_0001);

        Assert.Contains((Notify + 4UL, 4, 0x0005_0001UL), bar4.Writes);
        Assert.DoesNotContain(bar4.Writes, w => w.Offset == Notify + 4UL && w.Size == 2);
    }

    [Fact]
    public void TransportsWithoutTheFeaturesRefuseThemByDefault()
    {
        IVirtioTransport transport = new SoftwareOnlyTransport();
        Assert.Throws<NotSupportedException>(() => transport.Notify(0, 0));
        Assert.Throws<NotSupportedException>(() => transport.ResetQueue(0));
    }

    // Plays queue_reset as QEMU does: the reset completes within the write, then queue_reset and queue_enable read 0.
    private sealed class ResettingCommonCfg(PciTestWindow inner) : IRegisterWindow
    {
        public int Resets { get; private set; }

        public bool LeaveEnabled { get; init; }

        public ulong Length => inner.Length;

        public byte Read8(ulong offset) => inner.Read8(offset);

        public ushort Read16(ulong offset) => inner.Read16(offset);

        public uint Read32(ulong offset) => inner.Read32(offset);

        public ulong Read64(ulong offset) => inner.Read64(offset);

        public void Write8(ulong offset, byte value) => inner.Write8(offset, value);

        public void Write16(ulong offset, ushort value)
        {
            inner.Write16(offset, value);
            if (offset == Common + 0x3a && value == 1)
            {
                Resets++;
                inner.Set16(Common + 0x3a, 0);
                if (!LeaveEnabled)
                {
                    inner.Set16(Common + 0x1c, 0);
                }
            }
        }

        public void Write32(ulong offset, uint value) => inner.Write32(offset, value);

        public void Write64(ulong offset, ulong value) => inner.Write64(offset, value);
    }

    // The smallest transport: only what the interface requires, so the default members show.
    private sealed class SoftwareOnlyTransport : IVirtioTransport
    {
        public string Description => "bare";

        public bool IsLegacy => true;

        public uint DeviceId => 1;

        public uint VendorId => 0;

        public int LegacyQueueAlign => 4096;

        public IInterruptLine? Interrupt => null;

        public VirtioDeviceStatus ReadStatus() => VirtioDeviceStatus.Reset;

        public void WriteStatus(VirtioDeviceStatus status)
        {
        }

        public ulong ReadDeviceFeatures() => 0;

        public void WriteDriverFeatures(ulong features)
        {
        }

        public int GetQueueSizeMax(int queueIndex) => 0;

        public bool IsQueueActive(int queueIndex) => false;

        public void ActivateQueue(int queueIndex, int size, ulong descriptorArea, ulong driverArea, ulong deviceArea)
        {
        }

        public void DeactivateQueue(int queueIndex)
        {
        }

        public void Notify(int queueIndex)
        {
        }

        public InterruptCause ReadAndAcknowledgeInterrupt() => InterruptCause.None;

        public uint ReadConfigGeneration() => 0;

        public byte ReadConfig8(int offset) => 0;

        public ushort ReadConfig16(int offset) => 0;

        public uint ReadConfig32(int offset) => 0;

        public void WriteConfig8(int offset, byte value)
        {
        }

        public void Dispose()
        {
        }
    }
}
