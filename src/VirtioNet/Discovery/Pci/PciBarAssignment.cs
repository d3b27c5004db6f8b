namespace VirtioNet.Discovery.Pci;

/// <summary>Where one BAR is to be placed: the outcome of <see cref="PciEnumerator.PlanAssignments"/>.</summary>
/// <param name="Function">The function.</param>
/// <param name="Bar">The BAR, with <see cref="PciBar.PciAddress"/> and <see cref="PciBar.CpuAddress"/> filled in.</param>
public sealed record PciBarAssignment(PciFunction Function, PciBar Bar);
