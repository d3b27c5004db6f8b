using System.Buffers.Binary;
using System.Diagnostics;
using VirtioNet.Core;
using VirtioNet.Net;
using VirtioNet.Net.Filtering;
using VirtioNet.Tests.Fakes;
using VirtioNet.Transports;
using VirtioNet.Virtqueues;

namespace VirtioNet.Tests.Fuzzing;

/// <summary>
/// A seeded generator of hostile device behaviour, played against the real <see cref="VirtioNetDevice"/> over a
/// fault-injecting software transport (<see cref="SoftwareNetTransport"/>) and guard-byte DMA memory
/// (<see cref="HeapDmaAllocator"/>). One case is one seed: it picks the features offered, the configuration space and
/// the queue sizes, opens the driver, then runs a sequence of steps, each either something the device does (used ids
/// and lengths honest or not, used index jumps, packed flags and skips, virtio-net headers with any gso, csum and
/// num_buffers fields, configuration values and generation changes, interrupt causes, DEVICE_NEEDS_RESET,
/// control-queue acks of every kind) or something the driver is asked to do (send, receive, process events, reclaim,
/// control commands, recover). The device side of every ring is the library's <see cref="DeviceSplitRing"/> or
/// <see cref="DevicePackedRing"/>.
/// </summary>
/// <remarks>
/// After every step: the guard bytes of every DMA allocation are intact, the step took less than
/// <see cref="StepBound"/>, and anything thrown is a <see cref="VirtioException"/>. Received frames never exceed the
/// driver's own maximum. The device-side rings check what the driver wrote, so a driver that published a malformed
/// chain is a finding too (unless the fuzzer itself scribbled over that queue's descriptors). A case is deterministic
/// in its seed, so a failing seed is a complete reproduction.
/// </remarks>
internal sealed class HostileDeviceFuzzer
{
    /// <summary>The longest any single step may take before it counts as a hang.</summary>
    public static readonly TimeSpan StepBound = TimeSpan.FromSeconds(10);

    // Features a case may offer: everything the software transport can stand behind without a second device.
    private static readonly ulong[] FeaturePool =
    [
        VirtioFeatures.Version1, VirtioFeatures.Version1, VirtioFeatures.EventIdx, VirtioFeatures.IndirectDesc, VirtioFeatures.RingPacked,
        VirtioFeatures.InOrder, VirtioNetFeatures.Mac, VirtioNetFeatures.Status, VirtioNetFeatures.MrgRxBuf, VirtioNetFeatures.Mtu,
        VirtioNetFeatures.Csum, VirtioNetFeatures.GuestCsum, VirtioNetFeatures.GuestTso4, VirtioNetFeatures.GuestTso6,
        VirtioNetFeatures.GuestEcn, VirtioNetFeatures.GuestUfo, VirtioNetFeatures.HostTso4, VirtioNetFeatures.HostTso6,
        VirtioNetFeatures.HostEcn, VirtioNetFeatures.CtrlVq, VirtioNetFeatures.CtrlRx, VirtioNetFeatures.CtrlVlan,
        VirtioNetFeatures.CtrlGuestOffloads, VirtioNetFeatures.CtrlMacAddr, VirtioNetFeatures.GuestAnnounce, VirtioNetFeatures.Mq,
        VirtioNetFeatures.SpeedDuplex, VirtioNetFeatures.GuestUso4, VirtioNetFeatures.HostUso, VirtioNetFeatures.HashReport,
        VirtioNetFeatures.Gso,
    ];

    private readonly Random _random;
    private readonly HeapDmaAllocator _memory = new();
    private readonly SoftwareNetTransport _transport;
    private readonly Dictionary<int, FuzzRing> _rings = [];
    private readonly byte[] _receiveBuffer = new byte[70_000];
    private readonly List<string> _trail = [];
    private VirtioNetDevice? _net;

    // How the next control commands are answered.
    private ControlAnswer _controlAnswer;

    // The control queue's index as the device counts queues (2 × max_virtqueue_pairs with MQ, else 2).
    private int _controlIndex = 2;

