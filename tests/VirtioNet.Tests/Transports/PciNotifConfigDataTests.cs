using VirtioNet.Core;
using VirtioNet.Net;
using VirtioNet.Tests.Fakes;
using VirtioNet.Transports;
using VirtioNet.Transports.Mmio;
using VirtioNet.Transports.Pci;
using Xunit;

namespace VirtioNet.Tests.Transports;

/// <summary>
/// VIRTIO_F_NOTIF_CONFIG_DATA: on modern virtio-pci the notifications carry each queue's queue_notif_config_data instead
/// of its index, alone or inside the VIRTIO_F_NOTIFICATION_DATA value; other transports never accept the feature. No
/// peer here offers it (QEMU 7.2/10.0, DPDK 22.11), so the register windows are laid out as QEMU lays them out, with the
/// field set by the test. Ref: virtio v1.3 §4.1.4.3, §4.1.5.2, §6.
/// </summary>
public sealed class PciNotifConfigDataTests
{
    // BAR 4 offsets of the structures (PciConfigSpaceBuilder.ModernNet).
    private const int Common = 0x0000;
    private const int Notify = 0x3000;

    private static (PciTestWindow Config, PciTestWindow Bar1, PciTestWindow Bar4) Function()
    {
        PciTestWindow config = PciConfigSpaceBuilder.ModernNet();
        var bar1 = new PciTestWindow(0x1000);
        var bar4 = new PciTestWindow(0x4000);
        bar4.Set16(Common + 0x12, 3);      // num_queues
        bar4.Set16(Common + 0x18, 256);    // queue_size
        bar4.Set16(Common + 0x1e, 1);      // queue_notify_off of whichever queue is selected
        bar4.Set16(Common + 0x38, 0xBEEF); // queue_notif_config_data of whichever queue is selected
        return (config, bar1, bar4);
    }

    private static VirtioPciModernTransport Open(PciTestWindow config, PciTestWindow bar1, PciTestWindow bar4) =>
        new(new PciFunctionAccess("00:01.0", config, [null, bar1, null, null, bar4, null]), VirtioPciInterruptMode.None);

    [Fact]
    public void WithNotifConfigDataTheNotificationIsTheDevicesValueNotTheQueueIndex()
    {
        var (config, bar1, bar4) = Function();
        using VirtioPciModernTransport transport = Open(config, bar1, bar4);
        Assert.True(transport.SupportsNotifConfigData);
        transport.WriteDriverFeatures(VirtioFeatures.Version1 | VirtioFeatures.NotifConfigData);

        transport.ActivateQueue(1, 256, 0x8010_0000, 0x8010_1000, 0x8010_2000);
        transport.Notify(1);

        Assert.Contains((Notify + 4UL, 2, 0xBEEFUL), bar4.Writes);
        Assert.DoesNotContain(bar4.Writes, w => w.Offset == Notify + 4UL && w.Value == 1);
    }

    [Fact]
    public void WithNotificationDataTooTheDevicesValueReplacesTheQueueIndexInTheLow16Bits()
    {
        var (config, bar1, bar4) = Function();
        using VirtioPciModernTransport transport = Open(config, bar1, bar4);
        transport.WriteDriverFeatures(VirtioFeatures.Version1 | VirtioFeatures.NotifConfigData | VirtioFeatures.NotificationData);

        transport.ActivateQueue(1, 256, 0x8010_0000, 0x8010_1000, 0x8010_2000);
        transport.Notify(1, 0x8005_0001);   // next_wrap 1, next_off 5, vq_index 1 as the queue describes itself

        Assert.Contains((Notify + 4UL, 4, 0x8005_BEEFUL), bar4.Writes);
    }

    [Fact]
    public void WithoutTheFeatureTheFieldIsNotReadAndTheIndexIsWritten()
    {
        var (config, bar1, bar4) = Function();
        using VirtioPciModernTransport transport = Open(config, bar1, bar4);
        transport.WriteDriverFeatures(VirtioFeatures.Version1 | VirtioFeatures.NotificationData);

        transport.ActivateQueue(1, 256, 0x8010_0000, 0x8010_1000, 0x8010_2000);
        transport.Notify(1);
        transport.Notify(1, 0x0003_0001);

        Assert.Contains((Notify + 4UL, 2, 1UL), bar4.Writes);
        Assert.Contains((Notify + 4UL, 4, 0x0003_0001UL), bar4.Writes);
    }

    [Fact]
    public void EachQueueKeepsTheValueReadWhenItWasActivated()
    {
        var (config, bar1, bar4) = Function();
        using VirtioPciModernTransport transport = Open(config, bar1, bar4);
        transport.WriteDriverFeatures(VirtioFeatures.Version1 | VirtioFeatures.NotifConfigData);

        bar4.Set16(Common + 0x38, 0x0100);
        transport.ActivateQueue(0, 256, 0x8010_0000, 0x8010_1000, 0x8010_2000);
        bar4.Set16(Common + 0x38, 0x0200);
        bar4.Set16(Common + 0x1c, 0);   // the test window has one register per field, not one per selected queue
        transport.ActivateQueue(1, 256, 0x8011_0000, 0x8011_1000, 0x8011_2000);
        transport.Notify(0);
        transport.Notify(1);

        Assert.Equal([0x0100UL, 0x0200UL], bar4.Writes.Where(w => w.Offset == Notify + 4UL).Select(w => w.Value));
    }

