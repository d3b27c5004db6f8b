namespace VirtioNet.Cli.Offloads;

/// <summary>An offload as the device has it now: <c>ethtool -k</c>'s line for it.</summary>
/// <param name="Offload">Which offload.</param>
/// <param name="On">In effect.</param>
/// <param name="Offered">The device offers at least one of its feature bits.</param>
/// <param name="Fixed">Cannot be changed now (ethtool's "[fixed]"): not offered, or only negotiation changes it.</param>
internal readonly record struct OffloadState(Offload Offload, bool On, bool Offered, bool Fixed)
{
    /// <summary>"on", "off", with " [fixed]" or, for one the device does not offer, " [not offered]".</summary>
    public string Text => !Offered ? "off [not offered]" : (On ? "on" : "off") + (Fixed ? " [fixed]" : string.Empty);
}