    private HostileDeviceFuzzer(int seed)
    {
        Seed = seed;
        _random = new Random(seed);
        ulong offered = 0;
        int count = _random.Next(3, FeaturePool.Length);
        for (int i = 0; i < count; i++)
        {
            offered |= FeaturePool[_random.Next(FeaturePool.Length)];
        }

        _transport = new SoftwareNetTransport(offered, legacy: _random.Next(16) == 0);
        _random.NextBytes(_transport.Config.AsSpan(0, 6));
        ushort pairs = Pick<ushort>(1, 1, 2, 3, 0, 0x8000, 0x8001, 0xFFFF);
        BinaryPrimitives.WriteUInt16LittleEndian(_transport.Config.AsSpan(VirtioNetConfig.MaxVirtqueuePairsOffset), pairs);
        BinaryPrimitives.WriteUInt16LittleEndian(_transport.Config.AsSpan(VirtioNetConfig.MtuOffset), Pick<ushort>(1500, 9000, 0, 1, 67, 68, 65535, (ushort)_random.Next(65536)));
        BinaryPrimitives.WriteUInt16LittleEndian(_transport.Config.AsSpan(VirtioNetConfig.StatusOffset), Pick<ushort>(1, 1, 0, 2, 3, 0xFFFF));
        BinaryPrimitives.WriteUInt32LittleEndian(_transport.Config.AsSpan(VirtioNetConfig.SpeedOffset), Pick(10_000u, uint.MaxValue, 0u, (uint)_random.Next()));
        _transport.Config[VirtioNetConfig.DuplexOffset] = Pick<byte>(1, 0, 0xFF, 7);
        if (_random.Next(4) == 0)
        {
            _random.NextBytes(_transport.Config.AsSpan(VirtioNetConfig.RssMaxKeySizeOffset));
        }

        _transport.QueueSizeMax.Clear();
        for (int queue = 0; queue < 10; queue++)
        {
            _transport.QueueSizeMax[queue] = Pick(256, 64, 8, 4, 2, 1, 0, 3, 100, 32768, 65535);
        }

        _transport.RefuseFeatures = _random.Next(32) == 0;
        _transport.QueueActivated = Attach;
        _transport.Notified = OnNotified;
    }

    private enum ControlAnswer
    {
        Ok,
        Error,
        AnyByte,
        NoAckWritten,
        WrongUsedLength,
        WrongUsedId,
        NeverCompleted,
    }

    /// <summary>The case's seed.</summary>
    public int Seed { get; }

    /// <summary>Device behaviours played so far.</summary>
    public long Behaviours { get; private set; }

    /// <summary>Driver errors (VirtioException) seen, all allowed.</summary>
    public long DriverErrors { get; private set; }

    /// <summary>
    /// Runs the case of <paramref name="seed"/> for up to <paramref name="steps"/> steps; returns it with its counts, or
    /// throws <see cref="FuzzFailure"/> naming the seed, the step and the trail of what happened.
    /// </summary>
    public static HostileDeviceFuzzer Run(int seed, int steps)
    {
        var fuzzer = new HostileDeviceFuzzer(seed);
        try
        {
            fuzzer.RunCase(steps);
        }
        finally
        {
            fuzzer.Close();
        }

        return fuzzer;
    }

    private void RunCase(int steps)
    {
        var options = new VirtioNetOptions
        {
            OperationMode = OperationMode.Poll,
            AutoRecover = _random.Next(2) == 0,
            ControlCommandTimeout = TimeSpan.FromMilliseconds(20),
            QueuePairs = _random.Next(1, 4),
            MaxQueueSize = Pick(256, 256, 8, 16),
            Offloads = _random.Next(2) == 0,
        };
        if (!Step("open", () => _net = VirtioNetDevice.Open(_transport, _memory, options)) || _net is null)
        {
            return;
        }

        for (int step = 0; step < steps; step++)
        {
            if (_net.RecoveryFailure is not null && _random.Next(4) != 0)
            {
                // A device the driver gave up on: only the caller's Recover or Dispose are left to try.
                Step("recover after failure", _net.Recover);
                continue;
            }

            PlayOne();
        }
    }

