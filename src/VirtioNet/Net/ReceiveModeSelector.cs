namespace VirtioNet.Net;

/// <summary>Chooses the <see cref="ReceiveMode"/> and buffer geometry from the negotiated features.</summary>
public static class ReceiveModeSelector
{
    /// <summary>The guest receive offloads that can hand the driver packets up to 64 KiB.</summary>
    public const ulong GuestGsoFeatures =
        VirtioNetFeatures.GuestTso4 | VirtioNetFeatures.GuestTso6 | VirtioNetFeatures.GuestEcn | VirtioNetFeatures.GuestUfo |
        VirtioNetFeatures.GuestUso4 | VirtioNetFeatures.GuestUso6;

    /// <summary>
    /// Mergeable whenever MRG_RXBUF is negotiated; otherwise big when guest GSO is negotiated or the MTU exceeds 1500
    /// (a full frame no longer fits the small buffer), small otherwise.
    /// </summary>
    public static ReceiveMode Choose(ulong negotiated, int mtu)
    {
        if ((negotiated & VirtioNetFeatures.MrgRxBuf) != 0)
        {
            return ReceiveMode.Mergeable;
        }

        return (negotiated & GuestGsoFeatures) != 0 || mtu > EthernetFrame.DefaultMtu ? ReceiveMode.Big : ReceiveMode.Small;
    }

    /// <summary>
    /// The largest frame (Ethernet header, one VLAN tag, payload; no FCS) the driver must be able to receive:
    /// the MTU plus link-layer headers, and at least 64 KiB with guest GSO.
    /// </summary>
    public static int MaxReceiveFrameLength(ulong negotiated, int mtu) =>
        Math.Max((negotiated & GuestGsoFeatures) != 0 ? EthernetFrame.MaxGsoFrameLength : 0, mtu + EthernetFrame.HeaderLength + EthernetFrame.VlanTagLength);
}
