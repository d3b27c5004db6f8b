namespace VirtioNet.Discovery.Pci;

/// <summary>Where a function's INTx pin arrives: an interrupt controller and its input.</summary>
/// <param name="Pin">The function's pin at the host bridge after swizzling, 1 (INTA#) to 4 (INTD#).</param>
/// <param name="ControllerPath">The controller's device tree path, e.g. /soc/plic@c000000.</param>
/// <param name="Line">The controller input: the first cell of the parent specifier (the PLIC source number).</param>
public sealed record PciIntxRoute(int Pin, string ControllerPath, uint Line);
