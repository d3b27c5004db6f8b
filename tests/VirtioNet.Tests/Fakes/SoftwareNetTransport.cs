using System.Buffers.Binary;
using VirtioNet.Core;
using VirtioNet.Platform;
using VirtioNet.Transports;

namespace VirtioNet.Tests.Fakes;

/// <summary>
/// A fault-injecting software transport for a virtio-net device (not a real device): feature words, status with an
/// optional FEATURES_OK refusal, a configuration space the test writes, queue sizes the test chooses (0 included).
/// The rings themselves are served by <see cref="SoftwareSplitDevice"/> attached to the driver's queues.
/// </summary>
internal sealed class SoftwareNetTransport : IVirtioTransport
{
    public SoftwareNetTransport(ulong offered, bool legacy = false)
    {
        OfferedFeatures = offered;
        IsLegacy = legacy;
        BinaryPrimitives.WriteUInt16LittleEndian(Config.AsSpan(6), 1); // VIRTIO_NET_S_LINK_UP
        new byte[] { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 }.CopyTo(Config, 0);
    }

    public ulong OfferedFeatures { get; set; }

    public ulong DriverFeatures { get; private set; }

    public bool RefuseFeatures { get; set; }

    public byte[] Config { get; } = new byte[64];

    public Dictionary<int, int> QueueSizeMax { get; } = new() { [0] = 256, [1] = 256, [2] = 64 };

    public Dictionary<int, (int Size, ulong Desc, ulong Driver, ulong Device)> ActiveQueues { get; } = [];

    // Counted, not listed, so notifying allocates nothing (the driver's zero-allocation tests measure across it).
    public int[] NotificationCounts { get; } = new int[260];

    public List<VirtioDeviceStatus> StatusHistory { get; } = [];

    public VirtioDeviceStatus Status { get; private set; }

    public InterruptCause PendingCause { get; set; }

    public string Description => "software virtio-net (test)";

    public bool IsLegacy { get; }

    public uint DeviceId { get; set; } = 1;

    public uint VendorId => 0;

    public int LegacyQueueAlign => IsLegacy ? 4096 : 0;

    public IInterruptLine? Interrupt { get; set; }

    public VirtioDeviceStatus ReadStatus() => Status;

    public void WriteStatus(VirtioDeviceStatus status)
    {
        if (RefuseFeatures)
        {
            status &= ~VirtioDeviceStatus.FeaturesOk;
        }

        Status = status;
        StatusHistory.Add(status);
        if (status == VirtioDeviceStatus.Reset)
        {
            ActiveQueues.Clear();
        }
    }

    public ulong ReadDeviceFeatures() => IsLegacy ? OfferedFeatures & 0xFFFF_FFFF : OfferedFeatures;

    public void WriteDriverFeatures(ulong features) => DriverFeatures = features;

    /// <summary>Bits 64 to 127 offered (feature words 2 and 3, bit 64 in bit 0); a legacy transport never shows them.</summary>
    public ulong OfferedFeaturesHigh { get; set; }

    /// <summary>Bits 64 to 127 the driver wrote; null until it writes words 2 and 3.</summary>
    public ulong? DriverFeaturesHigh { get; private set; }

    /// <summary>How often feature words 2 and 3 were read.</summary>
    public int HighFeatureReads { get; private set; }

    public ulong ReadDeviceFeaturesHigh()
    {
        HighFeatureReads++;
        return IsLegacy ? 0 : OfferedFeaturesHigh;
    }

    public void WriteDriverFeaturesHigh(ulong features) => DriverFeaturesHigh = features;

    public int GetQueueSizeMax(int queueIndex) => QueueSizeMax.GetValueOrDefault(queueIndex);

    public bool IsQueueActive(int queueIndex) => ActiveQueues.ContainsKey(queueIndex);

    /// <summary>Called on the driver's thread as each queue is activated: lets a test attach a device to a queue before <c>Open</c> returns.</summary>
    public Action<int, int, ulong, ulong, ulong>? QueueActivated { get; set; }

    // How many queue activations there were: a device serving a ring from another thread starts over when it changes.
    public int Activations => Volatile.Read(ref _activations);

    private int _activations;

    public void ActivateQueue(int queueIndex, int size, ulong descriptorArea, ulong driverArea, ulong deviceArea)
    {
        ActiveQueues[queueIndex] = (size, descriptorArea, driverArea, deviceArea);
        QueueActivated?.Invoke(queueIndex, size, descriptorArea, driverArea, deviceArea);
        Interlocked.Increment(ref _activations);
    }

    public void DeactivateQueue(int queueIndex) => ActiveQueues.Remove(queueIndex);

    /// <summary>Called on the driver's thread after every notification: lets a test serve a ring at once (the control queue, say).</summary>
    public Action<int>? Notified { get; set; }

    public void Notify(int queueIndex)
    {
        NotificationCounts[queueIndex]++;
        Notified?.Invoke(queueIndex);
    }

    // VIRTIO_F_NOTIFICATION_DATA: counted apart from bare notifications, with the last value per queue.
    public int[] DataNotificationCounts { get; } = new int[260];

    public uint[] LastNotificationData { get; } = new uint[260];

    public void Notify(int queueIndex, uint notificationData)
    {
        DataNotificationCounts[queueIndex]++;
        LastNotificationData[queueIndex] = notificationData;
        Notified?.Invoke(queueIndex);
    }

    // VIRTIO_F_RING_RESET: the queue leaves the active set until it is activated again.
    public List<int> QueueResets { get; } = [];

    public void ResetQueue(int queueIndex)
    {
        QueueResets.Add(queueIndex);
        ActiveQueues.Remove(queueIndex);
    }

    /// <summary>
    /// Plays a device that hit an error it cannot get out of alone (§2.1.2): sets DEVICE_NEEDS_RESET and raises a
    /// configuration change, as QEMU's virtio_error does on a modern device.
    /// </summary>
    public void RequestReset()
    {
        Status |= VirtioDeviceStatus.DeviceNeedsReset;
        PendingCause |= InterruptCause.ConfigurationChange;
    }

    public InterruptCause ReadAndAcknowledgeInterrupt()
    {
        InterruptCause cause = PendingCause;
        PendingCause = InterruptCause.None;
        return cause;
    }

    /// <summary>The configuration generation the device shows (§2.5.1); a test moves it to play a configuration change.</summary>
    public uint ConfigGeneration { get; set; }

    /// <summary>Reads of the generation left during which it moves on every read (a device whose configuration never settles).</summary>
    public int UnsettledGenerationReads { get; set; }

    public uint ReadConfigGeneration()
    {
        if (UnsettledGenerationReads > 0)
        {
            UnsettledGenerationReads--;
            ConfigGeneration++;
        }

        return ConfigGeneration;
    }

    public byte ReadConfig8(int offset) => Config[offset];

    public ushort ReadConfig16(int offset) => BinaryPrimitives.ReadUInt16LittleEndian(Config.AsSpan(offset));

    public uint ReadConfig32(int offset) => BinaryPrimitives.ReadUInt32LittleEndian(Config.AsSpan(offset));

    public void WriteConfig8(int offset, byte value) => Config[offset] = value;

    public void Dispose()
    {
    }
}
