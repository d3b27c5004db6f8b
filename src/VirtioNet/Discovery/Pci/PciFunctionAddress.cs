namespace VirtioNet.Discovery.Pci;

/// <summary>A function's bus, device and function numbers, written bb:dd.f.</summary>
/// <param name="Bus">Bus number, 0-255.</param>
/// <param name="Device">Device number, 0-31.</param>
/// <param name="Function">Function number, 0-7.</param>
public readonly record struct PciFunctionAddress(byte Bus, byte Device, byte Function)
{
    /// <summary>The function's offset from the ECAM base of bus 0: bus &lt;&lt; 20 | device &lt;&lt; 15 | function &lt;&lt; 12.</summary>
    public ulong EcamOffset => ((ulong)Bus << 20) | ((ulong)(Device & 0x1f) << 15) | ((ulong)(Function & 7) << 12);

    /// <summary>
    /// The phys.hi cell of the function's unit address in device tree bindings (bus in bits 23:16, device 15:11,
    /// function 10:8), as <c>interrupt-map</c> matches it. Ref: IEEE 1275 PCI binding §2.2.1.1.
    /// </summary>
    public uint UnitAddressHigh => ((uint)Bus << 16) | ((uint)(Device & 0x1f) << 11) | ((uint)(Function & 7) << 8);

    /// <summary>Parses "bb:dd.f" (hexadecimal bus and device, as lspci prints them).</summary>
    public static bool TryParse(string text, out PciFunctionAddress address)
    {
        address = default;
        if (text is null)
        {
            return false;
        }

        string[] busRest = text.Split(':');
        if (busRest.Length != 2)
        {
            return false;
        }

        string[] devFn = busRest[1].Split('.');
        if (devFn.Length != 2
            || !byte.TryParse(busRest[0], System.Globalization.NumberStyles.HexNumber, System.Globalization.CultureInfo.InvariantCulture, out byte bus)
            || !byte.TryParse(devFn[0], System.Globalization.NumberStyles.HexNumber, System.Globalization.CultureInfo.InvariantCulture, out byte device)
            || !byte.TryParse(devFn[1], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out byte function)
            || device > 31 || function > 7)
        {
            return false;
        }

        address = new PciFunctionAddress(bus, device, function);
        return true;
    }

    /// <inheritdoc />
    public override string ToString() => $"{Bus:x2}:{Device:x2}.{Function}";
}
