namespace VirtioNet.Discovery;

/// <summary>
/// One interrupt a node generates: the controller it is wired to and the specifier that names the line there, as many
/// cells as the controller's <c>#interrupt-cells</c> says. Ref: devicetree v0.4 §2.4.1.
/// </summary>
public sealed class DeviceTreeInterrupt
{
    internal DeviceTreeInterrupt(DeviceTreeNode controller, uint[] specifier)
    {
        Controller = controller;
        Specifier = specifier;
    }

    /// <summary>The interrupt parent (an interrupt controller or nexus) that receives the interrupt.</summary>
    public DeviceTreeNode Controller { get; }

    /// <summary>
    /// The interrupt specifier cells, host order. Their meaning belongs to the controller's binding; for the PLIC
    /// (<c>#interrupt-cells = 1</c>) the single cell is the interrupt source number.
    /// </summary>
    public IReadOnlyList<uint> Specifier { get; }

    /// <inheritdoc/>
    public override string ToString() => $"{Controller.Path} <{string.Join(' ', Specifier.Select(c => $"0x{c:x}"))}>";
}
