using VirtioNet.Core;
using VirtioNet.Platform;
using C = VirtioNet.Transports.Pci.PciConfigRegisters;

namespace VirtioNet.Transports.Pci;

/// <summary>
/// The interrupt side of a virtio-pci function, shared by the modern and legacy transports: the command register's
/// Bus Master and Interrupt Disable bits, the MSI-X table, which vector each queue uses, and acknowledging.
/// Ref: virtio v1.2 §4.1.4.5 (ISR status), §4.1.5.1.2 (MSI-X vector configuration), §4.1.5.4.
/// </summary>
internal sealed class VirtioPciInterrupts : IDisposable
{
    /// <summary>VIRTIO_MSI_NO_VECTOR: "no vector" in config_msix_vector and queue_msix_vector.</summary>
    public const ushort NoVector = 0xffff;

    private readonly PciFunctionAccess _function;
    private readonly Func<int, IMessageInterruptLine>? _openVector;

    // The MSI-X capability and its table (inside a BAR), when MSI-X is in use.
    private readonly MsixCapability? _msix;
    private readonly IRegisterWindow? _table;

    // Vectors opened so far, by vector number; also the members of the per-queue group line.
    private readonly List<IMessageInterruptLine> _vectors = [];
    private readonly Dictionary<int, IMessageInterruptLine> _byVector = [];

    // config_msix_vector is cleared by every reset, so it is written again before the first queue after one.
    private bool _configVectorSet;

    private bool _disposed;

    public VirtioPciInterrupts(
        PciFunctionAccess function,
        PciCapabilityList capabilities,
        VirtioPciInterruptMode mode,
        IInterruptLine? intx,
        Func<int, IMessageInterruptLine>? openVector)
    {
        _function = function;
        _openVector = openVector;
        Mode = mode;
        string name = function.Name;
        switch (mode)
        {
            case VirtioPciInterruptMode.None:
                break;
            case VirtioPciInterruptMode.Intx:
                Line = intx ?? throw new ArgumentException($"PCI function {name}: INTx mode needs the platform's INTx line.", nameof(intx));
                if (function.ConfigSpace.Read8(C.InterruptPin) == 0)
                {
                    throw new VirtioException(VirtioErrorReason.InvalidConfiguration, $"PCI function {name} has no interrupt pin (Interrupt Pin reads 0): INTx cannot be used.");
                }

                break;
            case VirtioPciInterruptMode.MsixShared or VirtioPciInterruptMode.MsixPerQueue:
                if (openVector is null)
                {
                    throw new ArgumentException($"PCI function {name}: MSI-X mode needs a way to open vectors.", nameof(openVector));
                }

                _msix = capabilities.Msix
                    ?? throw new VirtioException(VirtioErrorReason.InvalidConfiguration, $"PCI function {name} has no MSI-X capability.");
                _table = function.MapRange(_msix.TableBar, _msix.TableOffset, _msix.TableLength, "MSI-X table");
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(mode), mode, "Unknown interrupt mode.");
        }