    // One step: mostly device behaviour, then the driver looking at it.
    private void PlayOne()
    {
        VirtioNetDevice net = _net!;
        int choice = _random.Next(100);
        switch (choice)
        {
            case < 22:
                Device("complete receive", () => CompleteReceive(honest: _random.Next(3) != 0));
                break;
            case < 30:
                Device("complete transmit", () => CompleteTransmit(honest: _random.Next(3) != 0));
                break;
            case < 36:
                Device("lie about a used entry", LieAboutUsed);
                break;
            case < 40:
                Device("configuration change", ChangeConfiguration);
                break;
            case < 43:
                Device("interrupt cause", () => _transport.PendingCause = (InterruptCause)_random.Next(8));
                break;
            case < 44:
                Device("needs reset", _transport.RequestReset);
                break;
            case < 46:
                Device("control answer", () => _controlAnswer = (ControlAnswer)_random.Next(Enum.GetValues<ControlAnswer>().Length));
                break;
            case < 47:
                Device("scribble over a descriptor", ScribbleOverDescriptor);
                break;
            case < 60:
                Step("send", () =>
                {
                    int max = net.Pairs[0].MaxTransmitFrameLength;
                    int length = Math.Clamp(Pick(60, 14, 1514, 9014, 65550, max, _random.Next(2000)), 14, max);
                    byte[] frame = new byte[length];
                    _random.NextBytes(frame);
                    net.Pairs[0].TrySend(frame);
                });
                break;
            case < 76:
                Step("receive", () =>
                {
                    int length = Pick(_receiveBuffer.Length, net.Pairs[0].MaxReceiveFrameLength);
                    if (net.Pairs[0].TryReceive(_receiveBuffer.AsSpan(0, Math.Min(length, _receiveBuffer.Length)), out int received)
                        && (received < 0 || received > net.Pairs[0].MaxReceiveFrameLength))
                    {
                        throw new FuzzFailure(Seed, $"a received frame of {received} bytes, above the driver's maximum {net.Pairs[0].MaxReceiveFrameLength}", _trail);
                    }
                });
                break;
            case < 84:
                Step("process events", net.ProcessEvents);
                break;
            case < 88:
                Step("reclaim", () => net.Pairs[0].Reclaim());
                break;
            case < 90:
                Step("check health", () => net.CheckHealth());
                break;
            case < 91:
                Step("check link", () => net.CheckLink());
                break;
            case < 97:
                ControlCommand(net);
                break;
            default:
                Step("recover", net.Recover);
                break;
        }
    }

    private void ControlCommand(VirtioNetDevice net)
    {
        ulong features = net.NegotiatedFeatures.Low;
        switch (_random.Next(5))
        {
            case 0 when (features & VirtioNetFeatures.CtrlRx) != 0:
                Step("promiscuous", () => net.Control.SetPromiscuous(_random.Next(2) == 0));
                break;
            case 1 when (features & VirtioNetFeatures.CtrlVlan) != 0:
                Step("add vlan", () => net.Control.AddVlan(_random.Next(1, 4095)));
                break;
            case 2 when (features & VirtioNetFeatures.CtrlMacAddr) != 0:
                Step("set mac", () => net.Control.SetMacAddress(new System.Net.NetworkInformation.PhysicalAddress([0x02, 0, 0, 0, 0, (byte)_random.Next(256)])));
                break;
            case 3 when (features & VirtioNetFeatures.CtrlGuestOffloads) != 0:
                Step("guest offloads", () => net.Control.SetGuestOffloads(net.Control.GuestOffloads & (ulong)_random.NextInt64()));
                break;
            case 4 when (features & VirtioNetFeatures.Mq) != 0:
                Step("active pairs", () => net.Control.SetActiveQueuePairs(_random.Next(1, net.Pairs.Count + 1)));
                break;
            case 0 when (features & VirtioNetFeatures.CtrlRx) != 0:
                Step("receive mode", () => net.Control.SetReceiveMode((ReceiveFilterFlags)_random.Next(64)));
                break;
            default:
                Step("process events", net.ProcessEvents);
                break;
        }
    }

    // A device-side behaviour: counted, and run as a step.
    private void Device(string what, Action action)
    {
        Behaviours++;
        Step(what, action);
    }

    // Runs one step; true when it completed without a driver error.
    private bool Step(string what, Action action)
    {
        if (_trail.Count == 64)
        {
            _trail.RemoveAt(0);
        }

        _trail.Add(what);
        long started = Stopwatch.GetTimestamp();
        bool completed = false;
        try
        {
            action();
            completed = true;
        }
        catch (VirtioException)
        {
            DriverErrors++;
        }
        catch (FuzzFailure)
        {
            throw;
        }
        catch (Exception error)
        {
            throw new FuzzFailure(Seed, $"'{what}' threw {error.GetType().Name}: {error.Message}", _trail, error);
        }

        if (Stopwatch.GetElapsedTime(started) > StepBound)
        {
            throw new FuzzFailure(Seed, $"'{what}' took {Stopwatch.GetElapsedTime(started).TotalSeconds:F1} s (a hang)", _trail);
        }

        if (!_memory.AllGuardsIntact())
        {
            throw new FuzzFailure(Seed, $"after '{what}' a guard byte around a DMA allocation was overwritten", _trail);
        }

        return completed;
    }

