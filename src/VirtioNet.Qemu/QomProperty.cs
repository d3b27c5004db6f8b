namespace VirtioNet.Qemu;

/// <summary>One entry of a QMP <c>qom-list</c> answer: a property or child of a QOM object.</summary>
/// <param name="Name">The property name, e.g. <c>device[2]</c>.</param>
/// <param name="Type">The property type, e.g. <c>child&lt;riscv.sifive.plic&gt;</c> for a child object.</param>
public readonly record struct QomProperty(string Name, string Type)
{
    /// <summary>True when the entry is a child object of the QOM type <paramref name="qomType"/>.</summary>
    public bool IsChildOfType(string qomType) => Type == $"child<{qomType}>";
}