    [Fact]
    public void ACommonStructureTooShortForTheFieldCannotCarryTheFeature()
    {
        var (config, bar1, bar4) = Function();
        config.Set32(0x40 + 12, 0x38);   // common configuration length: up to queue_device only (virtio 1.0)
        using VirtioPciModernTransport transport = Open(config, bar1, bar4);

        Assert.False(transport.SupportsNotifConfigData);
        transport.WriteDriverFeatures(VirtioFeatures.Version1 | VirtioFeatures.NotifConfigData);
        transport.ActivateQueue(1, 256, 0x8010_0000, 0x8010_1000, 0x8010_2000);
        transport.Notify(1);
        Assert.Contains((Notify + 4UL, 2, 1UL), bar4.Writes);
    }

    [Fact]
    public void NegotiationAcceptsNotifConfigDataOnlyWhereTheTransportCarriesIt()
    {
        // The software transport, like virtio-mmio and vhost-user, has no per-queue notification value.
        var software = new SoftwareNetTransport(VirtioFeatures.Version1 | VirtioFeatures.NotifConfigData | VirtioNetFeatures.Mac);
        ulong accepted = VirtioDeviceInitializer.Negotiate(software, 1, new VirtioNetOptions().SupportedFeatures);
        Assert.Equal(0UL, accepted & VirtioFeatures.NotifConfigData);
        Assert.False(((IVirtioTransport)software).SupportsNotifConfigData);

        var (config, bar1, bar4) = Function();
        using VirtioPciModernTransport pci = Open(config, bar1, bar4);
        var offering = new OfferingTransport(pci, VirtioFeatures.Version1 | VirtioFeatures.NotifConfigData | VirtioNetFeatures.Mac);
        ulong onPci = VirtioDeviceInitializer.Negotiate(offering, 1, new VirtioNetOptions().SupportedFeatures);
        Assert.NotEqual(0UL, onPci & VirtioFeatures.NotifConfigData);

        ulong disabled = VirtioDeviceInitializer.Negotiate(offering, 1, new VirtioNetOptions { DisabledFeatures = VirtioFeatures.NotifConfigData }.SupportedFeatures);
        Assert.Equal(0UL, disabled & VirtioFeatures.NotifConfigData);
    }

    [Fact]
    public void OnVirtioMmioTheFeatureIsNeverAcceptedAndNotificationsCarryTheQueueIndex()
    {
        // §4.2.3.3: virtio-mmio's QueueNotify carries the queue index; the spec gives mmio no notification config data.
        var device = new SoftwareMmioDevice { OfferedFeatures = VirtioFeatures.Version1 | VirtioFeatures.NotifConfigData | VirtioNetFeatures.Mac };
        var transport = new VirtioMmioTransport(device, 0x10008000, null);

        ulong accepted = VirtioDeviceInitializer.Negotiate(transport, 1, new VirtioNetOptions().SupportedFeatures);
        transport.ActivateQueue(1, 128, 0x8100_0000, 0x8100_0800, 0x8100_1000);
        transport.Notify(1);

        Assert.Equal(0UL, accepted & VirtioFeatures.NotifConfigData);
        Assert.Equal(0UL, device.DriverFeatures & VirtioFeatures.NotifConfigData);
        Assert.Equal([1u], device.Notifications);
    }

    /// <summary>The PCI transport with the feature words and status replaced, to drive negotiation over it.</summary>
    private sealed class OfferingTransport(VirtioPciModernTransport pci, ulong offered) : IVirtioTransport
    {
        private VirtioDeviceStatus _status;

        public string Description => pci.Description;

        public bool IsLegacy => false;

        public uint DeviceId => 1;

        public uint VendorId => pci.VendorId;

        public int LegacyQueueAlign => 0;

        public VirtioNet.Platform.IInterruptLine? Interrupt => null;

        public bool SupportsNotifConfigData => pci.SupportsNotifConfigData;

        public VirtioDeviceStatus ReadStatus() => _status;

        public void WriteStatus(VirtioDeviceStatus status) => _status = status;

        public ulong ReadDeviceFeatures() => offered;

        public void WriteDriverFeatures(ulong features) => pci.WriteDriverFeatures(features);

        public int GetQueueSizeMax(int queueIndex) => pci.GetQueueSizeMax(queueIndex);

        public bool IsQueueActive(int queueIndex) => pci.IsQueueActive(queueIndex);

        public void ActivateQueue(int queueIndex, int size, ulong descriptorArea, ulong driverArea, ulong deviceArea) => pci.ActivateQueue(queueIndex, size, descriptorArea, driverArea, deviceArea);

        public void DeactivateQueue(int queueIndex) => pci.DeactivateQueue(queueIndex);

        public void Notify(int queueIndex) => pci.Notify(queueIndex);

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