    // The driver activated a queue: the device attaches its side of the ring there.
    private void Attach(int index, int size, ulong descriptors, ulong driverArea, ulong deviceArea)
    {
        bool packed = (_transport.DriverFeatures & VirtioFeatures.RingPacked) != 0;
        bool eventIdx = (_transport.DriverFeatures & VirtioFeatures.EventIdx) != 0;
        bool mq = (_transport.DriverFeatures & VirtioNetFeatures.Mq) != 0;
        _controlIndex = mq ? 2 * BinaryPrimitives.ReadUInt16LittleEndian(_transport.Config.AsSpan(VirtioNetConfig.MaxVirtqueuePairsOffset)) : 2;
        try
        {
            _rings[index] = new FuzzRing(_memory, size, descriptors, driverArea, deviceArea, eventIdx, packed);
        }
        catch (VirtioException error)
        {
            throw new FuzzFailure(Seed, $"the driver set up queue {index} (size {size}) outside its own memory: {error.Message}", _trail, error);
        }
    }

    private void OnNotified(int index)
    {
        if (index == _controlIndex && _rings.TryGetValue(index, out FuzzRing? ring))
        {
            Behaviours++;
            ServeControl(ring);
        }
    }

    private void ServeControl(FuzzRing ring)
    {
        ring.PopAll(this);
        while (ring.Held.Count > 0)
        {
            FuzzChain chain = ring.Held[0];
            ring.Held.RemoveAt(0);
            DeviceBuffer? ack = null;
            foreach (DeviceBuffer buffer in chain.Buffers)
            {
                if (buffer.Writable && buffer.Length > 0)
                {
                    ack = buffer;
                }
            }

            switch (_controlAnswer)
            {
                case ControlAnswer.NeverCompleted:
                    ring.Forgotten.Add(chain);
                    continue;
                case ControlAnswer.NoAckWritten:
                    ring.Complete(chain, 0);
                    continue;
                case ControlAnswer.WrongUsedId:
                    ring.Lie(chain, (uint)_random.Next(70_000), 1);
                    continue;
            }

            byte value = _controlAnswer switch
            {
                ControlAnswer.Ok => 0,
                ControlAnswer.Error => 1,
                _ => (byte)_random.Next(256),
            };
            if (ack is { } at && _memory.TryTranslate(at.Address + at.Length - 1, 1, out _))
            {
                _memory.Map(at.Address + at.Length - 1, 1)[0] = value;
            }

            ring.Complete(chain, _controlAnswer == ControlAnswer.WrongUsedLength ? (uint)_random.Next() : 1);
        }
    }

    private FuzzRing? PickRing(bool receive)
    {
        var candidates = new List<FuzzRing>();
        foreach ((int index, FuzzRing ring) in _rings)
        {
            if (index != _controlIndex && (index % 2 == 0) == receive)
            {
                candidates.Add(ring);
            }
        }

        return candidates.Count == 0 ? null : candidates[_random.Next(candidates.Count)];
    }

    private void CompleteReceive(bool honest)
    {
        if (PickRing(receive: true) is not { } ring)
        {
            return;
        }

        ring.PopAll(this);
        if (ring.Held.Count == 0)
        {
            return;
        }

        // A frame, led by a virtio-net header whose fields are honest or anything at all.
        int headerLength = _net?.HeaderLength ?? 12;
        int frameLength = Pick(60, 1514, 14, 0, 4000, 9014, 65535, _random.Next(3000));
        byte[] bytes = new byte[headerLength + frameLength];
        _random.NextBytes(bytes);
        if (honest)
        {
            bytes.AsSpan(0, headerLength).Clear();
        }

        int chains = Math.Min(ring.Held.Count, Pick(1, 1, 1, 2, 3, _random.Next(1, 20)));
        if (headerLength >= VirtioNetHeader.Length)
        {
            ushort numBuffers = honest ? (ushort)chains : Pick<ushort>((ushort)chains, 0, 1, (ushort)(chains + 1), 0xFFFF, (ushort)_random.Next(65536));
            BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan(VirtioNetHeader.NumBuffersOffset), numBuffers);
        }

