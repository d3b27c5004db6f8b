using VirtioNet.Core;
using VirtioNet.Net;
using VirtioNet.Net.Control;
using VirtioNet.Platform;
using VirtioNet.Transports;
using VirtioNet.Virtqueues;

namespace VirtioNet.Tests.Fakes;

/// <summary>
/// A software multi-queue virtio-net device behind one shared, level-triggered interrupt line (as virtio-mmio or INTx
/// give): an ISR whose bits <see cref="Signal"/> sets and raises the line, read-and-cleared by
/// <see cref="ReadAndAcknowledgeInterrupt"/>, which lowers it. Control commands are answered OK as they are kicked.
/// Everything else comes from <see cref="SoftwareNetTransport"/>. Not a real device: it plays one for the dispatch logic.
/// </summary>
internal sealed class SoftwareSharedLineTransport : IVirtioTransport
{
    private readonly SoftwareNetTransport _inner;
    private readonly HeapDmaAllocator _memory;
    private readonly int _controlIndex;
    private readonly SoftwareInterruptLine _line = new();
    private readonly object _isrLock = new();
    private SoftwareSplitDevice? _control;
    private SoftwarePackedDevice? _packedControl;
    private int _isr;
    private int _acknowledgements;

    public SoftwareSharedLineTransport(SoftwareNetTransport inner, HeapDmaAllocator memory, int pairs)
    {
        _inner = inner;
        _memory = memory;
        _controlIndex = 2 * pairs;
        System.Buffers.Binary.BinaryPrimitives.WriteUInt16LittleEndian(inner.Config.AsSpan(VirtioNetConfig.MaxVirtqueuePairsOffset), (ushort)pairs);
        inner.QueueSizeMax.Clear();
        for (int i = 0; i <= _controlIndex; i++)
        {
            inner.QueueSizeMax[i] = i == _controlIndex ? 64 : 256;
        }
    }

    public SoftwareNetTransport Inner => _inner;

    public SoftwareInterruptLine Line => _line;

    /// <summary>ISR reads (each one acknowledges).</summary>
    public int Acknowledgements => Volatile.Read(ref _acknowledgements);

    public string Description => "software multi-queue virtio-net behind one shared line (test)";

    public bool IsLegacy => false;

    public uint DeviceId => 1;

    public uint VendorId => 0;

    public int LegacyQueueAlign => 0;

    public IInterruptLine? Interrupt => _line;

    /// <summary>The device signals: sets the ISR bits and raises the line.</summary>
    public void Signal(InterruptCause cause)
    {
        lock (_isrLock)
        {
            _isr |= (int)cause;
            _line.Raise();
        }
    }

    public InterruptCause ReadAndAcknowledgeInterrupt()
    {
        lock (_isrLock)
        {
            Interlocked.Increment(ref _acknowledgements);
            var cause = (InterruptCause)_isr;
            _isr = 0;
            _line.Lower();
            return cause;
        }
    }

    public VirtioDeviceStatus ReadStatus() => _inner.ReadStatus();

    public void WriteStatus(VirtioDeviceStatus status) => _inner.WriteStatus(status);

    public ulong ReadDeviceFeatures() => _inner.ReadDeviceFeatures();

    public void WriteDriverFeatures(ulong features) => _inner.WriteDriverFeatures(features);

    public int GetQueueSizeMax(int queueIndex) => _inner.GetQueueSizeMax(queueIndex);

    public bool IsQueueActive(int queueIndex) => _inner.IsQueueActive(queueIndex);

    public void ActivateQueue(int queueIndex, int size, ulong descriptorArea, ulong driverArea, ulong deviceArea)
    {
        _inner.ActivateQueue(queueIndex, size, descriptorArea, driverArea, deviceArea);
        if (queueIndex == _controlIndex)
        {
            var areas = new QueueAreas(queueIndex, size, descriptorArea, driverArea, deviceArea);
            if ((_inner.DriverFeatures & VirtioFeatures.RingPacked) != 0)
            {
                _packedControl = new SoftwarePackedDevice(_memory, areas, eventIdx: false);
            }
            else
            {
                _control = new SoftwareSplitDevice(_memory, areas, eventIdx: false);
            }
        }
    }

    public void DeactivateQueue(int queueIndex) => _inner.DeactivateQueue(queueIndex);

    public void Notify(int queueIndex)
    {
        if (queueIndex != _controlIndex)
        {
            return;
        }

        DeviceChain? chain;
        while (_control is not null ? _control.TryPop(out chain) : _packedControl is not null && _packedControl.TryPop(out chain))
        {
            uint written = (uint)chain.WriteWritable([VirtioNetControlCommands.AckOk]);
            if (_control is not null)
            {
                _control.Complete(chain, written);
            }
            else
            {
                _packedControl!.Complete(chain, written);
            }
        }
    }

    public uint ReadConfigGeneration() => 0;

    public byte ReadConfig8(int offset) => _inner.ReadConfig8(offset);

    public ushort ReadConfig16(int offset) => _inner.ReadConfig16(offset);

    public uint ReadConfig32(int offset) => _inner.ReadConfig32(offset);

    public void WriteConfig8(int offset, byte value) => _inner.WriteConfig8(offset, value);

    public void Dispose() => _line.Dispose();
}