        ConfigureFunction();
        if (_msix is not null)
        {
            Line = mode == VirtioPciInterruptMode.MsixShared ? OpenVector(0) : new MessageLineGroup(_vectors);
            _ = OpenVector(0);
        }
    }

    public VirtioPciInterruptMode Mode { get; }

    /// <summary>True once MSI-X is enabled in the function: the legacy layout then has the two vector registers.</summary>
    public bool MsixEnabled => _msix is not null;

    /// <summary>The line the driver waits on.</summary>
    public IInterruptLine? Line { get; }

    /// <summary>The value for config_msix_vector: 0 with MSI-X, else VIRTIO_MSI_NO_VECTOR.</summary>
    public ushort ConfigVector => _msix is null ? NoVector : (ushort)0;

    /// <summary>The value for queue_msix_vector of queue <paramref name="queueIndex"/>, opening its vector when first used.</summary>
    public ushort QueueVector(int queueIndex)
    {
        if (_msix is null)
        {
            return NoVector;
        }

        if (Mode == VirtioPciInterruptMode.MsixShared || _msix.TableSize < 2)
        {
            return 0;
        }

        // Vector 0 is configuration; queues take 1, 2, ... and share the last vector once the table runs out.
        int vector = Math.Min(queueIndex + 1, _msix.TableSize - 1);
        _ = OpenVector(vector);
        return (ushort)vector;
    }

    /// <summary>The line of queue <paramref name="queueIndex"/>'s own vector (per-queue MSI-X only).</summary>
    public IInterruptLine? QueueLine(int queueIndex)
    {
        if (Mode != VirtioPciInterruptMode.MsixPerQueue || _msix is null || _msix.TableSize < 2)
        {
            return null;
        }

        int vector = Math.Min(queueIndex + 1, _msix.TableSize - 1);
        return _byVector.GetValueOrDefault(vector);
    }

    /// <summary>The configuration vector's line (per-queue MSI-X only).</summary>
    public IInterruptLine? ConfigurationLine => Mode == VirtioPciInterruptMode.MsixPerQueue ? _byVector.GetValueOrDefault(0) : null;

    /// <summary>Checks what the device read back after a vector was written (§4.1.5.1.2: NO_VECTOR means it refused).</summary>
    public void CheckAccepted(ushort written, ushort readBack, string what)
    {
        if (written != NoVector && readBack != written)
        {
            throw new VirtioException(
                VirtioErrorReason.InvalidConfiguration,
                $"PCI function {_function.Name}: the device did not accept MSI-X vector {written} for {what} (read back 0x{readBack:x4}).");
        }
    }

    /// <summary>The interrupt kind as a transport's description names it.</summary>
    public string ModeName => Mode switch
    {
        VirtioPciInterruptMode.Intx => "INTx",
        VirtioPciInterruptMode.MsixShared => "MSI-X shared",
        VirtioPciInterruptMode.MsixPerQueue => "MSI-X per queue",
        _ => "no interrupt",
    };

    /// <summary>
    /// Writes <see cref="ConfigVector"/> to the config_msix_vector register at <paramref name="offset"/> of
    /// <paramref name="registers"/> and checks the device took it, once after each reset (§4.1.5.1.2).
    /// </summary>
    public void SetConfigVectorOnce(IRegisterWindow registers, ulong offset)
    {
        if (_configVectorSet)
        {
            return;
        }

        ushort vector = ConfigVector;
        registers.Write16(offset, vector);
        CheckAccepted(vector, registers.Read16(offset), "configuration changes");
        _configVectorSet = true;
    }

    /// <summary>A device reset cleared config_msix_vector: the next <see cref="SetConfigVectorOnce"/> writes it again.</summary>
    public void ForgetConfigVector() => _configVectorSet = false;

    /// <summary>
    /// Writes queue <paramref name="queueIndex"/>'s vector to the (selected queue's) queue_msix_vector register at
    /// <paramref name="offset"/> and checks the device took it (§4.1.5.1.2).
    /// </summary>
    public void SetQueueVector(IRegisterWindow registers, ulong offset, int queueIndex)
    {
        ushort vector = QueueVector(queueIndex);
        registers.Write16(offset, vector);
        CheckAccepted(vector, registers.Read16(offset), $"queue {queueIndex}");
    }

    /// <summary>
    /// Reads and acknowledges the pending causes. With INTx (or none), the ISR read does both and lowers the line.
    /// With MSI-X the vectors' latches are cleared first; per-queue vectors tell the cause by themselves, a shared
    /// vector needs the ISR's configuration bit (§4.1.4.5: set for configuration changes whatever the interrupt kind).
    /// </summary>
    public InterruptCause Acknowledge(Func<byte> readIsr)
    {
        if (_msix is null)
        {
            return (InterruptCause)(readIsr() & 3);
        }

        var cause = InterruptCause.None;
        foreach (IMessageInterruptLine line in _vectors)
        {
            if (line.Acknowledge())
            {
                cause |= line.Number == 0 && Mode == VirtioPciInterruptMode.MsixPerQueue ? InterruptCause.ConfigurationChange : InterruptCause.UsedBuffer;
            }
        }

        if (Mode == VirtioPciInterruptMode.MsixShared)
        {
            cause |= (InterruptCause)(readIsr() & 2);
        }

        return cause;
    }

    /// <summary>Masks every vector and disables MSI-X before the cells are freed, so the device never writes freed memory.</summary>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        if (_msix is not null && _table is not null)
        {
            try
            {
                foreach (IMessageInterruptLine line in _vectors)
                {
                    _table.Write32(EntryOffset(line.Number) + C.MsixEntryVectorControl, 1);
                }

                _function.ConfigSpace.Write16((ulong)(_msix.ConfigOffset + C.MsixMessageControl), C.MsixControlFunctionMask);
            }
            catch (VirtioException)
            {
                // The platform is gone (QEMU exited): no device is left to write the cells.
            }
        }

        foreach (IMessageInterruptLine line in _vectors)
        {
            (line as IDisposable)?.Dispose();
        }

        _vectors.Clear();
        _byVector.Clear();
    }

    private void ConfigureFunction()
    {
        // Bus Master lets the device DMA (rings, buffers, MSI-X messages); INTx# is masked whenever it is not the interrupt in use.
        IRegisterWindow config = _function.ConfigSpace;
        ushort command = config.Read16(C.Command);
        command |= C.CommandBusMaster;
        command = Mode == VirtioPciInterruptMode.Intx
            ? (ushort)(command & ~C.CommandInterruptDisable)
            : (ushort)(command | C.CommandInterruptDisable);
        config.Write16(C.Command, command);

        if (_msix is not null)
        {
            // Enable with the whole function masked, program entries as vectors open, then unmask (PCI 3.0 §6.8.2.3).
            ulong control = (ulong)(_msix.ConfigOffset + C.MsixMessageControl);
            config.Write16(control, C.MsixControlEnable | C.MsixControlFunctionMask);
            for (int v = 0; v < _msix.TableSize; v++)
            {
                _table!.Write32(EntryOffset(v) + C.MsixEntryVectorControl, 1);
            }

            config.Write16(control, C.MsixControlEnable);
        }
    }

    private IMessageInterruptLine OpenVector(int vector)
    {
        if (_byVector.TryGetValue(vector, out IMessageInterruptLine? existing))
        {
            return existing;
        }

        IMessageInterruptLine line = _openVector!(vector);
        if ((line.MessageAddress & 3) != 0)
        {
            throw new VirtioException(VirtioErrorReason.PlatformFailure, $"PCI function {_function.Name}: MSI-X message address 0x{line.MessageAddress:x} is not dword-aligned.");
        }

        _vectors.Add(line);
        _byVector.Add(vector, line);
        ulong entry = EntryOffset(vector);
        _table!.Write32(entry + C.MsixEntryMessageAddress, (uint)line.MessageAddress);
        _table.Write32(entry + C.MsixEntryMessageUpperAddress, (uint)(line.MessageAddress >> 32));
        _table.Write32(entry + C.MsixEntryMessageData, line.MessageData);
        _table.Write32(entry + C.MsixEntryVectorControl, 0);
        return line;
    }

    private static ulong EntryOffset(int vector) => (ulong)vector * C.MsixEntrySize;
}