        int offset = 0;
        for (int i = 0; i < chains; i++)
        {
            FuzzChain chain = ring.Held[0];
            ring.Held.RemoveAt(0);
            int written = chain.Write(_memory, bytes.AsSpan(Math.Min(offset, bytes.Length)));
            offset += written;
            uint length = honest ? (uint)written : Pick((uint)written, 0u, (uint)written + 1, (uint)chain.Capacity + 1, uint.MaxValue, (uint)_random.Next());
            ring.Complete(chain, length);
        }
    }

    private void CompleteTransmit(bool honest)
    {
        if (PickRing(receive: false) is not { } ring)
        {
            return;
        }

        ring.PopAll(this);
        int chains = Math.Min(ring.Held.Count, _random.Next(1, 8));
        bool inOrder = (_transport.DriverFeatures & VirtioFeatures.InOrder) != 0;
        for (int i = 0; i < chains; i++)
        {
            // Out of order under VIRTIO_F_IN_ORDER is a lie: the driver reads the later id as a batch ending there.
            int pick = inOrder && honest ? 0 : _random.Next(ring.Held.Count);
            if (pick != 0 && inOrder)
            {
                ring.Misled();
            }

            FuzzChain chain = ring.Held[pick];
            ring.Held.Remove(chain);
            ring.Complete(chain, honest ? 0 : (uint)_random.Next());
        }
    }

    private void LieAboutUsed()
    {
        FuzzRing? ring = PickRing(receive: _random.Next(2) == 0);
        if (ring is null)
        {
            return;
        }

        ring.PopAll(this);
        ring.LieAnyhow(_random, ring.Held.Count > 0 ? ring.Held[0] : null);
    }

    private void ScribbleOverDescriptor()
    {
        FuzzRing? ring = PickRing(receive: _random.Next(2) == 0);
        ring?.Scribble(_memory, _random.Next(ring.Size), _random);
    }

    private void ChangeConfiguration()
    {
        switch (_random.Next(4))
        {
            case 0:
                BinaryPrimitives.WriteUInt16LittleEndian(_transport.Config.AsSpan(VirtioNetConfig.StatusOffset), (ushort)_random.Next(65536));
                break;
            case 1:
                _transport.Config[_random.Next(_transport.Config.Length)] = (byte)_random.Next(256);
                break;
            case 2:
                BinaryPrimitives.WriteUInt32LittleEndian(_transport.Config.AsSpan(VirtioNetConfig.SpeedOffset), (uint)_random.Next());
                _transport.Config[VirtioNetConfig.DuplexOffset] = (byte)_random.Next(3);
                break;
            default:
                _transport.UnsettledGenerationReads = Pick(1, 2, 5, 1000);
                break;
        }

        _transport.ConfigGeneration++;
        _transport.PendingCause |= InterruptCause.ConfigurationChange;
    }

    private T Pick<T>(params T[] values) => values[_random.Next(values.Length)];

    private void Close()
    {
        try
        {
            _net?.Dispose();
        }
        catch (VirtioException)
        {
        }

        if (!_memory.AllGuardsIntact())
        {
            throw new FuzzFailure(Seed, "after dispose a guard byte around a DMA allocation was overwritten", _trail);
        }

        _memory.Dispose();
    }

    /// <summary>A finding: the seed, what went wrong and the last steps before it.</summary>
    public sealed class FuzzFailure(int seed, string what, IEnumerable<string> trail, Exception? inner = null)
        : Exception($"Seed {seed}: {what}. Last steps: {string.Join(", ", trail.TakeLast(16))}", inner)
    {
        public int Seed { get; } = seed;
    }

    /// <summary>A chain the device took and holds.</summary>
    private sealed record FuzzChain(ushort Id, DeviceBuffer[] Buffers)
    {
        public long Capacity => Buffers.Where(buffer => buffer.Writable).Sum(buffer => (long)buffer.Length);

        // Writes data across the writable buffers; a buffer the driver has freed since (after a lie made it think the
        // chain came back) is skipped, as an IOMMU would refuse the write.
        public int Write(HeapDmaAllocator memory, ReadOnlySpan<byte> data)
        {
            int written = 0;
            foreach (DeviceBuffer buffer in Buffers)
            {
                if (buffer.Writable && written < data.Length)
                {
                    int part = (int)Math.Min(buffer.Length, (uint)(data.Length - written));
                    if (memory.TryTranslate(buffer.Address, (ulong)part, out _))
                    {
                        data.Slice(written, part).CopyTo(memory.Map(buffer.Address, part));
                    }

                    written += part;
                }
            }

            return written;
        }
    }

    /// <summary>The device's side of one queue: the library ring, the chains held, and whether the fuzzer broke it.</summary>
    private sealed class FuzzRing
    {
        private readonly DeviceSplitRing? _split;
        private readonly DevicePackedRing? _packed;
        private readonly DeviceBuffer[] _buffers;
        private readonly ulong _descriptors;

        // The fuzzer scribbled over this ring's descriptors, or lied about a packed chain the device ring still counts as
        // held: what the device finds there afterwards is its own doing, not the driver's.
        private bool _misled;

        // A malformed chain was refused: the ring stays stuck, as a device that gave up on it would.
        private bool _stuck;

        public FuzzRing(HeapDmaAllocator memory, int size, ulong descriptors, ulong driverArea, ulong deviceArea, bool eventIdx, bool packed)
        {
            Size = size;
            _descriptors = descriptors;
            _buffers = new DeviceBuffer[size];
            if (packed)
            {
                _packed = new DevicePackedRing(memory, size, descriptors, driverArea, deviceArea, eventIdx);
            }
            else
            {
                _split = new DeviceSplitRing(memory, size, descriptors, driverArea, deviceArea, eventIdx);
            }
        }

        public int Size { get; }

        public List<FuzzChain> Held { get; } = [];

        public List<FuzzChain> Forgotten { get; } = [];

        public void PopAll(HostileDeviceFuzzer fuzzer)
        {
            if (_stuck)
            {
                return;
            }

            try
            {
                for (int i = 0; i < Size; i++)
                {
                    bool taken;
                    DeviceRingChain chain;
                    if (_packed is not null)
                    {
                        taken = _packed.TryPop(_buffers, out chain);
                    }
                    else
                    {
                        taken = _split!.TryPop(_buffers, out chain);
                    }

                    if (!taken)
                    {
                        return;
                    }

                    Held.Add(new FuzzChain(chain.Id, _buffers[..chain.BufferCount]));
                }
            }
            catch (VirtioException error) when (!_misled)
            {
                throw new FuzzFailure(fuzzer.Seed, $"the driver published a chain the device refuses: {error.Message}", fuzzer._trail, error);
            }
            catch (VirtioException)
            {
                _stuck = true;
            }
        }

        public void Complete(FuzzChain chain, uint length)
        {
            if (_packed is not null)
            {
                if (_packed.DescriptorsHeld(chain.Id) != 0)
                {
                    _packed.Complete(chain.Id, length, written: true);
                }
            }
            else
            {
                _split!.PushUsed(chain.Id, length);
            }
        }

        // A lie about used entries may return chains the device never took, so the driver rightly publishes more than
        // the device has room for in its own view: what the device finds afterwards is its own doing.
        public void Lie(FuzzChain chain, uint id, int count)
        {
            _misled = true;
            if (_packed is not null)
            {
                _packed.PushUsed((ushort)id, chain.Buffers.Length == 0 ? 0 : chain.Buffers[0].Length, count);
            }
            else
            {
                _split!.PushUsed(id, 0, count);
            }
        }

        public void LieAnyhow(Random random, FuzzChain? held)
        {
            uint id = random.Next(4) switch
            {
                0 => (uint)random.Next(Size),
                1 => (uint)(Size + random.Next(100)),
                2 => held?.Id ?? 0,
                _ => (uint)random.Next(),
            };
            uint length = random.Next(2) == 0 ? (uint)random.Next(2000) : (uint)random.Next();
            _misled = true;
            if (_packed is not null)
            {
                switch (random.Next(3))
                {
                    case 0:
                        _packed.PushUsed((ushort)id, length, random.Next(0, Size + 2), random.Next(2) == 0);
                        break;
                    case 1:
                        _packed.PushRawUsed((ushort)id, length, (ushort)random.Next(65536));
                        break;
                    default:
                        _packed.PushUsed((ushort)id, length);
                        break;
                }
            }
            else
            {
                switch (random.Next(3))
                {
                    case 0:
                        _split!.SetUsedIdx((ushort)(_split.UsedIdx + random.Next(-3, Size * 2)));
                        break;
                    case 1:
                        _split!.PushUsed(id, length, random.Next(1, Size + 2));
                        break;
                    default:
                        _split!.PushUsed(id, length);
                        break;
                }
            }

            if (held is not null)
            {
                Held.Remove(held);
            }
        }

        public void Misled() => _misled = true;

        public void Scribble(HeapDmaAllocator memory, int slot, Random random)
        {
            _misled = true;
            Span<byte> descriptor = memory.Map(_descriptors + (ulong)(slot * SplitRing.DescriptorSize), SplitRing.DescriptorSize);
            random.NextBytes(descriptor);
        }
    }
}
