using System.Buffers.Binary;
using VirtioNet.Core;
using VirtioNet.Platform;

namespace VirtioNet.Tests.Fakes;

/// <summary>
/// A fault-injecting software virtio-mmio register file (not a real device): it answers register accesses the way
/// §4.2.2 describes, and can be told to lie (wrong magic, refuse FEATURES_OK, report a queue size of 0, odd config values),
/// for failures QEMU cannot be made to produce. It does not process rings.
/// </summary>
internal sealed class SoftwareMmioDevice : IRegisterWindow
{
    private readonly byte[] _config = new byte[0x100];
    private uint _deviceFeaturesSel;
    private uint _driverFeaturesSel;
    private uint _queueSel;

    public uint Magic { get; set; } = 0x74726976;

    public uint Version { get; set; } = 2;

    public uint DeviceId { get; set; } = 1;

    public ulong OfferedFeatures { get; set; }

    public ulong DriverFeatures { get; private set; }

    public bool HighDriverFeatureWordWritten { get; private set; }

    /// <summary>Bits 64 to 127 offered (feature words 2 and 3, bit 64 in bit 0); version 2 only.</summary>
    public ulong OfferedFeaturesHigh { get; set; }

    /// <summary>Bits 64 to 127 the driver wrote with DriverFeaturesSel 2 and 3.</summary>
    public ulong DriverFeaturesHigh { get; private set; }

    /// <summary>Every value written to DeviceFeaturesSel and DriverFeaturesSel, in order.</summary>
    public List<uint> FeatureSelectsWritten { get; } = [];

    /// <summary>
    /// When true, any non-zero feature select acts as 1, as QEMU's virtio-mmio before 10.1 does: words 2 and 3 read
    /// back word 1, and writes to them land in word 1.
    /// </summary>
    public bool FoldsFeatureSelectsAboveOne { get; set; }

    /// <summary>When true, the device clears FEATURES_OK on write: it refuses whatever subset the driver chose.</summary>
    public bool RefuseFeatures { get; set; }

    public uint QueueNumMax { get; set; } = 256;

    public byte Status { get; private set; }

    public List<byte> StatusHistory { get; } = [];

    public uint GuestPageSize { get; private set; }

    public Dictionary<uint, (uint Num, uint Align, uint Pfn, bool Ready, ulong Desc, ulong Driver, ulong Device)> Queues { get; } = [];

    public List<uint> Notifications { get; } = [];

    /// <summary>When true, QueueReset (0x0c0) resets the selected queue (VIRTIO_F_RING_RESET); otherwise the write is ignored, as by a device without the register.</summary>
    public bool SupportsQueueReset { get; set; }

    public List<uint> QueueResets { get; } = [];

    public uint InterruptStatus { get; set; }

    public ulong Length => 0x200;

    public Span<byte> Config => _config;

    public byte Read8(ulong offset) => offset >= 0x100 ? _config[offset - 0x100] : (byte)Read32(offset);

    public ushort Read16(ulong offset) => offset >= 0x100 ? BinaryPrimitives.ReadUInt16LittleEndian(_config.AsSpan((int)offset - 0x100)) : (ushort)Read32(offset);

    public uint Read32(ulong offset)
    {
        if (offset >= 0x100)
        {
            return BinaryPrimitives.ReadUInt32LittleEndian(_config.AsSpan((int)offset - 0x100));
        }

        Queues.TryGetValue(_queueSel, out var q);
        return offset switch
        {
            0x000 => Magic,
            0x004 => Version,
            0x008 => DeviceId,
            0x00c => 0x554d4551,
            0x010 => _deviceFeaturesSel switch
            {
                0 => (uint)OfferedFeatures,
                _ when Version == 1 => 0,
                1 => (uint)(OfferedFeatures >> 32),
                2 => (uint)OfferedFeaturesHigh,
                3 => (uint)(OfferedFeaturesHigh >> 32),
                _ => 0,
            },
            0x034 => QueueNumMax,
            0x040 => q.Pfn,
            0x044 => q.Ready ? 1u : 0u,
            0x060 => InterruptStatus,
            0x070 => Status,
            0x0fc => 0,
            _ => 0,
        };
    }

