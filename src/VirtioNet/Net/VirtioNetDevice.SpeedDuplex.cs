namespace VirtioNet.Net;

/// <summary>Speed and duplex (VIRTIO_NET_F_SPEED_DUPLEX), which the device may change at any time. Ref: virtio v1.2 §5.1.4.2.</summary>
public sealed partial class VirtioNetDevice
{
    // On a configuration change notification: speed and duplex read again into Config (two register reads; nothing when
    // the feature was not negotiated).
    private void RereadSpeedDuplex()
    {
        if (!NegotiatedFeatures.ContainsAny(VirtioNetFeatures.SpeedDuplex))
        {
            return;
        }

        (uint? speed, bool? duplex) = VirtioNetConfig.ReadSpeedDuplex(_transport, NegotiatedFeatures.Low);
        if (speed != Config.SpeedMbps || duplex != Config.FullDuplex)
        {
            Config = Config with { SpeedMbps = speed, FullDuplex = duplex };
        }
    }
}
