using VirtioNet.Core;
using VirtioNet.Platform;

namespace VirtioNet.Transports.Pci;

/// <summary>
/// What a virtio-pci transport needs of one PCI function, as the platform maps it: its configuration space and a
/// register window for each BAR that was assigned. The transport never learns where these live or how the function
/// was found (ECAM, port I/O, a host bridge's MMIO window), so it serves any platform.
/// </summary>
public sealed class PciFunctionAccess
{
    /// <summary>The number of BARs of a type 0 header.</summary>
    public const int BarCount = 6;

    private readonly IRegisterWindow?[] _bars;

    /// <summary>Describes a function.</summary>
    /// <param name="name">Its name for messages, e.g. "00:01.0".</param>
    /// <param name="configSpace">Its configuration space (at least 256 bytes).</param>
    /// <param name="bars">One entry per BAR (up to six): the BAR's register window, or null when absent or not assigned.
    /// The upper half of a 64-bit BAR is null.</param>
    public PciFunctionAccess(string name, IRegisterWindow configSpace, IReadOnlyList<IRegisterWindow?> bars)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(configSpace);
        ArgumentNullException.ThrowIfNull(bars);
        if (bars.Count > BarCount)
        {
            throw new ArgumentException($"A type 0 header has {BarCount} BARs; {bars.Count} were given.", nameof(bars));
        }

        Name = name;
        ConfigSpace = configSpace;
        _bars = new IRegisterWindow?[BarCount];
        for (int i = 0; i < bars.Count; i++)
        {
            _bars[i] = bars[i];
        }
    }

    /// <summary>The function's name, e.g. "00:01.0".</summary>
    public string Name { get; }

    /// <summary>The function's configuration space.</summary>
    public IRegisterWindow ConfigSpace { get; }

    /// <summary>The window of BAR <paramref name="index"/>, or null when it is absent or unassigned.</summary>
    public IRegisterWindow? GetBar(int index) => (uint)index < BarCount ? _bars[index] : null;

    /// <summary>
    /// The part of BAR <paramref name="bar"/> from <paramref name="offset"/> for <paramref name="length"/> bytes, checked
    /// to lie inside the BAR.
    /// </summary>
    /// <exception cref="VirtioException">With <see cref="VirtioErrorReason.InvalidConfiguration"/> when the BAR is missing or the range leaves it.</exception>
    public IRegisterWindow MapRange(int bar, ulong offset, ulong length, string what)
    {
        IRegisterWindow window = GetBar(bar)
            ?? throw new VirtioException(VirtioErrorReason.InvalidConfiguration, $"PCI function {Name}: the {what} lives in BAR {bar}, which is absent or was not assigned.");
        if (length == 0 || offset > window.Length || length > window.Length - offset)
        {
            throw new VirtioException(
                VirtioErrorReason.InvalidConfiguration,
                $"PCI function {Name}: the {what} at BAR {bar} + 0x{offset:x} (0x{length:x} bytes) does not lie inside the BAR's 0x{window.Length:x} bytes.");
        }

        return new RegisterSubWindow(window, offset, length);
    }
}