    public ulong Read64(ulong offset) => Read32(offset) | ((ulong)Read32(offset + 4) << 32);

    public void Write8(ulong offset, byte value) => _config[offset - 0x100] = value;

    public void Write16(ulong offset, ushort value) => throw new NotSupportedException("16-bit register writes are not used by the driver.");

    public void Write32(ulong offset, uint value)
    {
        Queues.TryGetValue(_queueSel, out var q);
        switch (offset)
        {
            case 0x014:
                FeatureSelectsWritten.Add(value);
                _deviceFeaturesSel = FoldsFeatureSelectsAboveOne && value != 0 ? 1 : value;
                break;
            case 0x020:
                if (_driverFeaturesSel == 0)
                {
                    DriverFeatures = (DriverFeatures & 0xFFFF_FFFF_0000_0000UL) | value;
                }
                else if (_driverFeaturesSel == 2)
                {
                    DriverFeaturesHigh = (DriverFeaturesHigh & 0xFFFF_FFFF_0000_0000UL) | value;
                }
                else if (_driverFeaturesSel == 3)
                {
                    DriverFeaturesHigh = (DriverFeaturesHigh & 0xFFFF_FFFFUL) | ((ulong)value << 32);
                }
                else
                {
                    HighDriverFeatureWordWritten = true;
                    DriverFeatures = (DriverFeatures & 0xFFFF_FFFFUL) | ((ulong)value << 32);
                }

                break;
            case 0x024:
                FeatureSelectsWritten.Add(value);
                _driverFeaturesSel = FoldsFeatureSelectsAboveOne && value != 0 ? 1 : value;
                break;
            case 0x028: GuestPageSize = value; break;
            case 0x030: _queueSel = value; break;
            case 0x038: Queues[_queueSel] = q with { Num = value }; break;
            case 0x03c: Queues[_queueSel] = q with { Align = value }; break;
            case 0x040: Queues[_queueSel] = q with { Pfn = value }; break;
            case 0x044: Queues[_queueSel] = q with { Ready = value != 0 }; break;
            case 0x050: Notifications.Add(value); break;
            case 0x0c0 when SupportsQueueReset && value == 1:
                QueueResets.Add(_queueSel);
                Queues[_queueSel] = default;
                break;
            case 0x064: InterruptStatus &= ~value; break;
            case 0x070:
                byte status = (byte)value;
                if (RefuseFeatures)
                {
                    status &= unchecked((byte)~(byte)VirtioDeviceStatus.FeaturesOk);
                }

                Status = status;
                StatusHistory.Add(status);
                if (status == 0)
                {
                    Queues.Clear();
                }

                break;
            case 0x080: Queues[_queueSel] = q with { Desc = (q.Desc & ~0xFFFF_FFFFUL) | value }; break;
            case 0x084: Queues[_queueSel] = q with { Desc = (q.Desc & 0xFFFF_FFFFUL) | ((ulong)value << 32) }; break;
            case 0x090: Queues[_queueSel] = q with { Driver = (q.Driver & ~0xFFFF_FFFFUL) | value }; break;
            case 0x094: Queues[_queueSel] = q with { Driver = (q.Driver & 0xFFFF_FFFFUL) | ((ulong)value << 32) }; break;
            case 0x0a0: Queues[_queueSel] = q with { Device = (q.Device & ~0xFFFF_FFFFUL) | value }; break;
            case 0x0a4: Queues[_queueSel] = q with { Device = (q.Device & 0xFFFF_FFFFUL) | ((ulong)value << 32) }; break;
            default: break;
        }
    }

    public void Write64(ulong offset, ulong value) => throw new NotSupportedException("64-bit register writes are not used by the driver.");
}
